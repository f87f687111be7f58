//! The sandbox side of `minit run`: the process cloned into the new namespaces.
//!
//! It waits on the sync pipe until the monitor has written its id maps and put it in the
//! cgroup, then builds its world (hostname, mounts, loopback, working directory, privileges,
//! descriptors) and becomes the init of that world: the same `init::run_app` as entrypoint
//! mode, which starts the app as PID 2, forwards signals, reaps, ends leftovers and returns
//! the app's status, which the sandbox exits with.
//!
//! minit is single-threaded, so the clone is a full copy in which allocation and logging are
//! safe (no other thread can have held a lock at the clone); it never returns into the
//! monitor's code.

use crate::cli::InitOptions;
use crate::init::{self, EXIT_SETUP_FAILED};
use crate::launch::namespaces::{self, JoinTarget};
use crate::launch::{caps, mounts, options::MountSpec};
use crate::logging::error_text;
use crate::pause;
use crate::signals::InheritedSignals;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// Everything the sandbox needs, prepared by the monitor before the clone.
pub struct Plan {
    pub init: InitOptions,
    /// The app's environment; `None` inherits minit's.
    pub env: Option<Vec<OsString>>,
    pub hostname: Option<String>,
    pub rootfs: Option<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub new_mount_ns: bool,
    pub fresh_proc: bool,
    pub loopback: bool,
    pub chdir: Option<PathBuf>,
    pub cap_drop: Vec<u32>,
    pub no_new_privs: bool,
    pub inherited: InheritedSignals,
    /// `minit pod`: PID 1 is `minit pause` instead of minit with an app.
    pub pause: bool,
}

/// Runs in the cloned process; never returns.
pub fn main(plan: &Plan, join: Option<&JoinTarget>, go: OwnedFd) -> ! {
    // If the monitor dies, the sandbox dies with it (and, as PID 1 of its namespace, takes
    // every process in it along). Armed before the wait, so a monitor death at any later
    // point is covered; one before it shows as end-of-file on the pipe.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    if !wait_for_go(&go) {
        // The monitor failed and has said why.
        exit(EXIT_SETUP_FAILED);
    }
    drop(go);
    let code = match build(plan, join) {
        Ok(()) if plan.pause => pause::exec_pause(plan.init.verbosity.raise),
        Ok(()) => init::run_app(&plan.init, plan.env.as_deref(), plan.inherited),
        Err(msg) => {
            log::error!("{msg}");
            EXIT_SETUP_FAILED
        }
    };
    exit(code)
}

fn exit(code: u8) -> ! {
    // SAFETY: _exit ends this process at once; the monitor's atexit state is not ours to run.
    unsafe { libc::_exit(libc::c_int::from(code)) }
}

/// Reads the monitor's one-byte "go"; false on end-of-file (the monitor gave up).
fn wait_for_go(go: &OwnedFd) -> bool {
    let mut byte = 0u8;
    loop {
        // SAFETY: reading one byte into a live u8.
        let n = unsafe { libc::read(go.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return n == 1;
    }
}

fn build(plan: &Plan, join: Option<&JoinTarget>) -> Result<(), String> {
    if let Some(target) = join {
        target.enter_the_rest()?;
    }
    if let Some(name) = &plan.hostname {
        namespaces::set_hostname(name)?;
    }
    if plan.new_mount_ns {
        mounts::set_up(&mounts::Plan {
            rootfs: plan.rootfs.as_deref(),
            mounts: &plan.mounts,
            fresh_proc: plan.fresh_proc,
        })?;
    }
    if plan.loopback {
        namespaces::bring_up_loopback()?;
    }
    if let Some(dir) = &plan.chdir {
        std::env::set_current_dir(dir).map_err(|err| {
            format!(
                "cannot change directory to {}: {}",
                dir.display(),
                error_text(&err)
            )
        })?;
    }
    caps::drop_caps(&plan.cap_drop)?;
    if plan.no_new_privs {
        caps::set_no_new_privs()?;
    }
    close_inherited_fds();
    Ok(())
}

/// Nothing beyond stdio crosses into the sandbox: every other descriptor minit inherited or
/// opened (the monitor's signalfd, a pidfd, the caller's leaked fds) is closed here, before
/// the app is started.
fn close_inherited_fds() {
    // SAFETY: close_range only closes descriptors; nothing above 2 is used from here on.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc == 0 {
        return;
    }
    // Kernels before 5.9: close what /proc lists (a fresh /proc shows this process too).
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: closing descriptors nothing in the sandbox uses any more.
        unsafe { libc::close(fd) };
    }
}
