//! `minit run`'s command line: raw flags → a plain `RunOptions`.
//!
//! Flag names follow what users already know: the namespace letters of unshare(1), the mount
//! flags of bwrap, the resource flags of `docker run`. Values that can only be typos — a zero
//! memory limit, a negative pid count, a cgroup path that climbs with `..` — are refused here
//! as usage errors (exit 2), before anything is created.

use crate::cli::{self, LeftoverPolicy, UsageError, Verbosity};
use crate::launch::caps;
use crate::units::{parse_duration, parse_size};
use lexopt::prelude::*;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "usage: minit run [OPTIONS] -- APP [ARGS...] (see minit run --help)";

pub const HELP: &str = "\
minit run - run APP in new namespaces and a cgroup of its own, with minit as PID 1 inside,
and exit with exactly how APP ended.

usage: minit run [OPTIONS] -- APP [ARGS...]

namespaces (letters as unshare(1)):
  -p, --pid                new PID namespace: minit is PID 1, APP is PID 2; /proc is
                           remounted (implies --mount)
  -m, --mount              new mount namespace; propagation to the host is cut
  -u, --uts                new UTS namespace (hostname)
  -i, --ipc                new IPC namespace
  -n, --net                new network namespace, with only lo, brought up
  -U, --user               new user namespace mapping the caller to root
  -C, --cgroupns           new cgroup namespace
      --all                pid, mount, uts, ipc, net and cgroupns (and user when not root)
      --join PID           enter the namespaces of running process PID instead
      --pod                no APP: make pid, net, ipc and uts namespaces (plus any asked
                           for) with `minit pause` as their PID 1, print its pid, and
                           stay until it ends (`minit pod [OPTIONS]` is the same)
      --hostname NAME      hostname inside (needs --uts)
      --map-user UID:GID   with --user: map the caller to UID:GID instead of 0:0

filesystem (needs --mount; paths inside the sandbox):
      --rootfs DIR         pivot_root into DIR, with a fresh /proc, a minimal /dev and a
                           tmpfs /tmp
      --bind SRC:DST       bind-mount host path SRC on DST (repeatable)
      --ro-bind SRC:DST    the same, read-only (repeatable)
      --tmpfs DST          mount an empty tmpfs on DST (repeatable)
      --chdir DIR          working directory of APP (default: / with --rootfs, else the
                           current one)

environment and privileges:
      --env K=V            set an environment variable for APP (repeatable)
      --clearenv           start APP with only the --env variables
      --cap-drop CAPS      drop capabilities from the bounding set: ALL or a list such as
                           NET_RAW,SYS_ADMIN
      --allow-new-privs    do not set no_new_privs (set by default, so setuid binaries
                           cannot regain privileges)

resources (a cgroup per run, removed at the end):
      --memory SIZE        memory limit, e.g. 64M, 1.5G
      --memory-swap SIZE   memory plus swap (default: equal to --memory, so no swap);
                           'unlimited' allows any swap
      --cpus FLOAT         CPU quota in CPUs, e.g. 0.5 or 2
      --pids N             most processes and threads at once
      --cgroup-parent PATH create the run's cgroup under PATH (from the cgroup root;
                           default: minit's own cgroup)

supervision and output:
      --report FILE        write how the run ended as one JSON object to FILE ('-' for
                           stdout): exit code, signal, OOM kills, memory/pids peak, CPU and
                           wall time
      --grace DURATION     time leftovers get between SIGTERM and SIGKILL (default 3s)
  -v, --verbose            more log output (repeatable)
  -h, --help               print this help

exit status: APP's exit code; 128+N if APP died from signal N (137 when OOM-killed);
126 APP not runnable; 127 APP not found; 125 the sandbox could not be set up; 2 bad usage.
";

/// The namespaces to create. Each maps to a `CLONE_NEW*` flag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    pub net: bool,
    pub user: bool,
    pub cgroup: bool,
}

impl Namespaces {
    pub fn clone_flags(&self) -> libc::c_int {
        let mut flags = 0;
        for (on, flag) in [
            (self.pid, libc::CLONE_NEWPID),
            (self.mount, libc::CLONE_NEWNS),
            (self.uts, libc::CLONE_NEWUTS),
            (self.ipc, libc::CLONE_NEWIPC),
            (self.net, libc::CLONE_NEWNET),
            (self.user, libc::CLONE_NEWUSER),
            (self.cgroup, libc::CLONE_NEWCGROUP),
        ] {
            if on {
                flags |= flag;
            }
        }
        flags
    }
}

/// One `--bind`, `--ro-bind` or `--tmpfs`, in command-line order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
    Tmpfs {
        target: PathBuf,
    },
}

/// `--memory-swap`: a total of memory plus swap, or no limit on swap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapLimit {
    Total(u64),
    Unlimited,
}

/// Resource limits; `None` leaves a resource unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub memory_swap: Option<SwapLimit>,
    /// CPU quota in microseconds per `CPU_PERIOD_US`.
    pub cpu_quota_us: Option<u64>,
    pub pids: Option<u64>,
}

/// The CPU period for `--cpus`, as docker uses: 100 ms.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    pub fn any(&self) -> bool {
        self.memory.is_some() || self.cpu_quota_us.is_some() || self.pids.is_some()
    }
}

/// Where `--report` goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportTarget {
    Stdout,
    File(PathBuf),
}

#[derive(Debug)]
pub struct RunOptions {
    pub command: Vec<OsString>,
    pub namespaces: Namespaces,
    pub join: Option<libc::pid_t>,
    pub hostname: Option<String>,
    /// `--map-user UID:GID`: the caller's ids inside the user namespace.
    pub map_user: Option<(u32, u32)>,
    pub rootfs: Option<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub chdir: Option<PathBuf>,
    pub env: Vec<OsString>,
    pub clearenv: bool,
    pub cap_drop: Vec<u32>,
    pub no_new_privs: bool,
    pub limits: Limits,
    /// Relative to the cgroup root, without a leading `/`.
    pub cgroup_parent: Option<String>,
    pub report: Option<ReportTarget>,
    pub grace: Duration,
    pub leftovers: LeftoverPolicy,
    pub verbosity: Verbosity,
    /// `--pod` (`minit pod`): no app; PID 1 of new pid, net, ipc and uts namespaces is
    /// `minit pause`, and the monitor prints its pid for `minit run --join`.
    pub pod: bool,
}

/// What `minit run` was asked to do.
#[derive(Debug)]
pub enum Request {
    Run(Box<RunOptions>),
    Help,
}

/// Parses `minit run`'s arguments (after `run`). `env` looks up environment variables.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Request, UsageError> {
    let mut opts = RunOptions {
        command: Vec::new(),
        namespaces: Namespaces::default(),
        join: None,
        hostname: None,
        map_user: None,
        rootfs: None,
        mounts: Vec::new(),
        chdir: None,
        env: Vec::new(),
        clearenv: false,
        cap_drop: Vec::new(),
        no_new_privs: true,
        limits: Limits::default(),
        cgroup_parent: None,
        report: None,
        grace: cli::DEFAULT_GRACE,
        leftovers: LeftoverPolicy::Terminate,
        verbosity: cli::base_verbosity(env)?,
        pod: false,
    };
    let mut all = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        let ns = &mut opts.namespaces;
        match arg {
            Short('h') | Long("help") => return Ok(Request::Help),
            Short('v') | Long("verbose") => opts.verbosity.raise += 1,
            Short('p') | Long("pid") => ns.pid = true,
            Short('m') | Long("mount") => ns.mount = true,
            Short('u') | Long("uts") => ns.uts = true,
            Short('i') | Long("ipc") => ns.ipc = true,
            Short('n') | Long("net") => ns.net = true,
            Short('U') | Long("user") => ns.user = true,
            Short('C') | Long("cgroupns") => ns.cgroup = true,
            Long("all") => all = true,
            Long("pod") => opts.pod = true,
            Long("join") => opts.join = Some(parse_pid(&value(&mut parser)?)?),
            Long("hostname") => opts.hostname = Some(parse_hostname(&value(&mut parser)?)?),
            Long("map-user") => opts.map_user = Some(parse_id_pair(&value(&mut parser)?)?),
            Long("rootfs") => opts.rootfs = Some(parser.value()?.into()),
            Long("bind") | Long("ro-bind") => {
                let read_only = matches!(arg, Long("ro-bind"));
                let (source, target) = parse_bind(&value(&mut parser)?)?;
                opts.mounts.push(MountSpec::Bind {
                    source,
                    target,
                    read_only,
                });
            }
            Long("tmpfs") => {
                let target = parse_target(&value(&mut parser)?)?;
                opts.mounts.push(MountSpec::Tmpfs { target });
            }
            Long("chdir") => opts.chdir = Some(parser.value()?.into()),
            Long("env") => {
                let var = parser.value()?;
                let bytes = var.as_encoded_bytes();
                if bytes.first().is_none_or(|&b| b == b'=') || !bytes.contains(&b'=') {
                    return Err(UsageError(format!(
                        "--env wants K=V, not '{}'",
                        var.to_string_lossy()
                    )));
                }
                opts.env.push(var);
            }
            Long("clearenv") => opts.clearenv = true,
            Long("cap-drop") => opts.cap_drop = caps::parse_list(&value(&mut parser)?)?,
            Long("allow-new-privs") => opts.no_new_privs = false,
            Long("memory") => opts.limits.memory = Some(parse_memory(&value(&mut parser)?)?),
            Long("memory-swap") => {
                opts.limits.memory_swap = Some(parse_swap(&value(&mut parser)?)?)
            }
            Long("cpus") => opts.limits.cpu_quota_us = Some(parse_cpus(&value(&mut parser)?)?),
            Long("pids") => opts.limits.pids = Some(parse_pids(&value(&mut parser)?)?),
            Long("cgroup-parent") => {
                opts.cgroup_parent = Some(parse_cgroup_path(&value(&mut parser)?)?)
            }
            Long("report") => {
                let target = parser.value()?;
                opts.report = Some(if target == "-" {
                    ReportTarget::Stdout
                } else {
                    ReportTarget::File(target.into())
                });
            }
            Long("grace") => opts.grace = parse_duration(&value(&mut parser)?)?,
            Value(app) => {
                opts.command.push(app);
                opts.command.extend(parser.raw_args()?);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if opts.pod {
        if !opts.command.is_empty() {
            return Err(UsageError(
                "a pod takes no command: its PID 1 is minit pause; start apps in it with minit run --join PID".into(),
            ));
        }
        let ns = &mut opts.namespaces;
        (ns.pid, ns.net, ns.ipc, ns.uts) = (true, true, true, true);
    } else if opts.command.is_empty() {
        return Err(UsageError("no command given".into()));
    }
    if all {
        let ns = &mut opts.namespaces;
        ns.pid = true;
        ns.mount = true;
        ns.uts = true;
        ns.ipc = true;
        ns.net = true;
        ns.cgroup = true;
        // SAFETY: geteuid cannot fail.
        ns.user |= unsafe { libc::geteuid() } != 0;
    }
    // A fresh /proc for the new PID namespace needs a mount namespace to put it in; so do
    // the filesystem options.
    if opts.namespaces.pid || opts.rootfs.is_some() || !opts.mounts.is_empty() {
        opts.namespaces.mount = true;
    }
    check_swap(&opts.limits)?;
    Ok(Request::Run(Box::new(opts)))
}

fn value(parser: &mut lexopt::Parser) -> Result<String, UsageError> {
    Ok(parser.value()?.string()?)
}

fn parse_pid(text: &str) -> Result<libc::pid_t, String> {
    match text.parse::<libc::pid_t>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => Err(format!("--join wants a process id, not '{text}'")),
    }
}

/// A hostname as the kernel takes it: 1 to 64 bytes, no NUL.
fn parse_hostname(text: &str) -> Result<String, String> {
    if text.is_empty() || text.len() > 64 || text.contains('\0') {
        return Err(format!("'{text}' is not a hostname (1 to 64 bytes)"));
    }
    Ok(text.to_string())
}

fn parse_id_pair(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--map-user wants UID:GID, not '{text}'");
    let (uid, gid) = text.split_once(':').ok_or_else(bad)?;
    let uid = uid.parse::<u32>().map_err(|_| bad())?;
    let gid = gid.parse::<u32>().map_err(|_| bad())?;
    // 2^32-1 is the kernel's "no id" and cannot be mapped.
    if uid == u32::MAX || gid == u32::MAX {
        return Err(bad());
    }
    Ok((uid, gid))
}

/// A mount target: an absolute path inside the sandbox that does not climb with `..`.
fn parse_target(text: &str) -> Result<PathBuf, String> {
    if !text.starts_with('/') || text.split('/').any(|c| c == "..") {
        return Err(format!(
            "'{text}' is not an absolute path inside the sandbox"
        ));
    }
    Ok(PathBuf::from(text))
}

fn parse_bind(text: &str) -> Result<(PathBuf, PathBuf), String> {
    let (source, target) = match text.split_once(':') {
        Some((source, target)) => (source, target),
        // `--bind /data` binds a path on itself.
        None => (text, text),
    };
    if source.is_empty() {
        return Err(format!("--bind wants SRC:DST, not '{text}'"));
    }
    Ok((PathBuf::from(source), parse_target(target)?))
}

/// At least 1 MiB: below that no process can even start, so it is a typo (`--memory 0`).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text).map_err(|e| format!("--memory: {e}"))?;
    if bytes < 1 << 20 {
        return Err(format!("--memory: '{text}' is too small (at least 1M)"));
    }
    Ok(bytes)
}

fn parse_swap(text: &str) -> Result<SwapLimit, String> {
    if text == "unlimited" || text == "-1" {
        return Ok(SwapLimit::Unlimited);
    }
    let bytes = parse_size(text).map_err(|e| format!("--memory-swap: {e}"))?;
    Ok(SwapLimit::Total(bytes))
}

fn check_swap(limits: &Limits) -> Result<(), String> {
    match (limits.memory, limits.memory_swap) {
        (None, Some(_)) => Err("--memory-swap needs --memory".into()),
        (Some(memory), Some(SwapLimit::Total(total))) if total < memory => Err(format!(
            "--memory-swap is memory plus swap and cannot be below --memory ({total} < {memory} bytes)"
        )),
        _ => Ok(()),
    }
}

/// `--cpus 0.5` → a quota of 50 ms per 100 ms period. The kernel's smallest quota is 1 ms
/// (0.01 CPUs); more than 1024 CPUs is a typo.
pub fn parse_cpus(text: &str) -> Result<u64, String> {
    let bad = || format!("--cpus: '{text}' is not a CPU count (e.g. 0.5, 2; from 0.01 to 1024)");
    let cpus: f64 = text.trim().parse().map_err(|_| bad())?;
    if !cpus.is_finite() || !(0.01..=1024.0).contains(&cpus) {
        return Err(bad());
    }
    Ok((cpus * CPU_PERIOD_US as f64).round() as u64)
}

/// 1 to 4194304 (the kernel's `pid_max` ceiling).
fn parse_pids(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=4_194_304).contains(&n) => Ok(n),
        _ => Err(format!(
            "--pids: '{text}' is not a process count (1 to 4194304)"
        )),
    }
}

/// A cgroup path below the root: no `..`, no `.`, no control characters. Returned without
/// leading or trailing slashes.
pub fn parse_cgroup_path(text: &str) -> Result<String, String> {
    let trimmed = text.trim_matches('/');
    let bad = |why: &str| format!("--cgroup-parent '{}': {why}", text.escape_debug());
    if text.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed"));
    }
    if trimmed.split('/').any(|c| c == ".." || c == ".") {
        return Err(bad("'.' and '..' are not allowed"));
    }
    if trimmed.split('/').any(|c| c.is_empty()) && !trimmed.is_empty() {
        return Err(bad("empty path component"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn run(list: &[&str]) -> Result<RunOptions, UsageError> {
        let args = list.iter().map(OsString::from).collect();
        match parse(args, &no_env)? {
            Request::Run(o) => Ok(*o),
            Request::Help => Err(UsageError("help".into())),
        }
    }

    #[test]
    fn namespace_letters_and_implications() {
        let o = run(&["-pu", "-n", "--ipc", "--", "true"]).unwrap();
        let ns = o.namespaces;
        assert!(ns.pid && ns.uts && ns.net && ns.ipc);
        assert!(ns.mount, "--pid implies --mount for the fresh /proc");
        assert!(!ns.user && !ns.cgroup);
        assert_eq!(o.command, vec![OsString::from("true")]);
        let o = run(&["--all", "true"]).unwrap();
        let ns = o.namespaces;
        assert!(ns.pid && ns.mount && ns.uts && ns.ipc && ns.net && ns.cgroup);
        let o = run(&["--tmpfs", "/x", "true"]).unwrap();
        assert!(o.namespaces.mount);
    }

    #[test]
    fn parsing_stops_at_the_app() {
        let o = run(&["-p", "sh", "-c", "exit 3"]).unwrap();
        assert_eq!(o.command.len(), 3);
        assert!(run(&["--pid"]).is_err());
    }

    #[test]
    fn limits() {
        let o = run(&[
            "--memory",
            "64M",
            "--cpus",
            "0.5",
            "--pids",
            "20",
            "--cgroup-parent",
            "/a/b/",
            "true",
        ])
        .unwrap();
        assert_eq!(o.limits.memory, Some(64 << 20));
        assert_eq!(o.limits.cpu_quota_us, Some(50_000));
        assert_eq!(o.limits.pids, Some(20));
        assert_eq!(o.cgroup_parent.as_deref(), Some("a/b"));
        let o = run(&["--memory", "1G", "--memory-swap", "unlimited", "true"]).unwrap();
        assert_eq!(o.limits.memory_swap, Some(SwapLimit::Unlimited));
    }

    #[test]
    fn absurd_values_are_usage_errors() {
        for bad in [
            &["--memory", "0", "true"][..],
            &["--memory", "-1", "true"],
            &["--memory", "12Q", "true"],
            &["--memory", "1K", "true"],
            &["--memory-swap", "1G", "true"],
            &["--memory", "1G", "--memory-swap", "512M", "true"],
            &["--cpus", "0", "true"],
            &["--cpus", "-1", "true"],
            &["--cpus", "nan", "true"],
            &["--cpus", "inf", "true"],
            &["--cpus", "5000", "true"],
            &["--pids", "-1", "true"],
            &["--pids", "0", "true"],
            &["--cgroup-parent", "a/../b", "true"],
            &["--cgroup-parent", "a\nb", "true"],
            &["--cgroup-parent", "a//b", "true"],
            &["--join", "0", "true"],
            &["--map-user", "1000", "true"],
            &["--bind", "/a:rel", "true"],
            &["--tmpfs", "/a/../../etc", "true"],
            &["--env", "NOEQUALS", "true"],
            &["--cap-drop", "NOT_A_CAP", "true"],
            &["--hostname", "", "true"],
            &["--bogus", "true"],
        ] {
            assert!(run(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn mounts_keep_their_order() {
        let o = run(&[
            "--bind",
            "/src:/dst",
            "--tmpfs",
            "/t",
            "--ro-bind",
            "/etc",
            "true",
        ])
        .unwrap();
        assert_eq!(
            o.mounts,
            vec![
                MountSpec::Bind {
                    source: "/src".into(),
                    target: "/dst".into(),
                    read_only: false
                },
                MountSpec::Tmpfs {
                    target: "/t".into()
                },
                MountSpec::Bind {
                    source: "/etc".into(),
                    target: "/etc".into(),
                    read_only: true
                },
            ]
        );
    }

    #[test]
    fn help_lists_every_option() {
        for flag in [
            "--pid",
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--user",
            "--cgroupns",
            "--all",
            "--join",
            "--hostname",
            "--map-user",
            "--rootfs",
            "--bind",
            "--ro-bind",
            "--tmpfs",
            "--chdir",
            "--env",
            "--clearenv",
            "--cap-drop",
            "--allow-new-privs",
            "--memory",
            "--memory-swap",
            "--cpus",
            "--pids",
            "--cgroup-parent",
            "--report",
            "--grace",
            "--verbose",
            "--help",
        ] {
            assert!(HELP.contains(flag), "{flag} missing from help");
        }
    }
}
