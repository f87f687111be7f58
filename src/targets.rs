//! Who a signal goes to. Signalling the app, the app's process group, every process of the
//! PID namespace and minit's own descendants are different functions taking different types,
//! so a raw pid of 0 or -1 — "my group", "everyone" — can never slip into `kill` by accident.

use std::collections::HashMap;
use std::io;

/// A real process id: always greater than zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pid(libc::pid_t);

impl Pid {
    pub fn new(raw: libc::pid_t) -> Option<Pid> {
        (raw > 0).then_some(Pid(raw))
    }

    pub fn raw(self) -> libc::pid_t {
        self.0
    }
}

/// Proof that minit is PID 1 of its PID namespace, the only place `kill(-1)` is acceptable:
/// there "every process" means the container, not the host.
#[derive(Debug)]
pub struct NamespaceInit(());

impl NamespaceInit {
    pub fn detect() -> Option<NamespaceInit> {
        // SAFETY: getpid cannot fail.
        (unsafe { libc::getpid() } == 1).then_some(NamespaceInit(()))
    }
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends `sig` to one process.
pub fn signal_process(pid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; pid > 0 names exactly one process.
    check(unsafe { libc::kill(pid.0, sig) })
}

/// Sends `sig` to one process with a `sigqueue` payload, so a value queued to minit reaches
/// the app unchanged.
pub fn queue_signal(pid: Pid, sig: i32, value: u64) -> io::Result<()> {
    // SAFETY: a zeroed siginfo is valid; the fields set are those rt_sigqueueinfo reads for
    // SI_QUEUE (code, pid, uid, value), written through the libc layout of `siginfo_t`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        info.si_signo = sig;
        info.si_code = libc::SI_QUEUE;
        let fields = &mut info as *mut libc::siginfo_t as *mut u8;
        // Linux x86_64/aarch64 layout of the _rt member: pid (i32) at 16, uid (u32) at 20,
        // sigval (8 bytes) at 24.
        (fields.add(16) as *mut i32).write_unaligned(libc::getpid());
        (fields.add(20) as *mut u32).write_unaligned(libc::getuid());
        (fields.add(24) as *mut u64).write_unaligned(value);
        let rc = libc::syscall(libc::SYS_rt_sigqueueinfo, pid.0, sig, &info as *const _);
        check(rc as libc::c_int)
    }
}

/// Sends `sig` to every member of the process group led by `pgid`.
pub fn signal_group(pgid: Pid, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; -pgid with pgid > 0 names one process group.
    check(unsafe { libc::kill(-pgid.0, sig) })
}

/// Sends `sig` to every process of the PID namespace except minit.
pub fn signal_everyone(_: &NamespaceInit, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; as PID 1 of a namespace, -1 reaches only that namespace.
    check(unsafe { libc::kill(-1, sig) })
}

/// One process as seen in `/proc/PID/stat`.
#[derive(Clone, Copy, Debug)]
struct ProcStat {
    pid: libc::pid_t,
    ppid: libc::pid_t,
    start_time: u64,
}

fn read_stat(pid: libc::pid_t) -> Option<ProcStat> {
    let text = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `pid (comm) state ppid ... starttime ...`; comm may hold spaces and parentheses,
/// so fields are counted after the last ')'.
fn parse_stat(text: &[u8]) -> Option<ProcStat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(text.get(close + 2..)?).ok()?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After comm: state(0) ppid(1) ... starttime is field 22 of the line, index 19 here.
    Some(ProcStat {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Every live descendant of minit, found by walking `/proc`. Empty when /proc is missing.
pub struct Descendants(Vec<ProcStat>);

impl Descendants {
    pub fn scan() -> Descendants {
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Descendants(Vec::new());
        };
        let mut by_parent: HashMap<libc::pid_t, Vec<ProcStat>> = HashMap::new();
        for p in dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter_map(read_stat)
        {
            by_parent.entry(p.ppid).or_default().push(p);
        }
        // /proc is a tree rooted at minit here, so each process is met once.
        let mut found: Vec<ProcStat> = Vec::new();
        let mut parents = vec![me];
        while let Some(parent) = parents.pop() {
            for p in by_parent.remove(&parent).unwrap_or_default() {
                found.push(p);
                parents.push(p.pid);
            }
        }
        Descendants(found)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Signals each descendant found by the scan, but only if it is still the same process:
    /// a pidfd pins the process, then its start time is compared with the scan, so a pid
    /// reused since the scan is never signalled.
    pub fn signal_all(&self, sig: i32) {
        for p in &self.0 {
            signal_if_same(p, sig);
        }
    }
}

fn signal_if_same(p: &ProcStat, sig: i32) {
    // SAFETY: pidfd_open takes a pid and flags; on success the fd is ours to close.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) } as libc::c_int;
    let same = read_stat(p.pid).is_some_and(|now| now.start_time == p.start_time);
    if pidfd >= 0 {
        if same {
            // SAFETY: the pidfd is open; null info means "as kill() would".
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd,
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
        // SAFETY: closing the pidfd opened above.
        unsafe { libc::close(pidfd) };
    } else if same {
        // No pidfd (old kernel, or no descriptor left): fall back to kill right after the
        // identity check.
        if let Some(pid) = Pid::new(p.pid) {
            let _ = signal_process(pid, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_are_positive() {
        assert!(Pid::new(0).is_none());
        assert!(Pid::new(-1).is_none());
        assert_eq!(Pid::new(7).map(Pid::raw), Some(7));
    }

    #[test]
    fn stat_with_odd_comm() {
        let line = b"42 (a) b (c)) S 7 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0";
        let s = parse_stat(line).expect("parses");
        assert_eq!((s.pid, s.ppid, s.start_time), (42, 7, 12345));
    }

    #[test]
    fn own_stat_parses() {
        // SAFETY: getpid cannot fail.
        let me = unsafe { libc::getpid() };
        let s = read_stat(me).expect("own /proc stat");
        assert_eq!(s.pid, me);
        // SAFETY: getppid cannot fail.
        assert_eq!(s.ppid, unsafe { libc::getppid() });
    }
}
