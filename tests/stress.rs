//! Stress, with figures: every test prints a `FIGURE ...` line (run with `--nocapture` to
//! see them; README's Reliability section quotes them).
//!
//! - 100,000 orphans reaped with none left, minit as PID 1 of a PID namespace;
//! - 20 minit instances in parallel, each reaping 1,000 orphans;
//! - a flood of 10,000 queued real-time signals (values 1..10,000) interleaved with 10,000
//!   standard signals: every real-time one reaches the app, in order; the status is exact;
//! - the app forking as fast as it can under `minit run --pids`: its forks fail with EAGAIN,
//!   minit goes on and the run ends with the app's status.
//!
//! The creator/sender/receiver is a small C program (`tests/stress/helper.c`) compiled into
//! CARGO_TARGET_TMPDIR at test time: python would measure python.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use util::{Mode, Running, command, minit, run};

fn helper() -> &'static str {
    static HELPER: OnceLock<String> = OnceLock::new();
    HELPER.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stress/helper.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("stress-helper-{}", std::process::id()));
        let status = Command::new("cc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run cc (gcc is needed for the stress tests)");
        assert!(status.success(), "cannot compile {}", src.display());
        out.to_string_lossy().into_owned()
    })
}

/// A pids cgroup (v1 `pids` hierarchy, or v2 with the pids controller) limited to `max`,
/// removed on drop. Caps the orphan creator, so a burst of zombies waiting to be reaped
/// cannot use up the host's pids (pid_max is global) and make other tests' forks fail.
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
        let dir = parent.join(format!("minit-stress-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).ok()?;
        std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
        Some(PidsCgroup(dir))
    }

    /// `sh -c` that moves itself into the cgroup, then execs `argv`.
    fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec \"$@\"",
                self.0.display()
            ))
            .arg("sh")
            .args(argv);
        c
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = util::poll(|| std::fs::remove_dir(&self.0).ok());
    }
}

fn field(line: &str, name: &str) -> u64 {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == name {
            return words
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
        }
    }
    panic!("no {name} in {line:?}")
}

#[test]
fn a_hundred_thousand_orphans_leave_no_zombie() {
    if !util::require_root() {
        return;
    }
    let Some(cg) = PidsCgroup::new("100k", 4000) else {
        util::require(false, "a pids cgroup (v1 or v2)");
        return;
    };
    let started = Instant::now();
    let out = run(cg.command(&[
        "unshare",
        "-p",
        "-f",
        "--mount-proc",
        "--",
        minit(),
        helper(),
        "orphans",
        "100000",
    ]));
    let wall = started.elapsed();
    assert_eq!(out.code(), 0, "{}", out.context());
    let line = out.stdout.trim();
    assert_eq!(field(line, "orphans"), 100_000, "{line}");
    assert_eq!(field(line, "zombies"), 0, "{line}");
    eprintln!(
        "FIGURE 100000 orphans reaped by minit as PID 1, 0 zombies left: {} ms in the app ({:.1?} wall), fork EAGAIN retries at pids.max 4000: {}",
        field(line, "ms"),
        wall,
        field(line, "eagain")
    );
}

#[test]
fn twenty_minits_in_parallel_each_reap_a_thousand_orphans() {
    // Capped together (as root) so 20,000 zombies at once cannot use up the host's pids.
    let cg = if util::is_root() {
        PidsCgroup::new("parallel", 6000)
    } else {
        None
    };
    let started = Instant::now();
    let argv = [minit(), helper(), "orphans", "1000"];
    let runs: Vec<Running> = (0..20)
        .map(|_| {
            let mut cmd = match &cg {
                Some(cg) => cg.command(&argv),
                None => command(Mode::Subreaper, &argv[1..]),
            };
            Running::start(&mut cmd)
        })
        .collect();
    let mut slowest = 0;
    for r in runs {
        let out = r.finish();
        assert_eq!(out.code(), 0, "{}", out.context());
        let line = out.stdout.trim().to_string();
        assert_eq!(field(&line, "zombies"), 0, "{line}");
        slowest = slowest.max(field(&line, "ms"));
    }
    eprintln!(
        "FIGURE 20 minit subreapers in parallel x 1000 orphans: 0 zombies left; slowest {slowest} ms, all done in {:.1?}",
        started.elapsed()
    );
}

#[test]
fn a_flood_of_signals_keeps_every_realtime_one_in_order() {
    const N: &str = "10000";
    for mode in util::MODES {
        if !util::mode_available(mode) {
            continue;
        }
        let mut cmd = command(mode, &[helper(), "receive", N]);
        let running = Running::start(&mut cmd);
        running.wait_stdout("ready", |l| l == "ready");
        let init = running.init_pid(mode);
        let started = Instant::now();
        let sent = Command::new(helper())
            .args(["flood", &init.to_string(), N])
            .output()
            .unwrap();
        assert!(sent.status.success(), "{sent:?}");
        let out = running.finish();
        let took = started.elapsed();
        assert_eq!(out.code(), 42, "{mode:?}\n{}", out.context());
        let summary = out
            .stdout
            .lines()
            .find(|l| l.starts_with("rt "))
            .unwrap_or_else(|| panic!("no summary\n{}", out.context()));
        assert_eq!(field(summary, "rt"), 10_000, "{summary}");
        assert_eq!(field(summary, "inorder"), 1, "{summary}");
        // Standard signals coalesce while pending, but some must arrive.
        assert!(field(summary, "std") >= 4, "{summary}");
        eprintln!(
            "FIGURE {mode:?}: 10000 sigqueue RT + 10000 standard signals to minit: all 10000 RT values in order, {} standard delivered (coalesced), {:.1?}; {}",
            field(summary, "std"),
            took,
            String::from_utf8_lossy(&sent.stdout).trim()
        );
    }
}

#[test]
fn an_app_forking_flat_out_under_a_pids_limit() {
    if !util::require_root() {
        return;
    }
    let started = Instant::now();
    let out = run({
        let mut c = Command::new(minit());
        c.args([
            "run",
            "--pid",
            "--pids",
            "64",
            "--grace",
            "10s",
            "--",
            helper(),
            "forkbomb",
            "20000",
        ]);
        c
    });
    let took = started.elapsed();
    assert_eq!(out.code(), 7, "{}", out.context());
    let said: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("fork failed"))
        .collect();
    assert_eq!(said.len(), 1, "{}", out.context());
    let last = out.stdout.lines().last().unwrap_or_default();
    assert!(field(last, "failed") >= 1, "{}", out.context());
    assert!(
        !out.stderr.contains("panicked"),
        "minit panicked\n{}",
        out.context()
    );
    // The leftovers (up to 63 paused children) end with SIGTERM well within the grace.
    assert!(
        took < Duration::from_secs(30),
        "{took:?}\n{}",
        out.context()
    );
    eprintln!(
        "FIGURE minit run --pids 64 with the app forking flat out: {}; {last}; run ended with the app's 7 in {took:.1?}",
        said[0]
    );
}
