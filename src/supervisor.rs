//! The loop: wait for a signal, then forward it to the app or reap children, until the app
//! has ended. Returns the app's wait status.
//!
//! Once the app runs, minit is "no longer allowed to bail": PID 1 dying takes the container
//! with it, so every error here is logged and the loop goes on.

use crate::cli::SignalMap;
use crate::reap::{self, ChildEvent};
use crate::signals::{Received, SignalFd, signal_name};
use crate::targets::{self, Pid};

/// The app as the loop sees it.
pub struct App {
    pub pid: Pid,
    /// Forward to the app's process group (`-g`), not only to the app.
    pub kill_group: bool,
    pub rewrites: SignalMap,
    /// The app's group was given the terminal's foreground.
    pub has_terminal: bool,
    /// minit runs under an interactive shell (it had the terminal and is not PID 1): when the
    /// app stops (Ctrl-Z), minit stops too, so the shell sees its job stop; on `fg` the
    /// SIGCONT minit gets is forwarded and the terminal handed back.
    pub job_control: bool,
}

/// Runs the loop until the app ends; `pending` are signals to act on before waiting (a
/// parent-death signal that fired before it was armed). Returns the app's wait status.
pub fn supervise(sfd: &SignalFd, app: &App, pending: &[i32], warn_on_reap: bool) -> libc::c_int {
    // SAFETY: getpid cannot fail.
    let me = unsafe { libc::getpid() } as u32;
    for &signo in pending {
        forward(app, signo, None);
    }
    let mut batch = Vec::with_capacity(32);
    loop {
        sfd.wait(&mut batch);
        let mut app_status = None;
        for sig in &batch {
            if app_status.is_some() {
                // The app is reaped: its pid may already belong to someone else, so nothing
                // more is sent to it. Leftovers are the shutdown's business.
                break;
            }
            if sig.signo == libc::SIGCHLD {
                reap::reap_children(app.job_control, |event| {
                    on_child_event(app, event, warn_on_reap, &mut app_status)
                });
            } else if is_from_self(sig, me) {
                // A signal minit raised on itself, such as SIGPIPE from writing to a closed
                // stderr: it is not for the app.
                log::debug!("ignoring {} raised by minit itself", signal_name(sig.signo));
            } else {
                forward(app, sig.signo, Some(sig));
            }
        }
        if let Some(status) = app_status {
            return status;
        }
    }
}

fn is_from_self(sig: &Received, me: u32) -> bool {
    sig.code == libc::SI_USER && sig.pid == me
}

fn on_child_event(
    app: &App,
    event: ChildEvent,
    warn_on_reap: bool,
    app_status: &mut Option<libc::c_int>,
) {
    match event {
        ChildEvent::Ended { pid, status } if pid == app.pid.raw() => {
            log::info!("app (pid {pid}) {}", reap::describe(status));
            *app_status = Some(status);
        }
        ChildEvent::Ended { pid, status } => {
            if warn_on_reap {
                log::warn!("reaped orphan pid {pid} ({})", reap::describe(status));
            } else {
                log::debug!("reaped orphan pid {pid} ({})", reap::describe(status));
            }
        }
        ChildEvent::Stopped { pid, signal } if pid == app.pid.raw() && app.job_control => {
            log::debug!("app stopped by {}; stopping minit too", signal_name(signal));
            // SAFETY: SIGSTOP to ourselves; execution resumes here on SIGCONT.
            unsafe { libc::kill(libc::getpid(), libc::SIGSTOP) };
        }
        ChildEvent::Stopped { .. } => {}
    }
}

/// Forwards one received signal to the app (or its group), applying `--rewrite`.
fn forward(app: &App, signo: i32, info: Option<&Received>) {
    let Some(target_sig) = app.rewrites.map(signo) else {
        log::debug!("dropping {} (rewritten to none)", signal_name(signo));
        return;
    };
    if target_sig == libc::SIGCONT && app.job_control {
        give_terminal(app);
    }
    // After a job-control stop the whole group was stopped (Ctrl-Z stops the foreground
    // group), so the whole group must be continued, or the app's own children stay stopped.
    let whole_group = app.kill_group || (target_sig == libc::SIGCONT && app.job_control);
    let result = if whole_group {
        targets::signal_group(app.pid, target_sig)
    } else {
        match info {
            // Keep a sigqueue payload (a real-time signal's value) when the signal is not
            // rewritten.
            Some(sig) if sig.code == libc::SI_QUEUE && target_sig == signo => {
                targets::queue_signal(app.pid, target_sig, sig.value)
            }
            _ => targets::signal_process(app.pid, target_sig),
        }
    };
    match result {
        Ok(()) => log::debug!(
            "forwarded {} to the app as {}",
            signal_name(signo),
            signal_name(target_sig)
        ),
        Err(err) => log::warn!(
            "cannot forward {} to the app: {err}",
            signal_name(target_sig)
        ),
    }
}

/// Hands the terminal back to the app's group after the shell resumed minit with `fg`.
fn give_terminal(app: &App) {
    if !app.has_terminal {
        return;
    }
    // SAFETY: plain syscalls on fd 0; SIGTTOU is blocked, so a background minit may call it.
    unsafe {
        if libc::tcgetpgrp(0) == libc::getpgrp() {
            libc::tcsetpgrp(0, app.pid.raw());
        }
    }
}
