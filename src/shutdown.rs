//! Leftovers: the processes still running when the app has ended — background jobs,
//! daemonised helpers, adopted orphans, `setsid`'d children.
//!
//! By default they get SIGTERM, then the grace period to exit, then SIGKILL; minit reaps them
//! all and only then exits with the app's status. The wait ends the moment the last one is
//! gone: minit sleeps on the signalfd with the deadline as its only timeout, never a fixed
//! sleep. As PID 1 of a PID namespace the targets are every other process (`kill(-1)`);
//! otherwise only minit's own descendants — never `kill(-1)`, never a pid already reaped.

use crate::cli::LeftoverPolicy;
use crate::reap::{self, Children};
use crate::signals::{SignalFd, signal_name};
use crate::targets::{self, Descendants, NamespaceInit, Pid};
use std::time::{Duration, Instant};

/// How long SIGKILLed processes may take to disappear before minit gives up on them (a
/// process stuck in uninterruptible sleep cannot be killed).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The processes minit may signal at the end.
pub enum Scope {
    /// PID 1 of a PID namespace: everything in it.
    Namespace(NamespaceInit),
    /// A subreaper or plain parent: its descendants, and the app's process group.
    Descendants { app_group: Pid },
}

impl Scope {
    pub fn detect(app_group: Pid) -> Scope {
        match NamespaceInit::detect() {
            Some(init) => Scope::Namespace(init),
            None => Scope::Descendants { app_group },
        }
    }

    fn signal(&self, sig: i32) {
        match self {
            Scope::Namespace(init) => {
                if let Err(err) = targets::signal_everyone(init, sig) {
                    // ESRCH: nobody left, which is fine.
                    if err.raw_os_error() != Some(libc::ESRCH) {
                        log::warn!("cannot send {} to leftovers: {err}", signal_name(sig));
                    }
                }
            }
            Scope::Descendants { app_group } => {
                // The group first: safe even without /proc (a pgid is not reused while any
                // member lives).
                let _ = targets::signal_group(*app_group, sig);
                Descendants::scan().signal_all(sig);
            }
        }
    }
}

/// How the end went, for the caller's log.
pub struct Settings {
    pub policy: LeftoverPolicy,
    pub grace: Duration,
    pub warn_on_reap: bool,
}

/// Deals with leftovers after the app has ended, according to the policy.
pub fn end_leftovers(sfd: &SignalFd, scope: &Scope, settings: &Settings) {
    if reap_all(settings.warn_on_reap) == Children::None {
        return;
    }
    match settings.policy {
        LeftoverPolicy::Exit => {
            log::info!("app has ended; leaving its leftovers running");
        }
        LeftoverPolicy::Wait => {
            log::info!("app has ended; waiting for its leftovers to exit");
            wait_for_leftovers(sfd, scope, None, settings.warn_on_reap, Forward::Yes);
        }
        LeftoverPolicy::Terminate => {
            let count = Descendants::scan().len();
            log::info!(
                "app has ended; sending SIGTERM to {count} leftover process(es), grace {:?}",
                settings.grace
            );
            scope.signal(libc::SIGTERM);
            // A stopped process cannot act on SIGTERM until continued.
            scope.signal(libc::SIGCONT);
            let deadline = Instant::now() + settings.grace;
            let gone = wait_for_leftovers(
                sfd,
                scope,
                Some(deadline),
                settings.warn_on_reap,
                Forward::No,
            );
            if gone {
                return;
            }
            let count = Descendants::scan().len();
            log::warn!(
                "{count} leftover process(es) still running after the grace period of {:?}; sending SIGKILL",
                settings.grace
            );
            kill_leftovers(sfd, scope, settings.warn_on_reap);
        }
    }
}

fn reap_all(warn_on_reap: bool) -> Children {
    reap::reap_children(false, |event| {
        if let reap::ChildEvent::Ended { pid, status } = event {
            if warn_on_reap {
                log::warn!("reaped leftover pid {pid} ({})", reap::describe(status));
            } else {
                log::debug!("reaped leftover pid {pid} ({})", reap::describe(status));
            }
        }
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Forward {
    /// Pass signals minit receives on to the leftovers (policy `wait`).
    Yes,
    /// A TERM, INT, QUIT or HUP cuts the grace period short.
    No,
}

/// Waits until no child is left (true) or the deadline passes (false).
fn wait_for_leftovers(
    sfd: &SignalFd,
    scope: &Scope,
    deadline: Option<Instant>,
    warn_on_reap: bool,
    forward: Forward,
) -> bool {
    let mut batch = Vec::with_capacity(32);
    loop {
        batch.clear();
        let got = match deadline {
            Some(deadline) => sfd.read_until(deadline, &mut batch),
            None => sfd.read(&mut batch).map(|()| true),
        };
        match got {
            Ok(true) => {}
            Ok(false) => return false,
            Err(err) => {
                log::error!("cannot read signals: {err}");
                return false;
            }
        }
        for sig in &batch {
            match sig.signo {
                libc::SIGCHLD if reap_all(warn_on_reap) == Children::None => return true,
                libc::SIGCHLD => {}
                libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGHUP
                    if forward == Forward::No =>
                {
                    log::info!(
                        "{} received: not waiting any longer",
                        signal_name(sig.signo)
                    );
                    return false;
                }
                signo if forward == Forward::Yes => scope.signal(signo),
                _ => {}
            }
        }
    }
}

/// SIGKILLs every leftover and reaps them. As a subreaper, processes reparented to minit
/// after the first round are killed in the next, each time a child ends.
fn kill_leftovers(sfd: &SignalFd, scope: &Scope, warn_on_reap: bool) {
    let deadline = Instant::now() + KILL_WAIT;
    let mut batch = Vec::with_capacity(32);
    loop {
        scope.signal(libc::SIGKILL);
        if reap_all(warn_on_reap) == Children::None {
            return;
        }
        batch.clear();
        match sfd.read_until(deadline, &mut batch) {
            Ok(true) => {}
            Ok(false) => {
                log::error!(
                    "leftover processes survived SIGKILL for {KILL_WAIT:?} (uninterruptible sleep?); exiting without them"
                );
                return;
            }
            Err(err) => {
                log::error!("cannot read signals: {err}");
                return;
            }
        }
    }
}
