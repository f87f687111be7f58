//! Init mode — `minit [OPTIONS] [--] APP [ARGS…]` — and the code path every mode that runs
//! an app ends in: become a subreaper, start the app, let go of the caller's cwd and fds,
//! supervise, deal with leftovers, exit with the app's status.

use crate::cli::InitOptions;
use crate::logging::{errno_text, error_text};
use crate::shutdown::{self, Scope, Settings};
use crate::signals::{InheritedSignals, SignalFd};
use crate::spawn::{self, AppCommand, SpawnError, SpawnOptions};
use crate::supervisor::{self, App};
use crate::targets::Pid;
use crate::{fds, reap};
use std::ffi::OsString;

/// Exit status when minit fails before the app runs.
pub const EXIT_SETUP_FAILED: u8 = 125;

/// Runs the app under minit and returns the exit status minit should exit with.
/// `env` replaces the app's environment when given (the launcher's `--env`).
pub fn run_app(opts: &InitOptions, env: Option<&[OsString]>, inherited: InheritedSignals) -> u8 {
    become_subreaper_unless_pid1();
    let mut pending = Vec::new();
    if let Some(sig) = opts.parent_death_signal {
        if arm_parent_death_signal(sig) {
            pending.push(sig);
        }
    }
    let sfd = match SignalFd::new() {
        Ok(sfd) => sfd,
        Err(err) => {
            log::error!("cannot create a signalfd: {}", error_text(&err));
            return EXIT_SETUP_FAILED;
        }
    };
    let cmd = match AppCommand::new(&opts.command, env) {
        Ok(cmd) => cmd,
        Err(msg) => {
            log::error!("cannot run the app: {msg}");
            return EXIT_SETUP_FAILED;
        }
    };
    let take_terminal = stdin_is_foreground_terminal();
    let spawn_opts = SpawnOptions {
        inherited,
        take_terminal,
        app_death_signal: opts.parent_death_signal,
    };
    let raw_pid = match spawn::spawn_app(&cmd, &spawn_opts) {
        Ok(pid) => pid,
        Err(err) => {
            match &err {
                SpawnError::Exec(errno) => {
                    log::error!("cannot run '{}': {}", cmd.program, errno_text(*errno))
                }
                SpawnError::Os(what, e) => log::error!("cannot {what}: {}", error_text(e)),
            }
            return err.exit_code();
        }
    };
    let Some(pid) = Pid::new(raw_pid) else {
        return EXIT_SETUP_FAILED;
    };
    log::info!("started '{}' as pid {raw_pid}", cmd.program);
    fds::release_pins(sfd.raw());

    let app = App {
        pid,
        kill_group: opts.kill_group,
        rewrites: opts.rewrites.clone(),
        has_terminal: take_terminal,
        // SAFETY: getpid cannot fail.
        job_control: take_terminal && unsafe { libc::getpid() } != 1,
    };
    let status = supervisor::supervise(&sfd, &app, &pending, opts.warn_on_reap);
    let settings = Settings {
        policy: opts.leftovers,
        grace: opts.grace,
        warn_on_reap: opts.warn_on_reap,
    };
    shutdown::end_leftovers(&sfd, &Scope::detect(pid), &settings);
    if take_terminal {
        // Take the terminal back from the app's (now empty) group, so the shell or the
        // container's console is left in order. SIGTTOU is blocked.
        // SAFETY: plain syscalls on fd 0.
        unsafe { libc::tcsetpgrp(0, libc::getpgrp()) };
    }
    let code = reap::exit_code(status);
    if opts.success_codes.contains(&code) {
        0
    } else {
        code
    }
}

/// Outside PID 1, orphans would go to the host's init; as a child subreaper they come to
/// minit instead. Failure is worth a warning, not an exit.
pub fn become_subreaper_unless_pid1() {
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } == 1 {
        return;
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        let err = std::io::Error::last_os_error();
        log::warn!(
            "cannot become a subreaper ({}): orphans will not be reaped by minit",
            error_text(&err)
        );
    }
}

/// Asks for `sig` when minit's parent dies. Returns true if the parent is already gone, so
/// the signal will never come and must be acted on now.
fn arm_parent_death_signal(sig: i32) -> bool {
    // SAFETY: getppid cannot fail.
    let parent = unsafe { libc::getppid() };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } != 0 {
        let err = std::io::Error::last_os_error();
        log::warn!("cannot set the parent-death signal: {}", error_text(&err));
        return false;
    }
    // A parent outside minit's PID namespace shows as 0 and cannot be watched this way.
    // SAFETY: getppid cannot fail.
    parent != 0 && unsafe { libc::getppid() } != parent
}

fn stdin_is_foreground_terminal() -> bool {
    // SAFETY: plain queries on fd 0.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}
