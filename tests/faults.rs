//! Faults: what minit does when the world around it breaks — the app killed or stopped from
//! outside, stdout/stderr gone, no file descriptors or pids to spare, no /proc, its parent
//! dying, minit itself SIGKILLed. Each case must end with a defined exit status and at most
//! one clear line from minit: never a panic, never a hang.
//!
//! Where the outcome involves processes that are no longer the test's children (minit after
//! its parent died, the app after minit was killed), a small python "subreaper" harness
//! (`HARNESS` below) adopts them and reports how each ended.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use util::{MODES, Mode, Running, command, minit, mode_available, poll, process_exists, run};

/// No minit output may ever look like a Rust panic.
fn assert_no_panic(stderr: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "minit panicked:\n{stderr}"
    );
}

/// minit's lines on stderr (the apps used here write nothing there).
fn minit_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.starts_with("minit")).collect()
}

/// The first child of `pid` (from /proc), polled until it appears.
fn child_of(pid: i32) -> i32 {
    poll(|| {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
    .unwrap_or_else(|| panic!("pid {pid} got no child"))
}

/// The state letter of `pid` in /proc/PID/stat (R, S, T, Z ...).
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill of a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn tempdir(tag: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("faults-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn app_killed_by_sigkill_is_137() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // From outside: the test SIGKILLs the app while minit supervises it.
        let mut cmd = command(mode, &["sh", "-c", "echo ready; exec sleep 1000"]);
        let running = Running::start(&mut cmd);
        running.wait_stdout("ready", |l| l == "ready");
        let app = child_of(running.init_pid(mode));
        // The app may still be the shell before its exec; either way it is the app.
        kill(app, libc::SIGKILL);
        let out = running.finish();
        assert_eq!(out.code(), 137, "{mode:?}\n{}", out.context());
        assert_no_panic(&out.stderr);
        assert!(minit_lines(&out.stderr).is_empty(), "{}", out.context());
    }
}

#[test]
fn a_stopped_and_continued_app_keeps_its_status() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let dir = tempdir(&format!("stop-{mode:?}"));
        let fifo = dir.join("go");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let script = format!("echo ready; read line < {}; exit 7", fifo.display());
        let mut cmd = command(mode, &["sh", "-c", &script]);
        let running = Running::start(&mut cmd);
        running.wait_stdout("ready", |l| l == "ready");
        let init = running.init_pid(mode);
        let app = child_of(init);
        kill(app, libc::SIGSTOP);
        poll(|| (state(app) == Some('T')).then_some(()))
            .unwrap_or_else(|| panic!("app not stopped\n{}", running.context()));
        // minit goes on (it is not stopped with the app: no terminal, no job control) and
        // still handles signals: a SIGCONT sent to minit is forwarded to the app.
        assert_ne!(state(init), Some('T'), "minit stopped with the app");
        kill(init, libc::SIGCONT);
        poll(|| (state(app).is_some_and(|s| s != 'T')).then_some(()))
            .unwrap_or_else(|| panic!("app not continued\n{}", running.context()));
        // Stop and continue it once more from outside, then let it finish.
        kill(app, libc::SIGSTOP);
        poll(|| (state(app) == Some('T')).then_some(())).unwrap();
        kill(app, libc::SIGCONT);
        poll(|| (state(app).is_some_and(|s| s != 'T')).then_some(())).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
        let out = running.finish();
        assert_eq!(out.code(), 7, "{mode:?}\n{}", out.context());
        assert_no_panic(&out.stderr);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn closed_stdout_and_stderr() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // fds 1 and 2 are not open at all; minit logs at debug level (every line fails), the
        // app's own writes fail with EBADF. The status is still exact, exec failures too.
        let minit_cmd = match mode {
            Mode::Pid1 => format!("unshare -p -f --mount-proc -- {}", minit()),
            Mode::Subreaper => minit().to_string(),
        };
        for (app, want) in [
            ("sh -c 'echo lost; echo lost >&2; exit 4'", 4),
            ("/nonexistent/app", 127),
            ("/dev/null", 126),
        ] {
            let script = format!("{minit_cmd} -vvvv {app} >&- 2>&-; echo status $?");
            let out = run({
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            });
            assert_eq!(
                out.stdout.trim(),
                format!("status {want}"),
                "{mode:?} {app}\n{}",
                out.context()
            );
        }
    }
}

#[test]
fn a_broken_stdout_pipe() {
    // The app and minit write into a pipe nobody reads any more: the app gets SIGPIPE as it
    // should (minit restored the default for it); minit passes the status on.
    let script = format!(
        "{} -vvvv sh -c 'while :; do echo spam; done' | head -n 1 >/dev/null; echo \"status ${{PIPESTATUS:-?}}\"",
        minit()
    );
    let out = run({
        let mut c = Command::new("bash");
        c.args([
            "-c",
            &script.replace("${PIPESTATUS:-?}", "${PIPESTATUS[0]}"),
        ]);
        c
    });
    assert_eq!(out.stdout.trim(), "status 141", "{}", out.context());
    assert_no_panic(&out.stderr);
}

/// `cmd` with RLIMIT_NOFILE set to `n` (soft and hard) for minit.
fn with_nofile(cmd: &mut Command, n: u64) {
    // SAFETY: only setrlimit, which is async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[test]
fn four_file_descriptors_are_enough() {
    // ulimit -n 4: stdin, stdout, stderr and the signalfd. No room for the exec-error pipe:
    // minit says so once and still runs the app; an exec failure still gives 127/126.
    for (args, want) in [
        (&["sh", "-c", "exit 5"][..], 5),
        (&["/nonexistent/app"][..], 127),
        (&["/dev/null"][..], 126),
    ] {
        let mut cmd = Command::new(minit());
        cmd.args(args);
        with_nofile(&mut cmd, 4);
        let out = run(cmd);
        assert_eq!(out.code(), want, "{args:?}\n{}", out.context());
        assert_no_panic(&out.stderr);
        let lines = minit_lines(&out.stderr);
        assert_eq!(lines.len(), 1, "{args:?}\n{}", out.context());
        assert!(lines[0].contains("exec-error pipe"), "{}", out.context());
    }
}

/// A pids cgroup (v1 `pids` hierarchy or v2 with the pids controller) with `pids.max` set,
/// removed on drop.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn new(tag: &str, max: u32) -> Option<PidsCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let v2 = Path::new("/sys/fs/cgroup");
        let parent = if v1.join("cgroup.procs").exists() {
            v1.to_path_buf()
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "pids"))
        {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+pids");
            v2.to_path_buf()
        } else {
            return None;
        };
        let dir = parent.join(format!("minit-faults-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
        Some(PidsCgroup(dir))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Every member has exited by now; rmdir may race the last exit, so retry briefly.
        let _ = poll(|| std::fs::remove_dir(&self.0).ok());
    }
}

/// The python interpreter's real path (`python3` may be a shell shim that forks).
fn python() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn an_exhausted_pid_limit() {
    if !util::require_root() {
        return;
    }
    let fork_app = "import os\ntry:\n    os.fork()\nexcept OSError as e:\n    print('fork failed', e.errno)\n    raise SystemExit(9)\nraise SystemExit(0)";
    // pids.max 2: minit and the app fit, the app's own fork fails with EAGAIN; minit goes
    // on and passes the app's status. pids.max 1: minit's fork of the app fails: 125 and
    // one line naming fork.
    for (max, want) in [(2, 9), (1, 125)] {
        let cg = PidsCgroup::new(&format!("max{max}"), max);
        if !util::require(cg.is_some(), "a pids cgroup (v1 or v2)") {
            return;
        }
        let cg = cg.unwrap();
        // The interpreter itself, not a wrapper (pyenv's shim forks).
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec {} {} -c \"$APP\"",
            cg.0.display(),
            minit(),
            python()
        );
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &script]).env("APP", fork_app);
        let out = run(cmd);
        assert_eq!(out.code(), want, "pids.max {max}\n{}", out.context());
        assert_no_panic(&out.stderr);
        let lines = minit_lines(&out.stderr);
        if want == 9 {
            assert_eq!(out.stdout.trim(), "fork failed 11", "{}", out.context());
            assert!(lines.is_empty(), "{}", out.context());
        } else {
            assert_eq!(lines.len(), 1, "{}", out.context());
            assert!(lines[0].contains("cannot fork"), "{}", out.context());
        }
    }
}

#[test]
fn without_proc_leftovers_end_through_the_apps_group() {
    if !util::require_root() {
        return;
    }
    // A mount namespace with /proc unmounted: minit cannot list its descendants, so the
    // leftover in the app's process group is ended through the group. As PID 1 of a PID
    // namespace `kill(-1)` needs no /proc either.
    for mode in MODES {
        let inner = format!(
            "umount -l /proc && [ ! -e /proc/self ] && exec {} --grace 60s sh -c 'sleep 1000 & echo leftover; exit 3'",
            minit()
        );
        let mut cmd = Command::new("unshare");
        match mode {
            Mode::Pid1 => cmd.args(["-m", "-p", "-f", "--propagation", "private"]),
            Mode::Subreaper => cmd.args(["-m", "--propagation", "private"]),
        };
        cmd.args(["sh", "-c", &inner]);
        let started = std::time::Instant::now();
        let out = run(cmd);
        assert_eq!(out.code(), 3, "{mode:?}\n{}", out.context());
        assert_eq!(out.stdout.trim(), "leftover", "{}", out.context());
        assert_no_panic(&out.stderr);
        // SIGTERM reached the sleep: it ended long before the grace period would run out
        // (a sleep missed by SIGTERM would hold minit for the whole 60 s).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{mode:?} took {:?}\n{}",
            started.elapsed(),
            out.context()
        );
    }
}

/// Adopts orphans (PR_SET_CHILD_SUBREAPER) and reports every process it reaps. Starts
/// minit with the arguments given, either directly or (`via-parent`) through an
/// intermediate parent the test can kill. Prints `parent P`, `minit M`, `reaped PID how`
/// lines, then `done` when it has no children left.
const HARNESS: &str = r#"
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
via_parent = sys.argv[1] == "via-parent"
argv = sys.argv[2:]
def say(s):
    os.write(1, (s + "\n").encode())
if via_parent:
    r, w = os.pipe()
    parent = os.fork()
    if parent == 0:
        os.close(r)
        m = os.fork()
        if m == 0:
            os.close(w)
            os.execv(argv[0], argv)
        os.write(w, str(m).encode())
        os.close(w)
        while True:
            signal.pause()
    os.close(w)
    m = int(os.read(r, 32))
    say(f"parent {parent}")
else:
    m = os.fork()
    if m == 0:
        os.execv(argv[0], argv)
say(f"minit {m}")
while True:
    try:
        pid, status = os.wait()
    except ChildProcessError:
        break
    how = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
    say(f"reaped {pid} {how}")
say("done")
"#;

struct Harness {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        // On a failed assertion, do not leave the harness (and what it adopted) holding the
        // test's pipes: kill the whole group it leads.
        // SAFETY: plain kill of the process group this test created.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Harness {
    fn start(via_parent: bool, minit_args: &[&str]) -> Harness {
        let mut child = Command::new("python3")
            .process_group(0)
            .args(["-c", HARNESS])
            .arg(if via_parent { "via-parent" } else { "direct" })
            .arg(minit())
            .args(minit_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Harness { child, lines }
    }

    fn value(&self, prefix: &str) -> i32 {
        poll(|| {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no line {prefix:?}: {:?}", self.lines.lock().unwrap()))
    }

    fn wait_line(&self, want: &str) {
        poll(|| {
            self.lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l == want)
                .then_some(())
        })
        .unwrap_or_else(|| panic!("no line {want:?}: {:?}", self.lines.lock().unwrap()));
    }

    fn finish(mut self) -> Vec<String> {
        let status = self.child.wait().unwrap();
        assert!(status.success());
        self.wait_line("done");
        self.lines.lock().unwrap().clone()
    }
}

const APP: &str = "echo app $$; exec sleep 1000";

#[test]
fn parent_death_with_and_without_pdeath() {
    // With -p TERM: the parent dies, minit gets SIGTERM and forwards it; the app (a shell
    // running sleep) dies of it and minit exits 143.
    let h = Harness::start(true, &["-p", "TERM", "sh", "-c", APP]);
    let parent = h.value("parent ");
    let m = h.value("minit ");
    let app = h.value("app ");
    kill(parent, libc::SIGKILL);
    h.wait_line(&format!("reaped {m} exit 143"));
    assert!(poll(|| (!process_exists(app)).then_some(())).is_some());
    h.finish();

    // Without -p: minit and the app carry on after the parent died (the control), until
    // minit is asked to stop.
    let h = Harness::start(true, &["sh", "-c", APP]);
    let parent = h.value("parent ");
    let m = h.value("minit ");
    let app = h.value("app ");
    kill(parent, libc::SIGKILL);
    h.wait_line(&format!("reaped {parent} signal 9"));
    assert!(process_exists(m) && state(m) != Some('Z'));
    assert!(process_exists(app) && state(app) != Some('Z'));
    kill(m, libc::SIGTERM);
    h.wait_line(&format!("reaped {m} exit 143"));
    h.finish();
}

#[test]
fn sigkill_of_minit_does_not_orphan_the_app_with_pdeath() {
    // minit is SIGKILLed from outside (it is not PID 1). With -p the app was started with
    // the same signal as its own parent-death signal, so it ends with minit.
    let h = Harness::start(false, &["-p", "TERM", "sh", "-c", APP]);
    let m = h.value("minit ");
    let app = h.value("app ");
    kill(m, libc::SIGKILL);
    h.wait_line(&format!("reaped {m} signal 9"));
    // The app was adopted by the harness (a subreaper) and died of SIGTERM.
    h.wait_line(&format!("reaped {app} signal 15"));
    h.finish();

    // The control: without -p the app is orphaned and keeps running.
    let h = Harness::start(false, &["sh", "-c", APP]);
    let m = h.value("minit ");
    let app = h.value("app ");
    kill(m, libc::SIGKILL);
    h.wait_line(&format!("reaped {m} signal 9"));
    assert!(
        process_exists(app) && state(app) != Some('Z'),
        "app gone without -p"
    );
    kill(app, libc::SIGKILL);
    h.wait_line(&format!("reaped {app} signal 9"));
    h.finish();
}
