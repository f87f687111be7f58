//! `minit pause`, the infra process of a pod, run as users run it: as PID 1 of a new PID
//! namespace (`unshare -p -f --mount-proc`) and as a plain process (a subreaper).
//!
//! Every test synchronises on the pause's own log lines (`-v` says `pausing as pid N` once it
//! is ready, `-vv` says `ignoring SIGHUP` once a signal has been read and dropped) and polls
//! against the harness's 60 s deadline. The one fixed wait is the idle interval of
//! `no_wake_ups_while_idle`, where the waiting is the measurement.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use util::{MODES, Mode, Running, command, minit, mode_available, poll};

/// Starts `minit pause` with `args` in `mode` and waits until it is ready; returns it and its
/// pid (minit's own, not unshare's).
fn start_pause(mode: Mode, args: &[&str]) -> (Running, i32) {
    let mut all = vec!["pause"];
    all.extend_from_slice(args);
    let mut cmd = command(mode, &all);
    let running = Running::start(&mut cmd);
    running.wait_stderr("'pausing as pid'", |l| l.contains("pausing as pid"));
    let pid = running.init_pid(mode);
    (running, pid)
}

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The state letter of a process (`S`, `Z`, …), from /proc/PID/stat.
fn state_of(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

fn status_field(pid: i32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill of a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Signals that must not end a pause, PID 1 or not: the Kubernetes pause dies of SIGHUP
/// when it is not PID 1; job-control signals must not stop it either.
const IGNORED: [(i32, &str); 14] = [
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGPWR, "SIGPWR"),
    (34 + 3, "SIGRTMIN+3"),
];

#[test]
fn int_and_term_exit_0_after_every_other_signal_is_ignored() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for (stop, stop_name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
            let (running, pid) = start_pause(mode, &["-vv"]);
            for (sig, name) in IGNORED {
                signal(pid, sig);
                // The log line is written after the signal was read from the signalfd and
                // dropped: from then on it can no longer kill or stop the pause.
                let want = format!("ignoring {name}");
                running.wait_stderr(&want, |l| l.ends_with(&want));
                // Alive, and back asleep in its read: not stopped (T), not a zombie.
                let asleep = poll(|| (state_of(pid) == Some('S')).then_some(()));
                assert!(
                    asleep.is_some(),
                    "{mode:?}: pause is {:?} after {name}\n{}",
                    state_of(pid),
                    running.context()
                );
            }
            signal(pid, stop);
            let out = running.finish();
            assert_eq!(out.code(), 0, "{mode:?} {stop_name}\n{}", out.context());
            assert!(
                out.stderr
                    .contains(&format!("{stop_name} received: exiting")),
                "{}",
                out.context()
            );
        }
    }
}

#[test]
fn a_stray_argument_is_a_usage_error() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        for args in [
            &["pause", "sleep"][..],
            &["pause", "--", "x"],
            &["pause", "-x"],
        ] {
            let out = util::run(command(mode, args));
            assert_eq!(out.code(), 2, "{mode:?} {args:?}\n{}", out.context());
            assert!(out.stderr.contains("usage:"), "{}", out.context());
        }
    }
}

#[test]
fn cwd_is_root_and_only_stdio_and_the_signalfd_are_open() {
    let dir = std::env::temp_dir().join(format!("minit-pause-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // An fd the caller leaks into the pause (not CLOEXEC), as a careless runtime might.
        let leaked = std::fs::File::open("/etc/hostname").unwrap();
        let leaked_fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
        let mut cmd = command(mode, &["pause", "-v"]);
        cmd.current_dir(&dir);
        // SAFETY: dup2 and fcntl only, async-signal-safe, between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(leaked_fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let running = Running::start(&mut cmd);
        running.wait_stderr("'pausing as pid'", |l| l.contains("pausing as pid"));
        let pid = running.init_pid(mode);
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        assert_eq!(cwd, std::path::Path::new("/"), "{mode:?}");
        let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let fd = e.file_name().to_str()?.parse().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                Some((fd, target.to_string_lossy().into_owned()))
            })
            .collect();
        fds.sort();
        let numbers: Vec<i32> = fds.iter().map(|f| f.0).collect();
        assert_eq!(numbers, [0, 1, 2, 3], "{mode:?}: {fds:?}");
        assert_eq!(fds[3].1, "anon_inode:[signalfd]", "{mode:?}: {fds:?}");
        signal(pid, libc::SIGTERM);
        assert_eq!(running.finish().code(), 0);
        drop(leaked);
    }
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn no_wake_ups_while_idle() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let (running, pid) = start_pause(mode, &["-v"]);
        let switches = || {
            status_field(pid, "voluntary_ctxt_switches").unwrap()
                + status_field(pid, "nonvoluntary_ctxt_switches").unwrap()
        };
        let rss_kb = status_field(pid, "VmRSS").unwrap();
        let before = switches();
        // The one fixed wait in these tests, and on purpose: the idle interval *is* the
        // measurement. A pause with a timed wait (tini's 1 s sigtimedwait) would switch at
        // least twice in it.
        std::thread::sleep(Duration::from_secs(3));
        let after = switches();
        eprintln!(
            "{mode:?}: context switches over 3 s idle: {before} -> {after}; VmRSS {rss_kb} kB"
        );
        assert_eq!(before, after, "{mode:?}: the idle pause woke up");
        assert!(rss_kb < 8 * 1024, "{mode:?}: VmRSS {rss_kb} kB");
        signal(pid, libc::SIGTERM);
        assert_eq!(running.finish().code(), 0);
    }
}

/// A helper that forks 500 children which exit at once, waits until they are all zombies,
/// then forks `late` (argv[2]) more which wait for the exec below (their CLOEXEC pipe closes) and for
/// the pause to be set up (its cwd becomes `/`, after it made itself a subreaper), then fork
/// a grandchild and exit, so the grandchild is an orphan. Then it execs `minit pause -vv`:
/// the pause is handed 500 zombies it never got a SIGCHLD for, `late` children and `late`
/// orphans. With `late` = 0 no SIGCHLD ever comes: only a reap at start-up finds the zombies.
const HAND_OVER: &str = r#"
import os, sys, time
minit, late = sys.argv[1], int(sys.argv[2])
zombies = []
for _ in range(500):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    zombies.append(pid)
def state(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(") ", 1)[1][0]
while any(state(p) != "Z" for p in zombies):
    time.sleep(0.01)
r, w = os.pipe()
me = os.getpid()
for _ in range(late):
    if os.fork() == 0:
        os.close(w)
        os.read(r, 1)
        while os.readlink(f"/proc/{me}/cwd") != "/":
            time.sleep(0.01)
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
os.close(r)
sys.stdout.write("handing over\n")
sys.stdout.flush()
os.execv(minit, ["minit", "pause", "-vv"])
"#;

#[test]
fn zombies_and_orphans_handed_over_are_all_reaped() {
    hand_over(500);
}

#[test]
fn zombies_handed_over_without_any_sigchld_are_reaped_at_start() {
    hand_over(0);
}

fn hand_over(late: usize) {
    let expected = 500 + 2 * late;
    let dir = std::env::temp_dir().join(format!("minit-pause-hand-{}-{late}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let late_arg = late.to_string();
        let helper = ["python3", "-c", HAND_OVER, minit(), &late_arg];
        let mut cmd = match mode {
            Mode::Pid1 => {
                let mut c = Command::new("unshare");
                c.args(["-p", "-f", "--mount-proc", "--"]).args(helper);
                c
            }
            Mode::Subreaper => {
                let mut c = Command::new(helper[0]);
                c.args(&helper[1..]);
                c
            }
        };
        cmd.current_dir(&dir);
        let running = Running::start(&mut cmd);
        running.wait_stdout("'handing over'", |l| l == "handing over");
        running.wait_stderr("'pausing as pid'", |l| l.contains("pausing as pid"));
        let pid = running.init_pid(mode);
        let reaped = || {
            running
                .stderr
                .snapshot()
                .iter()
                .filter(|l| l.contains("reaped pid"))
                .count()
        };
        let done = poll(|| (reaped() >= expected && children_of(pid).is_empty()).then_some(()));
        assert!(
            done.is_some(),
            "{mode:?}: reaped {} of {expected}, children left {:?}",
            reaped(),
            children_of(pid).len()
        );
        signal(pid, libc::SIGTERM);
        let out = running.finish();
        assert_eq!(out.code(), 0, "{mode:?}");
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.contains("reaped pid"))
                .count(),
            expected,
            "{mode:?}: every zombie, child and orphan once"
        );
    }
    let _ = std::fs::remove_dir(&dir);
}

/// Run inside the pod's PID namespace with nsenter (no subreaper in between, as with
/// `kubectl exec`): makes N double-forked orphans that block on a pipe, prints `orphans N`
/// once the middle generation is reaped (so all N are reparented to PID 1), waits for a line
/// on stdin, then lets them all exit at once and exits itself.
pub const ORPHANS: &str = r#"
import os, sys
n = int(sys.argv[1])
r, w = os.pipe()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
print(f"orphans {n}", flush=True)
sys.stdin.readline()
os.close(w)
"#;

/// Starts the ORPHANS helper in the PID and mount namespaces of `pid`; returns it once the
/// orphans exist.
fn make_orphans(pid: i32, n: usize) -> std::process::Child {
    let mut helper = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-p",
            "-m",
            "--",
            "python3",
            "-c",
            ORPHANS,
        ])
        .arg(n.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start nsenter");
    let mut line = String::new();
    BufReader::new(helper.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("orphans {n}"));
    helper
}

fn release_orphans(mut helper: std::process::Child) {
    helper.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(helper.wait().unwrap().success());
}

#[test]
fn a_thousand_orphans_of_the_namespace_are_reparented_and_reaped() {
    if !mode_available(Mode::Pid1) {
        return;
    }
    let (running, pid) = start_pause(Mode::Pid1, &["-v"]);
    let helper = make_orphans(pid, 1000);
    let adopted = children_of(pid).len();
    assert_eq!(adopted, 1000, "orphans reparented to the pause");
    let started = Instant::now();
    release_orphans(helper);
    let gone = poll(|| children_of(pid).is_empty().then_some(()));
    assert!(
        gone.is_some(),
        "{} zombies left\n{}",
        children_of(pid).len(),
        running.context()
    );
    eprintln!(
        "1000 orphans released and reaped in {:?}",
        started.elapsed()
    );
    signal(pid, libc::SIGTERM);
    assert_eq!(running.finish().code(), 0);
}

/// The control: the same orphans under a PID 1 that does not reap (`sleep`) stay zombies,
/// so the test above can fail.
#[test]
fn without_a_reaping_pid_1_the_orphans_stay_zombies() {
    if !util::require_root() {
        return;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-p", "-f", "--mount-proc", "--", "sleep", "1000"]);
    let running = Running::start(&mut cmd);
    let pid = running.init_pid(Mode::Pid1);
    // unshare's child may not have exec'd sleep yet; nsenter needs it in the namespace.
    poll(|| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .ok()
            .filter(|c| c.starts_with("sleep"))
    })
    .expect("sleep started");
    let helper = make_orphans(pid, 1000);
    release_orphans(helper);
    let zombies = || {
        children_of(pid)
            .into_iter()
            .filter(|&c| state_of(c) == Some('Z'))
            .count()
    };
    let stuck = poll(|| (zombies() == 1000).then_some(()));
    assert!(stuck.is_some(), "only {} zombies", zombies());
    signal(pid, libc::SIGKILL);
    let _ = running.finish();
}
