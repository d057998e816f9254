//! `poll` and `verify`'s live line on stderr: how far the read has come (the date reached of
//! the span to cover, as a bar), events written, requests made, and, while Docker Hub asks to
//! wait, the wait counting down with its reason. It is drawn from [`crate::progress`]'s
//! events; log lines and the results on stdout are printed above it, never through it.
//!
//! Off unless stderr is a terminal and the logs are text (`--progress always` draws it
//! anyway, into a file or a pipe, so a test can capture it; `--progress never` never).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::DateTime;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::Registry;

use super::args::ProgressWhen;

/// The bar's length: the span in thousandths.
const SCALE: u64 = 1000;

/// The line of this process, once drawn: what prints to stdout or stderr goes above it.
static LINE: OnceLock<ProgressBar> = OnceLock::new();

/// What the line shows beyond the bar.
#[derive(Debug, Default)]
struct Shown {
    from: i64,
    to: i64,
    reached: Option<i64>,
    /// `None` until the run writes (a verification without --repair never does).
    events: Option<u64>,
    requests: u64,
    /// Until when Docker Hub asked to wait, and why.
    wait: Option<(Instant, String)>,
}

/// The progress line and what it shows.
#[derive(Clone)]
pub struct Line {
    bar: ProgressBar,
    shown: Arc<Mutex<Shown>>,
    /// Where it is drawn, kept back until the first span: a run that reads nothing draws
    /// nothing.
    target: Arc<Mutex<Option<ProgressDrawTarget>>>,
}

impl Line {
    /// The line for a command asked with `when`, or `None` when it is off.
    pub fn start(when: ProgressWhen, json_logs: bool) -> Option<Line> {
        let terminal = std::io::stderr().is_terminal();
        let target = match when {
            ProgressWhen::Never => return None,
            ProgressWhen::Auto if json_logs || !terminal => return None,
            // A terminal indicatif would not draw on (TERM unset or dumb) is drawn on
            // as a pipe is, when asked.
            _ if terminal && !ProgressDrawTarget::stderr().is_hidden() => ProgressDrawTarget::stderr(),
            _ => ProgressDrawTarget::term_like_with_hz(Box::new(Stderr), 4),
        };
        let shown = Arc::new(Mutex::new(Shown::default()));
        let bar = ProgressBar::with_draw_target(Some(SCALE), ProgressDrawTarget::hidden());
        bar.set_style(style(shown.clone()));
        let _ = LINE.set(bar.clone());
        Some(Line {
            bar,
            shown,
            target: Arc::new(Mutex::new(Some(target))),
        })
    }

    /// The layer that moves the line from the progress events (and only from them).
    pub fn layer(&self) -> Box<dyn Layer<Registry> + Send + Sync> {
        let only = Targets::new().with_target(crate::progress::TARGET, tracing::Level::TRACE);
        Box::new(Events(self.clone()).with_filter(only))
    }

    /// Leaves the line as it last was: a read that ended early shows how far it came.
    pub fn finish(&self) {
        self.bar.abandon();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn on(&self, e: &Fields) {
        match e.kind.as_str() {
            "span" => {
                {
                    let mut s = self.lock();
                    s.from = e.from;
                    s.to = e.to;
                    s.reached = None;
                    s.wait = None;
                }
                if let Some(t) = self.target.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    self.bar.set_draw_target(t);
                    self.bar.enable_steady_tick(Duration::from_millis(250));
                }
                self.bar.set_position(0);
            }
            "reached" => {
                let position = {
                    let mut s = self.lock();
                    s.reached = Some(e.at);
                    s.requests = e.requests;
                    s.wait = None;
                    let span = (i128::from(s.to) - i128::from(s.from)).max(1);
                    ((i128::from(e.at) - i128::from(s.from)) * i128::from(SCALE) / span)
                        .clamp(0, i128::from(SCALE)) as u64
                };
                self.bar.set_position(position);
            }
            "written" => {
                self.lock().events = Some(e.events);
            }
            "waiting" => {
                self.lock().wait = Some((Instant::now() + Duration::from_millis(e.wait_ms), e.why.clone()));
                // Past the draw rate limit: a wait is what a person watching must see.
                self.bar.force_draw();
            }
            _ => {}
        }
    }
}

/// The line's look: `2026-11-20 14:05 [=====>    ]  48% · 1,234 events written · 57 requests`,
/// and ` · waiting 41s: rate limit (429)` while a wait lasts.
fn style(shown: Arc<Mutex<Shown>>) -> ProgressStyle {
    let lock = |s: &Arc<Mutex<Shown>>| {
        let s = s.lock().unwrap_or_else(|e| e.into_inner());
        (s.reached.or(Some(s.from)), s.events, s.requests, s.wait.clone())
    };
    let (a, b, c) = (shown.clone(), shown.clone(), shown);
    ProgressStyle::with_template("{reached} [{bar:20.cyan/blue}] {percent:>3}% · {counts}{wait}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key(
            "reached",
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                if let (Some(t), ..) = lock(&a) {
                    let day = DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string());
                    let _ = w.write_str(&day.unwrap_or_default());
                }
            },
        )
        .with_key("counts", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let (_, events, requests, _) = lock(&b);
            if let Some(events) = events {
                let _ = write!(w, "{} events written · ", crate::activity::thousands(events));
            }
            let _ = write!(w, "{} requests", crate::activity::thousands(requests));
        })
        .with_key("wait", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            if let (.., Some((until, why))) = lock(&c) {
                let left = until.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    let _ = write!(w, " · waiting {}s: {why}", left.as_millis().div_ceil(1000));
                }
            }
        })
}

/// The fields of one progress event.
#[derive(Debug, Default)]
struct Fields {
    kind: String,
    from: i64,
    to: i64,
    at: i64,
    requests: u64,
    events: u64,
    wait_ms: u64,
    why: String,
}

impl Visit for Fields {
    // Times are i64 and counts u64 as `crate::progress` sends them: tracing keeps the types.
    fn record_i64(&mut self, f: &Field, v: i64) {
        match f.name() {
            "from" => self.from = v,
            "to" => self.to = v,
            "at" => self.at = v,
            _ => {}
        }
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        match f.name() {
            "requests" => self.requests = v,
            "events" => self.events = v,
            "wait_ms" => self.wait_ms = v,
            _ => {}
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        match f.name() {
            "kind" => self.kind = v.to_string(),
            "why" => self.why = v.to_string(),
            _ => {}
        }
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.record_str(f, format!("{v:?}").trim_matches('"'));
    }
}

struct Events(Line);

impl Layer<Registry> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, Registry>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.on(&fields);
    }
}

/// Runs `print` with the line (if any) taken off the screen, then draws it again: whatever
/// is printed lands above it.
pub fn above(print: impl FnOnce()) {
    match LINE.get() {
        Some(bar) => bar.suspend(print),
        None => print(),
    }
}

/// The log lines' writer: each line to stderr, above the progress line.
pub fn log_writer() -> BoxMakeWriter {
    BoxMakeWriter::new(|| Above(Vec::new()))
}

/// One log line, held until it is whole and then printed above the progress line.
struct Above(Vec<u8>);

impl Write for Above {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Above {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        if bytes.is_empty() {
            return;
        }
        above(|| {
            let _ = std::io::stderr().write_all(&bytes);
        });
    }
}

/// stderr as a terminal, for `--progress always` when it is not one (ANSI cursor moves).
#[derive(Debug)]
struct Stderr;

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.moves(n, 'A')
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.moves(n, 'B')
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.moves(n, 'C')
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.moves(n, 'D')
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        writeln!(std::io::stderr(), "{s}")
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        write!(std::io::stderr(), "{s}")
    }
    fn clear_line(&self) -> std::io::Result<()> {
        write!(std::io::stderr(), "\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Stderr {
    fn moves(&self, n: usize, code: char) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        write!(std::io::stderr(), "\x1b[{n}{code}")
    }
}
