//! minit: a tiny PID-1 init, subreaper and container launcher for Linux.
//!
//! `main.rs` blocks every signal and hands argv here; `cli` decides the mode; `init` runs an
//! app under the supervisor; `pause` runs the same loop without one.

pub mod cli;
pub mod fds;
pub mod init;
pub mod launch;
pub mod logging;
pub mod pause;
pub mod poweroff;
pub mod reap;
pub mod shutdown;
pub mod signals;
pub mod spawn;
pub mod supervisor;
pub mod targets;
pub mod units;

use cli::Mode;
use std::ffi::OsString;
use std::io::Write;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const GIT_COMMIT: &str = env!("MINIT_GIT_COMMIT");

const LICENSE: &str = "minit is distributed under the MIT license.\n\
Copyright (c) 2026 the minit developers.\n\
Permission is hereby granted, free of charge, to any person obtaining a copy of this software \
to deal in it without restriction, subject to including this notice; it is provided \"as is\", \
without warranty of any kind. See LICENSE for the full text.\n";

/// Runs minit with `args` (argv without argv[0]); returns the process exit status.
pub fn run(args: Vec<OsString>) -> u8 {
    // First, before anything could deliver a signal minit would miss or die from.
    let inherited = match signals::block_all() {
        Ok(inherited) => inherited,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "minit: cannot block signals: {err}");
            return init::EXIT_SETUP_FAILED;
        }
    };
    let mode = match cli::parse(args, &|name| std::env::var_os(name)) {
        Ok(mode) => mode,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "minit: {}; {}", err.line(), cli::USAGE);
            return 2;
        }
    };
    match mode {
        Mode::Help => print(cli::HELP),
        Mode::Version => print(&format!("minit version {VERSION} - git.{GIT_COMMIT}\n")),
        Mode::License => print(LICENSE),
        Mode::Init(opts) => {
            logging::init(&opts.verbosity);
            let code = init::run_app(&opts, None, inherited);
            let ending = if opts.reboot {
                poweroff::Ending::Reboot
            } else {
                poweroff::Ending::PowerOff
            };
            poweroff::end_machine_if_init(code, ending);
            code
        }
        // As the machine's init these end the machine too, never by exiting into a panic.
        Mode::Pause(verbosity) => {
            logging::init(&verbosity);
            let code = pause::run();
            poweroff::end_machine_if_init(code, poweroff::Ending::PowerOff);
            code
        }
        Mode::Run(args) => {
            let code = launch::main(args, inherited);
            poweroff::end_machine_if_init(code, poweroff::Ending::PowerOff);
            code
        }
    }
}

fn print(text: &str) -> u8 {
    let _ = std::io::stdout().write_all(text.as_bytes());
    0
}
