//! `--report`: how the run ended, as one JSON object on one line. Written by hand: every
//! value is a number, a boolean or null, so no escaping is needed and no serde is pulled in.

use std::fmt::Write as _;
use std::time::Duration;

/// What is known about the run at its end. `None` is written as `null`: the kernel did not
/// expose it (no such cgroup file) or the run never got that far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub exit_code: u8,
    /// The signal that ended the app, read from the 128+N exit code convention.
    pub signal: Option<i32>,
    pub oom_kills: Option<u64>,
    pub memory_limit: Option<u64>,
    pub memory_peak: Option<u64>,
    pub pids_peak: Option<u64>,
    /// CPU time of every process of the run: the cgroup's count when there is one, else
    /// the rusage of the sandbox and everything it reaped.
    pub cpu_usec: Option<u64>,
    pub cpu_user_usec: Option<u64>,
    pub cpu_system_usec: Option<u64>,
    pub wall: Duration,
}

impl Report {
    pub fn to_json(&self) -> String {
        let mut out = String::from("{");
        let mut field = |name: &str, value: String| {
            if out.len() > 1 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":{value}");
        };
        fn opt<T: ToString>(v: Option<T>) -> String {
            v.map_or_else(|| "null".to_string(), |v| v.to_string())
        }
        field("exit_code", self.exit_code.to_string());
        field("signal", opt(self.signal));
        field(
            "oom_killed",
            self.oom_kills
                .map_or("null".to_string(), |n| (n > 0).to_string()),
        );
        field("oom_kills", opt(self.oom_kills));
        field("memory_limit_bytes", opt(self.memory_limit));
        field("memory_peak_bytes", opt(self.memory_peak));
        field("pids_peak", opt(self.pids_peak));
        field("cpu_time_usec", opt(self.cpu_usec));
        field("cpu_user_usec", opt(self.cpu_user_usec));
        field("cpu_system_usec", opt(self.cpu_system_usec));
        field("wall_time_usec", self.wall.as_micros().to_string());
        out.push_str("}\n");
        out
    }
}

/// The signal behind an exit code, by the shell's 128+N convention.
pub fn signal_of(code: u8) -> Option<i32> {
    let n = i32::from(code) - 128;
    (1..=crate::signals::NSIG_MAX).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let report = Report {
            exit_code: 137,
            signal: Some(9),
            oom_kills: Some(1),
            memory_limit: Some(64 << 20),
            memory_peak: Some(67_000_000),
            pids_peak: None,
            cpu_usec: Some(1500),
            cpu_user_usec: None,
            cpu_system_usec: None,
            wall: Duration::from_millis(12),
        };
        assert_eq!(
            report.to_json(),
            "{\"exit_code\":137,\"signal\":9,\"oom_killed\":true,\"oom_kills\":1,\
             \"memory_limit_bytes\":67108864,\"memory_peak_bytes\":67000000,\"pids_peak\":null,\
             \"cpu_time_usec\":1500,\"cpu_user_usec\":null,\"cpu_system_usec\":null,\
             \"wall_time_usec\":12000}\n"
        );
    }

    #[test]
    fn signals_from_codes() {
        assert_eq!(signal_of(137), Some(9));
        assert_eq!(signal_of(143), Some(15));
        assert_eq!(signal_of(128), None);
        assert_eq!(signal_of(3), None);
        assert_eq!(signal_of(255), None);
    }
}
