//! `minit run`, driven as a user would: the real binary, real namespaces, real cgroups.
//!
//! Most of these need root (or at least user namespaces). Without the capability a test says
//! why and passes as skipped — except under `CI=true`, where a missing capability fails, so
//! CI can never go green by skipping. Nothing waits a fixed time: output is awaited line by
//! line against generous deadlines.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MINIT: &str = env!("CARGO_BIN_EXE_minit");

/// Long enough for a loaded machine; a healthy run takes milliseconds.
const DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// Whether a capability is there; if not, skip (or fail under CI=true) with the reason.
fn have(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and the machine lacks: {what}");
    }
    eprintln!("skipped: the machine lacks {what}");
    false
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn need_root() -> bool {
    have(is_root(), "root (run the tests as root)")
}

/// A finished run, printed in full when an assertion about it fails.
struct Run {
    cmd: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    #[track_caller]
    fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), code, "wrong exit status\n{self}");
        self
    }

    #[track_caller]
    fn expect_stdout(&self, want: &str) -> &Run {
        assert_eq!(self.stdout.trim_end(), want, "wrong stdout\n{self}");
        self
    }

    #[track_caller]
    fn expect_stderr_line(&self, want: &str) -> &Run {
        assert!(
            self.stderr.lines().any(|l| l.contains(want)),
            "no stderr line with '{want}'\n{self}"
        );
        self
    }

    /// The single line a failed setup must print.
    #[track_caller]
    fn expect_one_error_line(&self, want: &str) -> &Run {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("minit: ") && lines[0].contains(want),
            "expected one 'minit: …{want}…' line\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nstatus: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.status, self.stdout, self.stderr
        )
    }
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Runs `cmd` to the end (killing it at the deadline) and collects its output.
fn run_cmd(mut cmd: Command) -> Run {
    let text = describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {text}: {e}"));
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_deadline(&mut child, &text);
    Run {
        cmd: text,
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    })
}

fn wait_deadline(child: &mut Child, text: &str) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{text} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn minit_run(args: &[&str]) -> Run {
    let mut cmd = Command::new(MINIT);
    cmd.arg("run").args(args);
    run_cmd(cmd)
}

/// A running `minit run` whose stdout is read line by line.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Live {
    fn start(args: &[&str]) -> Live {
        let mut child = Command::new(MINIT)
            .arg("run")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start minit run");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line equal to `want`.
    #[track_caller]
    fn expect_line(&mut self, want: &str) {
        let deadline = Instant::now() + DEADLINE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line == want;
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("no line '{want}'; got {:?}", self.seen);
    }

    fn signal(&self, sig: i32) {
        // SAFETY: plain syscall on our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    fn wait(mut self) -> ExitStatus {
        wait_deadline(&mut self.child, "minit run")
    }
}

/// A directory removed at the end of the test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "minit-launch-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads one number field from the report's JSON (values are numbers, booleans or null).
fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":");
    let start = json.find(&key)? + key.len();
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

fn json_number(json: &str, name: &str) -> Option<u64> {
    json_field(json, name)?.parse().ok()
}

fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    let name = format!("minit-{pid}");
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if entry.file_name().to_string_lossy() == name {
                    found.push(entry.path());
                }
                stack.push(entry.path());
            }
        }
    }
    found
}

fn process_exists(pid: i32) -> bool {
    // A zombie still has a /proc entry; it counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------
// Process model and namespaces
// ---------------------------------------------------------------------------------------

#[test]
fn ps_inside_sees_only_the_sandbox() {
    if !need_root() {
        return;
    }
    let run = minit_run(&["--pid", "--", "ps", "-e", "-o", "pid=,comm="]);
    run.expect_code(0);
    let procs: Vec<(String, String)> = run
        .stdout
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.to_string()))
        })
        .collect();
    assert_eq!(
        procs,
        [("1".into(), "minit".into()), ("2".into(), "ps".into())],
        "{run}"
    );
}

/// Proves the test above can fail: without --pid, ps sees the host.
#[test]
fn without_a_pid_namespace_ps_sees_the_host() {
    let run = minit_run(&["--", "ps", "-e", "-o", "pid="]);
    run.expect_code(0);
    assert!(run.stdout.lines().count() > 2, "{run}");
}

#[test]
fn hostname_is_set_in_its_own_uts_namespace() {
    if !need_root() {
        return;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    minit_run(&["--uts", "--hostname", "sandbox-test", "--", "hostname"])
        .expect_code(0)
        .expect_stdout("sandbox-test");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host
    );
}

#[test]
fn a_new_net_namespace_has_only_lo_and_it_is_up() {
    if !need_root() {
        return;
    }
    // /proc/net/dev follows the reader's network namespace.
    let run = minit_run(&["--net", "--", "cat", "/proc/net/dev"]);
    run.expect_code(0);
    let ifaces: Vec<&str> = run
        .stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{run}");
    // The flags through SIOCGIFFLAGS, as `ip` would show them, via python's ioctl-free view:
    // /sys is the host's, so ask the kernel by name with `ip` when it is there.
    if Path::new("/usr/sbin/ip").exists() || Path::new("/sbin/ip").exists() {
        let run = minit_run(&["--net", "--", "ip", "-o", "link", "show", "lo"]);
        run.expect_code(0);
        assert!(run.stdout.contains("<LOOPBACK,UP"), "{run}");
    }
    // And it works: a TCP connection over 127.0.0.1 inside.
    if Path::new("/usr/bin/python3").exists() {
        let script = "import socket;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();\
                      c=socket.create_connection(s.getsockname());print('connected')";
        minit_run(&["--net", "--", "/usr/bin/python3", "-c", script])
            .expect_code(0)
            .expect_stdout("connected");
    }
}

/// Runs `minit run` as the unprivileged user `nobody` (65534).
fn as_nobody(args: &[&str]) -> Option<Run> {
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        return None;
    }
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        MINIT,
        "run",
    ])
    .args(args);
    Some(run_cmd(cmd))
}

fn target_is_reachable_by_nobody() -> bool {
    // The test binary may sit under a directory nobody cannot enter (e.g. /root).
    let mut dir = Path::new(MINIT);
    while let Some(parent) = dir.parent() {
        if let Ok(meta) = std::fs::metadata(parent) {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o001 == 0 {
                return false;
            }
        }
        dir = parent;
    }
    true
}

#[test]
fn user_namespace_maps_the_caller_to_root() {
    if !need_root() {
        return;
    }
    minit_run(&[
        "--user",
        "--",
        "cat",
        "/proc/self/uid_map",
        "/proc/self/setgroups",
    ])
    .expect_code(0)
    .expect_stdout("         0          0          1\ndeny");
    if !have(
        target_is_reachable_by_nobody(),
        "a build directory the user nobody can reach",
    ) {
        return;
    }
    // Rootless: nobody becomes root inside, with a PID namespace of its own.
    let Some(run) = as_nobody(&[
        "--user",
        "--pid",
        "--",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]) else {
        return;
    };
    if run.stderr.contains("user namespaces are disabled") {
        have(false, "unprivileged user namespaces");
        return;
    }
    run.expect_code(0)
        .expect_stdout("0\n         0      65534          1");
    let run = as_nobody(&["--user", "--map-user", "1000:1000", "--", "id", "-u"]).unwrap();
    run.expect_code(0).expect_stdout("1000");
}

#[test]
fn not_root_without_user_is_a_clear_error() {
    if !need_root() || !target_is_reachable_by_nobody() {
        return;
    }
    let Some(run) = as_nobody(&["--pid", "--", "true"]) else {
        return;
    };
    run.expect_code(125).expect_one_error_line("add --user");
}

#[test]
fn disabled_user_namespaces_name_the_sysctl() {
    // Inside a user namespace of its own, the test may set that namespace's limit to 0
    // without touching the host's.
    if !have(Path::new("/usr/bin/unshare").exists(), "unshare(1)") {
        return;
    }
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.args([
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        "echo 0 >/proc/sys/user/max_user_namespaces && exec \"$0\" run --user -- true",
        MINIT,
    ]);
    let run = run_cmd(cmd);
    if run.stderr.contains("unshare:") {
        have(false, "user namespaces for the test itself");
        return;
    }
    run.expect_code(125)
        .expect_one_error_line("sysctl user.max_user_namespaces=0");
}

#[test]
fn mounts_in_the_sandbox_do_not_propagate_to_the_host() {
    if !need_root() || !have(Path::new("/usr/bin/unshare").exists(), "unshare(1)") {
        return;
    }
    // A shared mount, made in a throw-away mount namespace so the host is left alone; a
    // mount below it from a namespace that keeps propagation (unshare --propagation
    // unchanged) shows up outside — the control — and one from minit run must not.
    let tmp = TempDir::new("prop");
    let dir = tmp.path().display().to_string();
    let script = format!(
        "mount -t tmpfs none {dir} && mount --make-shared {dir} && mkdir {dir}/a {dir}/b && \
         \"$0\" run --mount -- mount -t tmpfs none {dir}/a && \
         unshare -m --propagation unchanged mount -t tmpfs none {dir}/b && \
         grep -c ' {dir}/a ' /proc/self/mountinfo; grep -c ' {dir}/b ' /proc/self/mountinfo"
    );
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.args([
        "-m",
        "--propagation",
        "unchanged",
        "sh",
        "-c",
        &script,
        MINIT,
    ]);
    run_cmd(cmd).expect_stdout("0\n1");
}

#[test]
fn rootfs_from_busybox_with_binds() {
    if !need_root() || !have(Path::new("/bin/busybox").exists(), "/bin/busybox") {
        return;
    }
    let tmp = TempDir::new("rootfs");
    let root = tmp.path().join("root");
    let data = tmp.path().join("data");
    for dir in [root.join("bin"), root.join("proc"), data.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "ps", "touch", "mount", "pwd"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(data.join("hello"), "from the host\n").unwrap();
    let bind = format!("{}:/data", data.display());
    let ro_bind = format!("{}:/ro", data.display());
    let script = "cat /data/hello; touch /data/new && echo rw-ok; \
                  touch /ro/x 2>/dev/null || echo ro-ok; \
                  ls /dev | tr '\\n' ' '; echo; \
                  ps -o pid,comm | tail -n +2 | wc -l; pwd; ls /scratch | wc -l; \
                  mount | grep -c ' /tmp type tmpfs'";
    let run = minit_run(&[
        "--pid",
        "--rootfs",
        root.to_str().unwrap(),
        "--bind",
        &bind,
        "--ro-bind",
        &ro_bind,
        "--tmpfs",
        "/scratch",
        "--",
        "sh",
        "-c",
        script,
    ]);
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "from the host", "{run}");
    assert_eq!(lines[1], "rw-ok", "{run}");
    assert_eq!(lines[2], "ro-ok", "{run}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
    ] {
        assert!(
            lines[3].split(' ').any(|d| d == dev),
            "no /dev/{dev}\n{run}"
        );
    }
    // minit, sh, ps (and tail/wc are piped so may appear): only the sandbox's few.
    let count: usize = lines[4].trim().parse().unwrap();
    assert!(count <= 5, "{run}");
    assert_eq!(lines[5], "/", "{run}");
    assert_eq!(lines[6].trim(), "0", "{run}");
    assert_eq!(lines[7].trim(), "1", "{run}");
    assert!(
        data.join("new").exists(),
        "the bind was not writable through"
    );
}

#[test]
fn rootfs_errors_are_clear() {
    minit_run(&["--rootfs", "/nonexistent-minit-root", "--", "true"])
        .expect_code(125)
        .expect_one_error_line("no such directory");
    let tmp = TempDir::new("noproc");
    minit_run(&["--rootfs", tmp.path().to_str().unwrap(), "--", "true"])
        .expect_code(125)
        .expect_one_error_line("no /proc directory");
}

#[test]
fn join_enters_a_running_process_s_namespaces() {
    if !need_root() {
        return;
    }
    let mut target = Live::start(&[
        "--pid",
        "--uts",
        "--hostname",
        "joined-box",
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 300",
    ]);
    target.expect_line("ready");
    // The sandbox's minit is the monitor's only child.
    let monitor = target.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children")).unwrap();
    let sandbox: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    let run = minit_run(&[
        "--join",
        &sandbox.to_string(),
        "--",
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/pid",
    ]);
    let their_pid_ns = std::fs::read_link(format!("/proc/{sandbox}/ns/pid")).unwrap();
    run.expect_code(0)
        .expect_stdout(&format!("joined-box\n{}", their_pid_ns.display()));
    target.signal(libc::SIGTERM);
    assert_eq!(target.wait().code(), Some(143));
}

#[test]
fn joining_a_missing_process_is_a_clear_error() {
    minit_run(&["--join", "2147483647", "--", "true"])
        .expect_code(125)
        .expect_one_error_line("cannot join process 2147483647");
}

// ---------------------------------------------------------------------------------------
// Exit status, signals, the app's world
// ---------------------------------------------------------------------------------------

#[test]
fn exit_codes_pass_through() {
    if !need_root() {
        return;
    }
    minit_run(&["--pid", "--", "sh", "-c", "exit 7"]).expect_code(7);
    minit_run(&["--pid", "--", "sh", "-c", "kill -TERM $$"]).expect_code(143);
    minit_run(&["--pid", "--", "/nonexistent-app"])
        .expect_code(127)
        .expect_stderr_line("cannot run '/nonexistent-app'");
    minit_run(&["--pid", "--", "/etc/hostname"]).expect_code(126);
}

#[test]
fn signals_sent_to_minit_run_reach_the_app() {
    if !need_root() {
        return;
    }
    let names = ["HUP", "INT", "QUIT", "USR1", "USR2", "WINCH", "CONT"];
    let mut script = String::new();
    for name in names {
        script.push_str(&format!("trap 'echo got {name}' {name}; "));
    }
    script.push_str("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done");
    let mut live = Live::start(&["--pid", "--", "sh", "-c", &script]);
    live.expect_line("ready");
    for (name, sig) in names.iter().zip([
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGCONT,
    ]) {
        live.signal(sig);
        live.expect_line(&format!("got {name}"));
    }
    live.signal(libc::SIGTERM);
    live.expect_line("got TERM");
    assert_eq!(live.wait().code(), Some(0));
}

#[test]
fn an_app_killed_by_a_forwarded_signal_exits_128_plus_n() {
    if !need_root() {
        return;
    }
    let mut live = Live::start(&["--pid", "--", "sh", "-c", "echo ready; exec sleep 300"]);
    live.expect_line("ready");
    live.signal(libc::SIGUSR1);
    let status = live.wait();
    assert_eq!(status.code(), Some(128 + libc::SIGUSR1), "{status:?}");
    assert_eq!(status.signal(), None);
}

#[test]
fn only_stdio_crosses_into_the_sandbox() {
    if !need_root() {
        return;
    }
    // Leak fds 7 and 9 into minit (no CLOEXEC) through a shell.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "exec 7</etc/hostname 9</etc/hostname; exec \"$0\" run --pid -- ls /proc/self/fd",
        MINIT,
    ]);
    let run = run_cmd(cmd);
    run.expect_code(0);
    // 0, 1, 2 and the directory ls itself has open.
    let fds: Vec<&str> = run.stdout.split_whitespace().collect();
    assert_eq!(fds, ["0", "1", "2", "3"], "{run}");
}

#[test]
fn the_app_starts_with_clean_signals_no_new_privs_and_dropped_caps() {
    if !need_root() {
        return;
    }
    // The app inherits the caller's ignored set (exec keeps SIG_IGN), nothing more.
    let mut direct = Command::new("grep");
    direct.args(["SigIgn", "/proc/self/status"]);
    let ignored = run_cmd(direct).stdout;
    let run = minit_run(&[
        "--pid",
        "--cap-drop",
        "ALL",
        "--",
        "grep",
        "-E",
        "^(SigBlk|SigIgn|NoNewPrivs|CapBnd|CapEff)",
        "/proc/self/status",
    ]);
    run.expect_code(0).expect_stdout(&format!(
        "SigBlk:\t0000000000000000\n{ignored}\
         CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1"
    ));
    let run = minit_run(&[
        "--allow-new-privs",
        "--",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    run.expect_code(0).expect_stdout("NoNewPrivs:\t0");
}

#[test]
fn environment_and_working_directory() {
    let run = minit_run(&[
        "--clearenv",
        "--env",
        "A=1",
        "--env",
        "B=two",
        "--",
        "/usr/bin/env",
    ]);
    run.expect_code(0).expect_stdout("A=1\nB=two");
    let run = minit_run(&[
        "--env",
        "MINIT_TEST_X=y",
        "--chdir",
        "/etc",
        "--",
        "sh",
        "-c",
        "echo $MINIT_TEST_X; pwd",
    ]);
    run.expect_code(0).expect_stdout("y\n/etc");
}

// ---------------------------------------------------------------------------------------
// Resource limits and the end of the run
// ---------------------------------------------------------------------------------------

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    if !need_root() {
        return;
    }
    let tmp = TempDir::new("oom");
    let report = tmp.path().join("report.json");
    // dd fills a 256 MiB buffer: far above the limit.
    let run = minit_run(&[
        "--pid",
        "--memory",
        "64M",
        "--report",
        report.to_str().unwrap(),
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=256M",
        "count=1",
    ]);
    run.expect_code(137)
        .expect_stderr_line("minit: app was killed by the OOM killer (memory limit 64 MiB)");
    let json = std::fs::read_to_string(&report).unwrap();
    assert_eq!(json.lines().count(), 1, "{json}");
    assert_eq!(
        json_field(&json, "exit_code").as_deref(),
        Some("137"),
        "{json}"
    );
    assert_eq!(json_field(&json, "signal").as_deref(), Some("9"), "{json}");
    assert_eq!(
        json_field(&json, "oom_killed").as_deref(),
        Some("true"),
        "{json}"
    );
    assert!(json_number(&json, "oom_kills").unwrap() >= 1, "{json}");
    assert_eq!(
        json_number(&json, "memory_limit_bytes"),
        Some(64 << 20),
        "{json}"
    );
    let peak = json_number(&json, "memory_peak_bytes").expect("peak exposed");
    assert!(peak <= 64 << 20 && peak > 32 << 20, "{json}");
}

#[test]
fn a_run_under_its_limit_is_not_reported_as_oom() {
    if !need_root() {
        return;
    }
    let run = minit_run(&["--memory", "64M", "--report", "-", "--", "true"]);
    run.expect_code(0);
    assert_eq!(
        json_field(&run.stdout, "oom_kills").as_deref(),
        Some("0"),
        "{run}"
    );
    assert!(!run.stderr.contains("OOM"), "{run}");
}

#[test]
fn a_fork_bomb_is_stopped_by_pids() {
    if !need_root() {
        return;
    }
    // Bounded, so a broken limit cannot take the machine down: 200 sleepers wanted, 16 allowed.
    let run = minit_run(&[
        "--pid",
        "--pids",
        "16",
        "--report",
        "-",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 200 ]; do sleep 300 & i=$((i+1)); done; wait",
    ]);
    assert_ne!(run.code(), 0, "{run}");
    let json = run.stdout.lines().last().unwrap_or_default();
    let peak = json_number(json, "pids_peak").expect("pids.peak exposed");
    assert!((2..=16).contains(&peak), "{run}");
    assert!(run.stderr.to_lowercase().contains("fork"), "{run}");
}

#[test]
fn a_cpu_burner_is_held_near_its_quota() {
    if !need_root() {
        return;
    }
    // Two burners for two seconds of wall time: unlimited they would use about 2 CPUs on this
    // 2-core machine; held to 0.5 CPU, about a second of CPU time. The bounds are wide so a
    // busy machine (less CPU for us) cannot fail the test, but no quota would.
    let run = minit_run(&[
        "--pid",
        "--cpus",
        "0.5",
        "--report",
        "-",
        "--",
        "timeout",
        "2",
        "sh",
        "-c",
        "while :; do :; done & while :; do :; done",
    ]);
    let json = run.stdout.lines().last().unwrap_or_default();
    let cpu = json_number(json, "cpu_time_usec").expect("cpu time") as f64;
    let wall = json_number(json, "wall_time_usec").expect("wall time") as f64;
    let ratio = cpu / wall;
    assert!(
        (0.15..=0.7).contains(&ratio),
        "CPU/wall = {ratio:.2}\n{run}"
    );
}

#[test]
fn cgroup_parent_places_the_run_and_limits_apply_on_this_host() {
    if !need_root() {
        return;
    }
    let parent = format!("minit-test-parent-{}", std::process::id());
    let run = minit_run(&[
        "--cgroup-parent",
        &parent,
        "--memory",
        "48M",
        "--",
        "sh",
        "-c",
        "cat /proc/self/cgroup",
    ]);
    run.expect_code(0);
    // Every hierarchy the run joined shows the parent: v1 memory (limits), and on a hybrid
    // or v2 host the v2 line.
    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("/{parent}/minit-")))
        .collect();
    assert!(!lines.is_empty(), "{run}");
    // The parent stays (as docker's does); remove it for the next run.
    for dir in ["memory", "unified", ""] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(dir).join(&parent));
    }
}

#[test]
fn leftovers_are_gone_and_the_cgroup_removed_after_the_run() {
    if !need_root() {
        return;
    }
    // No PID namespace, so the leftover's pid is the host's; it detaches with setsid.
    let mut cmd = Command::new(MINIT);
    cmd.args([
        "run",
        "--memory",
        "256M",
        "--",
        "sh",
        "-c",
        "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!",
    ]);
    let text = describe(&cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let monitor = child.id();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_deadline(&mut child, &text);
    let run = Run {
        cmd: text,
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    run.expect_code(0);
    let leftover: i32 = run.stdout.trim().parse().expect("leftover pid");
    assert!(
        !process_exists(leftover),
        "leftover {leftover} survived\n{run}"
    );
    assert_eq!(cgroup_dirs(monitor), Vec::<PathBuf>::new(), "{run}");
}

// ---------------------------------------------------------------------------------------
// Pure cgroup v2, for real: a VM (tests/vm/run-vm.sh) boots once and runs every check
// ---------------------------------------------------------------------------------------

/// Run as `/scenario.sh` under minit as PID 1 of a VM with every controller on cgroup v2.
/// Prints `CHECK <name> ok` or `CHECK <name> FAIL <why>` lines.
const VM_SCENARIO: &str = r#"#!/bin/sh
# minit run on pure cgroup v2: limits, OOM report, pids, cpu quota, cleanup, no-internal-process.
. /prelude.sh
CG=/sys/fs/cgroup
ok() { echo "CHECK $1 ok${2:+ ($2)}"; }
fail() { echo "CHECK $1 FAIL $2"; }
field() { sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" "$1"; }

# 1. limits are in place before the app runs (it reads its own cgroup's files)
out=$(/minit run --memory 32M --cpus 0.25 --pids 8 -- sh -c 'cg=$(sed -n "s/^0:://p" /proc/self/cgroup); cd /sys/fs/cgroup$cg && echo $(cat memory.max memory.swap.max cpu.max pids.max)' 2>&1)
[ "$out" = "33554432 0 25000 100000 8" ] && ok limits "$out" || fail limits "$out"

# 2. OOM kill: exit 137, the line, the report
/minit run --pid --memory 32M --report /tmp/oom.json -- dd if=/dev/zero of=/dev/null bs=64M count=1 2>/tmp/oom.err
rc=$?
[ $rc = 137 ] && ok oom-exit || fail oom-exit "rc=$rc $(cat /tmp/oom.err)"
grep -qx 'minit: app was killed by the OOM killer (memory limit 32 MiB)' /tmp/oom.err && ok oom-line || fail oom-line "$(cat /tmp/oom.err)"
k=$(field /tmp/oom.json oom_kills); p=$(field /tmp/oom.json memory_peak_bytes)
[ "${k:-0}" -ge 1 ] && [ "$(field /tmp/oom.json oom_killed)" = true ] && ok oom-report "$(cat /tmp/oom.json)" || fail oom-report "$(cat /tmp/oom.json)"
[ -n "$p" ] && [ "$p" != null ] && [ "$p" -le 33554432 ] && ok memory-peak "$p" || fail memory-peak "$p"

# 3. a fork bomb is held by pids.max
/minit run --pid --pids 8 --report /tmp/pids.json -- sh -c 'i=0; while [ $i -lt 100 ]; do sleep 300 & i=$((i+1)); done; wait' 2>/dev/null
rc=$?; pk=$(field /tmp/pids.json pids_peak)
[ $rc != 0 ] && [ "$pk" -le 8 ] && [ "$pk" -ge 2 ] && ok pids "rc=$rc peak=$pk" || fail pids "rc=$rc $(cat /tmp/pids.json)"

# 4. a CPU burner is held near its quota (1 vCPU: unlimited would be ~1.0)
/minit run --cpus 0.25 --report /tmp/cpu.json -- timeout 2 sh -c 'while :; do :; done' 2>/dev/null
c=$(field /tmp/cpu.json cpu_time_usec); w=$(field /tmp/cpu.json wall_time_usec)
pct=$((c * 100 / w))
[ $pct -ge 10 ] && [ $pct -le 40 ] && ok cpu "${pct}% of wall" || fail cpu "${pct}% $(cat /tmp/cpu.json)"

# 5. leftovers are killed (cgroup.kill) and every run's cgroup is gone
left=$(/minit run --memory 64M -- sh -c 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!')
if [ -n "$left" ] && ! grep -qs '^State:.*[RS]' /proc/$left/status; then ok leftover-gone "$left"; else fail leftover-gone "pid $left: $(grep State /proc/$left/status 2>&1)"; fi
n=$(ls -d $CG/minit-* 2>/dev/null | wc -l)
[ "$n" = 0 ] && ok cgroups-removed || fail cgroups-removed "$(ls -d $CG/minit-*)"

# 6. --cgroup-parent creates the path and enables controllers top-down
out=$(/minit run --cgroup-parent deep/er --memory 16M -- cat /proc/self/cgroup)
case $out in 0::/deep/er/minit-*) ok cgroup-parent "$out" ;; *) fail cgroup-parent "$out" ;; esac
grep -qw memory $CG/deep/cgroup.subtree_control && grep -qw memory $CG/deep/er/cgroup.subtree_control &&
	ok subtree-top-down "$(cat $CG/deep/er/cgroup.subtree_control)" || fail subtree-top-down "$(cat $CG/deep/cgroup.subtree_control)"

# 7. no-internal-process rule, with other processes in minit's cgroup: a clear error
mkdir -p $CG/busy && echo $$ >$CG/busy/cgroup.procs
/minit run --memory 16M -- true 2>/tmp/busy.err; rc=$?
echo $$ >$CG/cgroup.procs
[ $rc = 125 ] && [ "$(wc -l </tmp/busy.err)" = 1 ] && grep -q 'cgroup.subtree_control.*--cgroup-parent' /tmp/busy.err &&
	ok busy-parent "$(cat /tmp/busy.err)" || fail busy-parent "rc=$rc $(cat /tmp/busy.err)"

# 8. ... and with minit alone there, it moves itself into a leaf and goes on
mkdir -p $CG/solo
out=$(sh -c 'echo $$ >/sys/fs/cgroup/solo/cgroup.procs; exec /minit run --memory 16M -- cat /proc/self/cgroup' 2>&1); rc=$?
case "$rc $out" in "0 0::/solo/minit-"*) ok solo-leaf "$out" ;; *) fail solo-leaf "rc=$rc $out" ;; esac

# 9. namespaces work as PID 1's grandchild too
out=$(/minit run --pid --uts --hostname vm-box --net -- sh -c 'hostname; ps -o pid= | wc -l; cat /proc/net/dev | tail -n +3 | wc -l')
[ "$(echo $out)" = "vm-box 4 1" ] && ok namespaces "$(echo $out)" || fail namespaces "$(echo $out)"
# 10. a user namespace and a cgroup namespace, cloned straight into the run's cgroup
out=$(/minit run --user --pid --memory 16M -- sh -c 'id -u; sed -n "s/^0:://p" /proc/self/cgroup')
case "$(echo $out)" in "0 /minit-"*) ok userns-cgroup "$(echo $out)" ;; *) fail userns-cgroup "$(echo $out)" ;; esac
out=$(/minit run --cgroupns --memory 16M -- cat /proc/self/cgroup)
[ "$out" = "0::/" ] && ok cgroupns "$out" || fail cgroupns "$out"
echo "vm-launch: done"
"#;

const VM_CHECKS: [&str; 16] = [
    "limits",
    "oom-exit",
    "oom-line",
    "oom-report",
    "memory-peak",
    "pids",
    "cpu",
    "leftover-gone",
    "cgroups-removed",
    "cgroup-parent",
    "subtree-top-down",
    "busy-parent",
    "solo-leaf",
    "namespaces",
    "userns-cgroup",
    "cgroupns",
];

/// A static build of this tree (`cargo build --release --target x86_64-unknown-linux-musl`
/// into the same target directory) when it is newer than the test binary; else the test
/// binary itself, whose libraries the harness copies into the VM.
fn vm_init_binary() -> PathBuf {
    let minit = PathBuf::from(MINIT);
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let Ok(path) = std::env::var("MINIT_STATIC_BINARY") {
        return PathBuf::from(path);
    }
    let target = minit.parent().and_then(Path::parent);
    let candidate = target.map(|t| t.join("x86_64-unknown-linux-musl/release/minit"));
    match candidate {
        Some(c) if modified(&c).is_some() && modified(&c) >= modified(&minit) => c,
        _ => minit,
    }
}

#[test]
fn cgroup_v2_limits_in_a_vm() {
    let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vm/run-vm.sh");
    if !have(harness.exists(), "the VM harness tests/vm/run-vm.sh") {
        return;
    }
    let qemu = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").exists()))
        .unwrap_or(false);
    let kernel = std::fs::read_dir("/boot")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
        })
        .unwrap_or(false);
    if !have(
        qemu && kernel,
        "qemu-system-x86_64 and a kernel in /boot (tests/vm/install-deps.sh)",
    ) {
        return;
    }
    let tmp = TempDir::new("vm");
    let scenario = tmp.path().join("launch-v2.sh");
    std::fs::write(&scenario, VM_SCENARIO).unwrap();
    let mut cmd = Command::new(&harness);
    cmd.arg("--init")
        .arg(vm_init_binary())
        .arg("--scenario")
        .arg(&scenario)
        .args(["--timeout", "300", "--", "/bin/sh", "/scenario.sh"]);
    let run = run_cmd(cmd);
    let checks: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("CHECK "))
        .collect();
    let failed: Vec<&&str> = checks.iter().filter(|l| !l.contains(" ok")).collect();
    assert!(failed.is_empty(), "failed in the VM: {failed:#?}\n{run}");
    for name in VM_CHECKS {
        assert!(
            checks
                .iter()
                .any(|l| l.starts_with(&format!("CHECK {name} ok"))),
            "check {name} did not run\n{run}"
        );
    }
    assert!(run.stdout.contains("vm-launch: done"), "{run}");
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

#[test]
fn bad_values_are_usage_errors() {
    for args in [
        &["--memory", "0", "--", "true"][..],
        &["--memory", "lots", "--", "true"],
        &["--cpus", "0", "--", "true"],
        &["--cpus", "two", "--", "true"],
        &["--pids", "-1", "--", "true"],
        &["--cgroup-parent", "../escape", "--", "true"],
        &["--cgroup-parent", "a\nb", "--", "true"],
        &["--no-such-flag", "--", "true"],
        &["--pid"],
    ] {
        let run = minit_run(args);
        run.expect_code(2).expect_one_error_line("usage: minit run");
    }
}

#[test]
fn hostname_without_uts_is_a_setup_error() {
    minit_run(&["--hostname", "x", "--", "true"])
        .expect_code(125)
        .expect_one_error_line("add --uts");
}

#[test]
fn help_lists_the_options() {
    let run = minit_run(&["--help"]);
    run.expect_code(0);
    for flag in [
        "--pid", "--rootfs", "--memory", "--cpus", "--pids", "--report", "--join",
    ] {
        assert!(run.stdout.contains(flag), "{flag}\n{run}");
    }
}
