//! Test harness: runs the real minit binary the way users do — as PID 1 of a new PID
//! namespace (`unshare -p -f --mount-proc`) or as a subreaper on the host — and watches its
//! output. Tests synchronise on lines the app prints and poll against generous deadlines;
//! nothing sleeps a fixed time hoping something happened.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: the machine may be busy compiling or running other tests.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn minit() -> &'static str {
    env!("CARGO_BIN_EXE_minit")
}

pub fn app(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/apps")
        .join(name);
    path.to_string_lossy().into_owned()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Returns false (after printing why) when the test cannot run here; under CI=true a missing
/// capability fails the test instead, so CI can never pass by skipping.
pub fn require(ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    if in_ci() {
        panic!("required capability missing under CI=true: {why}");
    }
    eprintln!("SKIPPED: {why}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn require_root() -> bool {
    require(is_root(), "needs root (namespaces, cgroups)")
}

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Where minit runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// PID 1 of a new PID namespace, with its own /proc.
    Pid1,
    /// A plain process on the host: minit makes itself a subreaper.
    Subreaper,
}

pub const MODES: [Mode; 2] = [Mode::Pid1, Mode::Subreaper];

/// The command that runs minit with `args` in `mode`.
pub fn command<S: AsRef<OsStr>>(mode: Mode, args: &[S]) -> Command {
    match mode {
        Mode::Pid1 => {
            let mut c = Command::new("unshare");
            c.args(["-p", "-f", "--mount-proc", "--", minit()]);
            c.args(args);
            c
        }
        Mode::Subreaper => {
            let mut c = Command::new(minit());
            c.args(args);
            c
        }
    }
}

/// True when this mode can run here (PID 1 needs root for unshare).
pub fn mode_available(mode: Mode) -> bool {
    match mode {
        Mode::Pid1 => require_root(),
        Mode::Subreaper => true,
    }
}

/// The finished run: status and full output.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "minit died from signal {:?}\n{}",
                self.status.signal(),
                self.context()
            )
        })
    }

    pub fn context(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs to completion (with a deadline) and captures output.
pub fn run(mut cmd: Command) -> Output {
    let running = Running::start(&mut cmd);
    running.finish()
}

/// Shared line buffer filled by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect<R: Read + Send + 'static>(&self, reader: R) -> std::thread::JoinHandle<()> {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                lines.lock().unwrap().push(line);
                buf.clear();
            }
        })
    }

    pub fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.snapshot().join("\n")
    }
}

/// A running minit whose stdout and stderr are collected line by line.
pub struct Running {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
    readers: Vec<std::thread::JoinHandle<()>>,
    started: Instant,
}

impl Running {
    pub fn start(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start minit");
        let stdout = Lines::default();
        let stderr = Lines::default();
        let readers = vec![
            stdout.collect(child.stdout.take().unwrap()),
            stderr.collect(child.stderr.take().unwrap()),
        ];
        Running {
            child,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    /// The pid to signal to reach minit: minit itself, or under `unshare -f` the forked
    /// child of unshare.
    pub fn init_pid(&self, mode: Mode) -> i32 {
        let pid = self.child.id() as i32;
        if mode == Mode::Subreaper {
            return pid;
        }
        let path = format!("/proc/{pid}/task/{pid}/children");
        let found = poll(|| {
            std::fs::read_to_string(&path)
                .ok()?
                .split_whitespace()
                .next()?
                .parse::<i32>()
                .ok()
        });
        found.unwrap_or_else(|| panic!("no child of unshare appeared\n{}", self.context()))
    }

    pub fn signal(&self, pid: i32, sig: i32) {
        // SAFETY: plain kill of a process this test started.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits until stdout has a line satisfying `pred`; returns it.
    pub fn wait_stdout(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        poll(|| self.stdout.snapshot().into_iter().find(|l| pred(l)))
            .unwrap_or_else(|| panic!("no stdout line {what}\n{}", self.context()))
    }

    pub fn wait_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        poll(|| self.stderr.snapshot().into_iter().find(|l| pred(l)))
            .unwrap_or_else(|| panic!("no stderr line {what}\n{}", self.context()))
    }

    pub fn context(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits (deadline) for exit and returns the output.
    pub fn finish(mut self) -> Output {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("minit did not exit in {DEADLINE:?}\n{}", self.context());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Output {
            status,
            stdout: self.stdout.text(),
            stderr: self.stderr.text(),
        }
    }
}

/// Polls `f` every 10 ms until it gives `Some`, or the deadline passes.
pub fn poll<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn process_exists(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs `cmd` with `sig` ignored and `blocked` blocked, as a caller might start minit.
pub fn with_signal_state(cmd: &mut Command, ignored: &[i32], blocked: &[i32]) {
    let ignored = ignored.to_vec();
    let blocked = blocked.to_vec();
    // SAFETY: only async-signal-safe calls (sigaction, sigprocmask) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &sig in &ignored {
                libc::signal(sig, libc::SIG_IGN);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in &blocked {
                libc::sigaddset(&mut set, sig);
            }
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}
