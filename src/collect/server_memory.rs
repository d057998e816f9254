//! What a process remembers of how one org's server pages, across its runs (a warm Lambda
//! keeps one per org beside the org's client): its page size, and whether it orders events
//! of the same second the same way from one page to the next.
//!
//! Neither is documented. The page size is learned from full pages
//! ([`PageSizeBelief`](super::page_size::PageSizeBelief) reads and feeds it). The tie order is
//! learned from the checks a read makes anyway: a second read again on its own, a window
//! read again with other page boundaries, or a dense second read at another page size, that
//! serves what the pages gave is one agreement per second it covered whose events were not
//! all alike. Identical events in any order are the same multiset, so they cannot show the
//! order; and an order that depends on the page can make a second of two different events,
//! `a` and `x`, come as `a` at the end of one page and `a` again at the start of the next:
//! just like two identical events split by the boundary, with `x` lost. A check of history
//! too old to change that disagrees proves such an order, and the process never trusts it
//! again. A verification never relies on the trust (it checks what the poller assumed).

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Agreements needed, none against, before identical events split by a page boundary in
/// old history are taken as read (see [`ServerMemory::ties_trusted`]).
pub const TIE_AGREEMENTS_TO_TRUST: u32 = 5;

#[derive(Debug, Default)]
pub struct ServerMemory {
    /// The smallest page the server has given in full; 0 while unknown.
    full_page: AtomicU32,
    /// Checks of the tie order that agreed.
    ties_agreed: AtomicU32,
    /// Whether a check on old history disagreed: the order of ties depends on the page.
    ties_unstable: AtomicBool,
}

impl ServerMemory {
    /// The smallest full page remembered, if any.
    pub fn page_hint(&self) -> Option<u32> {
        Some(self.full_page.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    /// Remembers a full page of `events`; the smallest wins (an underestimate costs a
    /// request, an overestimate an event).
    pub fn remember_page(&self, events: u32) {
        let _ = self
            .full_page
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |k| {
                (k == 0 || events < k).then_some(events)
            });
    }

    /// A check found the server ordering ties the same way across pages, in `seconds`
    /// seconds whose events were not all alike (each split told something on its own).
    pub fn ties_agreed(&self, seconds: u32) {
        self.ties_agreed.fetch_add(seconds, Ordering::Relaxed);
    }

    /// A check on history too old to change found two reads ordering ties differently: no
    /// event landed in between, so the order itself moved.
    pub fn ties_disagreed(&self) {
        if !self.ties_unstable.swap(true, Ordering::Relaxed) {
            tracing::debug!("the server orders events of the same second differently from page to page; every split second is read again from now on");
        }
    }

    /// Whether the server has been seen to order ties the same way across pages often
    /// enough, and never otherwise. Then a form that comes in two pages of history too old
    /// to change is two identical events, not one read twice: nothing lands there to shift
    /// the pages, and the order that put them on either side of the boundary holds.
    pub fn ties_trusted(&self) -> bool {
        !self.ties_unstable.load(Ordering::Relaxed)
            && self.ties_agreed.load(Ordering::Relaxed) >= TIE_AGREEMENTS_TO_TRUST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_are_trusted_after_enough_agreements_and_never_after_one_disagreement() {
        let m = ServerMemory::default();
        m.ties_agreed(0);
        m.ties_agreed(TIE_AGREEMENTS_TO_TRUST - 1);
        assert!(!m.ties_trusted());
        m.ties_agreed(1);
        assert!(m.ties_trusted());
        m.ties_disagreed();
        m.ties_agreed(100);
        assert!(!m.ties_trusted());
    }

    #[test]
    fn the_smallest_full_page_is_remembered() {
        let m = ServerMemory::default();
        assert_eq!(m.page_hint(), None);
        m.remember_page(100);
        m.remember_page(20);
        m.remember_page(50);
        assert_eq!(m.page_hint(), Some(20));
    }
}
