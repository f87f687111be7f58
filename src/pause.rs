//! Pause mode — `minit pause`: the infra process of a pod. No app: it holds its namespaces,
//! reaps whatever is reparented to it, exits 0 on SIGINT or SIGTERM and ignores every other
//! signal, as PID 1 or not (the Kubernetes pause dies of SIGHUP when it is not PID 1).

use crate::fds;
use crate::init::{EXIT_SETUP_FAILED, become_subreaper_unless_pid1};
use crate::logging::error_text;
use crate::reap::{self, ChildEvent, Children};
use crate::signals::{SignalFd, signal_name};

pub fn run() -> u8 {
    become_subreaper_unless_pid1();
    let sfd = match SignalFd::new() {
        Ok(sfd) => sfd,
        Err(err) => {
            log::error!("cannot create a signalfd: {}", error_text(&err));
            return EXIT_SETUP_FAILED;
        }
    };
    fds::release_pins(sfd.raw());
    let mut batch = Vec::with_capacity(32);
    loop {
        batch.clear();
        if let Err(err) = sfd.read(&mut batch) {
            log::error!("cannot read signals: {}", error_text(&err));
            continue;
        }
        for sig in &batch {
            match sig.signo {
                libc::SIGCHLD => {
                    reap_orphans();
                }
                libc::SIGINT | libc::SIGTERM => {
                    log::info!("{} received: exiting", signal_name(sig.signo));
                    reap_orphans();
                    return 0;
                }
                other => log::debug!("ignoring {}", signal_name(other)),
            }
        }
    }
}

fn reap_orphans() -> Children {
    reap::reap_children(false, |event| {
        if let ChildEvent::Ended { pid, status } = event {
            log::debug!("reaped pid {pid}, which {}", reap::describe(status));
        }
    })
}
