//! Reading a window of the audit log as one consistent multiset.
//!
//! The API pages by number with no snapshot: an event that lands while the pages are read
//! shifts the later pages, so a boundary event is read twice (and identical events in one
//! second are real, so a copy cannot be told from a twin). Neither the sort order, the
//! order of events in the same second, the page-size cap nor whether `from`/`to` are
//! inclusive is documented, and a page may come back shorter than the others. So:
//!
//! - a window is taken from a **single page** whenever it fits in one: one response is one
//!   snapshot, whatever the order;
//! - a page is the last one only when it is **less than half** the smallest full page seen:
//!   a server whose page size wanders (by up to half) cannot pass a cut page for the end;
//!   otherwise the window is cut smaller (the caller adapts the span);
//! - a single second with more events than a page is read page by page; the read stands
//!   when its pages agree in size and **no event comes twice** (then, with as many events as
//!   the second holds, none can be missing, whatever the order of ties or a late event did);
//!   with repeats (real twins, or a late event, or pages that disagree about the order of
//!   ties) it stands when a second read **with another page size** gives the same multiset;
//!   failing that, the second is read **one action at a time** (the API's exact filter), and
//!   the parts must add up to the whole; what cannot be settled fails loudly and commits
//!   nothing;
//! - queries are padded by a second on both sides and the answer filtered to `[from, to)`,
//!   so inclusive and exclusive bounds, and sub-second timestamps, all give the same result.

use std::collections::{BTreeMap, BTreeSet};
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
    /// More than fits in one page: cut the window smaller.
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
    /// The smallest page the server has given in full (never more than its real cap).
    known_full: Option<u32>,
    /// How many times a dense second is read looking for one that can be settled.
    max_reads: u32,
    pub requests: u64,
}

/// All the pages of one query, and the size of each (the last one included).
struct Pages {
    page: Page,
    sizes: Vec<u32>,
}

impl Pages {
    /// Whether every page but the last has the same size, and the last no more: pages that
    /// agree about where each one starts.
    fn steady(&self) -> bool {
        match self.sizes.split_last() {
            None => true,
            Some((last, rest)) => {
                rest.iter().all(|s| Some(s) == rest.first()) && rest.first().is_none_or(|f| last <= f)
            }
        }
    }
}

/// Whether `page` can stand as read: no event twice (then, with as many events as were
/// served, none can be missing), or all of them alike (any copy is then the same).
fn settled(page: &Page) -> bool {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for item in fingerprint(page) {
        *counts.entry(item).or_default() += 1;
    }
    counts.len() <= 1 || counts.values().all(|&n| n == 1)
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
    async fn get(
        &mut self,
        w: Window,
        page: u32,
        size: u32,
        action: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<Page, HubError> {
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
            page_size: size,
            action: action.map(str::to_string),
        };
        self.requests += 1;
        self.api.page(self.org, q, budget).await
    }

    /// Reads `w` if it fits in one page.
    pub async fn read(&mut self, w: Window, deadline: Option<Instant>) -> Result<Read, HubError> {
        let first = self.get(w, 1, self.page_size, None, deadline).await?;
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
            // Well short of a full page: the end, even if the page size wanders by up to
            // half. Closer to full: maybe a page cut short; read a smaller window.
            return Ok(if n.saturating_mul(2) < full {
                Read::Complete(inside(w, first))
            } else {
                Read::TooMany
            });
        }
        // A short page from a server whose cap we do not know: it is the end only if the
        // next page is empty. Events are never removed, so if page 2 is empty later, page 1
        // held everything there was when it was read.
        let second = self.get(w, 2, self.page_size, None, deadline).await?;
        if second.is_empty() {
            Ok(Read::Complete(inside(w, first)))
        } else {
            self.learn(n);
            Ok(Read::TooMany)
        }
    }

    /// Reads a window that cannot be cut (one second with more than a page of events). The
    /// whole padded answer is judged, not only the second itself: an event landing in the
    /// padding shifts the pages too.
    pub async fn read_dense(&mut self, w: Window, deadline: Option<Instant>) -> Result<Page, HubError> {
        let mut trouble = String::new();
        for _ in 0..self.max_reads {
            let (whole, verdict) = self.read_agreeing(w, None, deadline).await?;
            match verdict {
                Ok(page) => return Ok(inside(w, page)),
                Err(why) => trouble = why,
            }
            // Pages that disagree about the order of ties (or an event that landed
            // meanwhile): one action at a time, each part settled, adding up to the whole.
            if let Some(whole) = whole {
                match self.read_by_action(w, &whole, deadline).await? {
                    Ok(page) => return Ok(inside(w, page)),
                    Err(why) => trouble = why,
                }
            }
        }
        Err(HubError::Unavailable(format!(
            "{w} (one second holding more than a page of events) could not be read exactly in {} tries: {trouble}; \
             nothing from it was committed, and the next run reads it again",
            self.max_reads
        )))
    }

    /// Every page of the query; it stands if its pages agree in size and it is settled (no
    /// event twice, or all alike), or else if a second read **with another page size** gives
    /// the same multiset (order-dependent paging would not). Returns the first read's page
    /// when its sizes were steady (its count is then right), and the verdict.
    async fn read_agreeing(
        &mut self,
        w: Window,
        action: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<(Option<Page>, Result<Page, String>), HubError> {
        let first = self.read_all_pages(w, action, self.page_size, deadline).await?;
        if !first.steady() {
            return Ok((
                None,
                Err(format!(
                    "its pages came back in sizes that disagree ({:?})",
                    first.sizes
                )),
            ));
        }
        if first.sizes.len() <= 1 || settled(&first.page) {
            return Ok((Some(first.page.clone()), Ok(first.page)));
        }
        let served = self.known_full.unwrap_or(self.page_size).min(self.page_size);
        let other = (served * 2 / 3).max(1);
        let second = self.read_all_pages(w, action, other, deadline).await?;
        let verdict = if second.steady() && fingerprint(&second.page) == fingerprint(&first.page) {
            Ok(second.page)
        } else {
            Err(format!(
                "it was read with pages of {served} and of {other} events and the two disagree (the server orders \
                 events of the same second differently from page to page, or events landed meanwhile)"
            ))
        };
        Ok((Some(first.page), verdict))
    }

    /// The second again, one action at a time. `Err(why)` (inside `Ok`) when a part cannot
    /// be settled or the parts do not add up to `whole`.
    async fn read_by_action(
        &mut self,
        w: Window,
        whole: &Page,
        deadline: Option<Instant>,
    ) -> Result<Result<Page, String>, HubError> {
        if !whole.unreadable.is_empty() || whole.events.iter().any(|e| e.action().is_none()) {
            return Ok(Err(
                "it holds items without an action, which no filter can single out".into(),
            ));
        }
        let actions: BTreeSet<&str> = whole.events.iter().filter_map(|e| e.action()).collect();
        if actions.len() < 2 {
            return Ok(Err(
                "all of its events share one action, so no filter divides them".into(),
            ));
        }
        let mut parts = Page::default();
        for action in actions {
            match self.read_agreeing(w, Some(action), deadline).await?.1 {
                Ok(part) => parts.extend(part),
                Err(why) => return Ok(Err(format!("read for {action} alone, {why}"))),
            }
        }
        if parts.len() != whole.len() {
            return Ok(Err(format!(
                "read one action at a time it holds {} events, read whole {}",
                parts.len(),
                whole.len()
            )));
        }
        Ok(Ok(parts))
    }

    /// Every page of the padded query with pages of `size`, unfiltered by time, up to the
    /// first empty one.
    async fn read_all_pages(
        &mut self,
        w: Window,
        action: Option<&str>,
        size: u32,
        deadline: Option<Instant>,
    ) -> Result<Pages, HubError> {
        let mut all = Pages {
            page: Page::default(),
            sizes: Vec::new(),
        };
        for page in 1..=MAX_PAGES {
            let got = self.get(w, page, size, action, deadline).await?;
            let n = got.len() as u32;
            if n == 0 {
                return Ok(all);
            }
            if n >= size {
                self.learn(size);
            }
            all.sizes.push(n);
            all.page.extend(got);
        }
        Err(HubError::Rejected(format!(
            "{w} still had events after {MAX_PAGES} pages; the server may be ignoring the page parameter"
        )))
    }
}

/// A page as a multiset, for comparing reads.
fn fingerprint(page: &Page) -> Vec<String> {
    let mut v: Vec<String> = page.events.iter().map(canonical).collect();
    v.extend(page.unreadable.iter().map(|u| u.item.to_string()));
    v.sort_unstable();
    v
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
