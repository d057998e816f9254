//! What a reader believes of the server's page size, learned as it reads.
//!
//! Docker Hub does not document its page-size cap, and a server may give fewer events than
//! asked, or a size that wanders. The reader needs to know a few things: the smallest page
//! the server gave in full (a page less than half of it is surely the last), whether it
//! lowered its own page size to the server's cap in this run, whether the user was told
//! of the cap, and whether pages far past the end come back empty (so probes can be
//! trusted). The smallest full page is also remembered across runs of one process in a
//! [`ServerMemory`]; [`PageSizeBelief`] is the one place that reads and feeds it.

use super::server_memory::ServerMemory;

/// What pages far past the end of a window have shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probes {
    /// Not tried yet.
    Untried,
    /// A page far past the end came back empty, as probes assume.
    Trusted,
    /// The server answered a page past the end with an error, or with events: no more
    /// probes.
    Refused,
}

/// The page size a reader asks for, and what it has learned of the server's.
#[derive(Debug, Clone)]
pub struct PageSizeBelief {
    /// What we ask for.
    asked: u32,
    /// The smallest page the server has given in full (never more than its real cap).
    full: Option<u32>,
    /// Whether `asked` was lowered to what the server gives, in this run (each run learns
    /// it again: a late event can fake a cap once, and it must not stay). How far a
    /// server's page size may wander is known only relative to what it gives when asked for
    /// more: asked for exactly that, a short page proves nothing, and only an empty next
    /// page ends a read.
    stepped_down: bool,
    /// Whether the user was told that the server gives fewer than asked.
    warned_cap: bool,
    probes: Probes,
}

impl PageSizeBelief {
    /// Asking for pages of `asked`, starting from what `memory` holds of the server's page
    /// size (from an earlier run of the process).
    pub fn new(memory: &ServerMemory, asked: u32) -> Self {
        PageSizeBelief {
            asked,
            full: memory.page_hint().map(|n| n.min(asked)),
            stepped_down: false,
            warned_cap: false,
            probes: Probes::Untried,
        }
    }

    /// The page size asked for.
    pub fn asked(&self) -> u32 {
        self.asked
    }

    /// The server gave a page of `full` events in full. Keeps the smallest (underestimating
    /// only costs extra requests, overestimating would take a full page for the last one),
    /// and has `memory` keep it for later runs.
    pub fn learn(&mut self, memory: &ServerMemory, full: u32) {
        let known = self.full.map_or(full, |k| k.min(full));
        self.full = Some(known);
        memory.remember_page(known);
    }

    /// Whether a page of `n` events, asked with pages of `size`, is surely the last one:
    /// less than half the smallest full page seen, from a server whose page size this run
    /// has not had to step down to.
    pub fn surely_last(&self, n: u32, size: u32) -> bool {
        n < size && !self.stepped_down && self.full.is_some_and(|full| n.saturating_mul(2) < full.min(size))
    }

    /// Whether a short page after pages all as large as `size` may be taken for the last
    /// one: only from a server never seen to give fewer than asked on a page that was not
    /// its last (a cap, or a size that wanders).
    pub fn trusts_whole_pages(&self, size: u32) -> bool {
        !self.stepped_down && self.full.is_some_and(|k| k >= size)
    }

    /// The page size the server gives, as far as known (what probes ask for).
    pub fn probe_size(&self) -> u32 {
        self.full.unwrap_or(self.asked).max(1)
    }

    /// The page size the server serves when asked for ours.
    pub fn served(&self) -> u32 {
        self.full.unwrap_or(self.asked).min(self.asked)
    }

    /// Whether this run may still lower its page size to the server's cap (once per run).
    pub fn may_step_down(&self) -> bool {
        !self.stepped_down
    }

    /// Asks for pages of `n` from now on, the server's cap as this run found it.
    pub fn step_down(&mut self, n: u32) {
        self.asked = n;
        self.stepped_down = true;
    }

    /// Whether the user is yet to be told that the server gives fewer than asked: true
    /// once, then false.
    pub fn warn_cap_once(&mut self) -> bool {
        !std::mem::replace(&mut self.warned_cap, true)
    }

    /// Whether probes are off for good (the server refused a page past the end, or
    /// answered one far past it with events).
    pub fn probes_refused(&self) -> bool {
        self.probes == Probes::Refused
    }

    /// Whether a page far past the end was seen to come back empty.
    pub fn probes_trusted(&self) -> bool {
        self.probes == Probes::Trusted
    }

    pub fn refuse_probes(&mut self) {
        self.probes = Probes::Refused;
    }

    pub fn trust_probes(&mut self) {
        self.probes = Probes::Trusted;
    }
}
