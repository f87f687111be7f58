//! Pause mode — `minit pause`: the infra process of a pod. No app: it holds its namespaces,
//! reaps whatever is reparented to it, exits 0 on SIGINT or SIGTERM and ignores every other
//! signal, as PID 1 or not.
//!
//! It fixes what the usual pause binaries get wrong: the Kubernetes pause dies of SIGHUP (and
//! of any signal it has no handler for) when it is not PID 1; catatonit `-P` silently accepts
//! stray arguments; both keep the cwd they were started in pinned. Here every signal is
//! blocked (by `main`) and read from a blocking signalfd, so an idle pause sleeps in one
//! `read` without timeout and makes no wake-ups at all, and a signal without a meaning here
//! is only logged at debug level.
//!
//! `minit pod` (see `launch`) execs this as PID 1 of a fresh set of pid, net, ipc and uts
//! namespaces: `exec_pause` below.

use crate::fds;
use crate::init::EXIT_SETUP_FAILED;
use crate::logging::error_text;
use crate::reap::{self, ChildEvent, Children};
use crate::signals::{SignalFd, signal_name};
use std::ffi::CString;

/// Runs the pause loop; returns the exit status (0 after SIGINT/SIGTERM).
pub fn run() -> u8 {
    become_reaper();
    let sfd = match SignalFd::new() {
        Ok(sfd) => sfd,
        Err(err) => {
            log::error!("cannot create a signalfd: {}", error_text(&err));
            return EXIT_SETUP_FAILED;
        }
    };
    // A pause lives as long as its pod: it must pin no directory (a mount could never be
    // unmounted) and hold no pipe or socket of whoever started it open.
    fds::release_pins(sfd.raw());
    name_after_exec();
    // SAFETY: getpid cannot fail.
    log::info!("pausing as pid {}", unsafe { libc::getpid() });
    // Zombies may have been handed over before any SIGCHLD could reach the signalfd: a
    // process that forked children and then exec'd `minit pause` keeps them, but their
    // SIGCHLDs were discarded by the old image. Reap once now; later ones arrive as SIGCHLD.
    reap_orphans();
    let mut batch = Vec::with_capacity(32);
    loop {
        sfd.wait(&mut batch);
        for sig in &batch {
            match sig.signo {
                libc::SIGCHLD => {
                    reap_orphans();
                }
                libc::SIGINT | libc::SIGTERM => {
                    log::info!("{} received: exiting", signal_name(sig.signo));
                    // Whatever has ended is collected; whatever still runs is left to the
                    // kernel, which kills the rest of a PID namespace when its init exits.
                    reap_orphans();
                    return 0;
                }
                other => log::debug!("ignoring {}", signal_name(other)),
            }
        }
    }
}

/// Makes sure orphans come here: PID 1 gets them from the kernel; any other pause becomes a
/// child subreaper. If that fails the pause still runs (it holds namespaces), with one
/// warning, as orphans will then go to some other process.
fn become_reaper() {
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } == 1 {
        return;
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        let err = std::io::Error::last_os_error();
        log::warn!(
            "neither PID 1 nor a subreaper (cannot become one: {}): orphans will not be reaped by this pause",
            error_text(&err)
        );
    }
}

/// An exec of `/proc/self/exe` (`exec_pause`) names the process `exe`, which `ps -e`,
/// `pgrep minit` and busybox's `ps` (`{exe} minit pause`) then show; give it its name back.
fn name_after_exec() {
    if std::fs::read("/proc/self/comm").is_ok_and(|comm| comm == b"exe\n") {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
        unsafe { libc::prctl(libc::PR_SET_NAME, c"minit".as_ptr(), 0, 0, 0) };
    }
}

fn reap_orphans() -> Children {
    reap::reap_children(false, |event| {
        if let ChildEvent::Ended { pid, status } = event {
            log::debug!("reaped pid {pid} ({})", reap::describe(status));
        }
    })
}

/// The body of `minit pod`'s sandbox: replaces this process with a fresh `minit pause`, so
/// PID 1 of the pod is the pause with a clean command line (`ps` shows `minit pause`) and
/// none of the launcher's memory. `/proc/self/exe` is a magic link and opens the binary even
/// after a `pivot_root` hides its path. If the exec fails, the same loop runs in this process.
pub fn exec_pause(verbose: u8) -> u8 {
    let mut argv = vec![c"minit".to_owned(), c"pause".to_owned()];
    if verbose > 0 {
        let flag = format!("-{}", "v".repeat(verbose.min(5) as usize));
        if let Ok(flag) = CString::new(flag) {
            argv.push(flag);
        }
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: the path is a static C string; ptrs is a NULL-terminated array of pointers
    // into `argv`, which outlives the call. execv returns only on failure.
    unsafe { libc::execv(c"/proc/self/exe".as_ptr(), ptrs.as_ptr()) };
    let err = std::io::Error::last_os_error();
    log::debug!(
        "cannot exec /proc/self/exe ({}); pausing in this process",
        error_text(&err)
    );
    run()
}
