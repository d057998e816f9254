//! Reading a window of the audit log as one consistent multiset.
//!
//! The API pages by number with no snapshot: an event that lands while the pages are read
//! shifts the later pages, so a boundary event is read twice (and identical events in one
//! second are real, so a copy cannot be told from a twin). Neither the sort order, the
//! order of events in the same second, the page-size cap nor whether `from`/`to` are
//! inclusive is documented, and a page may come back shorter than the others. So:
//!
//! - a window that fits in **one page** is taken from that page: one response is one
//!   snapshot, whatever the order;
//! - a page is the last one only when it is **less than half** the smallest full page seen
//!   (in this run, or in an earlier run of the process: [`ServerMemory`](super::server_memory::ServerMemory)): a server whose
//!   page size wanders (by up to half) cannot pass a cut page for the end; otherwise the
//!   next page must come back empty;
//! - a window with more than a page is **paged through** (up to [`ReadLimits`], the bound
//!   on what one read holds, in events and in bytes). The read stands when its pages agree in size and **no event
//!   comes in two pages**. Events are never removed, so an event that lands meanwhile can
//!   only push others to later pages, where they are read again; and pages that disagree
//!   about the order of ties put the same event in two pages too. With neither, every
//!   event that was there is read exactly once (identical copies inside one page are real:
//!   one page is one snapshot);
//! - when some event does come in two pages (a real twin split by a page boundary, a late
//!   event, unstable ties), only **those seconds** are read again on their own, each to one
//!   consistent multiset, and put in place of what the pages gave; each must hold as many
//!   events as the pages gave of it (an event read twice because a page started early
//!   leaves it short), or the window is cut smaller;
//! - in **history too old to change** (older than the run's end less its overlap, and an hour for clock skew: nothing
//!   lands there to shift the pages), such a form is taken for two identical events once the
//!   server has shown that it orders ties steadily ([`ServerMemory`](super::server_memory::ServerMemory)
//!   says how that is learned, and why identical events split by a boundary cannot show it);
//! - where reading each second costs more requests than reading the window again up to
//!   those pages (a burst, whose identical events straddle most boundaries), the window is
//!   read again once, **with pages one event smaller** while the tie order is not known and
//!   the same pages once it is: if it serves the same sequence, the first read stands
//!   (`Fetcher::served_again` says why that is exact); if not, each second is read on its
//!   own as above;
//! - a single second with more events than a page that cannot be settled that way is read
//!   again **with another page size**, and failing that **one action at a time** (the
//!   API's exact filter), the parts adding up to the whole; what cannot be settled fails
//!   loudly and commits nothing;
//! - queries are padded by a second on both sides and the answer filtered to `[from, to)`,
//!   so inclusive and exclusive bounds, and sub-second timestamps, all give the same result
//!   (paged windows make the padding's cost a few events per window).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use super::page_size::PageSizeBelief;
use super::server_memory::ServerMemory;
use crate::event::id::canonical;
use crate::event::HubEvent;
use crate::ports::{AuditLog, HubError, Page, PageQuery};
use crate::types::{floor_second, Org, Window};

/// The answer to "read this window".
#[derive(Debug)]
pub enum Read {
    /// Every event of the window (those inside `[from, to)` only), from one consistent
    /// read, and the unreadable items served with them.
    Complete(Page),
    /// More than one read may hold, or pages that could not be settled: cut the window
    /// smaller.
    TooMany,
}

/// The most pages read for one query before giving up: guards against a server that
/// ignores `page` and repeats itself.
const MAX_PAGES: u32 = 1000;

/// The most seconds read again to settle one paged window (or one per ten of its pages,
/// when that is more: twins split by a page boundary grow with the boundaries, and a small
/// page cap makes many); more means the server's pages are not to be trusted at this size,
/// and the window is cut smaller.
const MAX_SECONDS_AGAIN: usize = 16;

/// How many times a dense second is read looking for a read that can be settled.
const MAX_DENSE_READS: u32 = 5;

/// Whether pages read of a window stand as one consistent multiset.
#[derive(Debug)]
enum Settled {
    /// They do: its contents.
    Page(Page),
    /// They do not, and why (the window is cut smaller, or read another way).
    Unsettled(String),
}

/// A dense second read whole, and judged.
struct AgreeingRead {
    /// The first read's contents when its pages were steady (its count is then right).
    whole: Option<Page>,
    verdict: Settled,
}

pub struct Fetcher<'a, A: AuditLog + ?Sized> {
    api: &'a A,
    org: &'a Org,
    /// What the process remembers of the server's page size, across runs.
    memory: &'a ServerMemory,
    /// What we ask for, and what we learned of the server's page size.
    page_size: PageSizeBelief,
    /// What one read holds at most before it stands (the bound on its memory).
    limits: ReadLimits,
    /// Before this instant nothing lands any more (the run's end less its overlap and a skew margin), so a
    /// window wholly before it cannot shift while it is paged. `None`: no window is.
    settled_before: Option<DateTime<Utc>>,
    /// Whether what the server has shown of its tie order may spare a check (a
    /// verification, which checks what the poller assumed, spares none).
    trust_ties: bool,
    pub requests: u64,
}

/// What one read of a window may hold: events, and the bytes they take. A window over
/// either is cut smaller; a single second over either fails loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub events: usize,
    pub bytes: usize,
}

impl ReadLimits {
    /// How many events' worth `events` taking `bytes` are: the larger of their count and
    /// their bytes scaled to the event limit (for sizing windows on either bound).
    pub fn weight(&self, events: usize, bytes: usize) -> usize {
        let by_bytes = (bytes as u128 * self.events as u128 / self.bytes.max(1) as u128) as usize;
        events.max(by_bytes)
    }
}

/// The pages of one query as served, the last one included.
#[derive(Default)]
struct Pages(Vec<Page>);

impl Pages {
    fn sizes(&self) -> Vec<usize> {
        self.0.iter().map(Page::len).collect()
    }

    /// Whether every page but the last holds all `size` events asked for, and the last no
    /// more. A server whose page size wanders takes a page's offset from that page's own
    /// size: a last page cut shorter then starts early (an event comes twice, which is
    /// seen), never late (an event skipped, which would not be), as long as no page before
    /// it was cut, which a page as large as asked for cannot have been.
    fn whole(&self, size: u32) -> bool {
        match self.0.split_last() {
            None => true,
            Some((last, rest)) => {
                rest.iter().all(|p| p.len() == size as usize) && last.len() <= size as usize
            }
        }
    }

    /// Whether every page but the last has the same size, and the last no more: pages that
    /// agree about where each one starts (for a dense second, which cannot be cut smaller,
    /// on a server that gives fewer than asked).
    fn steady(&self) -> bool {
        match self.0.split_last() {
            None => true,
            Some((last, rest)) => {
                let first = rest.first().map(Page::len);
                rest.iter().all(|p| Some(p.len()) == first) && first.is_none_or(|f| last.len() <= f)
            }
        }
    }

    fn into_page(self) -> Page {
        let mut all = Page::default();
        for p in self.0 {
            all.extend(p);
        }
        all
    }

    /// How many of `seconds` hold events that are not all alike (so a check of how its
    /// pages split them tells something of the server's tie order).
    fn splits_different_ties(&self, seconds: &BTreeSet<DateTime<Utc>>) -> u32 {
        let mut first: BTreeMap<DateTime<Utc>, (&HubEvent, bool)> = BTreeMap::new();
        for e in self.0.iter().flat_map(|p| p.events.iter()) {
            let s = floor_second(e.timestamp());
            if !seconds.contains(&s) {
                continue;
            }
            let (f, differ) = first.entry(s).or_insert((e, false));
            *differ |= f.timestamp() != e.timestamp() || !f.same_but_timestamp(e);
        }
        first.values().filter(|(_, differ)| *differ).count() as u32
    }

    /// The index of the last page holding an event of one of `seconds`.
    fn last_page_with(&self, seconds: &BTreeSet<DateTime<Utc>>) -> Option<usize> {
        self.0.iter().rposition(|p| {
            p.events
                .iter()
                .any(|e| seconds.contains(&floor_second(e.timestamp())))
        })
    }

    /// About what reading each of `seconds` on its own costs: the pages of its padded query
    /// (the second and one on each side, as these pages hold them), three reads of them when
    /// they are more than one page (a dense second is read again to be checked).
    fn cost_of_seconds(&self, seconds: &BTreeSet<DateTime<Utc>>, size: u32) -> usize {
        seconds
            .iter()
            .map(|s| {
                let (from, to) = (*s - Duration::seconds(1), *s + Duration::seconds(2));
                let near = self
                    .0
                    .iter()
                    .flat_map(|p| p.events.iter())
                    .filter(|e| (from..to).contains(&e.timestamp()))
                    .count();
                let p = near.div_ceil(size.max(1) as usize).max(1);
                if p > 1 {
                    3 * p
                } else {
                    p
                }
            })
            .sum()
    }

    /// The seconds in which one event comes in two pages (by its canonical form: a twin
    /// split by a page boundary looks the same). `Err` when it is an unreadable item, which
    /// has no second to read again.
    fn repeated_seconds(&self) -> Result<BTreeSet<DateTime<Utc>>, String> {
        for (i, p) in self.0.iter().enumerate() {
            for u in &p.unreadable {
                if self.0[i + 1..]
                    .iter()
                    .any(|q| q.unreadable.iter().any(|v| v.item == u.item))
                {
                    return Err("an unreadable item came in two of its pages".into());
                }
            }
        }
        // Only events of the same instant can be the same event: sort by time, compare
        // within each instant across pages.
        let mut by_time: Vec<(DateTime<Utc>, usize, &HubEvent)> = self
            .0
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.events.iter().map(move |e| (e.timestamp(), i, e)))
            .collect();
        by_time.sort_unstable_by_key(|(t, i, _)| (*t, *i));
        let mut seconds = BTreeSet::new();
        for group in by_time.chunk_by(|a, b| a.0 == b.0) {
            let (first_page, last_page) = (group[0].1, group[group.len() - 1].1);
            if first_page == last_page {
                continue;
            }
            let repeated = group.iter().enumerate().any(|(k, (_, i, e))| {
                group[k + 1..]
                    .iter()
                    .any(|(_, j, f)| i != j && e.same_but_timestamp(f))
            });
            if repeated {
                seconds.insert(floor_second(group[0].0));
            }
        }
        Ok(seconds)
    }
}

impl<'a, A: AuditLog + ?Sized> Fetcher<'a, A> {
    /// A fetcher asking for pages of `page_size` and holding at most `limits` in one read.
    /// It starts from what `memory` holds of the server's page size (earlier runs).
    pub fn new(
        api: &'a A,
        org: &'a Org,
        page_size: u32,
        limits: ReadLimits,
        memory: &'a ServerMemory,
    ) -> Self {
        Fetcher {
            api,
            org,
            memory,
            page_size: PageSizeBelief::new(memory, page_size),
            limits,
            settled_before: None,
            trust_ties: true,
            requests: 0,
        }
    }

    /// Takes windows wholly before `t` for history too old to change (`None`: none).
    pub fn settle_before(&mut self, t: Option<DateTime<Utc>>) {
        self.settled_before = t;
    }

    /// Checks every split of identical events, whatever the server has shown of its tie
    /// order (what it learns is still remembered).
    pub fn check_every_split(&mut self) {
        self.trust_ties = false;
    }

    /// Whether the server may be taken to order ties the same way from page to page.
    fn ties_trusted(&self) -> bool {
        self.trust_ties && self.memory.ties_trusted()
    }

    /// Whether `w`, padded as it is asked, lies wholly in history too old to change.
    fn settled(&self, w: Window) -> bool {
        self.settled_before
            .is_some_and(|t| w.to + Duration::seconds(1) <= t)
    }

    /// Whether a form that came in two pages of `w` is surely two identical events: `w` is
    /// history too old to change (nothing lands to shift its pages) and the server has
    /// been seen to order ties the same way from page to page.
    fn twins_surely(&self, w: Window) -> bool {
        self.settled(w) && self.ties_trusted()
    }

    /// Records what a check of the tie order found. Disagreement on history too old to
    /// change (no event landed in between) proves the order moves. Agreement teaches trust
    /// only when the check could have failed: the events of a second split by a boundary
    /// were not all alike (identical events in any order are the same multiset, and say
    /// nothing of how the server orders different ones).
    /// `telling`: how many such seconds the check covered (each split on its own).
    fn tie_check(&self, w: Window, agreed: bool, telling: u32) {
        if !agreed && self.settled(w) {
            self.memory.ties_disagreed();
        } else if agreed {
            self.memory.ties_agreed(telling);
        }
    }

    /// The page size asked for.
    pub fn page_size(&self) -> u32 {
        self.page_size.asked()
    }

    /// The server gave a page of `full` events in full.
    fn learn(&mut self, full: u32) {
        self.page_size.learn(self.memory, full);
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

    /// Whether `w` surely holds more than `events` events: a page past them, asked at the
    /// server's full page size (or ours, before it is known), is not empty. One request
    /// (two while the server's page cap is unknown), where a read of a window far too large
    /// costs up to `limits.events / page` of them before it overflows. Only a hint for sizing (the
    /// read itself still checks): `false` when unsure, and the probe stops for good on a
    /// server that refuses pages past the end.
    ///
    /// Page `k` served with `m` events proves at least `k * m` events, whatever the
    /// server's real page size: if it serves `m` per page, pages 1..=k are full; if it
    /// serves more, `m` is the last page's rest after `k - 1` larger ones. A cap below our
    /// size (not yet learned) makes page `k` start early, so that bound, not `k`, decides.
    pub async fn holds_more_than(
        &mut self,
        w: Window,
        events: usize,
        deadline: Option<Instant>,
    ) -> Result<bool, HubError> {
        if self.page_size.probes_refused() {
            return Ok(false);
        }
        let size = self.page_size.probe_size();
        let proves = |page: u32, served: usize| (page as usize).saturating_mul(served) > events;
        let page = u32::try_from(events / size as usize + 1).unwrap_or(u32::MAX);
        let mut beyond = match self.probe_page(w, page, size, deadline).await? {
            None | Some(0) => return Ok(false),
            Some(m) if proves(page, m) => true,
            // Fewer than asked: the end of the window, or a cap below `size`. Ask again
            // past `events` at `m` per page; still unproven means unsure.
            Some(m) => {
                let again = u32::try_from(events / m + 2).unwrap_or(u32::MAX);
                match self.probe_page(w, again, size, deadline).await? {
                    Some(m2) => proves(again, m2),
                    None => return Ok(false),
                }
            }
        };
        if !beyond || self.page_size.probes_trusted() {
            return Ok(beyond);
        }
        // Docker Hub does not document what a page past the end holds. A server that
        // answers it with the last page (not an empty one) would make every probe say
        // "more": once, a page no window reaches must come back empty.
        match self.probe_page(w, 1_000_000, size, deadline).await? {
            Some(0) => self.page_size.trust_probes(),
            _ => {
                tracing::debug!(window = %w, "a page far past the end was not empty; no more probes");
                self.page_size.refuse_probes();
                beyond = false;
            }
        }
        Ok(beyond)
    }

    /// How many events page `page` of `w` holds; `None` (and no more probes) when the
    /// server refuses such a page.
    async fn probe_page(
        &mut self,
        w: Window,
        page: u32,
        size: u32,
        deadline: Option<Instant>,
    ) -> Result<Option<usize>, HubError> {
        match self.get(w, page, size, None, deadline).await {
            Ok(p) => Ok(Some(p.len())),
            Err(HubError::Rejected(why)) => {
                tracing::debug!(window = %w, page, %why, "the server refused a page past the end; no more probes");
                self.page_size.refuse_probes();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Reads `w`: from one page when it fits, else page by page (see the module doc).
    pub async fn read(&mut self, w: Window, deadline: Option<Instant>) -> Result<Read, HubError> {
        self.read_guarded(w, None, deadline).await
    }

    /// [`Fetcher::read`], and with `guard`, a window whose first page comes back full is
    /// probed before it is paged through: `TooMany` when it holds more than `guard` events
    /// (one probe, where reading it could cost `guard / page` requests before it
    /// overflows). An empty or short first page costs no probe.
    pub async fn read_guarded(
        &mut self,
        w: Window,
        guard: Option<usize>,
        deadline: Option<Instant>,
    ) -> Result<Read, HubError> {
        let size = self.page_size.asked();
        let first = self.get(w, 1, size, None, deadline).await?;
        let n = first.len() as u32;
        if let Some(target) = guard.filter(|_| n >= size) {
            if self.holds_more_than(w, target, deadline).await? {
                tracing::debug!(window = %w, guard = target, "probed: more events than that; cutting it");
                return Ok(Read::TooMany);
            }
        }
        if n == 0 {
            return Ok(Read::Complete(Page::default()));
        }
        if self.page_size.surely_last(n, size) {
            return Ok(Read::Complete(inside(w, first)));
        }
        if n < size {
            // Short, but maybe not the last: it is if the next page is empty, asked with
            // pages of the size page 1 came in (so it starts right after page 1's events,
            // or earlier if the server cuts it, never later). Events are never removed, so
            // if that page is empty later, page 1 held all there was when it was read. If
            // not, the server gives fewer than asked (a cap, or a size that wanders).
            let second = self.get(w, 2, n, None, deadline).await?;
            if second.is_empty() {
                return Ok(Read::Complete(inside(w, first)));
            }
            self.learn(n);
            // Page 2, asked at `n`, came back full, and page 1 asked again gives `n` again
            // (not an event that landed meanwhile): the server looks capped at `n`. Ask for
            // what it gives, once per run: its pages are then as large as asked, and paging
            // keeps its checks. A server that then gives fewer again (a size that wanders)
            // gets windows of one page, as before.
            let step_down = self.page_size.may_step_down()
                && second.len() == n as usize
                && self.get(w, 1, size, None, deadline).await?.len() == n as usize;
            if self.page_size.warn_cap_once() {
                let then = if step_down {
                    format!("asking for {n} from now on (set the page size to {n} to skip this check)")
                } else {
                    format!(
                        "windows are read one page each, which costs more requests: if it caps pages at {n}, \
                         set the page size to {n}"
                    )
                };
                tracing::warn!(
                    served = n,
                    asked = size,
                    "Docker Hub served a page of {n} events where {size} were asked and more followed; {then}"
                );
            }
            if !step_down {
                return Ok(Read::TooMany);
            }
            self.page_size.step_down(n);
            return Box::pin(self.read(w, deadline)).await;
        }
        self.learn(size);
        let Some(pages) = self.page_on(w, None, size, first, true, deadline).await? else {
            return Ok(Read::TooMany);
        };
        match self.settle(w, pages, size, deadline).await? {
            Settled::Page(page) => Ok(Read::Complete(inside(w, page))),
            Settled::Unsettled(why) => {
                tracing::debug!(window = %w, %why, "reading the window again in smaller parts");
                Ok(Read::TooMany)
            }
        }
    }

    /// Whether paged-through `pages` stand as read; where an event came in two pages, its
    /// second is read again on its own and put in place of what the pages gave, and must
    /// hold as many events as they gave of it. `Unsettled(why)` when the pages cannot be
    /// settled that way.
    async fn settle(
        &mut self,
        w: Window,
        pages: Pages,
        size: u32,
        deadline: Option<Instant>,
    ) -> Result<Settled, HubError> {
        if !pages.whole(size) {
            return Ok(Settled::Unsettled(format!(
                "its pages came back in sizes that disagree ({:?})",
                pages.sizes()
            )));
        }
        let again = match pages.repeated_seconds() {
            Ok(again) => again,
            Err(why) => return Ok(Settled::Unsettled(why)),
        };
        if again.is_empty() {
            return Ok(Settled::Page(pages.into_page()));
        }
        if self.twins_surely(w) {
            tracing::debug!(window = %w, seconds = again.len(),
                "identical events split by a page boundary in history too old to change, from a server seen to order them steadily: taken as read");
            return Ok(Settled::Page(pages.into_page()));
        }
        // Where reading the window again up to those pages costs fewer requests than reading
        // each such second on its own (a burst, where twins straddle most page boundaries and
        // each second's padded query takes pages of its own), it is read again with other
        // page boundaries, and stands if it serves the same sequence (see `served_again`).
        if let Some(last) = pages.last_page_with(&again) {
            let each_second = if w.len() <= Duration::seconds(1) {
                usize::MAX
            } else {
                pages.cost_of_seconds(&again, size)
            };
            let events: usize = pages.0.iter().take(last + 1).map(Page::len).sum();
            let again_costs = events.div_ceil(self.size_again(size).max(1) as usize).max(1);
            if again_costs < each_second && self.served_again(w, &pages, &again, last, size, deadline).await?
            {
                return Ok(Settled::Page(pages.into_page()));
            }
        }
        if w.len() <= Duration::seconds(1) {
            return Ok(Settled::Unsettled("an event came in two of its pages".into()));
        }
        if again.len() > MAX_SECONDS_AGAIN.max(pages.0.len() / 10) {
            return Ok(Settled::Unsettled(format!(
                "events came in two pages in {} seconds",
                again.len()
            )));
        }
        let mut page = pages.into_page();
        if !page.unreadable.is_empty() {
            return Ok(Settled::Unsettled(
                "it holds unreadable items, which no second can single out".into(),
            ));
        }
        tracing::debug!(window = %w, seconds = again.len(), "reading again the seconds in which an event came in two pages");
        let (mut kept, mut served) = (Vec::with_capacity(page.events.len()), BTreeMap::new());
        for e in page.events {
            let s = floor_second(e.timestamp());
            if again.contains(&s) {
                served.entry(s).or_insert_with(Page::default).events.push(e);
            } else {
                kept.push(e);
            }
        }
        page.events = kept;
        for (s, gave) in served {
            let n = gave.len();
            let second = Window::new(s, s + Duration::seconds(1));
            let part = match Box::pin(self.read(second, deadline)).await? {
                Read::Complete(part) => part,
                Read::TooMany => self.read_dense(second, deadline).await?,
            };
            // Twins split by a page boundary, or ties the pages ordered differently: the
            // second holds as many events as its pages gave. An event read twice because a
            // page started early (a late event, a cut page) leaves it one short.
            if part.len() != n {
                return Ok(Settled::Unsettled(format!(
                    "{second} read on its own holds {} events where the pages gave {n}",
                    part.len()
                )));
            }
            // The same events: the pages split identical ones. Others in their place: one
            // came twice and one not at all, which is the order moving (or, in history young
            // enough, an event landing); what the second alone served is kept either way.
            let agreed = fingerprint(&[&gave]) == fingerprint(&[&part]);
            self.tie_check(w, agreed, u32::from(!all_alike(&gave)));
            page.extend(part);
        }
        Ok(Settled::Page(page))
    }

    /// Whether `w` (whose pages repeat a form in the seconds `again`) read again from its
    /// start, with pages one event smaller than `size` (the
    /// same size once the server is trusted to order ties steadily: [`Fetcher::size_again`]),
    /// serves the events of pages `1..=last + 1` of `pages` as the same sequence, stopping at
    /// the first difference. `false` too for a read holding unreadable items (they have no
    /// place in a sequence of events) or a page size that cannot be made smaller.
    ///
    /// Why that makes the first read exact, when an event came in two of its pages: events
    /// are never removed, so anything that moved the pages while they were read (an event
    /// landing in the window; ties served in another order from one page to the next)
    /// pushed an event across a boundary read after it, where it came twice: a repeated
    /// form, no later than page `last + 1`. The second read, after it, serves what moved in
    /// another place, or in another order; and with other boundaries, an order that depends
    /// on the page asked for (as a database's can, for ties under LIMIT and OFFSET) shows
    /// too. Identical events changing places leave the multiset as it is. The same sequence
    /// from both: one sequence cut at fixed boundaries, each event read once, a form in two
    /// pages two identical events. Bounds inclusive or not change nothing: the query is
    /// padded and the answer filtered, as always.
    async fn served_again(
        &mut self,
        w: Window,
        pages: &Pages,
        again: &BTreeSet<DateTime<Utc>>,
        last: usize,
        size: u32,
        deadline: Option<Instant>,
    ) -> Result<bool, HubError> {
        let other = self.size_again(size);
        if other == 0 || pages.0.iter().any(|p| !p.unreadable.is_empty()) {
            return Ok(false);
        }
        let want: Vec<&HubEvent> = pages
            .0
            .iter()
            .take(last + 1)
            .flat_map(|p| p.events.iter())
            .collect();
        let mut checked = 0;
        let mut number = 1;
        let mut differs = false;
        while checked < want.len() && !differs {
            let page = self.get(w, number, other, None, deadline).await?;
            if !page.unreadable.is_empty() {
                return Ok(false);
            }
            let full = page.events.len() >= other as usize;
            for e in page.events.iter().take(want.len() - checked) {
                if e != want[checked] {
                    tracing::debug!(window = %w, page = number, "read again, the window came back in another order");
                    differs = true;
                    break;
                }
                checked += 1;
            }
            if !full || number >= MAX_PAGES {
                break;
            }
            number += 1;
        }
        let agreed = !differs && checked == want.len();
        // Only other boundaries say anything of the tie order.
        if other != size && (agreed || differs) {
            self.tie_check(w, agreed, pages.splits_different_ties(again));
        }
        Ok(agreed)
    }

    /// The page size a window is read again with to check it: one event smaller, so its
    /// boundaries fall elsewhere and an order that depends on the page shows; the same
    /// size once the server is trusted to order ties steadily, where only events landing
    /// meanwhile are left to show (and they show at any size).
    fn size_again(&self, size: u32) -> u32 {
        if self.ties_trusted() {
            size
        } else {
            size.saturating_sub(1)
        }
    }

    /// Reads a window that cannot be cut (one second with more than a page of events). The
    /// whole padded answer is judged, not only the second itself: an event landing in the
    /// padding shifts the pages too.
    pub async fn read_dense(&mut self, w: Window, deadline: Option<Instant>) -> Result<Page, HubError> {
        let mut trouble = String::new();
        for _ in 0..MAX_DENSE_READS {
            let AgreeingRead { whole, verdict } = self.read_agreeing(w, None, deadline).await?;
            match verdict {
                Settled::Page(page) => return Ok(inside(w, page)),
                Settled::Unsettled(why) => trouble = why,
            }
            // Pages that disagree about the order of ties (or an event that landed
            // meanwhile): one action at a time, each part settled, adding up to the whole.
            if let Some(whole) = whole {
                match self.read_by_action(w, &whole, deadline).await? {
                    Settled::Page(page) => return Ok(inside(w, page)),
                    Settled::Unsettled(why) => trouble = why,
                }
            }
        }
        Err(HubError::Unavailable(format!(
            "{w} (one second holding more than a page of events) could not be read exactly in {} tries: {trouble}; \
             nothing from it was committed, and the next run reads it again",
            MAX_DENSE_READS
        )))
    }

    /// Every page of the query; it stands if its pages agree in size and no event comes in
    /// two of them (or all are alike), or else if a second read **with another page size**
    /// gives the same multiset (order-dependent paging would not). Returns the first read's
    /// page when its sizes were steady (its count is then right), and the verdict.
    async fn read_agreeing(
        &mut self,
        w: Window,
        action: Option<&str>,
        deadline: Option<Instant>,
    ) -> Result<AgreeingRead, HubError> {
        let first = self
            .read_all_pages(w, action, self.page_size.asked(), deadline)
            .await?;
        if !first.steady() {
            return Ok(AgreeingRead {
                whole: None,
                verdict: Settled::Unsettled(format!(
                    "its pages came back in sizes that disagree ({:?})",
                    first.sizes()
                )),
            });
        }
        let settled = first.0.len() <= 1
            || first
                .repeated_seconds()
                .is_ok_and(|s| s.is_empty() || self.twins_surely(w));
        let first = first.into_page();
        if settled || all_alike(&first) {
            return Ok(AgreeingRead {
                whole: Some(first.clone()),
                verdict: Settled::Page(first),
            });
        }
        let served = self.page_size.served();
        let other = (served * 2 / 3).max(1);
        let second = self.read_all_pages(w, action, other, deadline).await?;
        let same = fingerprint(&second.0.iter().collect::<Vec<_>>()) == fingerprint(&[&first]);
        if second.steady() {
            // Read again only when not all alike: telling.
            self.tie_check(w, same, 1);
        }
        let verdict = if second.steady() && same {
            Settled::Page(second.into_page())
        } else {
            Settled::Unsettled(format!(
                "it was read with pages of {served} and of {other} events and the two disagree (the server orders \
                 events of the same second differently from page to page, or events landed meanwhile)"
            ))
        };
        Ok(AgreeingRead {
            whole: Some(first),
            verdict,
        })
    }

    /// The second again, one action at a time. `Unsettled(why)` when a part cannot be
    /// settled or the parts do not add up to `whole`.
    async fn read_by_action(
        &mut self,
        w: Window,
        whole: &Page,
        deadline: Option<Instant>,
    ) -> Result<Settled, HubError> {
        if !whole.unreadable.is_empty() || whole.events.iter().any(|e| e.action().is_none()) {
            return Ok(Settled::Unsettled(
                "it holds items without an action, which no filter can single out".into(),
            ));
        }
        let actions: BTreeSet<&str> = whole.events.iter().filter_map(|e| e.action()).collect();
        if actions.len() < 2 {
            return Ok(Settled::Unsettled(
                "all of its events share one action, so no filter divides them".into(),
            ));
        }
        let mut parts = Page::default();
        for action in actions {
            match self.read_agreeing(w, Some(action), deadline).await?.verdict {
                Settled::Page(part) => parts.extend(part),
                Settled::Unsettled(why) => {
                    return Ok(Settled::Unsettled(format!("read for {action} alone, {why}")))
                }
            }
        }
        if parts.len() != whole.len() {
            return Ok(Settled::Unsettled(format!(
                "read one action at a time it holds {} events, read whole {}",
                parts.len(),
                whole.len()
            )));
        }
        Ok(Settled::Page(parts))
    }

    /// Every page of the padded query with pages of `size`, unfiltered by time. More than
    /// one read may hold is an error: a second that dense needs a larger bound.
    async fn read_all_pages(
        &mut self,
        w: Window,
        action: Option<&str>,
        size: u32,
        deadline: Option<Instant>,
    ) -> Result<Pages, HubError> {
        let first = self.get(w, 1, size, action, deadline).await?;
        match self.page_on(w, action, size, first, false, deadline).await? {
            Some(pages) => Ok(pages),
            None => Err(HubError::Rejected(format!(
                "{w} holds more than {} events or {} MiB of events in one second, more than one read may \
                 hold; raise --max-read-events or --max-read-bytes (and the function's memory: what one read \
                 holds is held in memory)",
                self.limits.events,
                self.limits.bytes >> 20
            ))),
        }
    }

    /// The pages of the padded query from page 1 (`first`, already read) on, up to the
    /// last one: a page surely short of a full one, or else an empty page. `None` once they
    /// hold more than the read limits (events or bytes).
    ///
    /// `whole`: the pages must all hold `size` but the last (see [`Pages::whole`]). Then a
    /// short page after whole ones is the last, whatever its size: either the list ended
    /// there, or the server cut it, and a cut page after whole ones starts early, so an
    /// event comes in two pages and [`Fetcher::settle`] refuses the read.
    async fn page_on(
        &mut self,
        w: Window,
        action: Option<&str>,
        size: u32,
        first: Page,
        whole: bool,
        deadline: Option<Instant>,
    ) -> Result<Option<Pages>, HubError> {
        let mut pages = Pages::default();
        let (mut held, mut held_bytes) = (0, 0);
        let mut got = first;
        // Enough pages for a whole read at this size, however small the server's pages.
        let max_pages =
            MAX_PAGES.max(u32::try_from(self.limits.events / size.max(1) as usize + 1).unwrap_or(u32::MAX));
        for number in 2..=max_pages.saturating_add(1) {
            let n = got.len();
            if n == 0 {
                return Ok(Some(pages));
            }
            // Only pages of the size asked for the run teach the cap: a smaller one asked to
            // check a dense second would lower it for nothing.
            if n as u32 >= size && size == self.page_size.asked() {
                self.learn(size);
            }
            held += n;
            held_bytes += got.bytes();
            if held > self.limits.events || held_bytes > self.limits.bytes {
                return Ok(None);
            }
            // Only from a server never seen to give fewer than asked on a page that was not
            // its last (a cap, or a size that wanders): otherwise the next page must be empty.
            let after_whole = whole
                && number > 2
                && self.page_size.trusts_whole_pages(size)
                && pages.0.iter().all(|p| p.len() == size as usize);
            pages.0.push(got);
            if self.page_size.surely_last(n as u32, size) || (after_whole && (n as u32) < size) {
                return Ok(Some(pages));
            }
            if number > max_pages {
                break;
            }
            got = self.get(w, number, size, action, deadline).await?;
        }
        Err(HubError::Rejected(format!(
            "{w} still had events after {max_pages} pages; the server may be ignoring the page parameter"
        )))
    }
}

/// Whether every item of `page` is the same (any copy is then as good as another).
fn all_alike(page: &Page) -> bool {
    page.unreadable.is_empty()
        && page
            .events
            .windows(2)
            .all(|p| p[0].timestamp() == p[1].timestamp() && p[0].same_but_timestamp(&p[1]))
}

/// Pages as one multiset, for comparing reads.
fn fingerprint(pages: &[&Page]) -> Vec<String> {
    let mut v: Vec<String> = pages
        .iter()
        .flat_map(|p| p.events.iter().map(canonical))
        .collect();
    v.extend(
        pages
            .iter()
            .flat_map(|p| p.unreadable.iter().map(|u| u.item.to_string())),
    );
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
