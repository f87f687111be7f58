//! Init mode, end to end: the real binary as PID 1 of a PID namespace and as a subreaper.
mod util;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use util::{MODES, Mode, Running, app, command, mode_available, run};

fn sh(mode: Mode, script: &str) -> util::Output {
    run(command(mode, &["sh", "-c", script]))
}

#[test]
fn every_exit_code_is_passed_through() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // One minit per code, 0..=255, in a single shell loop to keep the test quick.
        let script = format!(
            "for n in $(seq 0 255); do {minit} sh -c \"exit $n\"; echo \"$n $?\"; done",
            minit = util::minit()
        );
        let out = match mode {
            Mode::Subreaper => run(util::command(Mode::Subreaper, &["sh", "-c", &script])),
            Mode::Pid1 => run(util::command(Mode::Pid1, &["sh", "-c", &script])),
        };
        assert_eq!(out.code(), 0, "{}", out.context());
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 256, "{}", out.context());
        for line in lines {
            let (want, got) = line.split_once(' ').unwrap();
            assert_eq!(want, got, "{mode:?}: {line}");
        }
        // And the outer minit itself passes codes through (PID 1 in Pid1 mode).
        for code in [0, 1, 3, 126, 127, 128, 200, 255] {
            let out = sh(mode, &format!("exit {code}"));
            assert_eq!(out.code(), code, "{mode:?}\n{}", out.context());
        }
    }
}

#[test]
fn death_by_signal_is_128_plus_n() {
    // Signals whose default action terminates (or dumps core).
    let mut signals: Vec<i32> = vec![
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26, 27, 29, 30, 31,
    ];
    signals.extend(34..=64);
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let script = signals
            .iter()
            .map(|s| {
                format!(
                    "{m} python3 -c 'import os,signal,resource; resource.setrlimit(resource.RLIMIT_CORE,(0,0)); {s} != 9 and signal.signal({s}, signal.SIG_DFL); os.kill(os.getpid(), {s})'; echo \"{s} $?\"",
                    m = util::minit()
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let out = run(command(mode, &["sh", "-c", &script]));
        assert_eq!(out.code(), 0, "{}", out.context());
        for line in out.stdout.lines() {
            let (sig, code) = line.split_once(' ').unwrap();
            let sig: i32 = sig.parse().unwrap();
            assert_eq!(code.parse::<i32>().unwrap(), 128 + sig, "{mode:?} {line}");
        }
        assert_eq!(
            out.stdout.lines().count(),
            signals.len(),
            "{}",
            out.context()
        );
        // The outer minit too: the app killed by SIGKILL.
        let out = sh(mode, "kill -KILL $$");
        assert_eq!(out.code(), 137, "{}", out.context());
    }
}

/// Starts minit in `mode` in front of tests/apps/sigapp.py with `args`, waits until the app
/// is ready, and returns it with the pid to signal minit by.
fn start_sigapp(mode: Mode, args: &[&str]) -> (Running, i32) {
    let sigapp = app("sigapp.py");
    let mut argv = vec!["python3", sigapp.as_str()];
    argv.extend_from_slice(args);
    let r = Running::start(&mut command(mode, &argv));
    r.wait_stdout("ready", |l| l.starts_with("ready"));
    let init = r.init_pid(mode);
    (r, init)
}

/// Every catchable signal except SIGCHLD: standard ones, job control, the ones tini and
/// catatonit drop or die from (ABRT, SEGV, BUS, FPE, ILL, TRAP, SYS sent by a user), and the
/// real-time range.
fn forwardable() -> Vec<i32> {
    let mut sigs: Vec<i32> = (1..=31)
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP && s != libc::SIGCHLD)
        .collect();
    sigs.extend(34..=64);
    sigs
}

#[test]
fn every_catchable_signal_reaches_the_app() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let (r, init) = start_sigapp(mode, &["--exit-on", "64", "--code", "9"]);
        for sig in forwardable() {
            r.signal(init, sig);
            let want = format!("sig {sig} ");
            r.wait_stdout(&want, |l| l.starts_with(&want));
        }
        let out = r.finish();
        assert_eq!(out.code(), 9, "{mode:?}\n{}", out.context());
        assert!(
            out.stderr.is_empty(),
            "minit is quiet by default\n{}",
            out.context()
        );
    }
}

#[test]
fn sigqueue_values_and_realtime_order_are_kept() {
    // minit forwards SI_QUEUE signals with rt_sigqueueinfo, so the payload survives and a
    // burst of one real-time signal arrives complete and in order.
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let r = Running::start(&mut command(
            mode,
            &["python3", &app("sigapp.py"), "--exit-on", "15"],
        ));
        r.wait_stdout("ready", |l| l.starts_with("ready"));
        let init = r.init_pid(mode);
        for value in 1..=200 {
            // SAFETY: sigqueue to a process this test started.
            let rc = unsafe {
                libc::sigqueue(
                    init,
                    36,
                    libc::sigval {
                        sival_ptr: value as *mut libc::c_void,
                    },
                )
            };
            assert_eq!(rc, 0);
        }
        r.wait_stdout("all 200", |l| {
            l == "sig 36 code -1 value 200" || l.contains("value 200")
        });
        r.signal(init, libc::SIGTERM);
        let out = r.finish();
        assert_eq!(out.code(), 0, "{}", out.context());
        let values: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.starts_with("sig 36 "))
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        let want: Vec<String> = (1..=200).map(|v| v.to_string()).collect();
        assert_eq!(values, want, "{mode:?}\n{}", out.context());
    }
}

#[test]
fn group_flag_signals_the_whole_process_group() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let script = format!(
            "python3 {a} --tag child --exit-on 15 & exec python3 {a} --tag parent --exit-on 15",
            a = app("sigapp.py")
        );
        for (flag, child_gets_it) in [(Some("-g"), true), (None, false)] {
            let mut args: Vec<&str> = flag.into_iter().collect();
            args.extend(["sh", "-c", &script]);
            let r = Running::start(&mut command(mode, &args));
            r.wait_stdout("parent ready", |l| l.starts_with("parent ready"));
            r.wait_stdout("child ready", |l| l.starts_with("child ready"));
            let init = r.init_pid(mode);
            r.signal(init, libc::SIGUSR1);
            r.wait_stdout("parent USR1", |l| l.starts_with("parent sig 10 "));
            if child_gets_it {
                r.wait_stdout("child USR1", |l| l.starts_with("child sig 10 "));
            }
            r.signal(init, libc::SIGTERM);
            let out = r.finish();
            assert_eq!(out.code(), 0, "{}", out.context());
            let child_got = out.stdout.contains("child sig 10 ");
            assert_eq!(
                child_got,
                child_gets_it,
                "{mode:?} {flag:?}\n{}",
                out.context()
            );
        }
    }
}

#[test]
fn ten_thousand_orphans_leave_no_zombie() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let out = run(command(
            mode,
            &["python3", &app("orphans.py"), "10000", "0"],
        ));
        assert_eq!(out.code(), 0, "{}", out.context());
        assert_eq!(
            out.stdout.trim(),
            "zombies 0",
            "{mode:?}\n{}",
            out.context()
        );
    }
}

#[test]
fn without_an_init_zombies_remain() {
    // The negative test: proves the zombie check above can fail. The same app as PID 1 of a
    // namespace, with no init, leaves every orphan a zombie.
    if !util::require_root() {
        return;
    }
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-p",
        "-f",
        "--mount-proc",
        "python3",
        &app("orphans.py"),
        "100",
        "all",
    ]);
    let out = run(cmd);
    assert_eq!(out.stdout.trim(), "zombies 100", "{}", out.context());
}

fn sig_line(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in\n{status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn the_app_starts_with_the_callers_signal_state() {
    let bit = |s: i32| 1u64 << (s - 1);
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // The same launcher without minit gives the state minit itself starts with (unshare
        // may leave glibc's internal signals 32 and 33 blocked); the app must see exactly it.
        let baseline = |cmd: &mut Command| {
            if mode == Mode::Pid1 {
                let mut c = Command::new("unshare");
                c.args([
                    "-p",
                    "-f",
                    "--mount-proc",
                    "grep",
                    "^Sig",
                    "/proc/self/status",
                ]);
                *cmd = c;
            } else {
                let mut c = Command::new("grep");
                c.args(["^Sig", "/proc/self/status"]);
                *cmd = c;
            }
        };
        for (ignored, blocked) in [
            (&[][..], &[][..]),
            // A caller that ignored USR1 and CHLD and blocked USR2.
            (&[libc::SIGUSR1, libc::SIGCHLD][..], &[libc::SIGUSR2][..]),
        ] {
            let mut cmd = command(mode, &["grep", "^Sig", "/proc/self/status"]);
            util::with_signal_state(&mut cmd, ignored, blocked);
            let out = run(cmd);
            assert_eq!(out.code(), 0, "{}", out.context());
            let mut base_cmd = Command::new("true");
            baseline(&mut base_cmd);
            util::with_signal_state(&mut base_cmd, ignored, blocked);
            let base = run(base_cmd);
            for field in ["SigBlk", "SigIgn"] {
                assert_eq!(
                    sig_line(&out.stdout, field),
                    sig_line(&base.stdout, field),
                    "{mode:?} {field}: with minit\n{}\nwithout\n{}",
                    out.stdout,
                    base.stdout
                );
            }
            if mode == Mode::Pid1 {
                // unshare stands between the test and minit and changes SIGCHLD for itself;
                // the baseline comparison above is what counts there.
                continue;
            }
            // Signals 32 and 33 are glibc's own; whether a launcher leaves them blocked or
            // ignored is its business, and the baseline comparison above covers them.
            let glibc_internal = bit(32) | bit(33);
            let want_ign: u64 = ignored.iter().map(|&s| bit(s)).sum();
            assert_eq!(
                sig_line(&out.stdout, "SigIgn") & !glibc_internal,
                want_ign,
                "{}",
                out.context()
            );
            let want_blk: u64 = blocked.iter().map(|&s| bit(s)).sum();
            assert_eq!(
                sig_line(&out.stdout, "SigBlk") & !glibc_internal,
                want_blk,
                "{}",
                out.context()
            );
        }
    }
    // minit still reaps with SIGCHLD ignored by its caller.
    let mut cmd = command(Mode::Subreaper, &["python3", &app("orphans.py"), "50", "0"]);
    util::with_signal_state(&mut cmd, &[libc::SIGCHLD], &[]);
    let out = run(cmd);
    assert_eq!(out.stdout.trim(), "zombies 0", "{}", out.context());
}

#[test]
fn the_app_gets_its_own_process_group() {
    let out = run(command(
        Mode::Subreaper,
        &["sh", "-c", "ps -o pid=,pgid= -p $$"],
    ));
    let fields: Vec<&str> = out.stdout.split_whitespace().collect();
    assert_eq!(fields.len(), 2, "{}", out.context());
    assert_eq!(
        fields[0],
        fields[1],
        "app is its group's leader\n{}",
        out.context()
    );
}

#[test]
fn exec_failures_are_126_and_127_with_one_line() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let out = run(command(mode, &["no-such-program-xyz"]));
        assert_eq!(out.code(), 127, "{}", out.context());
        assert_eq!(
            out.stderr.trim(),
            "minit: cannot run 'no-such-program-xyz': No such file or directory"
        );
        let dir = tempdir("exec");
        let plain = dir.join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\necho no\n").unwrap();
        let garbage = dir.join("bad-format");
        std::fs::write(&garbage, [0u8, 1, 2, 3]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        for (path, reason) in [
            (&plain, "Permission denied"),
            (&garbage, "Exec format error"),
        ] {
            let path = path.to_str().unwrap();
            let out = run(command(mode, &[path]));
            assert_eq!(out.code(), 126, "{}", out.context());
            assert_eq!(
                out.stderr.trim(),
                format!("minit: cannot run '{path}': {reason}"),
                "{}",
                out.context()
            );
        }
        let out = run(command(mode, &["/"]));
        assert_eq!(out.code(), 126, "{}", out.context());
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.context());
    }
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        &[][..],
        &["-x", "true"],
        &["-e", "300", "true"],
        &["--rewrite", "TERM", "true"],
    ] {
        let out = run(command(Mode::Subreaper, args));
        assert_eq!(out.code(), 2, "{args:?}\n{}", out.context());
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.context());
        assert!(out.stderr.contains("usage: minit"), "{}", out.context());
    }
    let out = run(command(Mode::Subreaper, &["--help"]));
    assert_eq!(out.code(), 0);
    for flag in [
        "--group",
        "--rewrite",
        "--success",
        "--pdeath",
        "--grace",
        "--leftovers",
        "-w",
        "-s",
        "-v",
        "-l",
        "--version",
        "MINIT_LOG",
        "TINI_SUBREAPER",
        "TINI_KILL_PROCESS_GROUP",
        "TINI_VERBOSITY",
        "MINIT_GRACE",
    ] {
        assert!(out.stdout.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn version_is_parseable_by_docker_info() {
    let out = run(command(Mode::Subreaper, &["--version"]));
    assert_eq!(out.code(), 0);
    // moby's parseInitVersion: split on " - ", the second part must be "git.<commit>".
    let line = out.stdout.trim();
    let parts: Vec<&str> = line.split(" - ").collect();
    assert!(parts.len() >= 2, "{line}");
    let git: Vec<&str> = parts[1].trim().split('.').collect();
    assert_eq!(git.len(), 2, "{line}");
    assert_eq!(git[0], "git");
    assert!(!git[1].is_empty());
    assert!(parts[0].starts_with("minit version "), "{line}");
}

#[test]
fn arguments_environment_and_cwd_pass_unchanged() {
    use std::ffi::OsStr;
    let weird = OsStr::from_bytes(b"\xff\xfe-not-utf8");
    let dir = std::env::temp_dir();
    let mut cmd = Command::new(util::minit());
    cmd.args([OsStr::new("sh"), OsStr::new("-c")])
        .arg("for a in \"$@\"; do printf '[%s]' \"$a\"; done; printf '\\n%s\\n' \"$MINIT_TEST_VAR\"; pwd")
        .arg("sh")
        .arg("")
        .arg(weird)
        .arg("a b")
        .arg("--")
        .arg("-v")
        .env("MINIT_TEST_VAR", OsStr::from_bytes(b"v\xc3"))
        .current_dir(&dir);
    let child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut want = b"[][\xff\xfe-not-utf8][a b][--][-v]\nv\xc3\n".to_vec();
    want.extend_from_slice(dir.canonicalize().unwrap().as_os_str().as_bytes());
    want.push(b'\n');
    assert_eq!(out.stdout, want);
}

#[test]
fn minit_lets_go_of_cwd_and_inherited_fds() {
    let dir = tempdir("cwd");
    let mut cmd = command(Mode::Subreaper, &["python3", &app("sigapp.py")]);
    cmd.current_dir(&dir);
    // Hand minit an extra descriptor 7, as a caller leaking one would.
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::dup2(1, 7);
            Ok(())
        });
    }
    let r = Running::start(&mut cmd);
    let ready = r.wait_stdout("ready", |l| l.starts_with("ready"));
    let app_pid: i32 = ready.split_whitespace().nth(2).unwrap().parse().unwrap();
    let init = r.init_pid(Mode::Subreaper);
    let cwd = std::fs::read_link(format!("/proc/{init}/cwd")).unwrap();
    assert_eq!(cwd, std::path::Path::new("/"));
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!fds.contains(&"7".to_string()), "minit kept fd 7: {fds:?}");
    assert!(fds.len() <= 4, "stdio + signalfd only: {fds:?}");
    // The app keeps both its cwd and the descriptor.
    let app_cwd = std::fs::read_link(format!("/proc/{app_pid}/cwd")).unwrap();
    assert_eq!(app_cwd, dir.canonicalize().unwrap());
    assert!(std::path::Path::new(&format!("/proc/{app_pid}/fd/7")).exists());
    r.signal(init, libc::SIGTERM);
    assert_eq!(r.finish().code(), 0);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("minit-test-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn leftovers_are_terminated_and_the_apps_status_kept() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // A background job and a setsid'd daemon outlive the app; both get SIGTERM and die at
        // once, so minit exits long before the 30 s grace, with the app's code.
        let r = Running::start(&mut command(
            mode,
            &[
                "--grace",
                "30s",
                "sh",
                "-c",
                "sleep 1000 & echo bg $!; setsid sleep 1001 & echo daemon $!; exit 7",
            ],
        ));
        let bg = pid_after(&r.wait_stdout("bg", |l| l.starts_with("bg ")));
        let daemon = pid_after(&r.wait_stdout("daemon", |l| l.starts_with("daemon ")));
        let started = std::time::Instant::now();
        let out = r.finish();
        assert_eq!(out.code(), 7, "{mode:?}\n{}", out.context());
        if mode == Mode::Subreaper {
            assert!(!util::process_exists(bg), "leftover {bg} survived");
            assert!(
                !util::process_exists(daemon),
                "setsid'd leftover {daemon} survived"
            );
        }
        // Both die on SIGTERM at once; minit must not sit out the 30 s grace.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "minit waited out the grace period\n{}",
            out.context()
        );
    }
}

/// The pid in a line like "bg 1234".
fn pid_after(line: &str) -> i32 {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn leftovers_that_ignore_sigterm_are_killed_after_the_grace() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let r = Running::start(&mut command(
            mode,
            &[
                "-v",
                "--grace",
                "1s",
                "sh",
                "-c",
                // The sleep is forked with SIGTERM already ignored (an inherited SIG_IGN),
                // so the app cannot exit before the leftover ignores SIGTERM.
                "bg=$(sh -c 'trap \"\" TERM; sleep 1000 >/dev/null 2>&1 & echo $!'); echo bg $bg; exit 5",
            ],
        ));
        let bg = pid_after(&r.wait_stdout("bg", |l| l.starts_with("bg ")));
        let out = r.finish();
        assert_eq!(out.code(), 5, "{}", out.context());
        assert!(
            out.stderr.contains("still running after the grace period"),
            "{}",
            out.context()
        );
        if mode == Mode::Subreaper {
            assert!(!util::process_exists(bg), "leftover {bg} survived SIGKILL");
        }
    }
}

#[test]
fn leftover_policies_wait_and_exit() {
    // wait: minit waits for the background job to finish by itself, and keeps its status.
    let out = run(command(
        Mode::Subreaper,
        &[
            "--leftovers",
            "wait",
            "sh",
            "-c",
            "(sleep 0.5; echo done) & exit 4",
        ],
    ));
    assert_eq!(out.code(), 4);
    assert_eq!(out.stdout.trim(), "done", "{}", out.context());
    // exit: minit leaves at once; the leftover keeps running (and is cleaned up here).
    let out = run(command(
        Mode::Subreaper,
        &[
            "--leftovers",
            "exit",
            "sh",
            "-c",
            "sleep 1000 >/dev/null 2>&1 & echo $!; exit 4",
        ],
    ));
    assert_eq!(out.code(), 4);
    let pid: i32 = out.stdout.trim().parse().unwrap();
    assert!(
        util::process_exists(pid),
        "exit policy must leave the leftover"
    );
    // SAFETY: killing the sleep this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn rewrite_maps_and_drops_signals() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let r = Running::start(&mut command(
            mode,
            &[
                "-vv",
                "--rewrite",
                "TERM:QUIT",
                "-r",
                "USR2:0",
                "-r",
                "RTMIN+2:RTMAX",
                "python3",
                &app("sigapp.py"),
                "--exit-on",
                "3",
            ],
        ));
        r.wait_stdout("ready", |l| l.starts_with("ready"));
        let init = r.init_pid(mode);
        r.signal(init, libc::SIGUSR2);
        r.wait_stderr("drop", |l| l.contains("dropping SIGUSR2"));
        r.signal(init, 36);
        r.wait_stdout("RTMAX", |l| l.starts_with("sig 64 "));
        r.signal(init, libc::SIGTERM);
        let out = r.finish();
        assert_eq!(out.code(), 0, "{}", out.context());
        assert!(out.stdout.contains("sig 3 "), "{}", out.context());
        assert!(!out.stdout.contains("sig 15 "), "{}", out.context());
        assert!(!out.stdout.contains("sig 12 "), "{}", out.context());
    }
}

#[test]
fn success_codes_map_to_zero() {
    let out = run(command(Mode::Subreaper, &["-e", "3", "sh", "-c", "exit 3"]));
    assert_eq!(out.code(), 0);
    let out = run(command(Mode::Subreaper, &["-e", "3", "sh", "-c", "exit 4"]));
    assert_eq!(out.code(), 4);
    let out = run(command(
        Mode::Subreaper,
        &["-e", "TERM", "sh", "-c", "kill $$"],
    ));
    assert_eq!(out.code(), 0);
    let out = run(command(
        Mode::Subreaper,
        &["-e", "143", "-e", "2", "sh", "-c", "exit 2"],
    ));
    assert_eq!(out.code(), 0);
}

#[test]
fn job_control_signals_are_forwarded_not_swallowed() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let r = Running::start(&mut command(mode, &["python3", &app("sigapp.py")]));
        r.wait_stdout("ready", |l| l.starts_with("ready"));
        let init = r.init_pid(mode);
        for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
            r.signal(init, sig);
            let want = format!("sig {sig} ");
            r.wait_stdout(&want, |l| l.starts_with(&want));
        }
        // minit itself was not stopped: it still forwards.
        r.signal(init, libc::SIGTERM);
        assert_eq!(r.finish().code(), 0);
    }
}

#[test]
fn a_flood_of_signals_loses_nothing_important() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        let (r, init) = start_sigapp(mode, &["--exit-on", "15", "--code", "42"]);
        for i in 0..10_000 {
            let sig = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGHUP, libc::SIGWINCH][i % 4];
            r.signal(init, sig);
        }
        r.signal(init, libc::SIGTERM);
        let out = r.finish();
        assert_eq!(out.code(), 42, "{mode:?}\n{}", out.context());
        assert!(out.stdout.contains("sig 10 "), "{}", out.context());
    }
}

#[test]
fn a_broken_stderr_does_not_kill_minit() {
    for mode in MODES {
        if !mode_available(mode) {
            continue;
        }
        // stderr is a pipe whose reader is gone: every log line minit writes raises SIGPIPE
        // on minit itself. minit must survive and must not pass that SIGPIPE to the app.
        let mut cmd = command(
            mode,
            &["-vvvv", "python3", &app("sigapp.py"), "--code", "6"],
        );
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        cmd.stderr(writer);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                sink.lock().unwrap().push(line.unwrap());
            }
        });
        let has = |prefix: &str| lines.lock().unwrap().iter().any(|l| l.starts_with(prefix));
        assert!(util::poll(|| has("ready").then_some(())).is_some());
        let init = if mode == Mode::Subreaper {
            child.id() as i32
        } else {
            let p = child.id();
            util::poll(|| {
                std::fs::read_to_string(format!("/proc/{p}/task/{p}/children"))
                    .ok()?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap()
        };
        for _ in 0..3 {
            // SAFETY: signalling the minit this test started.
            unsafe { libc::kill(init, libc::SIGUSR1) };
            assert!(util::poll(|| has("sig 10 ").then_some(())).is_some());
        }
        // SAFETY: as above.
        unsafe { libc::kill(init, libc::SIGTERM) };
        let status = child.wait().unwrap();
        reader.join().unwrap();
        assert_eq!(
            status.code(),
            Some(6),
            "{mode:?} {:?}",
            lines.lock().unwrap()
        );
        assert!(!has("sig 13 "), "minit forwarded its own SIGPIPE");
    }
}

#[test]
fn warn_on_reap_logs_each_orphan() {
    let out = run(command(
        Mode::Subreaper,
        &["-w", "sh", "-c", "sh -c 'sleep 0.1 &' ; sleep 0.5"],
    ));
    assert_eq!(out.code(), 0);
    assert!(
        out.stderr.contains("reaped orphan pid"),
        "{}",
        out.context()
    );
}

#[test]
fn parent_death_signal_is_forwarded_to_the_app() {
    // minit's parent (a shell) exits while minit runs; -p USR1 makes the kernel send USR1,
    // which minit forwards like any other signal.
    let script = format!(
        "{m} -p USR1 python3 {a} --exit-on 10 --code 3 & echo minit $!; read _ < /proc/self/fd/0; exit 0",
        m = util::minit(),
        a = app("sigapp.py")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).stdin(Stdio::piped());
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            sink.lock().unwrap().push(line.unwrap());
        }
    });
    let has = |prefix: &str| lines.lock().unwrap().iter().any(|l| l.starts_with(prefix));
    assert!(
        util::poll(|| has("ready").then_some(())).is_some(),
        "{:?}",
        lines.lock().unwrap()
    );
    let minit_pid: i32 = lines
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("minit "))
        .unwrap()[6..]
        .parse()
        .unwrap();
    // End the shell: closing its stdin makes `read` return and the shell exit.
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(
        util::poll(|| has("sig 10 ").then_some(())).is_some(),
        "{:?}",
        lines.lock().unwrap()
    );
    assert!(util::poll(|| (!util::process_exists(minit_pid)).then_some(())).is_some());
    reader.join().unwrap();
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_app() {
    // A pty: minit is a session leader with the terminal as its controlling tty, as in
    // `docker run -it`. The app's group becomes the foreground group, so ^C from the
    // terminal is SIGINT to the app.
    let app = "import signal,sys\nsignal.signal(signal.SIGINT, lambda *a: (print('got SIGINT', flush=True), sys.exit(3)))\nprint('ready', flush=True)\nsignal.pause()";
    let (mut child, mut term, output) = start_on_pty(util::minit(), &["python3", "-c", app]);
    assert!(util::poll(|| output.lock().unwrap().contains("ready").then_some(())).is_some());
    use std::io::Write;
    term.write_all(b"\x03").unwrap();
    assert!(
        util::poll(|| output.lock().unwrap().contains("got SIGINT").then_some(())).is_some(),
        "{}",
        output.lock().unwrap()
    );
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
}

#[test]
fn orphans_are_reaped_promptly_by_the_subreaper() {
    // A daemonising helper (double fork) ends while the app still runs: minit, as subreaper,
    // adopts and reaps it. The app waits until no zombie is left, against a deadline.
    let out = run(command(
        Mode::Subreaper,
        &["python3", &app("orphans.py"), "20", "0"],
    ));
    assert_eq!(out.stdout.trim(), "zombies 0", "{}", out.context());
}

/// Opens a pty and starts `program args` as a session leader on it; returns the child, the
/// master and a buffer collecting everything written to the terminal.
fn start_on_pty(
    program: &str,
    args: &[&str],
) -> (
    std::process::Child,
    std::fs::File,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    // SAFETY: openpty writes two fds; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0);
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: setsid, ioctl and dup2 are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(slave, libc::TIOCSCTTY, 0);
            libc::dup2(slave, 0);
            libc::dup2(slave, 1);
            libc::dup2(slave, 2);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    // SAFETY: closing our copy of the slave.
    unsafe { libc::close(slave) };
    // SAFETY: the master fd is ours from here on.
    let term = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(master) };
    let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = output.clone();
    let mut reader = term.try_clone().unwrap();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (child, term, output)
}

#[test]
fn ctrl_z_and_fg_under_an_interactive_shell() {
    // bash with job control on a pty runs minit as a foreground job. Ctrl-Z stops the app;
    // minit must stop too, or bash would wait forever for a job that never stops. `fg`
    // continues minit, which continues the app's group and hands it the terminal back.
    if !util::require(util::have("bash"), "needs bash for an interactive shell") {
        return;
    }
    let (mut shell, mut term, output) = start_on_pty("bash", &["--norc", "--noprofile", "-i"]);
    let wait_for = |needle: &str| {
        util::poll(|| output.lock().unwrap().contains(needle).then_some(())).unwrap_or_else(|| {
            panic!("no {needle:?} on the terminal:\n{}", output.lock().unwrap())
        });
    };
    use std::io::Write;
    let app = "import signal,sys\nsignal.signal(signal.SIGINT, lambda *a: (print('got ' + 'SIGINT', flush=True), sys.exit(3)))\nprint('app ' + 'ready', flush=True)\nwhile True: signal.pause()";
    let line = format!("MINIT_LOG=debug {} python3 -c \"{app}\"\n", util::minit());
    term.write_all(line.as_bytes()).unwrap();
    wait_for("app ready");
    term.write_all(b"\x1a").unwrap();
    wait_for("Stopped");
    let seen = output.lock().unwrap().matches("python3").count();
    term.write_all(b"fg\n").unwrap();
    // bash echoes the job's command line when it resumes it.
    util::poll(|| (output.lock().unwrap().matches("python3").count() > seen).then_some(()))
        .expect("fg resumed the job");
    term.write_all(b"\x03").unwrap();
    wait_for("got SIGINT");
    term.write_all(b"echo \"status=$?\"\n").unwrap();
    wait_for("status=3");
    term.write_all(b"exit\n").unwrap();
    let _ = shell.wait();
}
