//! The HTTP surface: token exchange, the audit-log list and the actions catalogue.
//!
//! Order of checks on the audit-log routes: live events are generated, the request is counted in its
//! rate-limit window (429 if over), the bearer token is checked (401/403), the query is validated (400),
//! then a fault may replace the answer. Every answer of these routes carries `X-RateLimit-*`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{self, Claims, TokenError};
use super::events::{self, ACTIONS_JSON};
use super::faults::{self, Fault};
use super::rate_limit::{self, RateInfo};
use super::{Emulator, EmulatorConfig, Filter, State as EmulatorState};

/// Default `page_size` (API reference §2.1).
const DEFAULT_PAGE_SIZE: u32 = 25;

pub(super) fn router(emulator: Emulator) -> Router {
    Router::new()
        .route("/v2/auth/token", post(token))
        .route("/v2/auditlogs/{account}", get(list))
        .route("/v2/auditlogs/{account}/actions", get(actions))
        .with_state(emulator)
}

/// Several namespaces behind one router (see [`super::start_many`]).
pub(super) fn multi_router(emulators: Vec<Emulator>) -> Router {
    Router::new()
        .route("/v2/auth/token", post(multi_token))
        .route("/v2/auditlogs/{account}", get(multi_list))
        .route("/v2/auditlogs/{account}/actions", get(multi_actions))
        .with_state(Arc::new(emulators))
}

type Namespaces = Arc<Vec<Emulator>>;

fn serving<'a>(all: &'a Namespaces, account: &str) -> Option<&'a Emulator> {
    all.iter().find(|e| e.cfg().org == account)
}

async fn multi_token(State(all): State<Namespaces>, body: Bytes) -> Response {
    let identifier = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("identifier").and_then(Value::as_str).map(str::to_owned));
    let found = identifier.and_then(|id| {
        all.iter()
            .find(|e| e.cfg().org == id || e.cfg().username == id)
            .cloned()
    });
    match found {
        Some(emu) => token(State(emu), body).await,
        None => error(StatusCode::UNAUTHORIZED, "Incorrect authentication credentials"),
    }
}

async fn multi_list(
    State(all): State<Namespaces>,
    Path(account): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    match serving(&all, &account) {
        Some(emu) => list(State(emu.clone()), Path(account), query, headers).await,
        None => forbidden(),
    }
}

async fn multi_actions(
    State(all): State<Namespaces>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    match serving(&all, &account) {
        Some(emu) => actions(State(emu.clone()), Path(account), headers).await,
        None => forbidden(),
    }
}

/// A response with a JSON content type and exactly these bytes as body.
pub(super) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// `{"logs": [...]}`: the only shape of a successful list response.
pub(super) fn logs_body(page: &[Value]) -> Vec<u8> {
    // Serializing plain `Value`s cannot fail.
    serde_json::to_vec(&json!({ "logs": page })).unwrap_or_default()
}

/// Hub's generic `error` schema `{detail, message, errinfo}` (API reference §1.1).
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "detail": message, "message": message, "errinfo": {} });
    json_bytes(status, body.to_string().into_bytes())
}

/// The observed 403 body (API reference §6.3).
fn forbidden() -> Response {
    json_bytes(
        StatusCode::FORBIDDEN,
        br#"{"message":"forbidden","errinfo":{}}"#.to_vec(),
    )
}

/// grpc-gateway's `rpcStatus`, the declared default error of the audit-log routes (§2.3); code 3 is
/// INVALID_ARGUMENT.
fn bad_request(message: &str) -> Response {
    let body = json!({ "code": 3, "message": message, "details": [] });
    json_bytes(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
}

#[derive(Deserialize)]
struct TokenRequest {
    identifier: String,
    secret: String,
}

async fn token(State(emu): State<Emulator>, body: Bytes) -> Response {
    let cfg = emu.cfg();
    let now = emu.now();
    let mut state = emu.caught_up(now);
    state.stats.token_requests += 1;
    if state.failing_token_requests > 0 {
        state.failing_token_requests -= 1;
        state.stats.token_failures += 1;
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal server error");
    }
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) else {
        state.stats.token_failures += 1;
        return error(
            StatusCode::BAD_REQUEST,
            "request body must be JSON {\"identifier\": ..., \"secret\": ...}",
        );
    };
    let known = request.identifier == cfg.username || request.identifier == cfg.org;
    let accepted = state.rotated_secret.as_deref().unwrap_or(&cfg.secret);
    if !known || request.secret != accepted {
        state.stats.token_failures += 1;
        tracing::debug!("emulator: token request with wrong credentials");
        return error(StatusCode::UNAUTHORIZED, "Incorrect authentication credentials");
    }
    let jti = state.next_jti;
    state.next_jti += 1;
    drop(state);
    let exp = now
        .checked_add_signed(cfg.token_ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let claims = Claims {
        sub: request.identifier,
        iat: now.timestamp(),
        exp: exp.timestamp(),
        org: cfg.org.clone(),
        jti,
    };
    tracing::debug!(jti, "emulator: token issued");
    let body = json!({ "access_token": auth::issue(&claims) });
    json_bytes(StatusCode::OK, body.to_string().into_bytes())
}

async fn list(
    State(emu): State<Emulator>,
    Path(account): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let (mut response, rate, delay) = list_response(&emu, &account, query, &headers);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let held = emu.shared.hold.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(hold) = held.filter(|h| h.at == emu.stats().list_requests) {
        hold.reached.notify_one();
        hold.release.notified().await;
    }
    rate_limit::apply_headers(&mut response, rate);
    response
}

async fn actions(State(emu): State<Emulator>, Path(account): Path<String>, headers: HeaderMap) -> Response {
    let now = emu.now();
    let mut state = emu.caught_up(now);
    state.stats.actions_requests += 1;
    let (rate, refusal) = admit(&emu, &mut state, &account, &headers, now);
    let mut response =
        refusal.unwrap_or_else(|| json_bytes(StatusCode::OK, ACTIONS_JSON.as_bytes().to_vec()));
    rate_limit::apply_headers(&mut response, rate);
    response
}

/// Rate limit and authorization, common to the audit-log routes: the headers to send, and the refusal
/// if the request goes no further.
fn admit(
    emu: &Emulator,
    state: &mut EmulatorState,
    account: &str,
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> (RateInfo, Option<Response>) {
    let cfg = emu.cfg();
    let (rate, over) = state.limiter.hit(now, cfg.rate_limit_per_minute);
    if over {
        state.stats.throttled += 1;
        let reset = DateTime::from_timestamp(rate.reset, 0).unwrap_or(now);
        let retry_after = state.limiter.retry_after(cfg.retry_after, now, reset);
        return (rate, Some(rate_limit::too_many_requests(&retry_after)));
    }
    let refusal = match auth::verify(headers.get(header::AUTHORIZATION), now) {
        Err(e) => {
            state.stats.unauthorized += 1;
            Some(error(StatusCode::UNAUTHORIZED, &e.to_string()))
        }
        Ok(claims) if claims.org != cfg.org || account != cfg.org => {
            state.stats.forbidden += 1;
            Some(forbidden())
        }
        Ok(_) => None,
    };
    (rate, refusal)
}

/// A validated list query.
struct ListParams {
    filter: Filter,
    page: u32,
    page_size: u32,
}

/// Validates the query string; the error is the 400 message.
fn parse_list_params(query: &HashMap<String, String>, cfg: &EmulatorConfig) -> Result<ListParams, String> {
    // An empty value means "not given", as grpc-gateway treats it.
    let get = |key: &str| query.get(key).map(String::as_str).filter(|v| !v.is_empty());
    let time = |key: &str| {
        get(key).map(events::parse_timestamp).transpose().map_err(|_| {
            format!("invalid {key}: expected an RFC 3339 date-time such as 2026-11-25T21:26:00Z")
        })
    };
    let positive = |key: &str, default: u32| match get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| format!("invalid {key}: expected an integer from 1 to {}", u32::MAX)),
    };
    Ok(ListParams {
        filter: Filter {
            from: time("from")?,
            to: time("to")?,
            action: get("action").map(str::to_string),
            name: get("name").map(str::to_string),
            actor: get("actor").map(str::to_string),
        },
        page: positive("page", 1)?,
        page_size: positive("page_size", DEFAULT_PAGE_SIZE)?.min(cfg.page_cap.max(1)),
    })
}

/// Everything a list request does under the lock. Returns the answer, the rate-limit headers, and how
/// long to wait before answering (the Slow fault), so the handler sleeps without the lock.
fn list_response(
    emu: &Emulator,
    account: &str,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &HeaderMap,
) -> (Response, RateInfo, Option<std::time::Duration>) {
    let cfg = emu.cfg();
    let now = emu.now();
    let mut state = emu.caught_up(now);
    state.stats.list_requests += 1;
    let (rate, refusal) = admit(emu, &mut state, account, headers, now);
    if let Some(response) = refusal {
        return (response, rate, None);
    }
    let params = match query
        .map_err(|e| e.body_text())
        .and_then(|Query(q)| parse_list_params(&q, cfg))
    {
        Ok(params) => params,
        Err(message) => return (bad_request(&message), rate, None),
    };
    tracing::debug!(
        account,
        page = params.page,
        page_size = params.page_size,
        "emulator: list request"
    );
    if params.page >= 2 {
        state.insert_while_paging(cfg, &params.filter, now);
    }
    let fault = match state.outage.clone() {
        Some(fault) => Some(fault),
        None => match state.pushed_faults.pop_front() {
            Some(fault) => Some(fault),
            None => faults::pick(&mut state.fault_rng, cfg.fault_rate, &cfg.fault_kinds),
        },
    };
    let size = match cfg.page_size_varies {
        0 => params.page_size,
        v => {
            let from = params.filter.from.map_or(0, |t| t.timestamp() as u64);
            let cut =
                events::item_rng(from, events::STREAM_TIES, u64::from(params.page)).u64(..=u64::from(v));
            params.page_size.saturating_sub(cut as u32).max(1)
        }
    };
    // (page - 1) * size fits in u64 for any u32 inputs; past the end is simply an empty page.
    let offset = u64::from(params.page - 1) * u64::from(size);
    let offset = usize::try_from(offset).unwrap_or(usize::MAX);
    let mut page = state.page(cfg, &params.filter, now, params.page, offset, size as usize);
    if cfg.event_padding > 0 {
        faults::pad(&mut page, cfg.event_padding);
    }
    let Some(fault) = fault else {
        return (json_bytes(StatusCode::OK, logs_body(&page)), rate, None);
    };
    state.stats.faults_served += 1;
    tracing::debug!(?fault, "emulator: serving a fault");
    let response = match fault {
        Fault::ServerError(code) => faults::server_error(code),
        Fault::TooManyRequests => {
            let retry_after = state
                .limiter
                .retry_after(cfg.retry_after, now, now + Duration::seconds(1));
            return (
                rate_limit::too_many_requests(&retry_after),
                RateInfo { remaining: 0, ..rate },
                None,
            );
        }
        Fault::Truncated => faults::truncated(&page),
        Fault::MalformedJson => faults::malformed(),
        Fault::WrongTypes => faults::wrong_types(),
        Fault::InvalidUtf8 => faults::invalid_utf8(),
        Fault::HugeField => faults::huge(&page),
        Fault::Slow => return (json_bytes(StatusCode::OK, logs_body(&page)), rate, Some(cfg.slow)),
        Fault::ExpireToken => error(StatusCode::UNAUTHORIZED, &TokenError::Expired.to_string()),
    };
    (response, rate, None)
}
