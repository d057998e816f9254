//! Reading a window of the audit log as one consistent multiset.
//!
//! The API pages by number with no snapshot: an event that lands while the pages are read
//! shifts the later pages, so a boundary event is read twice (and identical events in one
//! second are real, so a copy cannot be told from a twin). And neither the sort order,
//! the page-size cap nor whether `from`/`to` are inclusive is documented. So:
//!
//! - a window is taken from a **single page** whenever it fits in one: one response is one
//!   snapshot, whatever the order;
//! - a window that does not fit is cut smaller (the caller adapts the span);
//! - a single second with more events than a page is read page by page **until two
//!   complete reads agree** (the whole padded query, so an event landing anywhere in it
//!   shows as a change);
//! - queries are padded by a second on both sides and the answer filtered to `[from, to)`,
//!   so inclusive and exclusive bounds, and sub-second timestamps, all give the same result.

use std::time::Instant;

use chrono::Duration;

use crate::event::id::canonical;
use crate::ports::{AuditLog, HubError, Page, PageQuery};
use crate::types::{Org, Window};

/// The answer to "read this window".
#[derive(Debug)]
pub enum Read {
    /// Every event of the window (those inside `[from, to)` only), from one snapshot, and
    /// the unreadable items served with them.
    Complete(Page),
    /// More than one page: cut the window smaller.
    TooMany,
}

/// The most pages read for one dense second before giving up: guards against a server
/// that ignores `page` and repeats itself.
const MAX_PAGES: u32 = 1000;

pub struct Fetcher<'a, A: AuditLog + ?Sized> {
    api: &'a A,
    org: &'a Org,
    /// What we ask for.
    page_size: u32,
    /// A page size the server is known to give in full (never more than its real cap):
    /// a page shorter than this is the last one.
    known_full: Option<u32>,
    /// How many times a dense second is read looking for two that agree.
    max_reads: u32,
    pub requests: u64,
}

impl<'a, A: AuditLog + ?Sized> Fetcher<'a, A> {
    pub fn new(api: &'a A, org: &'a Org, page_size: u32) -> Self {
        Fetcher {
            api,
            org,
            page_size,
            known_full: None,
            max_reads: 5,
            requests: 0,
        }
    }

    /// The page size asked for.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// What the server has shown it gives per full page, if known.
    pub fn known_page_size(&self) -> Option<u32> {
        self.known_full
    }

    fn learn(&mut self, full: u32) {
        // Keep the smallest: underestimating only costs extra requests, overestimating
        // would take a full page for the last one.
        self.known_full = Some(self.known_full.map_or(full, |k| k.min(full)));
    }

    /// One page; `deadline` is absolute, shared by every request of a window.
    async fn get(&mut self, w: Window, page: u32, deadline: Option<Instant>) -> Result<Page, HubError> {
        let budget = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(Instant::now()).filter(|b| !b.is_zero()) {
                Some(b) => Some(b),
                None => return Err(HubError::OutOfTime("the run's time was up".into())),
            },
        };
        let q = PageQuery {
            from: w.from - Duration::seconds(1),
            to: w.to + Duration::seconds(1),
            page,
            page_size: self.page_size,
        };
        self.requests += 1;
        self.api.page(self.org, q, budget).await
    }

    /// Reads `w` if it fits in one page.
    pub async fn read(&mut self, w: Window, deadline: Option<Instant>) -> Result<Read, HubError> {
        let first = self.get(w, 1, deadline).await?;
        let n = first.len() as u32;
        if n == 0 {
            return Ok(Read::Complete(Page::default()));
        }
        if n >= self.page_size {
            // The server gives at least what we ask: there may be more.
            self.learn(self.page_size);
            return Ok(Read::TooMany);
        }
        if let Some(full) = self.known_full {
            return Ok(if n < full {
                Read::Complete(inside(w, first))
            } else {
                Read::TooMany
            });
        }
        // A short page from a server whose cap we do not know: it is the end only if the
        // next page is empty. Events are never removed, so if page 2 is empty later, page 1
        // held everything there was when it was read.
        let second = self.get(w, 2, deadline).await?;
        if second.is_empty() {
            Ok(Read::Complete(inside(w, first)))
        } else {
            self.learn(n);
            Ok(Read::TooMany)
        }
    }

    /// Reads a window that cannot be cut (one second with more than a page of events):
    /// every page, repeated until two complete reads give the same multiset. The whole
    /// padded answer is compared, not only the second itself: an event landing in the
    /// padding shifts the pages too, and would otherwise go unseen while it doubles a
    /// boundary event of the second.
    pub async fn read_dense(&mut self, w: Window, deadline: Option<Instant>) -> Result<Page, HubError> {
        let mut previous: Option<Vec<String>> = None;
        for _ in 0..self.max_reads {
            let page = self.read_all_pages(w, deadline).await?;
            let mut fingerprint: Vec<String> = page.events.iter().map(canonical).collect();
            fingerprint.extend(page.unreadable.iter().map(|u| u.item.to_string()));
            fingerprint.sort_unstable();
            if previous.as_ref() == Some(&fingerprint) {
                return Ok(inside(w, page));
            }
            previous = Some(fingerprint);
        }
        Err(HubError::Unavailable(format!(
            "the audit log kept changing while {w} (one second holding more than a page of events) was read {} times; \
             nothing from it was committed, and the next run reads it again",
            self.max_reads
        )))
    }

    /// Every page of the padded query, unfiltered.
    async fn read_all_pages(&mut self, w: Window, deadline: Option<Instant>) -> Result<Page, HubError> {
        let mut all = Page::default();
        for page in 1..=MAX_PAGES {
            let got = self.get(w, page, deadline).await?;
            let n = got.len() as u32;
            if n == 0 {
                return Ok(all);
            }
            if n >= self.page_size {
                self.learn(self.page_size);
            }
            all.extend(got);
            if self.known_full.is_some_and(|full| n < full) {
                return Ok(all);
            }
        }
        Err(HubError::Rejected(format!(
            "{w} still had events after {MAX_PAGES} pages; the server may be ignoring the page parameter"
        )))
    }
}

/// The events of `w` alone (queries are padded); unreadable items have no usable time, so
/// they are kept whatever query served them.
fn inside(w: Window, page: Page) -> Page {
    Page {
        events: page
            .events
            .into_iter()
            .filter(|e| w.contains(e.timestamp()))
            .collect(),
        unreadable: page.unreadable,
    }
}
