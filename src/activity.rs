//! A picture of an org's trail: its stored events per day, read back from the output (local
//! or S3), with the days inside the span the checkpoint records as verified complete. `status` shows the last days of it,
//! and the demo ends with it.
//!
//! It reads what is stored, not the checkpoint: one listing per day and every object of the
//! days shown, once (on S3, a `ListObjectsV2` per day and a `GetObject` per object).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Duration, NaiveDate};
use futures_util::stream::{self, StreamExt};

use crate::checkpoint_model::Verified;
use crate::collect::stored;
use crate::ports::{Sink, StoreError};
use crate::types::Org;

/// Objects read at once.
const READS_AT_ONCE: usize = 16;

/// One day of the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub day: NaiveDate,
    /// The events stored under the day's partition.
    pub events: u64,
    /// The same, by category (the action's first part: `repo`, `org`, …).
    pub categories: BTreeMap<String, u64>,
    /// Whether the last verification covered the whole day (and so found it complete).
    pub verified: bool,
}

/// The days `from..=to` of `org`'s trail, oldest first, every day present (a day with
/// nothing stored has 0 events), and how many objects were read.
pub async fn read<S: Sink + ?Sized>(
    sink: &S,
    org: &Org,
    from: NaiveDate,
    to: NaiveDate,
    verified: Option<&Verified>,
) -> Result<(Vec<Day>, u64), StoreError> {
    let stored: std::collections::BTreeSet<NaiveDate> = sink
        .days(org)
        .await?
        .into_iter()
        .filter(|d| (from..=to).contains(d))
        .collect();
    let (mut days, mut objects) = (Vec::new(), 0);
    let mut day = from;
    while day <= to {
        let mut categories = BTreeMap::new();
        if stored.contains(&day) {
            // A few reads at a time: on S3 each is a round trip, and a day polled every five
            // minutes has up to 288 objects.
            let listed = sink.list_day(org, day).await?;
            let mut reads = stream::iter(listed.iter().map(|o| async move { (o, sink.get(&o.key).await) }))
                .buffered(READS_AT_ONCE);
            while let Some((o, bytes)) = reads.next().await {
                objects += 1;
                stored::count_categories(&o.key, &bytes?, &mut categories)?;
            }
        }
        days.push(Day {
            day,
            events: categories.values().sum(),
            categories,
            verified: verified.is_some_and(|v| v.covers_day(day)),
        });
        day += Duration::days(1);
    }
    Ok((days, objects))
}

/// The eighths of a block, for bars that end between two cells.
const EIGHTHS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/// The picture: a line per day, a bar of its events scaled to the busiest day, its count,
/// a mark on days found complete, and (when `width` leaves room) its categories, busiest
/// first.
pub fn render(days: &[Day], width: usize) -> Vec<String> {
    let busiest = days.iter().map(|d| d.events).max().unwrap_or(0).max(1);
    let digits = days.iter().map(|d| thousands(d.events).len()).max().unwrap_or(1);
    // "2026-11-20 " + bar + " " + count + " ✓"; categories after, if they fit.
    let bar_cells = width.saturating_sub(11 + 1 + digits + 2).clamp(10, 40);
    let room = width.saturating_sub(11 + bar_cells + 1 + digits + 2 + 2);
    days.iter()
        .map(|d| {
            let eighths = (d.events * bar_cells as u64 * 8).div_ceil(busiest) as usize;
            let mut bar: String = "█".repeat(eighths / 8);
            if !eighths.is_multiple_of(8) {
                bar.push(EIGHTHS[eighths % 8]);
            }
            let mut line = format!(
                "{} {bar:<bar_cells$} {:>digits$} {}",
                d.day,
                thousands(d.events),
                if d.verified { '✓' } else { ' ' }
            );
            if room >= 12 && d.events > 0 {
                let mut by: Vec<(&String, &u64)> = d.categories.iter().collect();
                by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let mut split = String::new();
                for (c, n) in by {
                    let part = format!(
                        "{}{c} {}",
                        if split.is_empty() { "" } else { " · " },
                        thousands(*n)
                    );
                    if split.chars().count() + part.chars().count() > room {
                        break;
                    }
                    split.push_str(&part);
                }
                let _ = write!(line, "  {split}");
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, events: u64, verified: bool) -> Day {
        let mut categories = BTreeMap::new();
        if events > 0 {
            categories.insert("repo".to_string(), events - events / 4);
            categories.insert("org".to_string(), events / 4);
        }
        Day {
            day: NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
            events,
            categories,
            verified,
        }
    }

    #[test]
    fn bars_are_scaled_to_the_busiest_day_in_eighths() {
        let lines = render(
            &[
                day(1, 1000, true),
                day(2, 500, false),
                day(3, 0, false),
                day(4, 1, false),
            ],
            60,
        );
        let cells = |l: &str| l.chars().filter(|c| *c == '█').count();
        assert_eq!(cells(&lines[0]), 2 * cells(&lines[1]), "{lines:#?}");
        assert!(lines[0].contains("1,000 ✓"), "{lines:#?}");
        assert!(!lines[1].contains('✓'));
        // Nothing stored: no bar at all; one event: the smallest mark, not nothing.
        assert_eq!(cells(&lines[2]), 0);
        assert!(lines[3].contains('▏'), "{lines:#?}");
        assert!(
            lines.iter().all(|l| !l.contains("repo")),
            "no room for categories at 60 columns"
        );
        let wide = render(&[day(1, 1000, true)], 140);
        assert!(wide[0].ends_with("repo 750 · org 250"), "{wide:#?}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
