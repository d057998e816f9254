//! An emulator of Docker Hub's audit-log API (API reference §1-§4), for dockerhub-audit's tests
//! and its `demo` and `emulator` commands. Its own crate, so the product and its Lambda carry
//! none of it.
//!
//! An [`Emulator`] is one namespace ([`start_many`] serves several on one address):
//! `POST /v2/auth/token`, `GET /v2/auditlogs/{account}` and
//! `GET /v2/auditlogs/{account}/actions`, with the unfriendly parts of the real service made explicit
//! and configurable: offset paging over a log that grows while a client pages, exclusive `from`,
//! identical twins, late events, expiring tokens, rate limits and broken responses.
//!
//! Invariants:
//! - the events depend only on `EmulatorConfig::seed` and the clock's time at [`Emulator::new`];
//! - time is read only from the injected [`Clock`], so a `ManualClock` drives expiry, visibility,
//!   rate-limit windows and the trickle of live events;
//! - all state sits behind one `std::sync::Mutex`, never held across an `.await`.

mod auth;
mod clock;
mod config;
mod events;
mod faults;
mod rate_limit;
mod routes;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Timelike, Utc};
use fastrand::Rng;
use serde_json::Value;
use tokio::sync::oneshot;

use events::{Generated, Trickle};
use rate_limit::RateLimiter;

pub use clock::{Clock, SystemClock};
pub use config::{EmulatorConfig, RetryAfterForm};
pub use faults::{Fault, UnknownFault};

/// Request counters, for assertions in tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every call to the token route.
    pub token_requests: u64,
    /// Token calls not answered 200: bad credentials (401), bad body (400), injected 500s.
    pub token_failures: u64,
    /// Every call to the list route, whatever the answer.
    pub list_requests: u64,
    pub actions_requests: u64,
    /// 429s from the rate limiter (not from [`Fault::TooManyRequests`]).
    pub throttled: u64,
    /// Faults served to list requests, pushed or random.
    pub faults_served: u64,
    /// 401s for a missing, invalid or expired bearer token (not from [`Fault::ExpireToken`]).
    pub unauthorized: u64,
    pub forbidden: u64,
}

/// A handle on one emulated namespace; clones share the same state.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

struct Shared {
    cfg: EmulatorConfig,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    hold: Mutex<Option<Arc<Hold>>>,
}

/// A list request held unanswered until released: a client stalled mid-request, at a
/// known moment (for kill drills that must land).
pub struct Hold {
    /// The list request (counted from 1 since the emulator started) that is held.
    pub at: u64,
    /// Notified when that request arrives.
    pub reached: tokio::sync::Notify,
    /// Lets it go on.
    pub release: tokio::sync::Notify,
}

/// Everything that changes after creation.
struct State {
    /// Invariant: sorted by timestamp ascending, ties by `seq` ascending, so serving (newest first)
    /// iterates in reverse and live events are appended at the end.
    events: Vec<Stored>,
    next_seq: u64,
    trickle: Option<Trickle>,
    pushed_faults: VecDeque<Fault>,
    fault_rng: Rng,
    /// The accepted secret after a rotation (`cfg.secret` until then).
    rotated_secret: Option<String>,
    insert_rng: Rng,
    inserts_left: u32,
    failing_token_requests: u32,
    /// While set, every list request gets this fault: an outage.
    outage: Option<Fault>,
    next_jti: u64,
    limiter: RateLimiter,
    stats: Stats,
}

struct Stored {
    event: Value,
    timestamp: DateTime<Utc>,
    visible_at: DateTime<Utc>,
    /// Generation order.
    seq: u64,
}

/// The window and exact-match filters of one list request; `None` means unbounded or unfiltered.
#[derive(Debug)]
struct Filter {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    action: Option<String>,
    name: Option<String>,
    actor: Option<String>,
}

impl Filter {
    fn admits(&self, cfg: &EmulatorConfig, e: &Stored) -> bool {
        let after_from = self.from.is_none_or(|from| {
            if cfg.from_inclusive {
                e.timestamp >= from
            } else {
                e.timestamp > from
            }
        });
        let before_to = self.to.is_none_or(|to| {
            if cfg.to_inclusive {
                e.timestamp <= to
            } else {
                e.timestamp < to
            }
        });
        let field_is = |key: &str, wanted: &Option<String>| {
            wanted
                .as_deref()
                .is_none_or(|w| e.event.get(key).and_then(Value::as_str) == Some(w))
        };
        after_from
            && before_to
            && field_is("action", &self.action)
            && field_is("name", &self.name)
            && field_is("actor", &self.actor)
    }
}

impl State {
    fn insert(&mut self, g: Generated) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // After every equal timestamp: `seq` is the largest so far.
        let at = self.events.partition_point(|e| e.timestamp <= g.timestamp);
        self.events.insert(
            at,
            Stored {
                event: g.event,
                timestamp: g.timestamp,
                visible_at: g.visible_at,
                seq,
            },
        );
    }

    /// Generates the live events due by `now`. Called before anything reads the events.
    fn catch_up(&mut self, cfg: &EmulatorConfig, now: DateTime<Utc>) {
        let due = match self.trickle.as_mut() {
            Some(trickle) => trickle.catch_up(cfg, now),
            None => return,
        };
        for g in due {
            self.insert(g);
        }
    }

    /// One page of the events visible at `now` that `filter` admits, newest first (ties in
    /// an order that depends on `page` when `cfg.unstable_ties`).
    fn page(
        &self,
        cfg: &EmulatorConfig,
        filter: &Filter,
        now: DateTime<Utc>,
        page: u32,
        offset: usize,
        size: usize,
    ) -> Vec<Value> {
        // Sorted by timestamp: only the events between the bounds need the filter (a
        // backfill of a million events would otherwise scan them all for every page).
        let lo = filter
            .from
            .map_or(0, |from| self.events.partition_point(|e| e.timestamp < from));
        let hi = filter.to.map_or(self.events.len(), |to| {
            self.events.partition_point(|e| e.timestamp <= to)
        });
        let admitted = self.events[lo..hi.max(lo)]
            .iter()
            .rev()
            .filter(|e| e.visible_at <= now && filter.admits(cfg, e));
        if !cfg.unstable_ties {
            return admitted
                .skip(offset)
                .take(size)
                .map(|e| e.event.clone())
                .collect();
        }
        let mut all: Vec<&Stored> = admitted.collect();
        all.sort_by_key(|e| {
            let tie = events::item_rng(u64::from(page), events::STREAM_TIES, e.seq).u64(..);
            (std::cmp::Reverse(e.timestamp), tie)
        });
        all.into_iter()
            .skip(offset)
            .take(size)
            .map(|e| e.event.clone())
            .collect()
    }

    /// While budget remains, makes a new event visible inside the requested window (capped at `now`;
    /// from `now - days` when `from` is absent), as a late event landing mid-paging would.
    fn insert_while_paging(&mut self, cfg: &EmulatorConfig, filter: &Filter, now: DateTime<Utc>) {
        if self.inserts_left == 0 {
            return;
        }
        let lo = match filter.from {
            Some(from) => events::nanos(from) + i128::from(!cfg.from_inclusive),
            None => events::nanos(events::horizon(cfg, now)),
        };
        let now_excl = events::nanos(now) + 1;
        let hi = filter
            .to
            .map_or(now_excl, |to| events::nanos(to) + i128::from(cfg.to_inclusive))
            .min(now_excl);
        let Some(timestamp) = events::uniform_stamp(&mut self.insert_rng, lo, hi, cfg.fractional_timestamps)
        else {
            return;
        };
        let stamp = events::format_timestamp(timestamp, cfg.fractional_timestamps);
        let event = events::event_at(&mut self.insert_rng, &cfg.org, &stamp);
        self.inserts_left -= 1;
        tracing::debug!(timestamp = %stamp, "emulator: inserting an event while a client pages");
        self.insert(Generated {
            event,
            timestamp,
            visible_at: now,
        });
    }
}

impl Emulator {
    /// Generates the events deterministically from `cfg.seed`, relative to `clock.now()` at this moment.
    pub fn new(cfg: EmulatorConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let mut state = State {
            events: Vec::new(),
            next_seq: 0,
            trickle: Trickle::new(now, cfg.trickle_per_minute),
            pushed_faults: VecDeque::new(),
            fault_rng: events::stream_rng(cfg.seed, events::STREAM_FAULTS),
            rotated_secret: None,
            insert_rng: events::stream_rng(cfg.seed, events::STREAM_INSERT),
            inserts_left: cfg.insert_while_paging,
            failing_token_requests: 0,
            outage: None,
            next_jti: 1,
            limiter: RateLimiter::default(),
            stats: Stats::default(),
        };
        // All at once, then one sort (inserting one by one is quadratic: a million events
        // took longer than any test). Same order: by timestamp, ties in generation order.
        for g in events::base_events(&cfg, now) {
            state.events.push(Stored {
                event: g.event,
                timestamp: g.timestamp,
                visible_at: g.visible_at,
                seq: state.next_seq,
            });
            state.next_seq += 1;
        }
        state.events.sort_by_key(|e| (e.timestamp, e.seq));
        Emulator {
            shared: Arc::new(Shared {
                cfg,
                clock,
                state: Mutex::new(state),
                hold: Mutex::new(None),
            }),
        }
    }

    /// The axum router serving the three routes.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Binds `127.0.0.1:port` (0 = any free port) and serves on the current tokio runtime.
    ///
    /// The server runs until [`RunningEmulator::shutdown`] or the end of the runtime; dropping the
    /// handle does not stop it.
    pub async fn start(&self, port: u16) -> std::io::Result<RunningEmulator> {
        serve_router(self.router(), port).await
    }

    /// Every event that exists (visible or not yet), as served, in generation order.
    pub fn all_events(&self) -> Vec<Value> {
        let state = self.caught_up(self.now());
        in_generation_order(state.events.iter())
    }

    /// The events visible at the clock's now whose timestamp is before `before`, in generation order:
    /// what a complete collector must hold.
    pub fn visible_events_before(&self, before: DateTime<Utc>) -> Vec<Value> {
        let now = self.now();
        let state = self.caught_up(now);
        in_generation_order(
            state
                .events
                .iter()
                .filter(|e| e.visible_at <= now && e.timestamp < before),
        )
    }

    /// Adds one event, visible from `visible_at`.
    ///
    /// # Panics
    /// If `event` has no RFC 3339 string `"timestamp"`: a bug in the calling test, not client input.
    pub fn add_event(&self, event: Value, visible_at: DateTime<Utc>) {
        let timestamp = event
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|s| events::parse_timestamp(s).ok());
        let Some(timestamp) = timestamp else {
            panic!("Emulator::add_event: the event needs an RFC 3339 \"timestamp\" string");
        };
        self.lock().insert(Generated {
            event,
            timestamp,
            visible_at,
        });
    }

    /// Adds `n` events spread evenly over `span` from `start`, visible at once, with few
    /// distinct payloads: within one second many are identical, as when automation creates
    /// the same repositories and pushes the same tags again (issue 22's burst). Timestamps
    /// are whole seconds, so each second is one crowd of ties.
    pub fn add_identical_burst(&self, start: DateTime<Utc>, n: u32, span: chrono::Duration) {
        let n = i64::from(n.max(1));
        for i in 0..n {
            let at = start + chrono::Duration::milliseconds(i * span.num_milliseconds() / n);
            let org = self.cfg().org.clone();
            let mut event = match i % 3 {
                0 => serde_json::json!({"account": org, "action": "repo.create", "actor": "ci",
                            "name": format!("{org}/svc{}", i % 4)}),
                _ => serde_json::json!({"account": org, "action": "repo.tag.push", "actor": "ci",
                            "name": format!("{org}/app{}", i % 5), "data": {"tag": format!("v{}", i % 2)}}),
            };
            let second = at.with_nanosecond(0).unwrap_or(at);
            event["timestamp"] = Value::String(second.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            self.add_event(event, at);
        }
    }

    /// Adds an item that is not a readable event (no timestamp, not an object, a non-string
    /// action, ...), served verbatim by queries whose window holds `at`, as a backend whose
    /// data went bad would.
    pub fn add_unreadable(&self, item: Value, at: DateTime<Utc>, visible_at: DateTime<Utc>) {
        self.lock().insert(Generated {
            event: item,
            timestamp: at,
            visible_at,
        });
    }

    /// Holds the `at`-th list request (counted from 1) unanswered until released.
    pub fn hold_list_request(&self, at: u64) -> Arc<Hold> {
        let hold = Arc::new(Hold {
            at,
            reached: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        *self.shared.hold.lock().unwrap_or_else(|e| e.into_inner()) = Some(hold.clone());
        hold
    }

    /// Faults served, in order, to the next list requests (before random faults are considered).
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().pushed_faults.extend(faults);
    }

    /// Rotates the accepted secret, as an owner replacing the access token would; tokens
    /// already issued stay valid until they expire.
    pub fn rotate_secret(&self, secret: impl Into<String>) {
        self.lock().rotated_secret = Some(secret.into());
    }

    /// Until `None`, answers every list request with `fault` (an outage of the audit log).
    pub fn set_outage(&self, fault: Option<Fault>) {
        self.lock().outage = fault;
    }

    /// Makes the next `n` token requests fail with 500.
    pub fn fail_token_requests(&self, n: u32) {
        let mut state = self.lock();
        state.failing_token_requests = state.failing_token_requests.saturating_add(n);
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn config(&self) -> EmulatorConfig {
        self.shared.cfg.clone()
    }

    fn cfg(&self) -> &EmulatorConfig {
        &self.shared.cfg
    }

    fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    /// The state; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state, with the live events due by `now` generated.
    fn caught_up(&self, now: DateTime<Utc>) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        state.catch_up(self.cfg(), now);
        state
    }
}

/// Serves several namespaces on one address, as Docker Hub does: a list request goes to the
/// emulator of its path's account, a token request to the one whose org or username is its
/// `identifier`. Each keeps its own events, tokens, rate limit and faults.
///
/// # Errors
/// When two emulators serve the same org, or the port cannot be bound.
pub async fn start_many(emulators: Vec<Emulator>, port: u16) -> std::io::Result<RunningEmulator> {
    let mut orgs: Vec<&str> = emulators.iter().map(|e| e.cfg().org.as_str()).collect();
    orgs.sort_unstable();
    if orgs.windows(2).any(|w| w[0] == w[1]) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "two emulators serve the same org",
        ));
    }
    serve_router(routes::multi_router(emulators), port).await
}

async fn serve_router(router: axum::Router, port: u16) -> std::io::Result<RunningEmulator> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let signal = async move {
            // A dropped sender means the handle was dropped: keep serving.
            if stopped.await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(signal).await {
            tracing::warn!(error = %e, "emulator: server stopped");
        }
    });
    tracing::debug!(%addr, "emulator: listening");
    Ok(RunningEmulator { addr, stop })
}

fn in_generation_order<'a>(events: impl Iterator<Item = &'a Stored>) -> Vec<Value> {
    let mut events: Vec<&Stored> = events.collect();
    events.sort_by_key(|e| e.seq);
    events.into_iter().map(|e| e.event.clone()).collect()
}

/// A server started by [`Emulator::start`].
pub struct RunningEmulator {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections; requests in flight are answered first.
    pub fn shutdown(self) {
        // An error means the server is already gone.
        let _ = self.stop.send(());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use chrono::Duration;
    use reqwest::StatusCode;
    use serde_json::json;

    use super::*;
    use crate::clock::ManualClock;

    const T0: &str = "2026-11-25T21:26:00Z";

    fn at(s: &str) -> DateTime<Utc> {
        events::parse_timestamp(s).expect("valid test timestamp")
    }

    fn ts(e: &Value) -> DateTime<Utc> {
        at(e["timestamp"].as_str().expect("timestamp"))
    }

    /// Multisets compare equal once sorted.
    fn sorted(events: &[Value]) -> Vec<String> {
        let mut v: Vec<String> = events.iter().map(Value::to_string).collect();
        v.sort();
        v
    }

    struct Answer {
        status: StatusCode,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).expect("JSON body")
        }
        fn logs(&self) -> Vec<Value> {
            assert_eq!(
                self.status,
                StatusCode::OK,
                "body: {}",
                String::from_utf8_lossy(&self.body)
            );
            self.json()["logs"].as_array().expect("logs array").clone()
        }
        fn header(&self, name: &str) -> &str {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("no {name}"))
        }
    }

    struct Harness {
        emu: Emulator,
        clock: ManualClock,
        server: RunningEmulator,
        http: reqwest::Client,
    }

    impl Harness {
        async fn new(cfg: EmulatorConfig) -> Self {
            Self::with_clock(cfg, ManualClock::new(at(T0))).await
        }

        async fn with_clock(cfg: EmulatorConfig, clock: ManualClock) -> Self {
            let emu = Emulator::new(cfg, Arc::new(clock.clone()));
            let server = emu.start(0).await.expect("bind");
            Harness {
                emu,
                clock,
                server,
                http: reqwest::Client::new(),
            }
        }

        async fn answer(request: reqwest::RequestBuilder) -> Answer {
            let response = request.send().await.expect("HTTP exchange");
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.expect("body").to_vec();
            Answer {
                status,
                headers,
                body,
            }
        }

        async fn exchange(&self, body: &str) -> Answer {
            let url = format!("{}/v2/auth/token", self.server.url());
            Self::answer(
                self.http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await
        }

        async fn token(&self) -> String {
            let cfg = self.emu.config();
            let body = json!({"identifier": cfg.org, "secret": cfg.secret}).to_string();
            let answer = self.exchange(&body).await;
            assert_eq!(answer.status, StatusCode::OK);
            answer.json()["access_token"]
                .as_str()
                .expect("access_token")
                .to_string()
        }

        /// `GET /v2/auditlogs/{path_and_query}`, with a bearer token when given.
        async fn get(&self, token: Option<&str>, path_and_query: &str) -> Answer {
            let url = format!("{}/v2/auditlogs/{path_and_query}", self.server.url());
            let request = self.http.get(url);
            Self::answer(match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            })
            .await
        }

        async fn list(&self, token: &str, query: &str) -> Answer {
            self.get(Some(token), &format!("acme?{query}")).await
        }

        /// Every page of `query`, newest first, until an empty page.
        async fn all_pages(&self, token: &str, query: &str, page_size: u32) -> Vec<Value> {
            let mut out = Vec::new();
            for page in 1.. {
                let logs = self
                    .list(token, &format!("{query}&page={page}&page_size={page_size}"))
                    .await
                    .logs();
                assert!(logs.len() <= page_size as usize);
                if logs.is_empty() {
                    return out;
                }
                out.extend(logs);
            }
            unreachable!()
        }
    }

    #[tokio::test]
    async fn paging_returns_every_visible_event_newest_first() {
        let cfg = EmulatorConfig {
            events: 500,
            twin_fraction: 0.05,
            late_fraction: 0.2,
            ..Default::default()
        };
        let h = Harness::new(cfg).await;
        let token = h.token().await;
        let served = h.all_pages(&token, "x=1", 100).await;
        assert!(served.windows(2).all(|w| ts(&w[0]) >= ts(&w[1])), "newest first");
        let expected = h.emu.visible_events_before(at(T0) + Duration::days(1));
        assert_eq!(sorted(&served), sorted(&expected));
        let distinct: HashSet<String> = served.iter().map(Value::to_string).collect();
        assert!(distinct.len() < served.len(), "twins are served as they are");
        // The full pages, the last partial one, and the empty one that ends the walk.
        assert_eq!(h.emu.stats().list_requests, served.len().div_ceil(100) as u64 + 1);
        h.server.shutdown();
    }

    #[tokio::test]
    async fn page_size_is_capped_and_bad_paging_is_refused() {
        let h = Harness::new(EmulatorConfig {
            events: 300,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        assert_eq!(h.list(&token, "page_size=1000").await.logs().len(), 100);
        assert_eq!(h.list(&token, "page_size=7").await.logs().len(), 7);
        assert_eq!(h.list(&token, "").await.logs().len(), 25);
        let max = u32::MAX;
        assert!(h
            .list(&token, &format!("page={max}&page_size={max}"))
            .await
            .logs()
            .is_empty());
        for bad in [
            "page=0",
            "page=-1",
            "page=abc",
            "page_size=0",
            "page=99999999999999999999",
            "from=yesterday",
        ] {
            let answer = h.list(&token, bad).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(
                answer.json()["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("invalid")),
                "{bad}"
            );
            assert_eq!(answer.header("x-ratelimit-limit"), "180");
        }
    }

    #[tokio::test]
    async fn from_is_exclusive_and_to_inclusive_by_default() {
        let events = |h: &Harness| {
            for hour in 1..=3 {
                let stamp = at(T0) - Duration::hours(hour);
                let event =
                    json!({"action": "repo.create", "timestamp": events::format_timestamp(stamp, false)});
                h.emu.add_event(event, stamp);
            }
        };
        let window = "from=2026-11-25T18:26:00Z&to=2026-11-25T20:26:00Z";
        let hours =
            |logs: Vec<Value>| -> Vec<String> { logs.iter().map(|e| e["timestamp"].to_string()).collect() };

        let h = Harness::new(EmulatorConfig {
            events: 0,
            ..Default::default()
        })
        .await;
        events(&h);
        let token = h.token().await;
        let served = hours(h.list(&token, window).await.logs());
        assert_eq!(served, [r#""2026-11-25T20:26:00Z""#, r#""2026-11-25T19:26:00Z""#]);
        // The same instants with an offset and with fractional seconds.
        let shifted = "from=2026-11-25T19:26:00.000%2B01:00&to=2026-11-25T20:26:00.000000Z";
        assert_eq!(hours(h.list(&token, shifted).await.logs()), served);

        let flipped = EmulatorConfig {
            events: 0,
            from_inclusive: true,
            to_inclusive: false,
            ..Default::default()
        };
        let h = Harness::new(flipped).await;
        events(&h);
        let token = h.token().await;
        let served = hours(h.list(&token, window).await.logs());
        assert_eq!(served, [r#""2026-11-25T19:26:00Z""#, r#""2026-11-25T18:26:00Z""#]);
    }

    #[tokio::test]
    async fn tokens_expire_after_their_ttl() {
        let h = Harness::new(EmulatorConfig {
            events: 10,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        let payload = token.split('.').nth(1).expect("payload");
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).expect("b64"),
        )
        .expect("claims");
        assert_eq!(
            claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
            600
        );
        assert_eq!(claims["org"], "acme");

        h.clock.advance(Duration::seconds(599));
        assert_eq!(h.list(&token, "").await.status, StatusCode::OK);
        h.clock.advance(Duration::seconds(1));
        let answer = h.list(&token, "").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            answer.json(),
            json!({"detail": "token expired", "message": "token expired", "errinfo": {}})
        );
        assert_eq!(h.emu.stats().unauthorized, 1);
        let fresh = h.token().await;
        assert_eq!(h.list(&fresh, "").await.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn token_exchange_checks_credentials() {
        let h = Harness::new(EmulatorConfig {
            username: "alice".into(),
            events: 0,
            ..Default::default()
        })
        .await;
        let wrong = h
            .exchange(r#"{"identifier": "acme", "secret": "dckr_oat_wrong"}"#)
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let expected = "Incorrect authentication credentials";
        assert_eq!(
            wrong.json(),
            json!({"detail": expected, "message": expected, "errinfo": {}})
        );
        let stranger = h
            .exchange(r#"{"identifier": "mallory", "secret": "dckr_oat_emulator"}"#)
            .await;
        assert_eq!(stranger.status, StatusCode::UNAUTHORIZED);
        assert_eq!(h.exchange("{not json").await.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            h.exchange(r#"{"identifier": "acme"}"#).await.status,
            StatusCode::BAD_REQUEST
        );
        let user = h
            .exchange(r#"{"identifier": "alice", "secret": "dckr_oat_emulator"}"#)
            .await;
        assert_eq!(user.status, StatusCode::OK);

        h.emu.fail_token_requests(2);
        let ok = r#"{"identifier": "acme", "secret": "dckr_oat_emulator"}"#;
        assert_eq!(h.exchange(ok).await.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(h.exchange(ok).await.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(h.exchange(ok).await.status, StatusCode::OK);
        let stats = h.emu.stats();
        assert_eq!((stats.token_requests, stats.token_failures), (8, 6));

        let anonymous = h.get(None, "acme").await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
        assert_eq!(h.list("not-a-jwt", "").await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(h.emu.stats().unauthorized, 2);
    }

    #[tokio::test]
    async fn other_orgs_are_forbidden() {
        let h = Harness::new(EmulatorConfig {
            events: 5,
            ..Default::default()
        })
        .await;
        let other = Harness::new(EmulatorConfig {
            org: "globex".into(),
            events: 0,
            ..Default::default()
        })
        .await;
        let foreign = other.token().await;
        let answer = h.list(&foreign, "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
        assert_eq!(answer.json(), json!({"message": "forbidden", "errinfo": {}}));
        let token = h.token().await;
        assert_eq!(h.get(Some(&token), "globex").await.status, StatusCode::FORBIDDEN);
        assert_eq!(
            h.get(Some(&token), "globex/actions").await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(h.emu.stats().forbidden, 3);
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says() {
        let slow = std::time::Duration::from_millis(300);
        let h = Harness::new(EmulatorConfig {
            events: 100,
            slow,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        h.emu.push_faults([
            Fault::ServerError(500),
            Fault::ServerError(502),
            Fault::ServerError(503),
            Fault::TooManyRequests,
            Fault::Truncated,
            Fault::MalformedJson,
            Fault::WrongTypes,
            Fault::InvalidUtf8,
            Fault::HugeField,
            Fault::Slow,
            Fault::ExpireToken,
        ]);
        for code in [500, 502, 503] {
            assert_eq!(h.list(&token, "").await.status.as_u16(), code);
        }

        let throttled = h.list(&token, "").await;
        assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            throttled.json(),
            json!({"detail": "Rate limit exceeded", "error": false})
        );
        assert_eq!(throttled.header("retry-after"), "1");
        assert_eq!(throttled.header("x-ratelimit-remaining"), "0");
        assert_eq!(
            throttled.header("x-ratelimit-reset"),
            at("2026-11-25T21:27:00Z").timestamp().to_string()
        );

        let truncated = h.list(&token, "").await;
        assert_eq!(truncated.status, StatusCode::OK);
        assert_eq!(
            truncated.header("content-length"),
            truncated.body.len().to_string()
        );
        assert!(serde_json::from_slice::<Value>(&truncated.body).is_err());
        assert!(truncated.body.starts_with(br#"{"logs":[{"#));

        let malformed = h.list(&token, "").await;
        assert_eq!(malformed.status, StatusCode::OK);
        assert!(serde_json::from_slice::<Value>(&malformed.body).is_err());

        let wrong_types = h.list(&token, "").await;
        assert!(wrong_types.json()["logs"].is_object());

        let invalid_utf8 = h.list(&token, "").await;
        assert_eq!(invalid_utf8.status, StatusCode::OK);
        assert!(std::str::from_utf8(&invalid_utf8.body).is_err());

        let huge = h.list(&token, "").await.logs();
        assert_eq!(huge.len(), 25);
        assert_eq!(
            huge[0]["action_description"].as_str().map(str::len),
            Some(20 * 1024 * 1024)
        );

        let started = std::time::Instant::now();
        let slow_page = h.list(&token, "").await.logs();
        assert!(started.elapsed() >= slow);
        assert_eq!(slow_page.len(), 25);

        let expired = h.list(&token, "").await;
        assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
        assert_eq!(expired.json()["detail"], "token expired");
        assert_eq!(
            h.list(&token, "").await.logs().len(),
            25,
            "the token itself is still good"
        );

        let stats = h.emu.stats();
        assert_eq!(
            (stats.faults_served, stats.unauthorized, stats.throttled),
            (11, 0, 0)
        );
    }

    #[tokio::test]
    async fn random_faults_follow_the_rate() {
        let cfg = EmulatorConfig {
            events: 10,
            fault_rate: 1.0,
            fault_kinds: vec![Fault::MalformedJson],
            ..Default::default()
        };
        let h = Harness::new(cfg).await;
        let token = h.token().await;
        for _ in 0..3 {
            assert!(serde_json::from_slice::<Value>(&h.list(&token, "").await.body).is_err());
        }
        // Actions are never faulted.
        assert_eq!(h.get(Some(&token), "acme/actions").await.status, StatusCode::OK);
        assert_eq!(h.emu.stats().faults_served, 3);
    }

    #[tokio::test]
    async fn rate_limit_answers_429_in_each_form() {
        let reset = at("2026-11-25T21:27:00Z").timestamp().to_string();
        let cases = [
            (RetryAfterForm::Seconds, ["30", "30"]),
            (RetryAfterForm::UnixTime, [reset.as_str(), reset.as_str()]),
            (RetryAfterForm::Alternate, ["30", reset.as_str()]),
        ];
        for (form, expected) in cases {
            let cfg = EmulatorConfig {
                events: 10,
                rate_limit_per_minute: Some(2),
                retry_after: form,
                ..Default::default()
            };
            let h = Harness::new(cfg).await;
            let token = h.token().await;
            h.clock.advance(Duration::seconds(30));
            let first = h.list(&token, "").await;
            assert_eq!(
                (
                    first.header("x-ratelimit-limit"),
                    first.header("x-ratelimit-remaining")
                ),
                ("2", "1")
            );
            assert_eq!(first.header("x-ratelimit-reset"), reset);
            assert_eq!(h.list(&token, "").await.header("x-ratelimit-remaining"), "0");
            for retry_after in expected {
                let answer = h.list(&token, "").await;
                assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{form:?}");
                assert_eq!(
                    answer.json(),
                    json!({"detail": "Rate limit exceeded", "error": false})
                );
                assert_eq!(answer.header("retry-after"), retry_after, "{form:?}");
                assert_eq!(answer.header("x-ratelimit-remaining"), "0");
                assert_eq!(answer.header("x-ratelimit-reset"), reset);
            }
            assert_eq!(h.emu.stats().throttled, 2);
            h.clock.advance(Duration::seconds(30));
            assert_eq!(h.list(&token, "").await.status, StatusCode::OK, "a new window");
        }

        // The 429 fault points one second ahead, as a unix time in that form.
        let cfg = EmulatorConfig {
            events: 1,
            retry_after: RetryAfterForm::UnixTime,
            ..Default::default()
        };
        let h = Harness::new(cfg).await;
        let token = h.token().await;
        h.emu.push_faults([Fault::TooManyRequests]);
        let answer = h.list(&token, "").await;
        assert_eq!(answer.header("retry-after"), (at(T0).timestamp() + 1).to_string());
        assert_eq!(answer.header("x-ratelimit-limit"), "180");
    }

    #[tokio::test]
    async fn late_events_stay_invisible_until_visible_at() {
        let h = Harness::new(EmulatorConfig {
            events: 0,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        let event = json!({"action": "repo.create", "timestamp": "2026-11-25T21:21:00Z"});
        h.emu.add_event(event.clone(), at(T0) + Duration::minutes(5));
        assert!(h.list(&token, "").await.logs().is_empty());
        assert!(h.emu.visible_events_before(at(T0)).is_empty());
        assert_eq!(h.emu.all_events(), std::slice::from_ref(&event));
        h.clock.advance(Duration::minutes(5));
        assert_eq!(h.list(&token, "").await.logs(), std::slice::from_ref(&event));
        assert_eq!(h.emu.visible_events_before(at(T0)), [event]);

        let cfg = EmulatorConfig {
            events: 200,
            days: 1,
            late_fraction: 1.0,
            late_max: Duration::days(1),
            ..Default::default()
        };
        let h = Harness::new(cfg).await;
        let token = h.token().await;
        let visible = h.emu.visible_events_before(at(T0));
        assert!(
            !visible.is_empty() && visible.len() < h.emu.all_events().len(),
            "some are still hidden"
        );
        assert_eq!(sorted(&h.all_pages(&token, "x=1", 100).await), sorted(&visible));
        h.clock.advance(Duration::days(1));
        assert_eq!(
            h.emu.visible_events_before(at(T0)).len(),
            h.emu.all_events().len()
        );
    }

    #[test]
    fn generation_is_deterministic_and_realistic() {
        let make = |cfg: EmulatorConfig| Emulator::new(cfg, Arc::new(ManualClock::new(at(T0)))).all_events();
        let a = make(EmulatorConfig::default());
        assert_eq!(a, make(EmulatorConfig::default()));
        assert_ne!(
            a,
            make(EmulatorConfig {
                seed: 2,
                ..Default::default()
            })
        );
        assert!(a.len() > 2000, "twins come on top of the base events");
        let (lo, hi) = (at(T0) - Duration::days(90), at(T0) - Duration::minutes(2));
        for e in &a {
            let stamp = e["timestamp"].as_str().expect("timestamp");
            assert!(stamp.len() == 20 && stamp.ends_with('Z'), "{stamp}");
            assert!(ts(e) >= lo && ts(e) < hi);
            assert!(e["data"]
                .as_object()
                .expect("data")
                .values()
                .all(Value::is_string));
        }
        let pushes = a.iter().filter(|e| e["action"] == "repo.tag.push").count();
        assert!(pushes > a.len() / 4, "pushes dominate");
        assert!(a.iter().any(|e| e["actor"] == "dockersupport"));

        let fractional = make(EmulatorConfig {
            events: 50,
            fractional_timestamps: true,
            ..Default::default()
        });
        assert!(fractional
            .iter()
            .all(|e| e["timestamp"].as_str().is_some_and(|s| s.len() == 27)));
    }

    #[tokio::test]
    async fn insert_while_paging_lands_inside_the_window() {
        let h = Harness::new(EmulatorConfig {
            events: 300,
            insert_while_paging: 1,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        let (from, to) = ("2026-10-26T21:26:00Z", "2026-11-15T21:26:00Z");
        let window = format!("from={from}&to={to}&page_size=10");
        let before = h.emu.all_events().len();
        h.list(&token, &format!("{window}&page=1")).await.logs();
        assert_eq!(h.emu.all_events().len(), before, "page 1 inserts nothing");
        h.list(&token, &format!("{window}&page=2")).await.logs();
        let after = h.emu.all_events();
        assert_eq!(after.len(), before + 1);
        let inserted = after.last().expect("the new event is the newest generated");
        assert!(ts(inserted) > at(from) && ts(inserted) <= at(to), "{inserted}");
        h.list(&token, &format!("{window}&page=3")).await.logs();
        assert_eq!(h.emu.all_events().len(), before + 1, "the budget is spent");
    }

    #[tokio::test]
    async fn trickle_adds_live_events_as_the_clock_moves() {
        let cfg = EmulatorConfig {
            events: 0,
            trickle_per_minute: 60,
            ..Default::default()
        };
        let h = Harness::new(cfg.clone()).await;
        let token = h.token().await;
        h.clock.advance(Duration::minutes(5));
        let served = h.all_pages(&token, "x=1", 100).await;
        assert_eq!(served.len(), 300);
        assert_eq!(ts(&served[0]), at(T0) + Duration::minutes(5));
        assert_eq!(ts(&served[299]), at(T0) + Duration::seconds(1));

        // Catching up in other steps generates the same events.
        let clock = ManualClock::new(at(T0));
        let stepwise = Emulator::new(cfg, Arc::new(clock.clone()));
        for _ in 0..5 {
            clock.advance(Duration::minutes(1));
            stepwise.visible_events_before(at(T0));
        }
        assert_eq!(stepwise.all_events(), h.emu.all_events());
    }

    #[tokio::test]
    async fn actions_serve_the_documented_catalogue() {
        let h = Harness::new(EmulatorConfig {
            events: 0,
            ..Default::default()
        })
        .await;
        assert_eq!(h.get(None, "acme/actions").await.status, StatusCode::UNAUTHORIZED);
        let token = h.token().await;
        let answer = h.get(Some(&token), "acme/actions").await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.header("x-ratelimit-remaining"),
            "180",
            "unlimited: advertised, never counted down"
        );
        let groups = answer.json()["actions"].as_object().expect("groups").clone();
        let keys: Vec<&str> = groups.keys().map(String::as_str).collect();
        assert_eq!(keys, ["billing", "enterprise", "offload", "oidc", "org", "repo"]);
        assert_eq!(groups["repo"]["label"], "Repository");
        assert_eq!(h.emu.stats().actions_requests, 2);
    }

    #[tokio::test]
    async fn hostile_input_is_answered_not_panicked_on() {
        let h = Harness::new(EmulatorConfig {
            events: 20,
            ..Default::default()
        })
        .await;
        let token = h.token().await;
        for query in [
            "from=%ZZ",
            "page_size=-5",
            "to=2026-13-45T99:99:99Z",
            "page=1&page=0",
            "page=1.5",
        ] {
            assert_eq!(
                h.list(&token, query).await.status,
                StatusCode::BAD_REQUEST,
                "{query}"
            );
        }
        // Invalid UTF-8 in a filter is decoded lossily: it matches nothing.
        assert!(h.list(&token, "action=%00%FF").await.logs().is_empty());
        let long = "9".repeat(10_000);
        assert_eq!(
            h.list(&token, &format!("page={long}")).await.status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(h.list(&token, "actor=nobody&name=%20").await.logs().len(), 0);
        let url = format!("{}/v2/auth/token", h.server.url());
        let garbage = Harness::answer(h.http.post(url).body(vec![0xff, 0xfe, 0x00])).await;
        assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
        assert_eq!(h.list(&token, "").await.logs().len(), 20, "still serving");
    }
}
