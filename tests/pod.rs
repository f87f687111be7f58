//! A pod on one machine with nothing but minit: `minit pod` makes pid, net, ipc and uts
//! namespaces whose PID 1 is `minit pause` and prints its pid; `minit run --join PID` starts
//! each app in them, in a cgroup of its own with its own limits.
//!
//! Each joined app has its own minit (like a container whose entrypoint is minit): it
//! forwards signals, reaps the app's own orphans and ends its leftovers. The pause, PID 1 of
//! the shared PID namespace, gets every orphan nobody else can take: processes entered with
//! nsenter (as `kubectl exec` does) and an app's processes whose minit was killed.

mod util;

use std::process::Command;
use util::{Running, minit, poll, process_exists};

fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill of a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Starts `minit pod ARGS` and returns it with the pause's pid (the line it prints).
fn start_pod(args: &[&str]) -> (Running, i32) {
    let mut cmd = Command::new(minit());
    cmd.arg("pod").args(args);
    let running = Running::start(&mut cmd);
    let line = running.wait_stdout("with the pod's pid", |l| l.parse::<i32>().is_ok());
    (running, line.parse().unwrap())
}

/// Starts `minit run --join POD ARGS` and waits for `ready` on its stdout.
fn join(pod: i32, args: &[&str], ready: &str) -> Running {
    let pod = pod.to_string();
    let mut cmd = Command::new(minit());
    cmd.args(["run", "--join", &pod]).args(args);
    let running = Running::start(&mut cmd);
    running.wait_stdout(ready, |l| l == ready);
    running
}

/// The host pid of the (only) process whose command line is exactly `argv`.
fn find_process(argv: &[&str]) -> i32 {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let found = poll(|| {
        std::fs::read_dir("/proc").ok()?.find_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            (std::fs::read(format!("/proc/{pid}/cmdline")).ok()? == want).then_some(pid)
        })
    });
    found.unwrap_or_else(|| panic!("no process {argv:?}"))
}

fn status_field(pid: i32, key: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| Some(l.strip_prefix(key)?.strip_prefix(':')?.trim().to_string()))
}

fn children_of(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The cgroup directory of `pid` for a v1 `controller`, or its v2 directory.
fn cgroup_dir(pid: i32, controller: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next(), parts.next().unwrap_or(""), parts.next());
        if list.split(',').any(|c| c == controller) {
            let path = path.unwrap_or("").trim_start_matches('/');
            return std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path);
        }
    }
    let v2 = text.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
    std::path::Path::new("/sys/fs/cgroup").join(v2.trim_start_matches('/'))
}

fn read_limit(pid: i32, controller: &str, v1_file: &str, v2_file: &str) -> String {
    let dir = cgroup_dir(pid, controller);
    let file = if dir.join(v1_file).exists() {
        v1_file
    } else {
        v2_file
    };
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

#[test]
fn a_pod_of_two_apps_shares_ps_keeps_its_own_limits_and_ends_with_the_pause() {
    if !util::require_root() {
        return;
    }
    let (pod, pause) = start_pod(&["--hostname", "minit-pod"]);
    let app_a = join(
        pause,
        &[
            "--memory",
            "64M",
            "--pids",
            "50",
            "--",
            "sh",
            "-c",
            "echo ready-a; exec sleep 1001",
        ],
        "ready-a",
    );
    let app_b = join(
        pause,
        &[
            "--memory",
            "96M",
            "--pids",
            "60",
            "--",
            "sh",
            "-c",
            "echo ready-b; exec sleep 1002",
        ],
        "ready-b",
    );

    // ps from an app in the pod: PID 1 is the pause, and both apps are there.
    let ps = util::run({
        let mut c = Command::new(minit());
        c.args(["run", "--join", &pause.to_string(), "--", "sh", "-c"])
            .arg("hostname; ps -eo pid,args");
        c
    });
    assert_eq!(ps.code(), 0, "{}", ps.context());
    let mut lines = ps.stdout.lines();
    assert_eq!(lines.next(), Some("minit-pod"), "{}", ps.context());
    let table: Vec<(i32, String)> = lines
        .skip(1)
        .filter_map(|l| {
            let (pid, args) = l.trim().split_once(' ')?;
            Some((pid.parse().ok()?, args.trim().to_string()))
        })
        .collect();
    assert!(
        table.contains(&(1, "minit pause".to_string())),
        "PID 1 is not the pause\n{}",
        ps.stdout
    );
    for app in ["sleep 1001", "sleep 1002"] {
        assert!(
            table.iter().any(|(_, args)| args == app),
            "{app} missing\n{}",
            ps.stdout
        );
    }

    // Each app in a cgroup of its own, with its own limits.
    let sleep_a = find_process(&["sleep", "1001"]);
    let sleep_b = find_process(&["sleep", "1002"]);
    assert_ne!(cgroup_dir(sleep_a, "memory"), cgroup_dir(sleep_b, "memory"));
    assert_ne!(cgroup_dir(sleep_a, "pids"), cgroup_dir(sleep_b, "pids"));
    let mem = |pid| read_limit(pid, "memory", "memory.limit_in_bytes", "memory.max");
    let pids = |pid| read_limit(pid, "pids", "pids.max", "pids.max");
    assert_eq!(mem(sleep_a), (64u64 << 20).to_string());
    assert_eq!(mem(sleep_b), (96u64 << 20).to_string());
    assert_eq!(pids(sleep_a), "50");
    assert_eq!(pids(sleep_b), "60");

    // An orphan made by a process entered with nsenter (as `kubectl exec` does) is
    // reparented to the pause, and reaped by it when it ends.
    let out = Command::new("nsenter")
        .args(["-t", &pause.to_string(), "-p", "-m", "--", "sh", "-c"])
        .arg("sleep 1003 >/dev/null 2>&1 & echo started")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "started");
    let orphan = find_process(&["sleep", "1003"]);
    let ppid = poll(|| (status_field(orphan, "PPid")? == pause.to_string()).then_some(()));
    assert!(ppid.is_some(), "the orphan's parent is not the pause");
    signal(orphan, libc::SIGTERM);
    assert!(
        poll(|| (!process_exists(orphan)).then_some(())).is_some(),
        "the orphan was not reaped (state {:?})",
        status_field(orphan, "State")
    );

    // Killing app A's minit does not disturb app B: A's sleep is reparented to the pause,
    // killed by A's cgroup clean-up and reaped by the pause; B runs on.
    let minit_a = children_of(app_a.child.id() as i32)[0];
    signal(minit_a, libc::SIGKILL);
    let out_a = app_a.finish();
    assert_eq!(out_a.code(), 137, "{}", out_a.context());
    assert!(
        poll(|| (!process_exists(sleep_a)).then_some(())).is_some(),
        "app A's process was not reaped (state {:?})",
        status_field(sleep_a, "State")
    );
    assert!(status_field(sleep_b, "State").is_some_and(|s| s.starts_with('S')));
    assert!(status_field(pause, "State").is_some_and(|s| s.starts_with('S')));
    assert!(children_of(pause).iter().all(|&c| c != sleep_a));

    // SIGTERM to the pause ends the pod: minit pod exits 0, and the kernel ends every
    // process left in the PID namespace, app B included.
    signal(pause, libc::SIGTERM);
    let out = pod.finish();
    assert_eq!(out.code(), 0, "{}", out.context());
    let out_b = app_b.finish();
    assert_eq!(out_b.code(), 137, "{}", out_b.context());
    assert!(!process_exists(sleep_b));
}

#[test]
fn stopping_minit_pod_stops_the_pause() {
    if !util::require_root() {
        return;
    }
    let (pod, pause) = start_pod(&[]);
    let app = join(
        pause,
        &["--", "sh", "-c", "echo ready; exec sleep 1004"],
        "ready",
    );
    // SIGTERM to the monitor is forwarded to the pause, which exits 0.
    signal(pod.child.id() as i32, libc::SIGTERM);
    let out = pod.finish();
    assert_eq!(out.code(), 0, "{}", out.context());
    assert!(!process_exists(pause));
    assert_eq!(app.finish().code(), 137);
}

#[test]
fn a_pod_takes_no_command() {
    for args in [
        &["pod", "--", "sh"][..],
        &["pod", "sleep", "1"],
        &["run", "--pod", "true"],
    ] {
        let out = util::run({
            let mut c = Command::new(minit());
            c.args(args);
            c
        });
        assert_eq!(out.code(), 2, "{args:?}\n{}", out.context());
        assert!(
            out.stderr.contains("a pod takes no command"),
            "{}",
            out.context()
        );
    }
}

#[test]
fn the_pod_s_namespaces_are_its_own() {
    if !util::require_root() {
        return;
    }
    let (pod, pause) = start_pod(&[]);
    for ns in ["pid", "net", "ipc", "uts", "mnt"] {
        let theirs = std::fs::read_link(format!("/proc/{pause}/ns/{ns}")).unwrap();
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        assert_ne!(theirs, ours, "{ns}");
    }
    assert_eq!(
        status_field(pause, "NSpid")
            .unwrap()
            .split_whitespace()
            .last(),
        Some("1")
    );
    signal(pause, libc::SIGTERM);
    assert_eq!(pod.finish().code(), 0);
}
