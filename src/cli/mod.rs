//! The command-line entry point: flags to a config, adapters wired to the poller.

/// Prints a line on stdout, like `println!`, except that a reader that went away
/// (`dockerhub-audit status … | head -2`) ends the command quietly instead of a panic.
macro_rules! say {
    () => {
        $crate::cli::say_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::say_line(format_args!($($arg)*))
    };
}

mod args;
mod demo;
mod emulator;
mod poll;
mod stores;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::{Command, LogFormatArg};

use crate::logging::{self, LogFormat};

#[doc(hidden)]
pub fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// Parses the command line, runs the command, and turns any failure into one line on
/// stderr and a non-zero exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    let level = match &cli.command {
        Command::Demo(_) => "warn",
        _ => cli.log_level.as_str(),
    };
    logging::init(format, level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Poll(a) => poll::poll(a, format).await,
            Command::Status(a) => poll::status(a).await,
            Command::Emulator(a) => emulator::serve(a).await,
            Command::Demo(a) => demo::demo(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
