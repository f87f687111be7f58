//! Signals: the blocked set, the signalfd minit waits on, the state the app must inherit,
//! and signal names.
//!
//! minit never installs a handler. It blocks every signal with the raw `rt_sigprocmask`
//! syscall (libc's `sigfillset` leaves out the signals glibc and musl keep for themselves, 32
//! to 34) and reads them from a blocking signalfd, so an idle minit sleeps in `read` and wakes
//! only when a signal arrives. Blocked signals are queued even for PID 1, whose default
//! dispositions the kernel otherwise drops.
//!
//! The app must start with the signal state minit was started with: the caller's mask (saved
//! here, restored in the child) and the caller's ignored set (exec keeps `SIG_IGN` and minit
//! ignores nothing itself, except that an inherited `SIG_IGN` for SIGCHLD is undone for minit —
//! it would make the kernel reap for us — and redone in the child).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The highest signal number on Linux.
pub const NSIG_MAX: i32 = 64;

/// `SIGRTMIN` as users know it from `kill -l` and procps (glibc's value). musl reports 35 from
/// `SIGRTMIN()`, so names are resolved against this constant, not the libc in use.
pub const RTMIN: i32 = 34;

/// A kernel signal set: bit `n - 1` stands for signal `n`.
pub type KernelSigset = u64;

/// Every signal. SIGKILL and SIGSTOP cannot be blocked; the kernel ignores them in the mask.
pub const ALL_SIGNALS: KernelSigset = !0;

/// The signal state minit was started with, which the app gets back.
#[derive(Clone, Copy, Debug)]
pub struct InheritedSignals {
    /// The blocked mask of the caller.
    pub mask: KernelSigset,
    /// The caller had SIGCHLD ignored; minit undid that for itself.
    pub sigchld_ignored: bool,
}

/// Replaces the blocked mask with `new` and returns the old one.
/// Async-signal-safe: one raw syscall, usable between fork and exec.
pub fn set_mask(new: KernelSigset) -> io::Result<KernelSigset> {
    let mut old: KernelSigset = 0;
    // SAFETY: both pointers point to live u64 values of the 8 bytes the kernel expects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &new as *const KernelSigset,
            &mut old as *mut KernelSigset,
            std::mem::size_of::<KernelSigset>(),
        )
    };
    if rc == 0 {
        Ok(old)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks every signal and records what the app must inherit. Called first thing in `main`,
/// before anything could raise a signal minit would otherwise miss.
pub fn block_all() -> io::Result<InheritedSignals> {
    let mask = set_mask(ALL_SIGNALS)?;
    let sigchld_ignored = disposition_is_ignore(libc::SIGCHLD);
    if sigchld_ignored {
        set_disposition(libc::SIGCHLD, libc::SIG_DFL);
    }
    Ok(InheritedSignals {
        mask,
        sigchld_ignored,
    })
}

fn disposition_is_ignore(sig: i32) -> bool {
    // SAFETY: a zeroed sigaction is a valid out-parameter; a null new action only queries.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// Sets the disposition of `sig` to `SIG_DFL` or `SIG_IGN`. Async-signal-safe.
pub fn set_disposition(sig: i32, handler: libc::sighandler_t) {
    // SAFETY: the action is fully initialised (zeroed, then the handler set); the old action
    // is not wanted.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        libc::sigaction(sig, &action, std::ptr::null_mut());
    }
}

/// A blocking signalfd for every signal.
pub struct SignalFd(OwnedFd);

/// One signal read from the signalfd, with the parts minit uses.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    pub signo: i32,
    pub code: i32,
    pub pid: u32,
    pub value: u64,
}

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        let mask = ALL_SIGNALS;
        // SAFETY: the mask points to 8 live bytes, as the size argument says; -1 asks for a new
        // descriptor, which on success is owned by the returned OwnedFd alone.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_signalfd4,
                -1,
                &mask as *const KernelSigset,
                std::mem::size_of::<KernelSigset>(),
                libc::SFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
    }

    /// Waits for signals, without timeout, and appends them to `out`.
    /// EINTR is retried; other errors are returned.
    pub fn read(&self, out: &mut Vec<Received>) -> io::Result<()> {
        const BATCH: usize = 32;
        // SAFETY: signalfd_siginfo is plain data; all-zero is a valid value.
        let mut buf: [libc::signalfd_siginfo; BATCH] = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: the buffer is writable for its full size.
            let n = unsafe {
                libc::read(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    std::mem::size_of_val(&buf),
                )
            };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            let count = n as usize / std::mem::size_of::<libc::signalfd_siginfo>();
            out.extend(buf[..count].iter().map(|info| Received {
                signo: info.ssi_signo as i32,
                code: info.ssi_code,
                pid: info.ssi_pid,
                value: info.ssi_ptr,
            }));
            return Ok(());
        }
    }

    /// Waits for the next signals and puts them in `batch` (emptied first). A read error is
    /// logged and the wait goes on: once the app runs, minit is not allowed to bail.
    pub fn wait(&self, batch: &mut Vec<Received>) {
        loop {
            batch.clear();
            match self.read(batch) {
                Ok(()) => return,
                Err(err) => {
                    log::error!("cannot read signals: {}", crate::logging::error_text(&err))
                }
            }
        }
    }

    /// Like `read`, but gives up at `deadline`: returns `false` if it passed with no signal.
    pub fn read_until(&self, deadline: Instant, out: &mut Vec<Received>) -> io::Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Round up so the wait never ends just before the deadline and spins.
            let ms = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if n == 0 {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                continue;
            }
            self.read(out)?;
            return Ok(true);
        }
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

const NAMES: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal given as a number (`15`), a name (`TERM`, `SIGTERM`, `term`) or a
/// real-time name (`RTMIN`, `RTMIN+3`, `SIGRTMAX-1`). Returns 1..=64.
pub fn parse_signal(text: &str) -> Result<i32, String> {
    let bad = || format!("'{text}' is not a signal (use a name like TERM or a number 1-64)");
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=NSIG_MAX).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        return Ok(n);
    }
    if name == "IOT" {
        return Ok(libc::SIGABRT);
    }
    if name == "POLL" {
        return Ok(libc::SIGIO);
    }
    let (base, rest) = if let Some(rest) = name.strip_prefix("RTMIN") {
        (RTMIN, rest)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        (NSIG_MAX, rest)
    } else {
        return Err(bad());
    };
    let offset: i32 = match rest.as_bytes().first() {
        None => 0,
        Some(b'+') => rest[1..].parse().map_err(|_| bad())?,
        Some(b'-') => -rest[1..].parse::<i32>().map_err(|_| bad())?,
        Some(_) => return Err(bad()),
    };
    let n = base + offset;
    if (RTMIN..=NSIG_MAX).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// The conventional name of a signal, for log lines: `SIGTERM`, `SIGRTMIN+3`, `signal 33`.
pub fn signal_name(sig: i32) -> String {
    if let Some((name, _)) = NAMES.iter().find(|(_, n)| *n == sig) {
        return format!("SIG{name}");
    }
    if (RTMIN..=NSIG_MAX).contains(&sig) {
        return match sig - RTMIN {
            0 => "SIGRTMIN".to_string(),
            k => format!("SIGRTMIN+{k}"),
        };
    }
    format!("signal {sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_realtime() {
        assert_eq!(parse_signal("TERM"), Ok(15));
        assert_eq!(parse_signal("sigterm"), Ok(15));
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("3"), Ok(3));
        assert_eq!(parse_signal("RTMIN"), Ok(34));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse_signal("RTMAX-1"), Ok(63));
        assert_eq!(parse_signal("RTMAX"), Ok(64));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("RTMIN-1").is_err());
        assert!(parse_signal("RTMAX+1").is_err());
        assert!(parse_signal("RTMIN+").is_err());
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("").is_err());
    }

    #[test]
    fn every_named_signal_round_trips() {
        for sig in 1..=NSIG_MAX {
            let name = signal_name(sig);
            if let Some(stripped) = name.strip_prefix("SIG") {
                assert_eq!(parse_signal(stripped), Ok(sig), "{name}");
            }
        }
    }
}
