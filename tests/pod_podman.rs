//! The real-runtime check of pause mode: a podman pod (podman + runc, see
//! tests/container/README.md) whose infra container is a `FROM scratch` image holding the
//! static minit, started as `--infra-command '/minit pause'` with a shared PID namespace.
//! A second container sees the pause as PID 1, its orphan is reparented to the pause and
//! reaped by it, and `pod stop` ends the infra with exit code 0.
//!
//! Without podman (or not as root) the test skips with the harness's reason; under CI=true
//! it fails instead.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use util::{poll, process_exists};

fn harness() -> Command {
    Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/container/podman.sh"
    ))
}

fn podman(args: &[&str]) -> Output {
    harness()
        .arg("podman")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run podman.sh")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A static minit of this tree: `MINIT_STATIC_BINARY`, or the musl release build in the
/// same target directory when it is newer than the test binary, or one built now.
fn static_minit() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("MINIT_STATIC_BINARY") {
        return Some(PathBuf::from(path));
    }
    let minit = Path::new(util::minit());
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let target = minit.parent()?.parent()?;
    let release = target.join("x86_64-unknown-linux-musl/release/minit");
    if modified(&release).is_some() && modified(&release) >= modified(minit) {
        return Some(release);
    }
    // A target directory of its own: the outer `cargo test` may hold the lock of this one.
    let dir = target.join("pod-podman-static");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-linux-musl",
        ])
        .arg("--target-dir")
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .is_ok_and(|s| s.success());
    built.then(|| dir.join("x86_64-unknown-linux-musl/release/minit"))
}

fn host_pid_of(argv: &[&str]) -> Option<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        (std::fs::read(format!("/proc/{pid}/cmdline")).ok()? == want).then_some(pid)
    })
}

fn ppid_of(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))?
        .trim()
        .parse()
        .ok()
}

/// Removes the pod (and its containers) however the test ends.
struct PodGuard(String);

impl Drop for PodGuard {
    fn drop(&mut self) {
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &self.0]);
    }
}

#[test]
fn a_podman_pod_with_minit_pause_as_infra() {
    let check = harness()
        .arg("check")
        .status()
        .expect("run podman.sh check");
    if !util::require(
        check.success(),
        "podman + runc harness (tests/container/podman.sh check)",
    ) {
        return;
    }
    let binary = static_minit();
    if !util::require(binary.is_some(), "a static musl build of minit") {
        return;
    }
    let binary = binary.unwrap();
    let image = "minit-test-pause-img";
    let built = harness()
        .args(["build-image", image])
        .arg(&binary)
        .stdin(Stdio::null())
        .output()
        .expect("run podman.sh build-image");
    ok(built);

    let pod = format!("minit-test-pausepod-{}", std::process::id());
    let infra = format!("{pod}-infra");
    let app = format!("{pod}-app");
    let _guard = PodGuard(pod.clone());
    let _ = podman(&["pod", "rm", "-f", "-t", "0", &pod]);
    ok(podman(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--label",
        "minit-test=1",
        "--infra-image",
        &format!("localhost/{image}"),
        "--infra-name",
        &infra,
        "--infra-command",
        "/minit pause",
        "--share",
        "+pid",
    ]));

    // A second container sees the pause as PID 1 (`run --pod` starts the infra too).
    let ps = ok(podman(&[
        "run",
        "--rm",
        "--pull=never",
        "--pod",
        &pod,
        image,
        "ps",
        "-o",
        "pid,args",
    ]));
    assert!(
        ps.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "/minit", "pause"]),
        "PID 1 is not the pause:\n{ps}"
    );
    let pause: i32 = ok(podman(&["inspect", "--format", "{{.State.Pid}}", &infra]))
        .parse()
        .unwrap();

    // A container whose inner shell leaves an orphan behind and exits: the orphan is
    // reparented to the pause (the app's sh is no subreaper), and reaped by it when it ends.
    ok(podman(&[
        "run",
        "-d",
        "--pull=never",
        "--name",
        &app,
        "--pod",
        &pod,
        image,
        "sh",
        "-c",
        "sh -c 'sleep 1005 >/dev/null 2>&1 &'; exec sleep 1000000",
    ]));
    let orphan = poll(|| host_pid_of(&["sleep", "1005"])).expect("the orphan started");
    let adopted = poll(|| (ppid_of(orphan)? == pause).then_some(()));
    assert!(
        adopted.is_some(),
        "orphan {orphan}'s parent is {:?}, not the pause {pause}",
        ppid_of(orphan)
    );
    // SAFETY: plain kill of a process this test started.
    assert_eq!(unsafe { libc::kill(orphan, libc::SIGTERM) }, 0);
    let reaped = poll(|| (!process_exists(orphan)).then_some(()));
    assert!(
        reaped.is_some(),
        "orphan {orphan} was not reaped (a zombie is left)"
    );
    let ps = ok(podman(&[
        "run",
        "--rm",
        "--pull=never",
        "--pod",
        &pod,
        image,
        "ps",
        "-o",
        "pid,stat,args",
    ]));
    assert!(
        !ps.lines().any(|l| l.split_whitespace().nth(1) == Some("Z")),
        "a zombie is left:\n{ps}"
    );

    // pod stop: SIGTERM to the pause, which exits 0 at once (no wait for the SIGKILL).
    let started = Instant::now();
    ok(podman(&["pod", "stop", "-t", "10", &pod]));
    let took = started.elapsed();
    let code = ok(podman(&[
        "inspect",
        "--format",
        "{{.State.ExitCode}}",
        &infra,
    ]));
    eprintln!("pod stop took {took:?}; infra exit code {code}");
    assert_eq!(code, "0");
    assert!(
        took < Duration::from_secs(10),
        "pod stop needed the SIGKILL: {took:?}"
    );
}
