//! Reaping: collect every child that has ended, and turn a wait status into an exit code.
//!
//! SIGCHLD coalesces: one pending SIGCHLD may stand for any number of ended children, so a
//! SIGCHLD is only a prompt to call `waitpid(-1, WNOHANG)` until it reports nothing more.

use std::io;

/// What `waitpid` reported about one child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildEvent {
    /// The child ended (exited or was killed) and has been reaped.
    Ended {
        pid: libc::pid_t,
        status: libc::c_int,
    },
    /// The child was stopped by a signal (reported only when stops are asked for).
    Stopped { pid: libc::pid_t, signal: i32 },
}

/// Whether minit still has children after reaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Children {
    /// Some children are still running.
    Remain,
    /// `waitpid` said ECHILD: no child is left at all.
    None,
}

/// Reaps every child that has ended, calling `on_event` for each, until none is waiting.
/// With `report_stops`, stopped children are reported too (WUNTRACED).
pub fn reap_children(report_stops: bool, mut on_event: impl FnMut(ChildEvent)) -> Children {
    let flags = libc::WNOHANG | if report_stops { libc::WUNTRACED } else { 0 };
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: status is a valid out-pointer; -1 waits for any child of ours.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid > 0 {
            if libc::WIFSTOPPED(status) {
                on_event(ChildEvent::Stopped {
                    pid,
                    signal: libc::WSTOPSIG(status),
                });
            } else {
                on_event(ChildEvent::Ended { pid, status });
            }
            continue;
        }
        if pid == 0 {
            return Children::Remain;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ECHILD) => return Children::None,
            Some(libc::EINTR) => continue,
            _ => {
                log::error!("cannot wait for children: {err}");
                return Children::Remain;
            }
        }
    }
}

/// The shell's convention: the exit code, or 128+N after death by signal N.
pub fn exit_code(status: libc::c_int) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)).min(255) as u8
    } else {
        // Neither exited nor signalled cannot come from a reaped child; stay defined anyway.
        255
    }
}

/// Describes a wait status for log lines: "exited with 3", "killed by SIGKILL".
pub fn describe(status: libc::c_int) -> String {
    if libc::WIFSIGNALED(status) {
        let core = if libc::WCOREDUMP(status) {
            " (core dumped)"
        } else {
            ""
        };
        format!(
            "killed by {}{core}",
            crate::signals::signal_name(libc::WTERMSIG(status))
        )
    } else {
        format!("exited with {}", exit_code(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        // Statuses as the kernel encodes them: code << 8, or the signal number.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(libc::SIGKILL), 137);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(exit_code(64), 192);
        assert_eq!(describe(libc::SIGKILL), "killed by SIGKILL");
        assert_eq!(describe(7 << 8), "exited with 7");
    }
}
