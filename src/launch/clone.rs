//! The clone boundary: creating the sandbox process in its new namespaces, and on cgroup v2
//! directly in its cgroup.
//!
//! `clone3` with `CLONE_INTO_CGROUP` (Linux 5.7) starts the sandbox inside the run's cgroup:
//! it is never outside it, and the kernel skips the migration a write to `cgroup.procs`
//! costs (that write waits for an RCU grace period, about as long as the rest of the start
//! together). Where clone3 is missing or refuses, plain `clone` and a `cgroup.procs` write
//! before "go" give the same guarantee, more slowly.
//!
//! Both calls are fork-like: no CLONE_VM and no new stack, so the child runs on a copy of
//! the parent's address space and returns from the call like `fork`.

use crate::targets::Pid;
use std::io;
use std::os::fd::RawFd;

/// `CLONE_INTO_CGROUP` from linux/sched.h (libc types it inconsistently across targets).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` from linux/sched.h, up to the `cgroup` field (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Where the sandbox started.
pub enum Started {
    /// In the parent: the sandbox's pid, and whether it was born in the cgroup given.
    Parent { pid: Pid, in_cgroup: bool },
    /// In the sandbox.
    Child,
}

/// Clones the sandbox with namespace `flags`, into the cgroup open at `cgroup` if given.
///
/// # Safety
/// minit must be single-threaded (it is): the child is a copy of this process in which
/// only the calling thread exists, and must never return into code that assumes otherwise.
pub unsafe fn clone_sandbox(flags: libc::c_int, cgroup: Option<RawFd>) -> io::Result<Started> {
    if let Some(fd) = cgroup {
        let args = CloneArgs {
            flags: flags as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd as u64,
            ..CloneArgs::default()
        };
        // SAFETY: args is a valid clone_args of the size passed; stack 0 means the child
        // continues on a copy of this stack, as with fork.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match started(rc, true) {
            Some(started) => return Ok(started),
            None => {
                let err = io::Error::last_os_error();
                // Old kernel, or a seccomp filter that hides clone3: fall back. Anything else
                // (EPERM for the namespaces, …) would fail the same way below, so report it.
                // EBUSY/EOPNOTSUPP: the cgroup cannot take a process this way (not a leaf,
                // threaded); the cgroup.procs write then says why in its own words.
                if !matches!(
                    err.raw_os_error(),
                    Some(libc::ENOSYS)
                        | Some(libc::E2BIG)
                        | Some(libc::EINVAL)
                        | Some(libc::EBUSY)
                        | Some(libc::EOPNOTSUPP)
                ) {
                    return Err(err);
                }
                log::debug!("clone3 into the cgroup failed ({err}); using clone");
            }
        }
    }
    // SAFETY: as above, with the classic clone argument order of x86_64 (flags, stack,
    // parent_tid, child_tid, tls), all but the flags zero.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    started(rc, false).ok_or_else(io::Error::last_os_error)
}

/// A clone's return value as `Started`; `None` for a failure (errno says why).
fn started(rc: libc::c_long, in_cgroup: bool) -> Option<Started> {
    if rc == 0 {
        return Some(Started::Child);
    }
    let pid = Pid::new(libc::pid_t::try_from(rc).ok()?)?;
    Some(Started::Parent { pid, in_cgroup })
}
