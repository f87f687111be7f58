//! The command line: argv and the environment → the mode to run and its options.
//!
//! Option parsing stops at the first non-option, so `minit sh -c 'exit 3'` needs no `--`.
//! tini's flags and environment variables are accepted with tini's meaning, so an image or an
//! `--init-path` set-up written for tini works unchanged.

use crate::signals::{NSIG_MAX, parse_signal};
use crate::units::parse_duration;
use lexopt::prelude::*;
use std::ffi::OsString;
use std::time::Duration;

/// What the user asked for.
#[derive(Debug)]
pub enum Mode {
    /// `minit [OPTIONS] [--] APP [ARGS…]`: the entrypoint / subreaper init.
    Init(Box<InitOptions>),
    /// `minit run …`: the launcher; its arguments are parsed by the launcher.
    Run(Vec<OsString>),
    /// `minit pause`: hold namespaces and reap, with no app.
    Pause(Verbosity),
    Help,
    Version,
    License,
}

/// What minit does with processes still running when the app has exited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeftoverPolicy {
    /// SIGTERM, wait up to the grace period, SIGKILL the rest (default).
    Terminate,
    /// Wait for them all to exit by themselves.
    Wait,
    /// Exit at once and leave them (as PID 1 of a namespace the kernel then kills them).
    Exit,
}

/// How chatty minit is: a level for `log`, or a filter string from `MINIT_LOG`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verbosity {
    /// 0 off, 1 error, 2 warn (default), 3 info, 4 debug, 5 trace: from `MINIT_LOG` when it
    /// names a level, else `TINI_VERBOSITY`, else 2.
    pub base: u8,
    /// How many `-v` were given.
    pub raise: u8,
    /// `MINIT_LOG` when it is a filter in env_logger's syntax rather than a level name; used
    /// as it is.
    pub filter: Option<String>,
}

impl Verbosity {
    /// The level after `-v`, 0 to 5.
    pub fn level(&self) -> u8 {
        (self.base + self.raise).min(5)
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Default grace period for leftovers. `docker stop` and `podman stop` send SIGTERM and
/// SIGKILL 10 s later; the app gets the first part of that to exit, and 3 s for its
/// leftovers still leaves it 7 s, so minit normally exits with the app's status rather than
/// being killed with it.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct InitOptions {
    pub command: Vec<OsString>,
    /// Signals go to the app's process group instead of the app (`-g`).
    pub kill_group: bool,
    /// Exit codes mapped to 0 (`-e`).
    pub success_codes: Vec<u8>,
    /// minit's parent-death signal (`-p`).
    pub parent_death_signal: Option<i32>,
    /// Log every orphan reaped (`-w`).
    pub warn_on_reap: bool,
    /// `--rewrite FROM:TO`: index FROM holds TO, 0 to drop the signal.
    pub rewrites: SignalMap,
    pub grace: Duration,
    pub leftovers: LeftoverPolicy,
    pub verbosity: Verbosity,
    /// As the machine's init (PID 1 of the initial PID namespace), reboot rather than power
    /// off when the app has ended (`--reboot`).
    pub reboot: bool,
}

/// A mapping of signal numbers (identity unless rewritten). `None` drops the signal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMap([Option<i32>; NSIG_MAX as usize + 1]);

impl Default for SignalMap {
    fn default() -> SignalMap {
        let mut map = [None; NSIG_MAX as usize + 1];
        for (sig, slot) in map.iter_mut().enumerate() {
            *slot = Some(sig as i32);
        }
        SignalMap(map)
    }
}

impl SignalMap {
    /// The signal to send for `sig`, or `None` to drop it.
    pub fn map(&self, sig: i32) -> Option<i32> {
        self.0.get(sig as usize).copied().flatten()
    }

    /// Parses `FROM:TO` (names or numbers; TO of `0` or `none` drops) and records it.
    pub fn add_rule(&mut self, rule: &str) -> Result<(), String> {
        let (from, to) = rule
            .split_once(':')
            .ok_or_else(|| format!("--rewrite wants FROM:TO, not '{rule}'"))?;
        let from = parse_signal(from)?;
        let to = match to {
            "0" | "none" | "NONE" => None,
            other => Some(parse_signal(other)?),
        };
        if from == libc::SIGKILL || from == libc::SIGSTOP || from == libc::SIGCHLD {
            return Err(format!(
                "--rewrite: {} never reaches minit as a forwardable signal",
                crate::signals::signal_name(from)
            ));
        }
        self.0[from as usize] = to;
        Ok(())
    }
}

pub const USAGE: &str = "usage: minit [OPTIONS] [--] APP [ARGS...] | minit run [OPTIONS] -- APP [ARGS...] | minit pause (see minit --help)";

pub const HELP: &str = "\
minit - a tiny init for containers: runs APP, forwards signals to it, reaps orphans,
ends leftover processes, and exits with APP's status.

usage:
  minit [OPTIONS] [--] APP [ARGS...]     run APP under minit (entrypoint, --init, subreaper)
  minit run [OPTIONS] -- APP [ARGS...]   run APP in new namespaces and a cgroup (minit run --help)
  minit pause                            hold namespaces and reap orphans, with no app
  minit pod [RUN OPTIONS]                new pid/net/ipc/uts namespaces with minit pause as
                                         PID 1; prints its pid for minit run --join PID

options (init mode; option parsing stops at APP):
  -g, --group              send signals to APP's process group, not only APP
  -r, --rewrite FROM:TO    forward signal FROM as TO (names or numbers; TO=0 or none drops it);
                           repeatable
  -e, --success CODE       treat exit code CODE (0-255, or a signal name: TERM = 143) as 0;
                           repeatable
  -p, --pdeath SIGNAL      ask the kernel for SIGNAL when minit's parent dies; it is forwarded
                           to APP like any signal
      --grace DURATION     how long leftovers get between SIGTERM and SIGKILL after APP exits
                           (default 3s; e.g. 500ms, 10s, 1m)
      --leftovers POLICY   what to do with processes left when APP exits:
                           term (SIGTERM, grace, SIGKILL; default), wait (until they exit),
                           exit (at once)
  -w, --warn-on-reap       log every orphan reaped
      --reboot             as PID 1 of a whole machine (VM), reboot instead of powering off
                           when APP has ended (minit always syncs and powers off there, as
                           exiting would make the kernel panic)
  -s, --subreaper          accepted for tini compatibility (minit becomes a subreaper by itself
                           when it is not PID 1)
  -v, --verbose            more log output (repeatable)
  -l, --license            print the license
  -h, --help               print this help
      --version            print the version

environment:
  MINIT_LOG                log filter (error, warn, info, debug, trace, off); default warn
  MINIT_GRACE              default for --grace
  MINIT_LEFTOVERS          default for --leftovers
  MINIT_KILL_PROCESS_GROUP, TINI_KILL_PROCESS_GROUP   set: as -g
  MINIT_SUBREAPER, TINI_SUBREAPER                    set: accepted, as -s
  TINI_VERBOSITY           0-5 as tini (1 errors only, 2 warnings, 3 info ...)

exit status: APP's exit code; 128+N if APP died from signal N; 126 APP not runnable;
127 APP not found; 125 minit failed before APP ran; 2 bad usage.
";

/// A bad command line: the one-line message to print before exiting 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl UsageError {
    /// The message as one printable line: control characters the user typed (a newline in
    /// `--cgroup-parent 'a\nb'`) are shown escaped, never written raw.
    pub fn line(&self) -> String {
        self.0
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> UsageError {
        UsageError(e.to_string())
    }
}

impl From<String> for UsageError {
    fn from(e: String) -> UsageError {
        UsageError(e)
    }
}

/// Parses `minit`'s arguments (without argv[0]). `env` looks up environment variables.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Mode, UsageError> {
    match args.first().and_then(|a| a.to_str()) {
        Some("run") => return Ok(Mode::Run(args[1..].to_vec())),
        // `minit pod [OPTIONS]` is `minit run --pod [OPTIONS]`.
        Some("pod") => {
            let mut run = vec![OsString::from("--pod")];
            run.extend_from_slice(&args[1..]);
            return Ok(Mode::Run(run));
        }
        Some("pause") => return parse_pause(args[1..].to_vec(), env),
        _ => {}
    }
    let mut opts = InitOptions {
        command: Vec::new(),
        kill_group: env("MINIT_KILL_PROCESS_GROUP").is_some()
            || env("TINI_KILL_PROCESS_GROUP").is_some(),
        success_codes: Vec::new(),
        parent_death_signal: None,
        warn_on_reap: false,
        rewrites: SignalMap::default(),
        grace: match env_str(env, "MINIT_GRACE")? {
            Some(text) => parse_duration(&text).map_err(|e| format!("MINIT_GRACE: {e}"))?,
            None => DEFAULT_GRACE,
        },
        leftovers: match env_str(env, "MINIT_LEFTOVERS")? {
            Some(text) => parse_policy(&text).map_err(|e| format!("MINIT_LEFTOVERS: {e}"))?,
            None => LeftoverPolicy::Terminate,
        },
        verbosity: base_verbosity(env)?,
        reboot: false,
    };
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Mode::Help),
            Long("version") => return Ok(Mode::Version),
            Short('l') | Long("license") => return Ok(Mode::License),
            Short('s') | Long("subreaper") => {}
            Short('g') | Long("group") => opts.kill_group = true,
            Short('w') | Long("warn-on-reap") => opts.warn_on_reap = true,
            Long("reboot") => opts.reboot = true,
            Short('v') | Long("verbose") => opts.verbosity.raise += 1,
            Short('e') | Long("success") => {
                let text = string_value(&mut parser)?;
                opts.success_codes.push(parse_exit_code(&text)?);
            }
            Short('p') | Long("pdeath") => {
                let text = string_value(&mut parser)?;
                opts.parent_death_signal = Some(parse_signal(&text)?);
            }
            Short('r') | Long("rewrite") => {
                let text = string_value(&mut parser)?;
                opts.rewrites.add_rule(&text)?;
            }
            Long("grace") => opts.grace = parse_duration(&string_value(&mut parser)?)?,
            Long("leftovers") => opts.leftovers = parse_policy(&string_value(&mut parser)?)?,
            Value(app) => {
                opts.command.push(app);
                opts.command.extend(parser.raw_args()?);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if opts.command.is_empty() {
        return Err(UsageError("no command given".into()));
    }
    Ok(Mode::Init(Box::new(opts)))
}

fn parse_pause(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<Mode, UsageError> {
    let mut verbosity = base_verbosity(env)?;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Mode::Help),
            Short('v') | Long("verbose") => verbosity.raise += 1,
            Value(stray) => {
                return Err(UsageError(format!(
                    "pause takes no arguments, got '{}'",
                    stray.to_string_lossy()
                )));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(Mode::Pause(verbosity))
}

/// The log level before `-v`: `TINI_VERBOSITY` with tini's meaning, `MINIT_LOG` as a filter.
pub fn base_verbosity(env: &dyn Fn(&str) -> Option<OsString>) -> Result<Verbosity, UsageError> {
    let mut verbosity = Verbosity {
        base: 2,
        raise: 0,
        filter: None,
    };
    if let Some(text) = env_str(env, "TINI_VERBOSITY")? {
        verbosity.base = text
            .trim()
            .parse::<u8>()
            .map(|n| n.min(5))
            .map_err(|_| format!("TINI_VERBOSITY: '{text}' is not a number"))?;
    }
    if let Some(text) = env_str(env, "MINIT_LOG")?.filter(|f| !f.trim().is_empty()) {
        let name = text.trim().to_ascii_lowercase();
        match LEVELS.iter().position(|l| *l == name) {
            Some(level) => verbosity.base = level as u8,
            None => verbosity.filter = Some(text),
        }
    }
    Ok(verbosity)
}

fn env_str(
    env: &dyn Fn(&str) -> Option<OsString>,
    name: &str,
) -> Result<Option<String>, UsageError> {
    match env(name) {
        None => Ok(None),
        Some(v) => v
            .into_string()
            .map(Some)
            .map_err(|_| UsageError(format!("{name} is not valid UTF-8"))),
    }
}

fn string_value(parser: &mut lexopt::Parser) -> Result<String, UsageError> {
    Ok(parser.value()?.string()?)
}

fn parse_policy(text: &str) -> Result<LeftoverPolicy, String> {
    match text {
        "term" | "terminate" => Ok(LeftoverPolicy::Terminate),
        "wait" => Ok(LeftoverPolicy::Wait),
        "exit" => Ok(LeftoverPolicy::Exit),
        _ => Err(format!(
            "'{text}' is not a leftover policy (term, wait or exit)"
        )),
    }
}

/// `-e` takes 0-255 or a signal name, meaning 128 + its number (`TERM` = 143).
fn parse_exit_code(text: &str) -> Result<u8, String> {
    if let Ok(code) = text.parse::<u16>() {
        return u8::try_from(code).map_err(|_| format!("exit code '{text}' is not in 0-255"));
    }
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let sig = parse_signal(text)?;
        return u8::try_from(128 + sig)
            .map_err(|_| format!("signal '{text}' has no exit code below 256"));
    }
    Err(format!(
        "'{text}' is not an exit code (0-255 or a signal name)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn init(list: &[&str]) -> InitOptions {
        match parse(args(list), &no_env) {
            Ok(Mode::Init(o)) => *o,
            other => panic!("{list:?} gave {other:?}"),
        }
    }

    #[test]
    fn parsing_stops_at_the_app() {
        let o = init(&["sh", "-c", "exit 3"]);
        assert_eq!(o.command, args(&["sh", "-c", "exit 3"]));
        let o = init(&["-g", "--", "-weird", "-v"]);
        assert!(o.kill_group);
        assert_eq!(o.command, args(&["-weird", "-v"]));
        assert_eq!(o.verbosity.level(), 2);
        let o = init(&["-vv", "-e", "143", "-e", "TERM", "-e3", "true", "--", "x"]);
        assert_eq!(o.verbosity.level(), 4);
        assert_eq!(o.success_codes, vec![143, 143, 3]);
        assert_eq!(o.command, args(&["true", "--", "x"]));
        let o = init(&["--", "run"]);
        assert_eq!(o.command, args(&["run"]));
    }

    #[test]
    fn tini_flags_are_accepted() {
        let o = init(&["-s", "-g", "-w", "-p", "SIGKILL", "-v", "--", "app"]);
        assert!(o.kill_group && o.warn_on_reap);
        assert_eq!(o.parent_death_signal, Some(9));
        assert!(matches!(parse(args(&["-l"]), &no_env), Ok(Mode::License)));
        assert!(matches!(
            parse(args(&["--version"]), &no_env),
            Ok(Mode::Version)
        ));
        assert!(matches!(parse(args(&["-h"]), &no_env), Ok(Mode::Help)));
    }

    #[test]
    fn tini_environment_is_honoured() {
        let env = |name: &str| match name {
            "TINI_KILL_PROCESS_GROUP" => Some(OsString::from("1")),
            "TINI_VERBOSITY" => Some(OsString::from("3")),
            "MINIT_GRACE" => Some(OsString::from("250ms")),
            _ => None,
        };
        let Ok(Mode::Init(o)) = parse(args(&["app"]), &env) else {
            panic!("parse failed")
        };
        assert!(o.kill_group);
        assert_eq!(o.verbosity.level(), 3);
        assert_eq!(o.grace, Duration::from_millis(250));
    }

    #[test]
    fn minit_log_sets_the_level_and_v_raises_it() {
        let env = |name: &str| (name == "MINIT_LOG").then(|| OsString::from("info"));
        let Ok(Mode::Init(o)) = parse(args(&["-v", "app"]), &env) else {
            panic!("parse failed")
        };
        assert_eq!((o.verbosity.level(), o.verbosity.filter), (4, None));
        let env = |name: &str| (name == "MINIT_LOG").then(|| OsString::from("minit=debug"));
        let Ok(Mode::Init(o)) = parse(args(&["app"]), &env) else {
            panic!("parse failed")
        };
        assert_eq!(o.verbosity.filter.as_deref(), Some("minit=debug"));
    }

    #[test]
    fn bad_usage_is_an_error() {
        for bad in [
            &[][..],
            &["-x", "app"],
            &["-e"],
            &["-e", "256", "app"],
            &["-e", "-1", "app"],
            &["-p", "NOPE", "app"],
            &["--rewrite", "15", "app"],
            &["--rewrite", "99:1", "app"],
            &["--rewrite", "KILL:TERM", "app"],
            &["--grace", "99999999h", "app"],
            &["--leftovers", "maybe", "app"],
            &["-g"],
            &["pause", "extra"],
        ] {
            assert!(parse(args(bad), &no_env).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rewrite_rules() {
        let o = init(&[
            "-r",
            "TERM:QUIT",
            "--rewrite",
            "10:0",
            "-r",
            "RTMIN+1:RTMAX",
            "app",
        ]);
        assert_eq!(o.rewrites.map(15), Some(3));
        assert_eq!(o.rewrites.map(10), None);
        assert_eq!(o.rewrites.map(35), Some(64));
        assert_eq!(o.rewrites.map(2), Some(2));
    }

    #[test]
    fn subcommands() {
        assert!(
            matches!(parse(args(&["run", "--pid"]), &no_env), Ok(Mode::Run(a)) if a == args(&["--pid"]))
        );
        assert!(matches!(
            parse(args(&["pause"]), &no_env),
            Ok(Mode::Pause(_))
        ));
    }
}
