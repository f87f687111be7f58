//! `minit run [OPTIONS] -- APP [ARGS…]`: run the app in new namespaces and a cgroup of its
//! own, with minit as PID 1 inside, and report exactly how it ended.
//!
//! Two minit processes take part. The monitor — the process the user started — stays
//! outside: it owns the cgroup, forwards every signal it gets to the sandbox, and turns the
//! end of the run into the exit status, the OOM message and the report. The sandbox is cloned
//! into the new namespaces and runs the same supervisor as entrypoint mode (see
//! `sandbox.rs`).
//!
//! The order of the steps matters:
//! 1. the cgroup is created and every limit written before any process joins it;
//! 2. the sandbox is cloned with all `CLONE_NEW*` flags at once, so the kernel makes the user
//!    namespace first and the others owned by it, and the sandbox blocks on a sync pipe;
//! 3. on cgroup v2 the sandbox is cloned straight into the cgroup (`CLONE_INTO_CGROUP`);
//!    the monitor writes the id maps (only a process outside the new user namespace may)
//!    and moves the sandbox into any v1 cgroups, then sends "go": nothing the sandbox runs —
//!    let alone the app — is ever outside the cgroup or without its ids.

pub mod caps;
pub mod cgroup;
mod clone;
pub mod mounts;
pub mod namespaces;
pub mod options;
pub mod report;
mod sandbox;

use crate::cli::{InitOptions, SignalMap};
use crate::init::EXIT_SETUP_FAILED;
use crate::logging::error_text;
use crate::reap;
use crate::signals::{InheritedSignals, SignalFd, signal_name};
use crate::targets::{Pid, signal_process};
use crate::units::format_size;
use cgroup::{RunCgroup, Stats};
use clone::Started;
use namespaces::JoinTarget;
use options::{ReportTarget, Request, RunOptions};
use report::Report;
use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Instant;

/// Runs `minit run` with its arguments (after `run`); returns the exit status.
pub fn main(args: Vec<OsString>, inherited: InheritedSignals) -> u8 {
    let opts = match options::parse(args, &|name| std::env::var_os(name)) {
        Ok(Request::Run(opts)) => opts,
        Ok(Request::Help) => {
            let _ = io::stdout().write_all(options::HELP.as_bytes());
            return 0;
        }
        Err(err) => {
            let _ = writeln!(
                io::stderr(),
                "minit: run: {}; {}",
                err.line(),
                options::USAGE
            );
            return 2;
        }
    };
    crate::logging::init(&opts.verbosity);
    let started = Instant::now();
    let mut report = Report {
        memory_limit: opts.limits.memory,
        ..Report::default()
    };
    report.exit_code = match run(&opts, inherited, &mut report) {
        Ok(code) => code,
        Err(msg) => {
            log::error!("{msg}");
            EXIT_SETUP_FAILED
        }
    };
    report.signal = report::signal_of(report.exit_code);
    report.wall = started.elapsed();
    if let Some(target) = &opts.report {
        write_report(target, &report);
    }
    report.exit_code
}

/// Sets up, runs and tears down the sandbox; returns the exit status or the reason the
/// sandbox could not be set up. `report` collects the statistics.
fn run(opts: &RunOptions, inherited: InheritedSignals, report: &mut Report) -> Result<u8, String> {
    check_request(opts)?;
    let cgroup = create_cgroup(opts)?;
    let outcome = run_sandbox(opts, inherited, cgroup.as_ref());
    let stats = cgroup.map(RunCgroup::finish).unwrap_or_default();
    let (status, usage) = outcome?;
    let code = reap::exit_code(status);
    fill_report(report, &stats, &usage);
    if let Some(kills) = stats.oom_kills.filter(|&n| n > 0) {
        let limit = opts.limits.memory.map_or("none".to_string(), format_size);
        if code == 128 + libc::SIGKILL as u8 {
            log::error!("app was killed by the OOM killer (memory limit {limit})");
        } else {
            log::warn!(
                "the OOM killer killed {kills} process(es) of the app (memory limit {limit})"
            );
        }
    }
    Ok(code)
}

/// The combinations the command line cannot rule out by itself.
fn check_request(opts: &RunOptions) -> Result<(), String> {
    if opts.hostname.is_some() && !opts.namespaces.uts {
        return Err(
            "cannot set the hostname without a UTS namespace of its own (add --uts)".into(),
        );
    }
    if opts.join.is_some() && opts.namespaces.clone_flags() != 0 {
        return Err(
            "cannot both join a process's namespaces and create new ones (--join with --pid, --mount, --rootfs, …)"
                .into(),
        );
    }
    if let Some(rootfs) = &opts.rootfs {
        mounts::check_rootfs(rootfs)?;
    }
    if opts.map_user.is_some() && !opts.namespaces.user {
        return Err("cannot map ids without a user namespace (add --user)".into());
    }
    Ok(())
}

/// The run's cgroup. With limits it is required; without, it is made when minit may (as
/// root) for tracking and the final kill, and its absence is only logged.
fn create_cgroup(opts: &RunOptions) -> Result<Option<RunCgroup>, String> {
    let wanted = opts.limits.any();
    // SAFETY: geteuid cannot fail.
    if !wanted && unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let root = Path::new(cgroup::DEFAULT_ROOT);
    let attempt = || -> Result<RunCgroup, String> {
        let layout = cgroup::detect_layout(root)?;
        let self_cgroup = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|err| format!("cannot read /proc/self/cgroup: {}", error_text(&err)))?;
        let name = format!("minit-{}", std::process::id());
        RunCgroup::create(&cgroup::Request {
            root,
            layout,
            parent: opts.cgroup_parent.as_deref(),
            name: &name,
            limits: &opts.limits,
            self_cgroup: &self_cgroup,
        })
    };
    match attempt() {
        Ok(group) => Ok(Some(group)),
        Err(err) if wanted => Err(err),
        Err(err) => {
            log::info!("running without a cgroup of its own: {err}");
            Ok(None)
        }
    }
}

/// Resource usage of the sandbox and everything it reaped, from wait4.
struct Usage {
    user_usec: u64,
    system_usec: u64,
}

/// Clones the sandbox, admits it and supervises it; returns its wait status.
fn run_sandbox(
    opts: &RunOptions,
    inherited: InheritedSignals,
    cgroup: Option<&RunCgroup>,
) -> Result<(libc::c_int, Usage), String> {
    let plan = sandbox_plan(opts, inherited);
    let join = opts.join.map(JoinTarget::open).transpose()?;
    if let Some(target) = &join {
        target.enter_pid_namespace()?;
    }
    let sfd =
        SignalFd::new().map_err(|err| format!("cannot create a signalfd: {}", error_text(&err)))?;
    let (go_read, go_write) = sync_pipe()?;
    // Asked before the clone: once the app runs it may own the terminal's foreground.
    // SAFETY: plain queries on fd 0.
    let interactive = unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() };
    let cgroup_dir = cgroup.and_then(RunCgroup::v2_dir).and_then(open_dir);
    let flags = opts.namespaces.clone_flags();
    // SAFETY: minit is single-threaded; the child runs only `sandbox::main`, which never
    // returns here.
    let started =
        unsafe { clone::clone_sandbox(flags, cgroup_dir.as_ref().map(|d| d.as_raw_fd())) };
    let (pid, in_cgroup) = match started {
        Ok(Started::Parent { pid, in_cgroup }) => (pid, in_cgroup),
        Ok(Started::Child) => {
            drop(go_write);
            drop(cgroup_dir);
            sandbox::main(&plan, join.as_ref(), go_read)
        }
        Err(err) => {
            let errno = err.raw_os_error().unwrap_or(0);
            return Err(namespaces::explain_clone_error(errno, flags));
        }
    };
    drop(go_read);
    drop(cgroup_dir);
    if let Err(err) = admit(opts, pid.raw(), cgroup, in_cgroup, go_write) {
        // The sandbox sees end-of-file and exits without a word; collect it.
        wait_sandbox(pid.raw(), 0);
        return Err(err);
    }
    if opts.pod {
        // The pod's pid, for `minit run --join`: the one line on stdout.
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", pid.raw()).and_then(|()| out.flush());
    }
    Ok(supervise_sandbox(&sfd, pid, interactive))
}

/// Opens a cgroup directory for `CLONE_INTO_CGROUP`; `None` falls back to cgroup.procs.
fn open_dir(dir: &Path) -> Option<OwnedFd> {
    std::fs::File::open(dir).ok().map(OwnedFd::from)
}

/// Writes the id maps, moves the sandbox into the cgroup, then lets it go. Dropping
/// `go` without writing (on error) tells the sandbox to give up.
fn admit(
    opts: &RunOptions,
    pid: libc::pid_t,
    cgroup: Option<&RunCgroup>,
    born_in_cgroup: bool,
    go: OwnedFd,
) -> Result<(), String> {
    if opts.namespaces.user {
        namespaces::write_id_maps(pid, opts.map_user.unwrap_or((0, 0)))?;
    }
    if let Some(group) = cgroup {
        group.add(pid, born_in_cgroup)?;
    }
    // SAFETY: writing one byte from a live buffer to our pipe end.
    let n = unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    if n != 1 {
        let err = io::Error::last_os_error();
        return Err(format!("cannot start the sandbox: {}", error_text(&err)));
    }
    Ok(())
}

fn sync_pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [-1; 2];
    // SAFETY: fds has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        let err = io::Error::last_os_error();
        return Err(format!("cannot create a pipe: {}", error_text(&err)));
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn sandbox_plan(opts: &RunOptions, inherited: InheritedSignals) -> sandbox::Plan {
    let ns = &opts.namespaces;
    sandbox::Plan {
        init: InitOptions {
            command: opts.command.clone(),
            kill_group: false,
            success_codes: Vec::new(),
            parent_death_signal: None,
            warn_on_reap: false,
            rewrites: SignalMap::default(),
            grace: opts.grace,
            leftovers: opts.leftovers,
            verbosity: opts.verbosity.clone(),
            reboot: false,
        },
        env: app_environment(opts),
        hostname: opts.hostname.clone(),
        rootfs: opts.rootfs.clone(),
        mounts: opts.mounts.clone(),
        new_mount_ns: ns.mount,
        fresh_proc: ns.pid,
        loopback: ns.net,
        chdir: opts
            .chdir
            .clone()
            .or_else(|| opts.rootfs.as_ref().map(|_| "/".into())),
        cap_drop: opts.cap_drop.clone(),
        no_new_privs: opts.no_new_privs,
        inherited,
        pause: opts.pod,
    }
}

/// `--clearenv` and `--env`: the app's environment, or `None` to inherit minit's.
fn app_environment(opts: &RunOptions) -> Option<Vec<OsString>> {
    if !opts.clearenv && opts.env.is_empty() {
        return None;
    }
    let key = |var: &OsString| -> Vec<u8> {
        let bytes = var.as_encoded_bytes();
        let end = bytes.iter().position(|&b| b == b'=').unwrap_or(bytes.len());
        bytes[..end].to_vec()
    };
    let mut env: Vec<OsString> = if opts.clearenv {
        Vec::new()
    } else {
        std::env::vars_os()
            .map(|(k, v)| {
                let mut var = k;
                var.push("=");
                var.push(v);
                var
            })
            .collect()
    };
    for var in &opts.env {
        let k = key(var);
        env.retain(|existing| key(existing) != k);
        env.push(var.clone());
    }
    Some(env)
}

/// The monitor's loop: every signal but SIGCHLD goes to the sandbox's minit, which passes
/// it on to the app; SIGCHLD means the sandbox may have ended.
///
/// Job control: run from an interactive shell without a PID namespace, the sandbox's minit
/// stops itself when the app is stopped (Ctrl-Z). The monitor then stops too, so the shell
/// sees its job stop; the SIGCONT of `fg` is forwarded like any signal.
fn supervise_sandbox(sfd: &SignalFd, pid: Pid, interactive: bool) -> (libc::c_int, Usage) {
    let me = std::process::id();
    let mut batch = Vec::with_capacity(32);
    loop {
        sfd.wait(&mut batch);
        for sig in &batch {
            if sig.signo == libc::SIGCHLD {
                match wait_sandbox(pid.raw(), libc::WNOHANG | libc::WUNTRACED) {
                    Some(SandboxState::Ended(status, usage)) => return (status, usage),
                    Some(SandboxState::Stopped) if interactive => {
                        log::debug!("the sandbox stopped; stopping minit run too");
                        // SAFETY: SIGSTOP to ourselves; execution resumes here on SIGCONT.
                        unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
                    }
                    _ => {}
                }
            } else if sig.code == libc::SI_USER && sig.pid == me {
                log::debug!("ignoring {} raised by minit itself", signal_name(sig.signo));
            } else {
                // The sandbox is our child and not reaped yet, so its pid is still its own.
                if let Err(err) = signal_process(pid, sig.signo) {
                    log::warn!(
                        "cannot forward {} to the sandbox: {}",
                        signal_name(sig.signo),
                        error_text(&err)
                    );
                } else {
                    log::debug!("forwarded {} to the sandbox", signal_name(sig.signo));
                }
            }
        }
    }
}

/// What `wait4` said about the sandbox.
enum SandboxState {
    Ended(libc::c_int, Usage),
    Stopped,
}

/// Waits for the sandbox with `flags`; `None` when it is still running (WNOHANG).
fn wait_sandbox(pid: libc::pid_t, flags: libc::c_int) -> Option<SandboxState> {
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: both out-pointers are live; pid is our own child.
        let rc = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        if rc == pid && libc::WIFSTOPPED(status) {
            return Some(SandboxState::Stopped);
        }
        if rc == pid {
            let usec = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
            return Some(SandboxState::Ended(
                status,
                Usage {
                    user_usec: usec(usage.ru_utime),
                    system_usec: usec(usage.ru_stime),
                },
            ));
        }
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

fn fill_report(report: &mut Report, stats: &Stats, usage: &Usage) {
    report.oom_kills = stats.oom_kills;
    report.memory_peak = stats.memory_peak;
    report.pids_peak = stats.pids_peak;
    report.cpu_user_usec = Some(usage.user_usec);
    report.cpu_system_usec = Some(usage.system_usec);
    report.cpu_usec = stats.cpu_usec.or(Some(usage.user_usec + usage.system_usec));
}

fn write_report(target: &ReportTarget, report: &Report) {
    let json = report.to_json();
    let result = match target {
        ReportTarget::Stdout => io::stdout().write_all(json.as_bytes()),
        ReportTarget::File(path) => std::fs::write(path, json),
    };
    if let Err(err) = result {
        let place = match target {
            ReportTarget::Stdout => "stdout".to_string(),
            ReportTarget::File(path) => path.display().to_string(),
        };
        log::error!("cannot write the report to {place}: {}", error_text(&err));
    }
}
