//! Which time range a run reads, and how the span of one request adapts.

use chrono::{DateTime, Duration, Utc};

use crate::checkpoint_model::Checkpoint;
use crate::config::PollConfig;
use crate::types::{floor_second, Window};

/// The longest window asked for in one request.
pub const MAX_SPAN: Duration = Duration::days(7);

/// The run's window: from `seen_from`, where the remembered ids start (so exactly the
/// range that can be deduplicated is read again, whatever `--overlap` this run was given),
/// else `watermark - overlap`, else, on the first run, `now - lookback`; to `now - lag`.
/// Both ends on whole seconds.
pub fn plan(cp: &Checkpoint, cfg: &PollConfig, now: DateTime<Utc>) -> Window {
    // Checked: a corrupted checkpoint must not panic the run (validated configs never
    // come near chrono's limits).
    let minus = |t: DateTime<Utc>, d: Duration| t.checked_sub_signed(d).unwrap_or(t);
    let end = floor_second(minus(now, cfg.lag));
    let start = match (cp.seen_from, cp.watermark) {
        (Some(from), Some(w)) => from.min(w),
        (None, Some(w)) => minus(w, cfg.overlap),
        (_, None) => minus(now, cfg.lookback),
    };
    Window::new(floor_second(start), end)
}

/// The first span to try: the whole window up to a day.
pub fn initial_span(w: Window) -> Duration {
    whole_seconds(w.len().min(Duration::days(1)))
}

/// After a window of `len` held `n` events: the span that would hold about `target`, at
/// most four times and at least half the last one (density changes; a denser stretch is
/// cut when it overflows a read).
pub fn adapt(len: Duration, n: usize, target: usize) -> Duration {
    let secs = len.num_seconds().max(1) as f64;
    let want = secs * target.max(1) as f64 / n.max(1) as f64;
    let secs = want
        .clamp(secs / 2.0, secs * 4.0)
        .min(MAX_SPAN.num_seconds() as f64);
    whole_seconds(Duration::seconds(secs as i64))
}

/// After a window of `len` did not fit in one page.
pub fn shrink(len: Duration) -> Duration {
    whole_seconds(len / 2)
}

fn whole_seconds(d: Duration) -> Duration {
    Duration::seconds(d.num_seconds().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventId, Org};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn first_run_uses_lookback_then_watermark_minus_overlap() {
        let org = Org::new("acme").unwrap();
        let cfg = PollConfig::new(org.clone());
        let now = t("2026-11-25T12:00:00.700Z");
        let mut cp = Checkpoint::new(org);
        let w = plan(&cp, &cfg, now);
        assert_eq!(w.to, t("2026-11-25T11:59:00Z"));
        assert_eq!(w.from, t("2026-08-27T12:00:00Z"));
        cp.advance(t("2026-11-25T11:00:00Z"), cfg.overlap);
        cp.seen.insert(EventId("x".into()), t("2026-11-25T10:50:00Z"));
        let w = plan(&cp, &cfg, now);
        assert_eq!(w.from, t("2026-11-25T10:45:00Z"));
        // A larger overlap than the ids remembered cannot reach further back than seen_from,
        // and a shorter one still reads all it remembers (events a rolled-forward commit
        // did not hold, late events) rather than skipping past them.
        for overlap in [Duration::hours(2), Duration::minutes(1)] {
            let mut other = cfg.clone();
            other.overlap = overlap;
            assert_eq!(plan(&cp, &other, now).from, t("2026-11-25T10:45:00Z"));
        }
    }

    #[test]
    fn spans() {
        assert_eq!(shrink(Duration::seconds(3)), Duration::seconds(1));
        assert_eq!(shrink(Duration::seconds(1)), Duration::seconds(1));
        assert_eq!(adapt(Duration::hours(1), 0, 5000), Duration::hours(4));
        assert_eq!(adapt(Duration::hours(1), 2500, 5000), Duration::hours(2));
        assert_eq!(adapt(Duration::hours(1), 5000, 5000), Duration::hours(1));
        assert_eq!(adapt(Duration::hours(1), 50_000, 5000), Duration::minutes(30));
        assert_eq!(adapt(Duration::days(6), 0, 5000), MAX_SPAN);
        assert_eq!(adapt(Duration::seconds(1), 9000, 5000), Duration::seconds(1));
        let w = Window::new(t("2026-11-25T00:00:00Z"), t("2026-11-25T00:20:00Z"));
        assert_eq!(initial_span(w), Duration::minutes(20));
    }
}
