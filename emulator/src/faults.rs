//! Injected faults: the ways a list response can go wrong, and their bodies.

use std::str::FromStr;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fastrand::Rng;
use serde_json::{json, Value};

use super::routes::{json_bytes, logs_body};

/// Length of the [`Fault::HugeField`] description: 20 MiB.
const HUGE_LEN: usize = 20 * 1024 * 1024;

/// One way a list request can fail. Faults are served to list requests that passed authentication and
/// query validation, first from the pushed queue, then at random (`fault_rate`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500, 502 or 503 with a small body (any other code is served as given, or as 500 if invalid).
    ServerError(u16),
    /// 429 `{"detail":"Rate limit exceeded","error":false}`, `Retry-After` one second ahead.
    TooManyRequests,
    /// 200 whose JSON body is cut in half; `content-length` matches the cut body.
    Truncated,
    /// 200 with `{"logs": [ {"action": ` and garbage.
    MalformedJson,
    /// 200 with `{"logs": {"not": "an array"}}`.
    WrongTypes,
    /// 200 whose body holds invalid UTF-8 inside a string.
    InvalidUtf8,
    /// 200 with the real page, but one event's `action_description` is 20 MiB.
    HugeField,
    /// The real page, after `EmulatorConfig::slow`.
    Slow,
    /// 401 "token expired", as if the bearer token had expired.
    ExpireToken,
}

impl Fault {
    /// The default `fault_kinds`: everything but [`Fault::ExpireToken`], which a client survives only
    /// once per token.
    pub(super) fn random_kinds() -> Vec<Fault> {
        vec![
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
        ]
    }
}

/// A `--fault KIND` value that names no fault.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown fault kind {0:?}; expected one of 500, 502, 503, 429, truncated, malformed, wrong-types, \
     invalid-utf8, huge, slow, expire-token"
)]
pub struct UnknownFault(String);

impl FromStr for Fault {
    type Err = UnknownFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "500" => Fault::ServerError(500),
            "502" => Fault::ServerError(502),
            "503" => Fault::ServerError(503),
            "429" => Fault::TooManyRequests,
            "truncated" => Fault::Truncated,
            "malformed" => Fault::MalformedJson,
            "wrong-types" => Fault::WrongTypes,
            "invalid-utf8" => Fault::InvalidUtf8,
            "huge" => Fault::HugeField,
            "slow" => Fault::Slow,
            "expire-token" => Fault::ExpireToken,
            other => return Err(UnknownFault(other.to_string())),
        })
    }
}

/// Draws whether this request gets a random fault, and which.
///
/// Always draws once, so the sequence of decisions depends only on the seed and the request count.
pub(super) fn pick(rng: &mut Rng, rate: f64, kinds: &[Fault]) -> Option<Fault> {
    if rng.f64() < rate {
        rng.choice(kinds).cloned()
    } else {
        None
    }
}

pub(super) fn server_error(code: u16) -> Response {
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        // The backend's own error: grpc-gateway's rpcStatus (API reference §2.3).
        json_bytes(
            status,
            br#"{"code":13,"message":"internal error","details":[]}"#.to_vec(),
        )
    } else {
        // Gateways answer in HTML, as a load balancer in front of the API would.
        let reason = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<html><body><h1>{} {reason}</h1></body></html>\n",
            status.as_u16()
        );
        (status, [("content-type", "text/html")], body).into_response()
    }
}

/// The page's JSON cut in half. The response carries the cut length, so the HTTP exchange completes.
pub(super) fn truncated(page: &[Value]) -> Response {
    let mut body = logs_body(page);
    body.truncate(body.len() / 2);
    json_bytes(StatusCode::OK, body)
}

pub(super) fn malformed() -> Response {
    json_bytes(
        StatusCode::OK,
        br#"{"logs": [ {"action": ]]} not json at all"#.to_vec(),
    )
}

pub(super) fn wrong_types() -> Response {
    json_bytes(StatusCode::OK, br#"{"logs": {"not": "an array"}}"#.to_vec())
}

pub(super) fn invalid_utf8() -> Response {
    let body = b"{\"logs\": [{\"action\": \"repo.tag.push\", \"name\": \"acme/\xff\xfe\xc3\", \
                 \"timestamp\": \"2026-01-01T00:00:00Z\"}]}";
    json_bytes(StatusCode::OK, body.to_vec())
}

/// The real page with a 20 MiB `action_description` in its first event (or in a lone event if the
/// page is empty).
pub(super) fn huge(page: &[Value]) -> Response {
    let mut page = page.to_vec();
    if page.is_empty() {
        page.push(json!({"action": "repo.tag.push", "timestamp": "2026-01-01T00:00:00Z"}));
    }
    if let Some(obj) = page[0].as_object_mut() {
        obj.insert("action_description".into(), Value::String("x".repeat(HUGE_LEN)));
    }
    json_bytes(StatusCode::OK, logs_body(&page))
}

/// Gives every event a `padding` of `len` characters drawn from a generator seeded by the
/// event itself: the same event (and its identical twins) always gets the same padding, so
/// pages stay consistent, and the text hardly compresses, as real large fields would not.
pub(super) fn pad(page: &mut [Value], len: usize) {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for event in page.iter_mut() {
        // FNV-1a of the event's JSON: stable across runs and platforms.
        let seed = event.to_string().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut rng = Rng::with_seed(seed);
        let text: String = (0..len)
            .map(|_| CHARS[rng.usize(..CHARS.len())] as char)
            .collect();
        if let Some(obj) = event.as_object_mut() {
            obj.insert("padding".into(), Value::String(text));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!("503".parse::<Fault>().ok(), Some(Fault::ServerError(503)));
        assert_eq!("expire-token".parse::<Fault>().ok(), Some(Fault::ExpireToken));
        assert_eq!("huge".parse::<Fault>().ok(), Some(Fault::HugeField));
        assert!("504".parse::<Fault>().is_err());
        assert!(!Fault::random_kinds().contains(&Fault::ExpireToken));
    }

    #[test]
    fn padding_is_the_same_for_the_same_event() {
        let e = json!({"action": "repo.tag.push", "timestamp": "2026-01-01T00:00:00Z"});
        let other = json!({"action": "repo.create", "timestamp": "2026-01-01T00:00:00Z"});
        let mut page = vec![e.clone(), e, other];
        pad(&mut page, 1000);
        assert_eq!(page[0], page[1]);
        assert_ne!(page[0]["padding"], page[2]["padding"]);
        assert_eq!(page[0]["padding"].as_str().map(str::len), Some(1000));
    }
}
