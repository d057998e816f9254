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
mod checkpoint;
mod compact;
mod demo;
mod emulator;
mod poll;
mod progress;
mod stores;
mod verify;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::{Command, LogFormatArg};

use crate::logging::{self, LogFormat};

#[doc(hidden)]
pub fn say_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    // Above the progress line, when one is drawn on the same screen. Formatted first: the
    // line is off the screen only while it is written.
    let line = line.to_string();
    progress::above(|| {
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    });
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
    let json = matches!(format, LogFormat::Json);
    let line = match &cli.command {
        Command::Poll(a) => {
            // Alerts written to the terminal's stdout would run through the line.
            let alerts_on_screen = a.rules.is_some()
                && a.alerts_out == "-"
                && std::io::IsTerminal::is_terminal(&std::io::stdout());
            let when = match a.progress {
                args::ProgressWhen::Auto if alerts_on_screen => args::ProgressWhen::Never,
                when => when,
            };
            progress::Line::start(when, json)
        }
        Command::Verify(a) => progress::Line::start(a.progress, json),
        _ => None,
    };
    logging::init_with(
        format,
        level,
        progress::log_writer(),
        line.as_ref().map(progress::Line::layer),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            // A rules file that cannot be used is a usage error, before anything runs.
            Command::Poll(a) => match a.rules.as_deref().map(poll::load_rules).transpose() {
                Err(e) => Err(Failed::usage(e)),
                Ok(rules) => match poll::poll(a, rules, format).await {
                    Ok(poll::Finished::Done) => Ok(()),
                    // The summary on stdout already says why; no error line.
                    Ok(poll::Finished::StoppedEarly) => Err(Failed {
                        message: String::new(),
                        code: EXIT_STOPPED_EARLY,
                    }),
                    Err(e) => Err(Failed::from(e)),
                },
            },
            Command::Status(a) => match poll::status(a).await {
                Ok(true) => Ok(()),
                // The table on stdout already says which org and why.
                Ok(false) => Err(Failed {
                    message: String::new(),
                    code: 1,
                }),
                Err(e) => Err(Failed::from(e)),
            },
            Command::Verify(a) => verify::verify(a, format).await,
            Command::Compact(a) => compact::compact(a, format).await,
            Command::Checkpoint {
                command: args::CheckpointCommand::Rebuild(a),
            } => checkpoint::rebuild(a).await.map_err(Failed::from),
            Command::Emulator(a) => emulator::serve(a).await.map_err(Failed::from),
            Command::Demo(a) => demo::demo(a).await.map_err(Failed::from),
        }
    });
    if let Some(line) = &line {
        line.finish();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                progress::above(|| eprintln!("error: {}", f.message));
            }
            ExitCode::from(f.code)
        }
    }
}

/// The exit status of a run that stopped before it was done with nothing wrong (its time
/// ran out, or Docker Hub asked to wait longer than a run waits): everything read is
/// committed, and the next run continues. 75 is `EX_TEMPFAIL` of sysexits.h, which cron
/// wrappers and systemd know as "try again later".
pub const EXIT_STOPPED_EARLY: u8 = 75;

/// A command that did not succeed: what to say, and the exit status (1, or 2 for a
/// usage error, as clap's own, or [`EXIT_STOPPED_EARLY`]).
pub struct Failed {
    pub message: String,
    pub code: u8,
}

impl Failed {
    pub fn usage(message: impl Into<String>) -> Self {
        Failed {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<String> for Failed {
    fn from(message: String) -> Self {
        Failed { message, code: 1 }
    }
}
