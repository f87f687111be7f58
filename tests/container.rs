//! minit in a real container: a `FROM scratch` image holding the static minit and busybox,
//! run by rootful podman + runc through `tests/container/podman.sh` (see its README). Checks
//! what users rely on: minit as PID 1 passes the app's exit status through, `podman stop`
//! ends the app through minit (not through podman's SIGKILL), orphans of the container are
//! reaped, and `podman run --init --init-path <minit>` works.
//!
//! The static binary: `MINIT_STATIC_BIN=/path/to/minit` uses a build you already have;
//! otherwise the test builds one with the cargo that runs the tests (env `CARGO`),
//! `cargo build --release --target x86_64-unknown-linux-musl`, into its own target dir under
//! `CARGO_TARGET_TMPDIR` — so a fresh clone in CI needs nothing but the musl target, and the
//! build never fights the outer cargo for its target-dir lock. The build and the image are
//! made once per test binary; the image's tag carries this process's pid, so concurrent runs
//! never rebuild each other's image, and it is removed when the test binary exits.
//!
//! Not root, no podman/runc/busybox-static, or no musl target: the tests print why and skip,
//! except under `CI=true`, where that is a failure.
mod util;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use util::{Output, require};

const PODMAN_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/container/podman.sh");
const MUSL: &str = "x86_64-unknown-linux-musl";
/// podman.sh's "cannot run here" exit status.
const SKIP: i32 = 77;

/// What every test needs: the static minit on the host and an image holding it.
struct Setup {
    minit: PathBuf,
    image: String,
}

enum Problem {
    /// A missing capability (skip, or fail under CI=true).
    Missing(String),
    /// Something that should have worked did not.
    Broken(String),
}

static SETUP: OnceLock<Result<Setup, Problem>> = OnceLock::new();
/// The tag to remove at exit, once an image was built.
static IMAGE: OnceLock<String> = OnceLock::new();

/// The shared set-up, or `None` when the test should skip (after `require` said why).
fn setup() -> Option<&'static Setup> {
    match SETUP.get_or_init(prepare) {
        Ok(setup) => Some(setup),
        Err(Problem::Missing(why)) => {
            require(false, why);
            None
        }
        Err(Problem::Broken(what)) => panic!("{what}"),
    }
}

fn prepare() -> Result<Setup, Problem> {
    if !util::is_root() {
        return Err(Problem::Missing(
            "needs root (the harness runs rootful podman)".into(),
        ));
    }
    let check = podman(&["check"]);
    if check.code() == SKIP {
        return Err(Problem::Missing(format!(
            "podman.sh check: {}",
            check.stderr.trim()
        )));
    }
    expect_code(&check, 0, "podman.sh check");
    let minit = static_minit()?;
    let image = format!("localhost/minit-test-container-{}", std::process::id());
    let minit_str = minit.to_str().expect("UTF-8 path to minit");
    let built = podman(&["build-image", &image, minit_str]);
    if built.code() == SKIP {
        return Err(Problem::Missing(format!(
            "podman.sh build-image: {}",
            built.stderr.trim()
        )));
    }
    if built.code() != 0 {
        return Err(Problem::Broken(format!(
            "podman.sh build-image failed\n{}",
            built.context()
        )));
    }
    IMAGE.set(image.clone()).expect("image is set once");
    // SAFETY: registers a plain `extern "C" fn` with no arguments; it runs at exit, after
    // every test has finished (libtest's main returns or calls `process::exit`).
    unsafe { libc::atexit(remove_image) };
    Ok(Setup { minit, image })
}

extern "C" fn remove_image() {
    if let Some(image) = IMAGE.get() {
        // Best effort: `podman.sh cleanup` removes anything a killed run left behind.
        let _ = Command::new(PODMAN_SH)
            .args(["podman", "rmi", "-f", image])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The static minit: `MINIT_STATIC_BIN`, or a fresh musl release build of this tree.
fn static_minit() -> Result<PathBuf, Problem> {
    if let Some(path) = std::env::var_os("MINIT_STATIC_BIN") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Problem::Broken(format!(
                "MINIT_STATIC_BIN={} is not a file",
                path.display()
            )))
        };
    }
    // The cargo running the tests sets CARGO at run time; the one that compiled them, at
    // compile time.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let target_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("minit-musl");
    let out = Command::new(&cargo)
        .args(["build", "--release", "--bin", "minit", "--target", MUSL])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Problem::Broken(format!("cannot run {cargo:?}: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // rustc's hint when the standard library for the target is absent.
        if stderr.contains("may not be installed") {
            return Err(Problem::Missing(format!(
                "the {MUSL} target is not installed (rustup target add {MUSL})"
            )));
        }
        return Err(Problem::Broken(format!(
            "cargo build --release --target {MUSL} failed: {:?}\n{stderr}",
            out.status
        )));
    }
    Ok(target_dir.join(MUSL).join("release/minit"))
}

/// Runs `podman.sh ARGS…` to completion (util's deadline) and captures its output.
fn podman(args: &[&str]) -> Output {
    let mut cmd = Command::new(PODMAN_SH);
    cmd.args(args);
    util::run(cmd)
}

fn expect_code(out: &Output, code: i32, what: &str) {
    assert_eq!(out.code(), code, "{what}\n{}", out.context());
}

/// A container name no other test (or concurrent run) uses.
fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("minit-test-{what}-{}-{n}", std::process::id())
}

/// A detached container, removed (with force) when the test ends, pass or fail.
struct Container {
    name: String,
}

impl Container {
    /// `podman run -d --name <unique> RUN_ARGS…`.
    fn start(what: &str, run_args: &[&str]) -> Container {
        let name = unique_name(what);
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(run_args);
        let out = podman(&args);
        let container = Container { name };
        expect_code(&out, 0, "podman run -d");
        container
    }

    /// `podman SUBCOMMAND [FLAGS…] NAME [REST…]`.
    fn podman(&self, subcommand: &[&str], rest: &[&str]) -> Output {
        let mut all = vec!["podman"];
        all.extend_from_slice(subcommand);
        all.push(&self.name);
        all.extend_from_slice(rest);
        podman(&all)
    }

    fn logs(&self) -> String {
        self.podman(&["logs"], &[]).stdout
    }

    /// Polls `podman logs` until a line equals `line`.
    fn wait_for_line(&self, line: &str) {
        util::poll(|| self.logs().lines().any(|l| l == line).then_some(()))
            .unwrap_or_else(|| panic!("{}: no line {line:?} in\n{}", self.name, self.logs()));
    }

    /// `podman stop -t 10`; returns how long it took.
    fn stop(&self) -> Duration {
        let started = Instant::now();
        let out = self.podman(&["stop", "-t", "10"], &[]);
        let took = started.elapsed();
        expect_code(&out, 0, "podman stop");
        took
    }

    fn exit_code(&self) -> i32 {
        let out = self.podman(&["inspect", "--format", "{{.State.ExitCode}}"], &[]);
        expect_code(&out, 0, "podman inspect");
        out.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ExitCode is not a number\n{}", out.context()))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(PODMAN_SH)
            .args(["podman", "rm", "-f", "-t", "0", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `podman run --rm [FLAGS…] IMAGE COMMAND…` to completion.
fn run_rm(setup: &Setup, flags: &[&str], command: &[&str]) -> Output {
    let name = unique_name("rm");
    let mut all = vec!["run", "--rm", "--name", &name];
    all.extend_from_slice(flags);
    all.push(&setup.image);
    all.extend_from_slice(command);
    podman(&all)
}

/// `podman stop -t 10` must be well under 10 s: podman sends SIGTERM to PID 1 and SIGKILLs
/// after 10 s. Finishing sooner proves minit forwarded TERM to the app (or, for leftovers,
/// ended them itself after its grace). The one timing bound in this file.
const STOP_BOUND: Duration = Duration::from_secs(9);

/// The app for the stop tests: exits 7 on SIGTERM. `sleep 0.1` keeps the trap prompt (sh
/// runs a trap only after its foreground command ends).
const TRAP_APP: &str = r#"trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done"#;

#[test]
fn minit_is_pid_1_and_passes_exit_codes_through() {
    let Some(setup) = setup() else { return };
    let out = run_rm(
        setup,
        &[],
        &[
            "/minit",
            "--",
            "/bin/sh",
            "-c",
            r#"tr "\0" " " </proc/1/cmdline; echo; readlink /proc/1/exe; echo "app $$""#,
        ],
    );
    expect_code(&out, 0, "PID 1 check");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("/minit -- /bin/sh -c ")),
        "PID 1 is not minit\n{}",
        out.context()
    );
    assert_eq!(lines.get(1), Some(&"/minit"), "{}", out.context());
    assert!(
        lines.get(2).is_some_and(|l| l != &"app 1"),
        "the app must not be PID 1\n{}",
        out.context()
    );

    for (script, code) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -USR1 $$", 128 + libc::SIGUSR1),
        ("kill -TERM $$", 128 + libc::SIGTERM),
        ("kill -KILL $$", 128 + libc::SIGKILL),
    ] {
        let out = run_rm(setup, &[], &["/minit", "--", "/bin/sh", "-c", script]);
        expect_code(&out, code, script);
    }
}

#[test]
fn podman_stop_reaches_the_app_through_minit() {
    let Some(setup) = setup() else { return };
    let c = Container::start(
        "stop",
        &[&setup.image, "/minit", "--", "/bin/sh", "-c", TRAP_APP],
    );
    c.wait_for_line("ready");
    let took = c.stop();
    assert_eq!(c.exit_code(), 7, "the app's trap status\n{}", c.logs());
    eprintln!("podman stop took {took:?}");
    assert!(took < STOP_BOUND, "stop took {took:?}: TERM not forwarded");
}

#[test]
fn podman_stop_with_a_leftover_that_ignores_term_keeps_the_apps_status() {
    let Some(setup) = setup() else { return };
    // The background job ignores TERM (and `exec sleep` inherits that), so only minit's
    // SIGKILL after the 1 s grace ends it; the container must still report the app's 7.
    let app = r#"trap "exit 7" TERM; (trap "" TERM; exec sleep 100000) & echo ready; while :; do sleep 0.1; done"#;
    let c = Container::start(
        "leftover",
        &[
            &setup.image,
            "/minit",
            "--grace",
            "1s",
            "--",
            "/bin/sh",
            "-c",
            app,
        ],
    );
    c.wait_for_line("ready");
    let took = c.stop();
    assert_eq!(c.exit_code(), 7, "the app's status\n{}", c.logs());
    eprintln!("podman stop with a TERM-proof leftover took {took:?}");
    // Not podman's SIGKILL at 10 s (which would also report 137): minit's own grace.
    assert!(took < STOP_BOUND, "stop took {took:?}");
}

/// Makes 200 double-forked orphans and counts them from a `podman exec` shell until
/// `until` holds or 60 s pass; prints `orphans N zombies Z others O` (N: children of PID 1
/// before any may exit). The orphans first wait for /tmp/go, which the exec shell creates
/// only once the app has `exec`ed into `sleep`: with no init, the app is PID 1 and busybox
/// sh reaps any child whenever it waits (even in `read -t`), so it must be a `sleep` — which
/// never waits — when the orphans exit. The orphans wait with `read -t` on a fifo nobody
/// writes, so they fork nothing.
const ORPHAN_APP: &str = r#"
rm -f /tmp/go; mkfifo /tmp/tick; exec 3<>/tmp/tick
for i in $(seq 200); do (sh -c 'until [ -e /tmp/go ]; do read -t 0.05 -u 3 x; done' &); done
echo $$ >/tmp/app.pid
exec sleep 100000
"#;

/// `$1`: `reaped` (wait until no process but PID 1, the app and this shell is left) or
/// `zombies` (wait until 200 zombies).
const ORPHAN_COUNT: &str = r#"
until [ -s /tmp/app.pid ] && [ "$(cat /proc/$(cat /tmp/app.pid)/comm)" = sleep ]; do sleep 0.05; done
app=$(cat /tmp/app.pid)
# Before the go: every orphan is alive and a child of PID 1.
n=0
for f in /proc/[0-9]*/stat; do
  read -r pid comm state ppid rest 2>/dev/null <"$f" || continue
  [ "$ppid" = 1 ] && [ "$pid" != "$app" ] && n=$((n+1))
done
: >/tmp/go
tries=0
while :; do
  z=0; o=0
  for f in /proc/[0-9]*/stat; do
    case $f in /proc/1/stat|/proc/$$/stat|/proc/$app/stat) continue;; esac
    read -r s 2>/dev/null <"$f" || continue
    o=$((o+1))
    case $s in *") Z "*) z=$((z+1));; esac
  done
  [ "$1" = reaped ] && [ $o -eq 0 ] && break
  [ "$1" = zombies ] && [ $z -ge 200 ] && break
  tries=$((tries+1)); [ $tries -ge 600 ] && break
  sleep 0.1
done
echo "orphans $n zombies $z others $o"
"#;

fn count_orphans(setup: &Setup, with_minit: bool, until: &str) -> String {
    let mut run_args = vec![setup.image.as_str()];
    if with_minit {
        run_args.extend(["/minit", "--"]);
    }
    run_args.extend(["/bin/sh", "-c", ORPHAN_APP]);
    let c = Container::start("orphans", &run_args);
    let out = c.podman(&["exec"], &["/bin/sh", "-c", ORPHAN_COUNT, "sh", until]);
    expect_code(&out, 0, "podman exec (count)");
    out.stdout.trim().to_string()
}

#[test]
fn orphans_are_reaped_in_the_container() {
    let Some(setup) = setup() else { return };
    let got = count_orphans(setup, true, "reaped");
    assert_eq!(got, "orphans 200 zombies 0 others 0");
}

/// The negative: without minit the app is PID 1 and (once it is `sleep`) reaps nothing, so
/// the same count sees all 200 zombies. Proves the check above can fail.
#[test]
fn without_minit_orphans_stay_zombies() {
    let Some(setup) = setup() else { return };
    let got = count_orphans(setup, false, "zombies");
    assert_eq!(got, "orphans 200 zombies 200 others 200");
}

#[test]
fn podman_init_path_runs_minit_as_podman_init() {
    let Some(setup) = setup() else { return };
    let minit = setup.minit.to_str().expect("UTF-8 path");
    let out = run_rm(
        setup,
        &["--init", "--init-path", minit],
        &[
            "/bin/sh",
            "-c",
            r#"tr "\0" " " </proc/1/cmdline; echo; /run/podman-init --version; exit 5"#,
        ],
    );
    expect_code(&out, 5, "exit status through --init-path");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines
            .first()
            .is_some_and(|l| l.starts_with("/run/podman-init -- /bin/sh -c ")),
        "PID 1 is not podman-init\n{}",
        out.context()
    );
    assert!(
        lines.get(1).is_some_and(|l| l.starts_with("minit ")),
        "/run/podman-init is not minit\n{}",
        out.context()
    );

    let c = Container::start(
        "init-path-stop",
        &[
            "--init",
            "--init-path",
            minit,
            &setup.image,
            "/bin/sh",
            "-c",
            TRAP_APP,
        ],
    );
    c.wait_for_line("ready");
    let took = c.stop();
    assert_eq!(c.exit_code(), 7, "the app's trap status\n{}", c.logs());
    eprintln!("podman stop (--init-path) took {took:?}");
    assert!(took < STOP_BOUND, "stop took {took:?}: TERM not forwarded");
}

/// Ctrl-C in `podman run -it`: the byte `\x03` typed on the user's terminal reaches the
/// container's pty, whose foreground process group must be the app's (minit hands it over),
/// so the app itself gets SIGINT; its trap's status comes back through podman.
#[test]
fn ctrl_c_on_a_tty_reaches_the_app() {
    let Some(setup) = setup() else { return };
    let app = r#"trap "echo got INT; exit 9" INT
set -- $(cat /proc/self/stat)
# $(cat) runs in the app's group; fields 5 and 8: its pgrp and the tty's foreground pgrp.
[ "$5" != 1 ] && [ "$5" = "$8" ] && echo "app has its own group, the foreground one"
echo ready; while :; do sleep 0.1; done"#;
    let name = unique_name("tty");
    let mut cmd = Command::new(PODMAN_SH);
    cmd.args(["run", "--rm", "-it", "--name", &name, &setup.image])
        .args(["/minit", "--", "/bin/sh", "-c", app])
        .env("MINIT_PODMAN_STDIN", "1");
    let mut tty = Pty::spawn(cmd);
    let _remove = Container { name };
    tty.wait_for("ready");
    tty.write(b"\x03");
    let code = tty.wait();
    let text = tty.text();
    assert_eq!(code, Some(9), "podman run -it exit status\n{text}");
    assert!(
        text.contains("app has its own group, the foreground one"),
        "{text}"
    );
    assert!(text.contains("got INT"), "{text}");
}

/// A command whose stdin, stdout and stderr are the slave side of a new pty, which is also
/// its controlling terminal (as for a user at a terminal); the output is collected from the
/// master side by a thread.
struct Pty {
    child: std::process::Child,
    master: std::fs::File,
    output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(mut cmd: Command) -> Pty {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two fds into the given ints; name/termios/winsize may be null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened and are owned here alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(slave.try_clone().expect("dup pty"))
            .stdout(slave.try_clone().expect("dup pty"))
            .stderr(slave);
        // SAFETY: only setsid and ioctl (async-signal-safe) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start podman.sh on a pty");
        drop(cmd); // closes our copies of the slave, so reads end in EIO once it exits
        let master = std::fs::File::from(master);
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup pty master");
        let sink = output.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            child,
            master,
            output,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, what: &str) {
        util::poll(|| self.text().contains(what).then_some(()))
            .unwrap_or_else(|| panic!("no {what:?} on the terminal\n{}", self.text()));
    }

    fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).expect("write to the pty");
    }

    /// Waits (util's deadline) for the exit code.
    fn wait(&mut self) -> Option<i32> {
        let status = util::poll(|| self.child.try_wait().expect("wait"));
        match status {
            Some(status) => status.code(),
            None => {
                let _ = self.child.kill();
                panic!("podman run -it did not exit\n{}", self.text());
            }
        }
    }
}
