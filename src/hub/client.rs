//! The HTTP client for Docker Hub's audit-log API.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::auth::BearerToken;
use super::retry::{backoff, pacing, parse_reset, parse_retry_after, throttle_wait, Jitter};
use super::trust::{check_hub_url, shown, shown_identifier};
use super::wire;
use crate::clock::Clock;
use crate::ports::{AuditLog, CredentialSource, HubError, Page, PageQuery};
use crate::types::{rfc3339, Org};

/// How the client talks to the Hub.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub base_url: Url,
    pub connect_timeout: Duration,
    /// Bounds one request from send to the last byte of the body.
    pub request_timeout: Duration,
    /// Attempts for one request on 5xx, timeouts and malformed answers.
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// 429s tolerated for one request before giving up (each waits as told).
    pub max_throttles: u32,
    /// The longest single wait a 429 may ask for before the run gives up and leaves the
    /// rest to the next run.
    pub max_rate_wait: Duration,
    /// A larger body is refused (and retried): a page of 100 events is ~100 KB.
    pub max_body_bytes: usize,
    /// The share of Docker Hub's rate limit this client leaves unused, for other clients
    /// of the same account (0 for the poller; `verify` leaves half to the poller).
    pub leave_for_others: f64,
}

impl HubConfig {
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(500);
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 6;
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            base_url: Url::parse(crate::config::PollConfig::DEFAULT_HUB_URL).expect("static URL"),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            retry_base: Self::DEFAULT_RETRY_BASE,
            retry_cap: Duration::from_secs(30),
            max_throttles: 10,
            max_rate_wait: Duration::from_secs(300),
            max_body_bytes: 16 << 20,
            leave_for_others: 0.0,
        }
    }
}

/// Counters for the run summary and metrics.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub token_requests: AtomicU64,
    pub throttled: AtomicU64,
    pub retries: AtomicU64,
}

impl ApiStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// The Docker Hub client. One per process: it caches the bearer token and the rate-limit
/// state across requests and orgs' runs.
pub struct HubClient {
    http: reqwest::Client,
    cfg: HubConfig,
    creds: Arc<dyn CredentialSource>,
    clock: Arc<dyn Clock>,
    token: tokio::sync::Mutex<Option<BearerToken>>,
    not_before: Mutex<Option<Instant>>,
    jitter: Mutex<Jitter>,
    stats: Arc<ApiStats>,
    /// A fingerprint of the credentials Docker Hub refused last: never sent again (failed
    /// logins lock the account), until the source hands out others.
    refused: Mutex<Option<[u8; 32]>>,
}

/// What one answer means to the retry loop.
enum Verdict<T> {
    Done(T),
    Retry(String),
    Unauthorized(String),
    Fail(HubError),
}

/// What one attempt of a request came to, short of stopping it.
enum Attempt<T> {
    /// `judge` accepted the answer.
    Answered(T),
    /// A 429, with the headers that say how long to wait.
    Throttled(HeaderMap),
    /// A failure a retry may fix (transport, 5xx, a body cut off or refused by `judge`).
    Failed(String),
}

/// Why `execute` stopped without a result.
enum Stop {
    Hub(HubError),
    /// A 401 on an authorized request: the caller may get a new token once.
    Unauthorized(String),
}

impl From<HubError> for Stop {
    fn from(e: HubError) -> Self {
        Stop::Hub(e)
    }
}

impl Stop {
    fn into_hub(self) -> HubError {
        match self {
            Stop::Hub(e) => e,
            Stop::Unauthorized(msg) => HubError::Auth(msg),
        }
    }
}

impl HubClient {
    pub fn new(
        cfg: HubConfig,
        creds: Arc<dyn CredentialSource>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        check_hub_url(&cfg.base_url).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.connect_timeout)
            // Docker Hub's API does not redirect these routes; following one would post the
            // long-lived token (or the bearer JWT) to wherever `Location` names.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(cfg.base_url.scheme() == "https")
            .user_agent(concat!("dockerhub-audit/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HubClient {
            http,
            cfg,
            creds,
            clock,
            token: tokio::sync::Mutex::new(None),
            not_before: Mutex::new(None),
            jitter: Mutex::new(Jitter::from_time()),
            stats: Arc::new(ApiStats::default()),
            refused: Mutex::new(None),
        })
    }

    pub fn stats(&self) -> Arc<ApiStats> {
        self.stats.clone()
    }

    fn url(&self, path: &str) -> Url {
        let mut u = self.cfg.base_url.clone();
        let base = u.path().trim_end_matches('/').to_string();
        u.set_path(&format!("{base}{path}"));
        u
    }

    /// A token good for a request sent now: the cached one, or a new exchange.
    async fn bearer(&self, deadline: Option<Instant>) -> Result<BearerToken, HubError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref().filter(|t| t.is_fresh(self.clock.now())) {
            return Ok(t.clone());
        }
        let creds = self.creds.get().await.map_err(|e| HubError::Auth(e.0))?;
        let fingerprint: [u8; 32] = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(creds.identifier.as_bytes());
            h.update([0]);
            h.update(creds.secret.expose().as_bytes());
            h.finalize().into()
        };
        if *self.refused.lock().unwrap_or_else(|e| e.into_inner()) == Some(fingerprint) {
            // Read again for the next attempt, which then tries only a changed secret.
            self.creds.invalidate().await;
            return Err(HubError::Auth(format!(
                "Docker Hub refused the credentials for {} earlier and they have not changed since; not \
                 tried again (failed logins lock the account for 10 minutes). Put a valid token where they \
                 come from (DOCKERHUB_TOKEN, or the secret)",
                shown_identifier(&creds.identifier)
            )));
        }
        let url = self.url("/v2/auth/token");
        let body = serde_json::json!({"identifier": creds.identifier, "secret": creds.secret.expose()});
        let identifier = shown_identifier(&creds.identifier);
        let token = self
            .execute(
                "POST /v2/auth/token",
                deadline,
                &self.stats.token_requests,
                || self.http.post(url.clone()).json(&body),
                |status, body| match status {
                    StatusCode::OK => match wire::parse_token(body) {
                        Ok(t) => Verdict::Done(t),
                        Err(e) => Verdict::Retry(format!("malformed token response: {e}")),
                    },
                    // Never retried: repeated failed logins lock the account for 10 minutes.
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Verdict::Fail(HubError::Auth(format!(
                        "Docker Hub refused the credentials for {identifier} (HTTP {}: {}). Check DOCKERHUB_USERNAME \
                         (the organization name for an organization access token) and DOCKERHUB_TOKEN. Not retried: \
                         repeated failed logins lock the account for 10 minutes.",
                        status.as_u16(),
                        wire::error_summary(body)
                    ))),
                    s => Verdict::Fail(HubError::Rejected(format!(
                        "POST /v2/auth/token answered HTTP {}: {}",
                        s.as_u16(),
                        wire::error_summary(body)
                    ))),
                },
            )
            .await
            .map_err(Stop::into_hub);
        let token = match token {
            Err(HubError::Auth(msg)) => {
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(fingerprint);
                // The next attempt reads the secret again, so a rotated one is used at once.
                self.creds.invalidate().await;
                return Err(HubError::Auth(msg));
            }
            other => other?,
        };
        let t = BearerToken::new(token, self.clock.now());
        *cached = Some(t.clone());
        Ok(t)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
        self.creds.invalidate().await;
    }

    /// Sends a request until `judge` accepts or refuses its answer. Handles what every
    /// request shares: pacing on rate-limit headers, 429 waits, 5xx / transport / body
    /// failures with backoff, and the deadline.
    async fn execute<T>(
        &self,
        what: &str,
        deadline: Option<Instant>,
        counter: &AtomicU64,
        make: impl Fn() -> RequestBuilder,
        judge: impl Fn(StatusCode, &[u8]) -> Verdict<T>,
    ) -> Result<T, Stop> {
        let mut failures = 0u32;
        let mut throttles = 0u32;
        loop {
            self.wait_for_pace(what, deadline).await?;
            bump(counter);
            let timeout = match deadline {
                Some(d) => self
                    .cfg
                    .request_timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.cfg.request_timeout,
            };
            if timeout.is_zero() {
                return Err(out_of_time(what).into());
            }
            let problem = match self.attempt(what, make().timeout(timeout), &judge).await? {
                Attempt::Answered(t) => return Ok(t),
                Attempt::Throttled(headers) => {
                    throttles += 1;
                    self.wait_out_throttle(what, &headers, throttles, deadline)
                        .await?;
                    continue;
                }
                Attempt::Failed(problem) => problem,
            };
            failures += 1;
            self.back_off(what, failures, &problem, deadline).await?;
        }
    }

    /// Sends the request once and reads its answer: `judge`'s result, a 429 (with its
    /// headers), or a failure worth retrying (described). A redirect, or an answer `judge`
    /// refuses, stops the request.
    async fn attempt<T>(
        &self,
        what: &str,
        request: RequestBuilder,
        judge: &impl Fn(StatusCode, &[u8]) -> Verdict<T>,
    ) -> Result<Attempt<T>, Stop> {
        let resp = match request.send().await {
            Err(e) => return Ok(Attempt::Failed(describe_transport(&e))),
            Ok(resp) => resp,
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Ok(Attempt::Throttled(headers));
        }
        // On a 429, Retry-After is the instruction; the limit headers pace the rest.
        self.note_rate_limit(&headers);
        if status.is_redirection() {
            // Not followed (see `new`) and not retried: the same request would be
            // redirected again.
            return Err(Stop::Hub(redirected(what, status, &headers)));
        }
        if status.is_server_error() {
            return Ok(Attempt::Failed(format!("HTTP {}", status.as_u16())));
        }
        match read_body(resp, self.cfg.max_body_bytes).await {
            Err(e) => Ok(Attempt::Failed(e)),
            Ok(body) => match judge(status, &body) {
                Verdict::Done(t) => Ok(Attempt::Answered(t)),
                Verdict::Fail(e) => Err(Stop::Hub(e)),
                Verdict::Unauthorized(msg) => Err(Stop::Unauthorized(msg)),
                Verdict::Retry(msg) => Ok(Attempt::Failed(msg)),
            },
        }
    }

    /// After the `throttles`-th 429 of a request: waits what the server asks (or a
    /// backoff), unless it has throttled too often or asks too long, which ends the run's
    /// reading for now.
    async fn wait_out_throttle(
        &self,
        what: &str,
        headers: &HeaderMap,
        throttles: u32,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        bump(&self.stats.throttled);
        let wait = self.throttle_wait(headers, throttles);
        tracing::warn!(
            request = what,
            wait_ms = wait.as_millis() as u64,
            "rate limited (429)"
        );
        if throttles > self.cfg.max_throttles || wait > self.cfg.max_rate_wait {
            return Err(Stop::Hub(HubError::OutOfTime(format!(
                "{what}: Docker Hub kept rate-limiting (429, asked to wait {}s); the next run continues from the checkpoint",
                wait.as_secs()
            ))));
        }
        crate::progress::waiting(wait, "rate limit (429)");
        self.sleep_within(what, wait, deadline).await?;
        Ok(())
    }

    /// After the `failures`-th failed attempt of a request: gives up once the attempts are
    /// spent, else waits a backoff with jitter before the next.
    async fn back_off(
        &self,
        what: &str,
        failures: u32,
        problem: &str,
        deadline: Option<Instant>,
    ) -> Result<(), Stop> {
        if failures >= self.cfg.max_attempts {
            return Err(Stop::Hub(HubError::Unavailable(format!(
                "{what} failed {failures} times, last: {problem}. Docker Hub may be down or answering badly; \
                 nothing after the last checkpoint was committed, and the next run retries"
            ))));
        }
        bump(&self.stats.retries);
        let wait = {
            let mut j = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
            backoff(failures - 1, self.cfg.retry_base, self.cfg.retry_cap, &mut j)
        };
        tracing::warn!(request = what, attempt = failures, wait_ms = wait.as_millis() as u64, problem = %problem, "retrying");
        crate::progress::waiting(wait, "retry after a failed request");
        self.sleep_within(what, wait, deadline).await?;
        Ok(())
    }

    fn throttle_wait(&self, h: &HeaderMap, throttles: u32) -> Duration {
        let now = self.clock.now();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let asked = header("retry-after")
            .or_else(|| header("x-retry-after"))
            .and_then(|v| parse_retry_after(v, now))
            .or_else(|| header("x-ratelimit-reset").and_then(|v| parse_reset(v, now)));
        let mut j = self.jitter.lock().unwrap_or_else(|e| e.into_inner());
        throttle_wait(
            asked,
            throttles,
            self.cfg.retry_base.max(Duration::from_secs(1)),
            self.cfg.retry_cap,
            &mut j,
        )
    }

    /// Slows down before the limit is hit, from `X-RateLimit-Remaining` / `-Reset`.
    fn note_rate_limit(&self, h: &HeaderMap) {
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        let Some(remaining) = header("x-ratelimit-remaining").and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return;
        };
        let limit = header("x-ratelimit-limit").and_then(|v| v.trim().parse::<u64>().ok());
        let to_reset = header("x-ratelimit-reset")
            .and_then(|v| parse_reset(v, self.clock.now()))
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(120));
        let keep = limit.map_or(0, |l| {
            (l as f64 * self.cfg.leave_for_others.clamp(0.0, 0.9)) as u64
        });
        let pause = pacing(remaining, limit, to_reset, keep);
        if !pause.is_zero() {
            tracing::debug!(
                remaining,
                pause_ms = pause.as_millis() as u64,
                "pacing ahead of the rate limit"
            );
            *self.not_before.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + pause);
        }
    }

    async fn wait_for_pace(&self, what: &str, deadline: Option<Instant>) -> Result<(), HubError> {
        let until = *self.not_before.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = until {
            let wait = until.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                crate::progress::waiting(wait, "pacing below the rate limit");
                self.sleep_within(what, wait, deadline).await?;
            }
        }
        Ok(())
    }

    async fn sleep_within(
        &self,
        what: &str,
        wait: Duration,
        deadline: Option<Instant>,
    ) -> Result<(), HubError> {
        if let Some(d) = deadline {
            if Instant::now() + wait >= d {
                return Err(out_of_time(what));
            }
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// A redirect, refused: names where it pointed (its host only) and what to do.
fn redirected(what: &str, status: StatusCode, headers: &HeaderMap) -> HubError {
    let to = headers
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| match Url::parse(l) {
            Ok(u) => format!(
                "{}://{}",
                u.scheme(),
                shown(&u.host_str().map_or(String::new(), |h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                }))
            ),
            // A relative Location stays on the same origin; its path is the Hub's text.
            Err(_) => format!("a path on the same host ({})", shown(l)),
        })
        .unwrap_or_else(|| "nowhere (no Location header)".into());
    HubError::Rejected(format!(
        "{what}: Docker Hub answered HTTP {} redirecting to {to}; redirects are never followed, so the token \
         goes nowhere else. Check --hub-url (DockerHubUrl): it must be the API's own origin, e.g. https://hub.docker.com",
        status.as_u16()
    ))
}

fn out_of_time(what: &str) -> HubError {
    HubError::OutOfTime(format!(
        "{what}: the run's time ran out while waiting on Docker Hub; everything before it is committed and the next run continues"
    ))
}

/// A transport failure in words, without the URL's query (no secrets are in URLs, but the
/// message stays short).
fn describe_transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut off"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind} ({})", shown(&detail))
    }
}

async fn read_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the body is larger than {} MiB", max >> 20));
    }
    // Sized once when the length is known: growing by doubling would hold up to twice a
    // large page.
    let mut body = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > max {
                    return Err(format!("the body is larger than {} MiB", max >> 20));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(describe_transport(&e)),
        }
    }
}

#[async_trait]
impl AuditLog for HubClient {
    fn request_stats(&self) -> crate::ports::RequestStats {
        let s = &self.stats;
        crate::ports::RequestStats {
            requests: ApiStats::get(&s.requests) + ApiStats::get(&s.token_requests),
            throttled: ApiStats::get(&s.throttled),
            retries: ApiStats::get(&s.retries),
        }
    }

    async fn page(&self, org: &Org, q: PageQuery, budget: Option<Duration>) -> Result<Page, HubError> {
        let deadline = budget.map(|b| Instant::now() + b);
        let url = self.url(&format!("/v2/auditlogs/{org}"));
        let what = format!(
            "GET /v2/auditlogs/{org} page {} of [{}, {}]",
            q.page,
            rfc3339(q.from),
            rfc3339(q.to)
        );
        let mut params = vec![
            ("from", rfc3339(q.from)),
            ("to", rfc3339(q.to)),
            ("page", q.page.to_string()),
            ("page_size", q.page_size.to_string()),
        ];
        if let Some(action) = &q.action {
            params.push(("action", action.clone()));
        }
        let mut reauthorized = false;
        loop {
            let token = self.bearer(deadline).await?;
            let result = self
                .execute(
                    &what,
                    deadline,
                    &self.stats.requests,
                    || self.http.get(url.clone()).query(&params).bearer_auth(token.token.expose()),
                    |status, body| match status {
                        StatusCode::OK => match wire::parse_page(body) {
                            Ok(page) => Verdict::Done(page),
                            Err(e) => Verdict::Retry(format!("malformed response: {e}")),
                        },
                        StatusCode::UNAUTHORIZED => Verdict::Unauthorized(format!(
                            "{what}: Docker Hub rejected a freshly issued token (HTTP 401: {}). Check that DOCKERHUB_TOKEN is \
                             still valid and has not been revoked",
                            wire::error_summary(body)
                        )),
                        StatusCode::FORBIDDEN => Verdict::Fail(HubError::Forbidden(format!(
                            "{what}: HTTP 403 ({}). These credentials may not read {org}'s audit log: use an organization \
                             access token with \"Audit Log Read\" (identifier = the organization name), or a personal access \
                             token of an owner of {org}",
                            wire::error_summary(body)
                        ))),
                        // Past the last page some backends answer 404 rather than an empty list.
                        StatusCode::NOT_FOUND if q.page > 1 => Verdict::Done(Page::default()),
                        StatusCode::NOT_FOUND => Verdict::Fail(HubError::Rejected(format!(
                            "{what}: HTTP 404 ({}). Check that {org} is the organization's Docker Hub namespace and \
                             that --hub-url points at Docker Hub",
                            wire::error_summary(body)
                        ))),
                        s => Verdict::Fail(HubError::Rejected(format!(
                            "{what}: HTTP {} ({}); not retried. If this persists, report it with this message",
                            s.as_u16(),
                            wire::error_summary(body)
                        ))),
                    },
                )
                .await;
            match result {
                // One fresh token per 401, never a loop: the token may have expired early
                // or been rotated; a second 401 means the credentials themselves are bad.
                Err(Stop::Unauthorized(_)) if !reauthorized => {
                    tracing::info!(request = %what, "401 on a cached token; getting a new one once");
                    reauthorized = true;
                    self.forget_token().await;
                }
                other => return other.map_err(Stop::into_hub),
            }
        }
    }
}
