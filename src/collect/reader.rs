//! Reading a time range as a sequence of complete windows, each from one consistent read,
//! with the request span adapting to the density of events and every request bounded by
//! the run's deadline.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use super::fetch::{Fetcher, Read, ReadLimits};
use super::server_memory::ServerMemory;
use super::window;
use crate::clock::Clock;
use crate::config::PollConfig;
use crate::ports::{AuditLog, HubError, Page};
use crate::types::{Org, Window};

/// How far this machine's clock may run ahead of Docker Hub's before history it takes for
/// settled could still change.
const SKEW_MARGIN: Duration = Duration::hours(1);

pub struct Reader<'a, A: AuditLog + ?Sized> {
    pub fetcher: Fetcher<'a, A>,
    span: Duration,
    /// What one read may hold.
    limits: ReadLimits,
    /// The events a window should hold: half of what one read may, so a denser stretch
    /// rarely overflows it (events large enough to reach the byte limit first count for
    /// more: see [`ReadLimits::weight`]).
    target: usize,
    /// Whether the span grew on thin evidence (more than twice the last window): then the
    /// next window is probed before it is read, as its count is a guess.
    probe: bool,
    deadline: Option<DateTime<Utc>>,
    clock: &'a dyn Clock,
}

impl<'a, A: AuditLog + ?Sized> Reader<'a, A> {
    pub fn new(
        api: &'a A,
        org: &'a Org,
        page_size: u32,
        limits: ReadLimits,
        memory: &'a ServerMemory,
        deadline: Option<DateTime<Utc>>,
        clock: &'a dyn Clock,
    ) -> Self {
        Reader {
            fetcher: Fetcher::new(api, org, page_size, limits, memory),
            limits,
            target: limits.events / 2,
            probe: false,
            span: Duration::days(1),
            deadline,
            clock,
        }
    }

    /// A reader for `cfg`'s org, page size and read limits, starting from what `memory`
    /// holds of the server's page size.
    pub fn for_run(
        api: &'a A,
        cfg: &'a PollConfig,
        memory: &'a ServerMemory,
        deadline: Option<DateTime<Utc>>,
        clock: &'a dyn Clock,
    ) -> Self {
        let limits = ReadLimits {
            events: cfg.read_events,
            bytes: cfg.read_bytes,
        };
        let mut reader = Self::new(api, &cfg.org, cfg.page_size, limits, memory, deadline, clock);
        // Nothing lands further back than the overlap the run reads again: history older
        // than that, from the run's end, cannot shift while it is paged. An hour more for a
        // clock that runs ahead of Docker Hub's (a backfill's history is days old anyway).
        let settled = clock
            .now()
            .checked_sub_signed(cfg.lag + cfg.overlap + SKEW_MARGIN)
            .map(crate::types::floor_second);
        reader.fetcher.settle_before(settled);
        reader
    }

    /// Starts the span for a range: its whole length, up to a day.
    pub fn start(&mut self, range: Window) {
        self.span = window::initial_span(range);
        // Not the first window: an idle run must cost one request.
        self.probe = false;
    }

    /// Reads the next complete window `[from, to)` with `to <= end`: every event the API
    /// served for it, from one consistent read (and any unreadable item served with them).
    /// `OutOfTime` once the deadline has passed.
    pub async fn next(
        &mut self,
        from: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(Window, Page), HubError> {
        loop {
            // Absolute for every request of this window, so retries and pages share it.
            let request_deadline = match self.deadline {
                None => None,
                Some(d) => match (d - self.clock.now()).to_std() {
                    Ok(b) if !b.is_zero() => Some(Instant::now() + b),
                    _ => return Err(HubError::OutOfTime("the run's time was up".into())),
                },
            };
            let w = Window::new(from, (from + self.span).min(end));
            // A window sized from a sparse stretch (the edge of Docker Hub's retention at
            // the start of a backfill) can hold many times the target: once its first page
            // comes back full, one probe says so, and it is cut before it is paged through.
            let guard = (self.probe && w.len() > Duration::seconds(1)).then_some(self.target);
            let page = match self.fetcher.read_guarded(w, guard, request_deadline).await? {
                Read::TooMany if w.len() > Duration::seconds(1) => {
                    self.span = window::shrink(w.len());
                    continue;
                }
                Read::TooMany => self.fetcher.read_dense(w, request_deadline).await?,
                Read::Complete(page) => page,
            };
            tracing::debug!(window = %w, events = page.len(), requests = self.fetcher.requests, "read");
            crate::progress::reached(w.to, self.fetcher.requests);
            let weight = self.limits.weight(page.len(), page.bytes());
            self.span = window::adapt(w.len(), weight, self.target);
            self.probe = self.span > w.len() * 2;
            return Ok((w, page));
        }
    }
}
