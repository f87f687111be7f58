//! Log lines go to stderr only (tini writes to stdout, into the app's output), in one compact
//! greppable form: `minit: message` for errors, `minit: warning: message`, `minit: info: …`.
//! A closed or broken stderr is never fatal: env_logger drops write errors, and the SIGPIPE a
//! write may raise is blocked and discarded by the supervisor.

use crate::cli::Verbosity;
use log::{Level, LevelFilter};
use std::io::Write;

const FILTERS: [LevelFilter; 6] = [
    LevelFilter::Off,
    LevelFilter::Error,
    LevelFilter::Warn,
    LevelFilter::Info,
    LevelFilter::Debug,
    LevelFilter::Trace,
];

pub fn init(verbosity: &Verbosity) {
    let mut builder = env_logger::Builder::new();
    match &verbosity.filter {
        Some(filter) => {
            builder.parse_filters(filter);
        }
        None => {
            builder.filter_level(FILTERS[verbosity.level() as usize]);
        }
    }
    builder.format(|buf, record| match record.level() {
        Level::Error => writeln!(buf, "minit: {}", record.args()),
        Level::Warn => writeln!(buf, "minit: warning: {}", record.args()),
        Level::Info => writeln!(buf, "minit: info: {}", record.args()),
        Level::Debug => writeln!(buf, "minit: debug: {}", record.args()),
        Level::Trace => writeln!(buf, "minit: trace: {}", record.args()),
    });
    // A second init (never expected) keeps the first logger.
    let _ = builder.try_init();
}

/// An errno as the C library words it, without Rust's "(os error N)" suffix.
pub fn errno_text(errno: i32) -> String {
    // SAFETY: strerror returns a pointer to a NUL-terminated static or thread-local string;
    // minit is single-threaded and copies it at once.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}

/// An io::Error worded as the C library does.
pub fn error_text(err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(errno) => errno_text(errno),
        None => err.to_string(),
    }
}
