//! Namespaces: the user-namespace id maps the monitor writes for the sandbox, joining the
//! namespaces of a running process, the loopback of a new network namespace, and the words
//! for why a namespace could not be made.

use crate::logging::{errno_text, error_text};
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// One line of a `uid_map`/`gid_map`: `inside outside 1`.
pub fn id_map_line(inside: u32, outside: u32) -> String {
    format!("{inside} {outside} 1\n")
}

/// Writes the sandbox's id maps: the caller's uid and gid appear as `inside`.
/// `setgroups` is denied first, as the kernel requires before an unprivileged `gid_map`
/// (user_namespaces(7)); it also keeps the app from dropping supplementary groups that were
/// meant to deny it access.
pub fn write_id_maps(child: libc::pid_t, inside: (u32, u32)) -> Result<(), String> {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let proc = format!("/proc/{child}");
    let write = |file: &str, text: &str| {
        fs::write(format!("{proc}/{file}"), text).map_err(|err| {
            format!(
                "cannot write {proc}/{file} ('{}'): {}",
                text.trim(),
                error_text(&err)
            )
        })
    };
    write("uid_map", &id_map_line(inside.0, uid))?;
    write("setgroups", "deny")?;
    write("gid_map", &id_map_line(inside.1, gid))
}

/// Explains a failed clone: what the user can change.
pub fn explain_clone_error(errno: i32, flags: libc::c_int) -> String {
    let text = errno_text(errno);
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let user = flags & libc::CLONE_NEWUSER != 0;
    if user && (errno == libc::EPERM || errno == libc::ENOSPC || errno == libc::EACCES) {
        if let Some(why) = userns_disabled_reason() {
            return format!("cannot create a user namespace: {text} ({why})");
        }
    }
    if errno == libc::EPERM && !root && !user {
        return format!(
            "cannot create namespaces: {text} (not root: add --user to create a user namespace first)"
        );
    }
    format!("cannot create the sandbox namespaces: {text}")
}

/// The sysctl that disables user namespaces on this host, if one does.
fn userns_disabled_reason() -> Option<String> {
    let read = |path: &str| {
        fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
    };
    if read("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Some("user namespaces are disabled: sysctl user.max_user_namespaces=0".into());
    }
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && read("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Some(
            "unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone=0"
                .into(),
        );
    }
    if !root && read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return Some(
            "AppArmor restricts unprivileged user namespaces: sysctl kernel.apparmor_restrict_unprivileged_userns=1"
                .into(),
        );
    }
    None
}

/// The namespaces of a running process, held by a pidfd, to enter with `setns`.
pub struct JoinTarget {
    pidfd: OwnedFd,
    pid: libc::pid_t,
    /// The namespaces that differ from minit's own; the user namespace cannot be re-entered.
    flags: libc::c_int,
}

const JOINABLE: [(&str, libc::c_int); 7] = [
    ("user", libc::CLONE_NEWUSER),
    ("mnt", libc::CLONE_NEWNS),
    ("pid", libc::CLONE_NEWPID),
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("cgroup", libc::CLONE_NEWCGROUP),
];

impl JoinTarget {
    pub fn open(pid: libc::pid_t) -> Result<JoinTarget, String> {
        let fail = |err: io::Error| format!("cannot join process {pid}: {}", error_text(&err));
        // SAFETY: pidfd_open takes a pid and flags; a non-negative result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(fail(io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh descriptor owned by nobody else.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let mut flags = 0;
        for (name, flag) in JOINABLE {
            let theirs = fs::metadata(format!("/proc/{pid}/ns/{name}")).map_err(fail)?;
            let ours = fs::metadata(format!("/proc/self/ns/{name}")).map_err(fail)?;
            if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
                flags |= flag;
            }
        }
        Ok(JoinTarget { pidfd, pid, flags })
    }

    /// Enters the target's PID namespace for the children minit creates from now on (the
    /// monitor's own PID namespace does not change). Done in the monitor, before the clone,
    /// so the sandbox starts inside it.
    pub fn enter_pid_namespace(&self) -> Result<(), String> {
        self.setns(self.flags & libc::CLONE_NEWPID)
    }

    /// Enters every other namespace of the target, in one call: the kernel enters the user
    /// namespace first, so the rest are checked against the capabilities held there.
    pub fn enter_the_rest(&self) -> Result<(), String> {
        self.setns(self.flags & !libc::CLONE_NEWPID)
    }

    fn setns(&self, flags: libc::c_int) -> Result<(), String> {
        if flags == 0 {
            return Ok(());
        }
        // SAFETY: setns on a pidfd we own with namespace flags only.
        if unsafe { libc::setns(self.pidfd.as_raw_fd(), flags) } != 0 {
            let err = io::Error::last_os_error();
            let hint = match err.raw_os_error() {
                Some(libc::EPERM) => {
                    " (minit needs to be root, or in the owner of its user namespace)"
                }
                Some(libc::ESRCH) => " (it has exited)",
                _ => "",
            };
            return Err(format!(
                "cannot join the namespaces of process {}: {}{hint}",
                self.pid,
                error_text(&err)
            ));
        }
        Ok(())
    }

    pub fn joins_user(&self) -> bool {
        self.flags & libc::CLONE_NEWUSER != 0
    }
}

/// Brings `lo` up, as a new network namespace starts with it down. One ioctl pair on a
/// throw-away socket, so no `ip` binary is needed in the sandbox.
pub fn bring_up_loopback() -> Result<(), String> {
    let fail = |err: io::Error| format!("cannot bring up lo: {}", error_text(&err));
    // SAFETY: socket() with constant arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name fits with its NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own. (The request's
    // type differs between glibc and musl, hence the casts.)
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) != 0 {
            return Err(fail(io::Error::last_os_error()));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) != 0 {
            return Err(fail(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Sets the hostname of the sandbox's UTS namespace.
pub fn set_hostname(name: &str) -> Result<(), String> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        let err = io::Error::last_os_error();
        return Err(format!(
            "cannot set the hostname to '{name}': {}",
            error_text(&err)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_text() {
        assert_eq!(id_map_line(0, 1000), "0 1000 1\n");
        assert_eq!(id_map_line(1000, 0), "1000 0 1\n");
    }

    #[test]
    fn joining_a_missing_process_is_a_clear_error() {
        // pid_max is at most 2^22: this pid cannot exist.
        let err = JoinTarget::open(i32::MAX).err().unwrap();
        assert!(err.contains("cannot join process"), "{err}");
    }

    #[test]
    fn joining_oneself_enters_nothing() {
        let target = JoinTarget::open(std::process::id() as i32).unwrap();
        assert_eq!(target.flags, 0);
        assert!(!target.joins_user());
    }
}
