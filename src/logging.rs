//! Log setup: readable lines on a terminal, JSON lines for machines. Both to stderr, so
//! stdout carries only results.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `RUST_LOG` (`info`, `dockerhub_audit=debug,warn`: a
/// level, or targets with levels) overrides `default_level`. A plain target filter, not
/// `EnvFilter`: that one carries a regex engine into the Lambda for nothing we use.
pub fn init(format: LogFormat, default_level: &str) {
    init_with(format, default_level, BoxMakeWriter::new(std::io::stderr), None);
}

/// [`init`], writing the lines through `writer` (the CLI's, which prints them above its
/// progress line), with `extra` beside them (that progress line, reading
/// [`crate::progress`]'s events). The lines never carry the progress events.
pub fn init_with(
    format: LogFormat,
    default_level: &str,
    writer: BoxMakeWriter,
    extra: Option<Box<dyn Layer<Registry> + Send + Sync>>,
) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .or_else(|| default_level.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
        .with_target(crate::progress::TARGET, LevelFilter::OFF);
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    let _ = match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(extra)
            .with(
                layer
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(extra)
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_filter(filter),
            )
            .try_init(),
    };
}
