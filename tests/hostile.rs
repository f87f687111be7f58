//! Hostile input. Property-style tests with a seeded generator (no new dependency: a
//! xorshift PRNG; cargo-fuzz needs nightly) throw tens of thousands of random and mutated
//! inputs at every parser — init mode's command line, `minit run`'s, sizes, durations,
//! signals, capabilities — and check there is no panic and the results are sane. Then the
//! real binary: absurd values are refused with exit 2 and one line; invalid UTF-8 in
//! arguments and the environment reaches the app unchanged; a rootfs whose directories are
//! symlinks to host paths cannot make the launcher create anything on the host; no file
//! descriptor leaks into the sandbox.
//!
//! A failing case prints its seed; rerun one seed with MINIT_FUZZ_SEED=N, or more cases
//! with MINIT_FUZZ_CASES=N.

mod util;

use minit::cli::{self, Mode};
use minit::launch::{caps, options};
use minit::signals::{parse_signal, signal_name};
use minit::units::{MAX_DURATION, parse_duration, parse_size};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::process::Command;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Values that tend to break parsers.
const NASTY: &[&str] = &[
    "",
    " ",
    "-",
    "--",
    "=",
    ":",
    "::",
    "0",
    "-0",
    "-1",
    "1",
    "+1",
    "00",
    "0.0",
    ".",
    "..",
    "../x",
    "a/../b",
    "/",
    "//",
    "\n",
    "a\nb",
    "\t",
    "\0",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "1e-308",
    "1.5",
    "1..5",
    "1.5.5",
    "99999999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "4294967295",
    "4294967296",
    "2147483648",
    "-2147483649",
    "64",
    "65",
    "99",
    "99:1",
    "1:99",
    "TERM",
    "SIGTERM",
    "sigterm",
    "RTMIN",
    "RTMIN+30",
    "RTMIN+31",
    "RTMAX-30",
    "RTMAX-31",
    "RTMIN-1",
    "RTMAX+1",
    "RTMIN+",
    "RTMIN++1",
    "RTMIN+-1",
    "KILL",
    "STOP",
    "CHLD",
    "TERM:QUIT",
    "TERM:none",
    "10:0",
    "0:0",
    "none",
    "1s",
    "500ms",
    "1us",
    "1m",
    "1min",
    "1h",
    "24h",
    "25h",
    "99999999h",
    "1.5s",
    "s",
    "ms",
    "64M",
    "64MiB",
    "64mb",
    "1.5G",
    "1T",
    "9999T",
    "1K",
    "0.1",
    "0.01",
    "0.001",
    "1024",
    "1025",
    "4194304",
    "4194305",
    "ALL",
    "all",
    "NET_RAW",
    "cap_sys_admin",
    "NET_RAW,,",
    ",",
    "0:0",
    "65535:65535",
    "4294967295:0",
    "a:b",
    "/a:/b",
    "/a:b",
    "/a:/../b",
    "x=y",
    "=y",
    "K=",
    "term",
    "wait",
    "exit",
    "maybe",
    "é",
    "ß",
    "💥",
    "\u{feff}",
    "\u{202e}",
];

const INIT_FLAGS: &[&str] = &[
    "-g",
    "--group",
    "-r",
    "--rewrite",
    "-e",
    "--success",
    "-p",
    "--pdeath",
    "--grace",
    "--leftovers",
    "-w",
    "--warn-on-reap",
    "-s",
    "--subreaper",
    "-v",
    "-vv",
    "--verbose",
    "-l",
    "--license",
    "-h",
    "--help",
    "--version",
    "--reboot",
    "--",
    "-x",
    "--nope",
    "run",
    "pause",
    "-e3",
    "-pTERM",
    "--grace=1s",
    "--rewrite=TERM:QUIT",
];

const RUN_FLAGS: &[&str] = &[
    "-h",
    "--help",
    "-v",
    "-p",
    "--pid",
    "-m",
    "--mount",
    "-u",
    "--uts",
    "-i",
    "--ipc",
    "-n",
    "--net",
    "-U",
    "--user",
    "-C",
    "--cgroupns",
    "--all",
    "--pod",
    "--join",
    "--hostname",
    "--map-user",
    "--rootfs",
    "--bind",
    "--ro-bind",
    "--tmpfs",
    "--chdir",
    "--env",
    "--clearenv",
    "--cap-drop",
    "--allow-new-privs",
    "--memory",
    "--memory-swap",
    "--cpus",
    "--pids",
    "--cgroup-parent",
    "--report",
    "--grace",
    "--",
    "--memory=0",
    "--pids=-1",
];

/// One random argument: a flag, a nasty value, a mutation of either, or random bytes.
fn arg(rng: &mut Rng, flags: &[&str]) -> OsString {
    match rng.below(6) {
        0 | 1 => OsString::from(*rng.pick(flags)),
        2 => OsString::from(*rng.pick(NASTY)),
        3 => {
            let seed = rng_pick_bytes(rng);
            OsString::from_vec(mutate(rng, seed))
        }
        4 => {
            // A flag glued to a value.
            let mut s = OsString::from(*rng.pick(flags));
            s.push(if rng.chance(50) { "=" } else { "" });
            s.push(*rng.pick(NASTY));
            s
        }
        _ => OsString::from_vec(random_bytes(rng, 12)),
    }
}

fn rng_pick_bytes(rng: &mut Rng) -> Vec<u8> {
    rng.pick(NASTY).as_bytes().to_vec()
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max + 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Flips, inserts, deletes or duplicates bytes.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..=rng.below(3) {
        let pos = if bytes.is_empty() {
            0
        } else {
            rng.below(bytes.len())
        };
        match rng.below(5) {
            0 if !bytes.is_empty() => bytes[pos] ^= 1 << rng.below(8),
            1 => bytes.insert(pos, rng.next() as u8),
            2 if !bytes.is_empty() => {
                bytes.remove(pos);
            }
            3 => bytes.insert(pos, *rng.pick(b"0123456789.+-:=,/ KMGTsmhRTMINAXe\n")),
            _ => {
                let copy = bytes.clone();
                bytes.extend_from_slice(&copy);
            }
        }
    }
    bytes.truncate(256);
    bytes
}

fn text(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.pick(NASTY).to_string(),
        1 => {
            let seed = rng_pick_bytes(rng);
            String::from_utf8_lossy(&mutate(rng, seed)).into_owned()
        }
        _ => String::from_utf8_lossy(&random_bytes(rng, 10)).into_owned(),
    }
}

fn cases() -> u64 {
    std::env::var("MINIT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// Runs `check` for each seed; a panic (in the parser or in a property) names the seed.
fn for_each_seed(name: &str, check: impl Fn(&mut Rng)) {
    let seeds: Vec<u64> = match std::env::var("MINIT_FUZZ_SEED") {
        Ok(seed) => vec![seed.parse().expect("MINIT_FUZZ_SEED")],
        Err(_) => (1..=cases()).collect(),
    };
    for seed in seeds {
        let mut rng = Rng::new(seed);
        if catch_unwind(AssertUnwindSafe(|| check(&mut rng))).is_err() {
            panic!("{name}: failed at seed {seed} (rerun with MINIT_FUZZ_SEED={seed})");
        }
    }
}

/// An error message is printed as `minit: MESSAGE; usage...`: never empty, always one line.
fn one_line(err: &cli::UsageError) {
    assert!(!err.0.is_empty(), "empty error message");
    assert!(!err.line().contains(['\n', '\r']), "{err:?}");
}

#[test]
fn init_command_lines() {
    for_each_seed("cli::parse", |rng| {
        let args: Vec<OsString> = (0..rng.below(7)).map(|_| arg(rng, INIT_FLAGS)).collect();
        let seed = rng_pick_bytes(rng);
        let env_value = OsString::from_vec(mutate(rng, seed));
        let env_name = *rng.pick(&[
            "MINIT_GRACE",
            "MINIT_LEFTOVERS",
            "TINI_VERBOSITY",
            "MINIT_LOG",
            "MINIT_KILL_PROCESS_GROUP",
            "NONE",
        ]);
        let env = |name: &str| (name == env_name).then(|| env_value.clone());
        match cli::parse(args.clone(), &env) {
            Ok(Mode::Init(opts)) => {
                assert!(!opts.command.is_empty(), "{args:?}");
                assert!(opts.grace <= MAX_DURATION, "{args:?}");
                assert!(opts.verbosity.level() <= 5);
                if let Some(sig) = opts.parent_death_signal {
                    assert!((1..=64).contains(&sig), "{args:?}");
                }
                for sig in 1..=64 {
                    if let Some(to) = opts.rewrites.map(sig) {
                        assert!((1..=64).contains(&to), "{args:?}");
                    }
                }
            }
            Ok(Mode::Run(rest)) => assert_eq!(rest.len() + 1, args.len()),
            Ok(_) => {}
            Err(err) => one_line(&err),
        }
    });
}

#[test]
fn run_command_lines() {
    for_each_seed("options::parse", |rng| {
        let args: Vec<OsString> = (0..rng.below(8)).map(|_| arg(rng, RUN_FLAGS)).collect();
        match options::parse(args.clone(), &|_| None) {
            Ok(options::Request::Run(opts)) => {
                assert!(opts.pod || !opts.command.is_empty(), "{args:?}");
                if let Some(m) = opts.limits.memory {
                    assert!(m >= 1 << 20, "{args:?}");
                }
                if let Some(p) = opts.limits.pids {
                    assert!((1..=4_194_304).contains(&p), "{args:?}");
                }
                if let Some(q) = opts.limits.cpu_quota_us {
                    assert!(q > 0, "{args:?}");
                }
                if let Some(parent) = &opts.cgroup_parent {
                    assert!(
                        !parent.split('/').any(|c| c == "..") && !parent.contains('\n'),
                        "{args:?} -> {parent:?}"
                    );
                }
                assert!(opts.grace <= MAX_DURATION);
            }
            Ok(options::Request::Help) => {}
            Err(err) => one_line(&err),
        }
    });
}

#[test]
fn value_parsers() {
    for_each_seed("value parsers", |rng| {
        let t = text(rng);
        if let Ok(bytes) = parse_size(&t) {
            assert!(bytes < 9_200_000_000_000_000_000, "{t:?}");
        }
        if let Ok(d) = parse_duration(&t) {
            assert!(d <= MAX_DURATION, "{t:?} -> {d:?}");
        }
        if let Ok(sig) = parse_signal(&t) {
            assert!((1..=64).contains(&sig), "{t:?} -> {sig}");
        }
        if let Ok(q) = options::parse_cpus(&t) {
            assert!((1_000..=102_400_000).contains(&q), "{t:?} -> {q}");
        }
        if let Ok(m) = options::parse_memory(&t) {
            assert!(m >= 1 << 20, "{t:?}");
        }
        if let Ok(p) = options::parse_cgroup_path(&t) {
            assert!(!p.split('/').any(|c| c == ".."), "{t:?} -> {p:?}");
            assert!(!p.contains(['\n', '\0']), "{t:?} -> {p:?}");
        }
        if let Ok(caps) = caps::parse_list(&t) {
            assert!(caps.iter().all(|&c| c < 64), "{t:?}");
        }
        // Exact values round-trip.
        let n = rng.next() % 1_000_000;
        assert_eq!(parse_size(&format!("{n}K")), Ok(n * 1024));
        assert_eq!(
            parse_duration(&format!("{n}ms")).map(|d| d.as_millis()),
            Ok(u128::from(n))
        );
    });
    // Every signal's name parses back to it.
    for sig in 1..=64 {
        let name = signal_name(sig);
        if !name.starts_with("signal ") {
            assert_eq!(parse_signal(&name), Ok(sig), "{name}");
            assert_eq!(parse_signal(&sig.to_string()), Ok(sig));
        }
    }
}

// ---------------------------------------------------------------------------------------
// The real binary
// ---------------------------------------------------------------------------------------

fn minit_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(util::minit());
    c.args(args);
    c
}

#[test]
fn absurd_values_are_refused_with_one_line() {
    for (args, what) in [
        (&["--grace", "99999999h", "true"][..], "duration"),
        (&["--rewrite", "99:1", "true"], "signal"),
        (&["--rewrite", "KILL:TERM", "true"], "SIGKILL"),
        (&["-e", "256", "true"], "0-255"),
        (&["-p", "0", "true"], "signal"),
        (&["--leftovers", "maybe", "true"], "policy"),
        (&["run", "--memory", "0", "--", "true"], "too small"),
        (&["run", "--memory", "1e9", "--", "true"], "size"),
        (&["run", "--pids", "-1", "--", "true"], "process count"),
        (&["run", "--pids", "0", "--", "true"], "process count"),
        (&["run", "--cpus", "0", "--", "true"], "CPU"),
        (&["run", "--cpus", "nan", "--", "true"], "CPU"),
        (&["run", "--grace", "99999999h", "--", "true"], "duration"),
        (
            &["run", "--cgroup-parent", "../escape", "--", "true"],
            "cgroup",
        ),
        (
            &["run", "--cgroup-parent", "a/../../b", "--", "true"],
            "cgroup",
        ),
        (&["run", "--cgroup-parent", "a\nb", "--", "true"], "cgroup"),
        (
            &["run", "--map-user", "4294967295:0", "--", "true"],
            "UID:GID",
        ),
        (&["run", "--bind", "/etc:../x", "--", "true"], "absolute"),
        (&["run", "--join", "-1", "--", "true"], "process id"),
    ] {
        let out = util::run(minit_cmd(args));
        assert_eq!(out.code(), 2, "{args:?}\n{}", out.context());
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: not one line\n{}", out.context());
        assert!(lines[0].starts_with("minit: "), "{}", out.context());
        assert!(
            lines[0].to_lowercase().contains(&what.to_lowercase()),
            "{args:?}: {what:?} not in {:?}",
            lines[0]
        );
    }
}

/// Arguments and environment variables that are not UTF-8, and odd but legal ones.
fn odd_env() -> Vec<(OsString, OsString)> {
    let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
    vec![
        (os(b"MINIT_T_VALUE"), os(b"\xff\xfe caf\xe9 \x80")),
        (os(b"MINIT_T_\xffNAME"), os(b"v")),
        (os(b"MINIT_T_EMPTY"), os(b"")),
        (os(b"MINIT_T_NEWLINE"), os(b"a\nb")),
        (os(b"MINIT_T_EQUALS"), os(b"=a=b=")),
    ]
}

/// The app for arguments: prints its argv NUL-separated.
const DUMP_ARGS: &str = "for a in \"$@\"; do printf '%s\\0' \"$a\"; done";

/// The MINIT_T_ variables of `env -0` output, sorted; and what they should be.
fn test_vars(env0: &[u8]) -> Vec<Vec<u8>> {
    let mut vars: Vec<Vec<u8>> = env0
        .split(|&b| b == 0)
        .filter(|v| v.starts_with(b"MINIT_T_"))
        .map(<[u8]>::to_vec)
        .collect();
    vars.sort();
    vars
}

fn expected_vars(env: &[(OsString, OsString)]) -> Vec<Vec<u8>> {
    let mut vars: Vec<Vec<u8>> = env
        .iter()
        .map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat())
        .collect();
    vars.sort();
    vars
}

#[test]
fn invalid_utf8_passes_through_unchanged() {
    let args: Vec<OsString> = vec![
        OsStr::from_bytes(b"\xff\xfe").into(),
        OsStr::from_bytes(b"caf\xe9").into(),
        "".into(),
        "with space".into(),
        "-v".into(),
        "--".into(),
    ];
    let env = odd_env();
    let want_args: Vec<u8> = args
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let as_root = util::is_root();
    let prefixes: Vec<Vec<&str>> = if as_root {
        vec![vec![], vec!["run", "--"], vec!["run", "--pid", "--"]]
    } else {
        vec![vec![]]
    };
    for prefix in prefixes {
        let mut c = minit_cmd(&prefix);
        c.args(["sh", "-c", DUMP_ARGS, "sh"]).args(&args);
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{prefix:?} {out:?}");
        assert_eq!(out.stdout, want_args, "{prefix:?} {out:?}");
        // The environment straight to env(1): a shell would drop names that are not
        // identifiers.
        let mut c = minit_cmd(&prefix);
        c.args(["/usr/bin/env", "-0"]);
        for (k, v) in &env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{prefix:?} {out:?}");
        assert_eq!(
            test_vars(&out.stdout),
            expected_vars(&env),
            "{prefix:?}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    if as_root {
        // --env with bytes that are not UTF-8 reaches the sandboxed app as given.
        let out = minit_cmd(&["run", "--clearenv"])
            .arg(OsStr::from_bytes(b"--env=MINIT_T_RUN=\xff\x01\xc3"))
            .args(["--", "/usr/bin/env", "-0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(out.stdout, b"MINIT_T_RUN=\xff\x01\xc3\0", "{out:?}");
    }
}

#[test]
fn the_sandbox_gets_no_leaked_descriptor() {
    if !util::require_root() {
        return;
    }
    // Descriptors without CLOEXEC, low and high, as a careless caller might leave them.
    for ns in [&["--pid"][..], &[], &["--user", "--net"]] {
        let mut c = Command::new("bash");
        let script = format!(
            "exec 5</etc/hostname 8<>/dev/null 63</etc/passwd; exec {} run {} -- ls /proc/self/fd",
            util::minit(),
            ns.join(" ")
        );
        c.args(["-c", &script]);
        let out = util::run(c);
        assert_eq!(out.code(), 0, "{ns:?}\n{}", out.context());
        let fds: Vec<&str> = out.stdout.split_whitespace().collect();
        // 0, 1, 2 and the directory ls itself has open.
        assert_eq!(fds, ["0", "1", "2", "3"], "{ns:?}\n{}", out.context());
    }
}

/// A rootfs whose directories are symlinks to host paths: setting it up must not create,
/// mount or change anything on the host through them.
#[test]
fn a_rootfs_cannot_reach_the_host_through_symlinks() {
    if !util::require_root() || !util::require(Path::new("/bin/busybox").exists(), "/bin/busybox") {
        return;
    }
    let base =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    let host = base.join("host");
    let data = base.join("data");
    for dir in [root.join("bin"), host.clone(), data.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "true"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(data.join("file"), "data\n").unwrap();
    std::fs::write(host.join("keep"), "host\n").unwrap();
    let link = |name: &str, target: &Path| {
        let _ = std::fs::remove_file(root.join(name));
        let _ = std::fs::remove_dir(root.join(name));
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    let snapshot = || {
        let mut entries = Vec::new();
        let mut stack = vec![host.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                entries.push((p.clone(), meta.len(), meta.is_dir()));
                if meta.is_dir() {
                    stack.push(p);
                }
            }
        }
        entries.sort();
        entries
    };
    let before = snapshot();
    let data_dir = data.display().to_string();
    let data_file = data.join("file").display().to_string();
    // Each case: a rootfs directory made a symlink to the host directory, and the options
    // that make the launcher create or mount something there.
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "mnt",
            vec!["--bind".into(), format!("{data_dir}:/mnt/sub/dir")],
        ),
        (
            "mnt",
            vec!["--bind".into(), format!("{data_file}:/mnt/newfile")],
        ),
        ("mnt", vec!["--tmpfs".into(), "/mnt/scratch".into()]),
        ("tmp", vec![]),
        ("dev", vec![]),
        ("proc", vec![]),
    ];
    for (dir, extra) in &cases {
        // Absolute and relative symlinks out of the rootfs.
        for target in [host.clone(), Path::new("../../..").join(&host)] {
            std::fs::create_dir_all(root.join("proc")).ok();
            link(dir, &target);
            if *dir != "proc" {
                let _ = std::fs::remove_file(root.join("proc"));
                std::fs::create_dir_all(root.join("proc")).unwrap();
            }
            let mut c = minit_cmd(&["run", "--pid", "--rootfs", root.to_str().unwrap()]);
            c.args(extra).args(["--", "true"]);
            let out = util::run(c);
            // Either refused with a clear line (125) or run without touching the host.
            assert!(
                out.code() == 0 || out.code() == 125,
                "{dir} -> {}: {extra:?}\n{}",
                target.display(),
                out.context()
            );
            assert!(!out.stderr.contains("panicked"), "{}", out.context());
            assert_eq!(
                snapshot(),
                before,
                "{dir} -> {}: {extra:?} changed the host directory\n{}",
                target.display(),
                out.context()
            );
        }
        let _ = std::fs::remove_file(root.join(dir));
    }
    let _ = std::fs::remove_dir_all(&base);
}
