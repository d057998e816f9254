//! A fault proxy between the AWS SDK and the AWS emulator, for drills: it forwards every
//! request, and on a fixed schedule answers S3 and DynamoDB requests with a server error,
//! throttling, a late answer (past the SDK's timeout, the request still applied), or an
//! ambiguous write (applied, then the answer lost and replaced by an error).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AwsFault {
    /// 500 InternalError / InternalServerError.
    ServerError,
    /// 503 ServiceUnavailable (S3: SlowDown).
    Unavailable,
    /// DynamoDB ThrottlingException (400), S3 SlowDown (503).
    Throttled,
    /// Held for `LATE` (past the SDK's attempt timeout, so the caller retries), then
    /// applied: a write that lands after its retry.
    Late,
    /// Applied, then answered with a 500: the caller cannot know it was applied.
    Ambiguous,
    /// DynamoDB's throttling of a batch read: a `BatchGetItem` answered with every key it
    /// asked for as unprocessed (other requests pass).
    Unprocessed,
}

/// How long a late answer waits: past the DynamoDB client's 5 s attempt timeout.
pub const LATE: Duration = Duration::from_secs(6);

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    /// Every `every`-th request of each service (S3, DynamoDB) gets that service's next
    /// fault of `kinds` (in turn): counted per service, so every kind reaches both whatever
    /// the interleaving of their requests.
    every: u64,
    kinds: Vec<AwsFault>,
    /// At most this many late answers (each costs `LATE`).
    late_budget: Arc<Mutex<u32>>,
    seen: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    pub injected: Arc<Mutex<BTreeMap<(AwsFault, &'static str), u32>>>,
}

pub struct RunningProxy {
    pub url: String,
    pub injected: Arc<Mutex<BTreeMap<(AwsFault, &'static str), u32>>>,
}

/// Starts the proxy on 127.0.0.1 in front of `upstream`.
pub async fn start(upstream: &str, every: u64, kinds: Vec<AwsFault>, late_budget: u32) -> RunningProxy {
    let proxy = Proxy {
        upstream: upstream.trim_end_matches('/').to_string(),
        http: reqwest::Client::new(),
        every,
        kinds,
        late_budget: Arc::new(Mutex::new(late_budget)),
        seen: Arc::default(),
        injected: Arc::default(),
    };
    let injected = proxy.injected.clone();
    let app = Router::new().fallback(handle).with_state(proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    RunningProxy { url, injected }
}

fn service(headers: &HeaderMap) -> &'static str {
    match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        Some(t) if t.starts_with("DynamoDB") => "dynamodb",
        Some(_) => "other",
        None => "s3",
    }
}

fn error(service: &str, fault: AwsFault) -> Response {
    let (status, code) = match (service, fault) {
        ("dynamodb", AwsFault::Throttled) => (StatusCode::BAD_REQUEST, "ThrottlingException"),
        (_, AwsFault::Throttled) => (StatusCode::SERVICE_UNAVAILABLE, "SlowDown"),
        (_, AwsFault::Unavailable) => (StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError"),
    };
    if service == "dynamodb" {
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by the drill"}}"#
        );
        (status, [("content-type", "application/x-amz-json-1.0")], body).into_response()
    } else {
        let body = format!("<Error><Code>{code}</Code><Message>injected by the drill</Message></Error>");
        (status, [("content-type", "application/xml")], body).into_response()
    }
}

async fn forward(p: &Proxy, method: Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let path = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let mut req = p.http.request(method, format!("{}{path}", p.upstream)).body(body);
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(body));
            *out.status_mut() = status;
            for (k, v) in &headers {
                if k != "transfer-encoding" && k != "content-length" {
                    out.headers_mut().insert(k, v.clone());
                }
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

async fn handle(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let svc = service(&headers);
    let fault = if svc == "other" {
        None
    } else {
        let mut seen = p.seen.lock().unwrap();
        let seen = seen.entry(svc).or_default();
        *seen += 1;
        let n = *seen;
        (n % p.every == 0).then(|| p.kinds[((n / p.every) as usize) % p.kinds.len()])
    };
    let fault = match fault {
        Some(AwsFault::Late) => {
            let mut left = p.late_budget.lock().unwrap();
            if *left == 0 {
                Some(AwsFault::ServerError)
            } else {
                *left -= 1;
                Some(AwsFault::Late)
            }
        }
        f => f,
    };
    let batch_read = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.ends_with(".BatchGetItem"));
    let Some(fault) = fault.filter(|f| *f != AwsFault::Unprocessed || batch_read) else {
        return forward(&p, method, &uri, &headers, body).await;
    };
    *p.injected.lock().unwrap().entry((fault, svc)).or_default() += 1;
    match fault {
        AwsFault::Late => {
            // Applied only after the caller gave up and retried: a write landing late.
            tokio::time::sleep(LATE).await;
            forward(&p, method, &uri, &headers, body).await
        }
        AwsFault::Ambiguous => {
            let _applied = forward(&p, method, &uri, &headers, body).await;
            error(svc, AwsFault::ServerError)
        }
        AwsFault::Unprocessed => {
            let asked: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = serde_json::json!({"Responses": {}, "UnprocessedKeys": asked["RequestItems"]});
            (
                StatusCode::OK,
                [("content-type", "application/x-amz-json-1.0")],
                answer.to_string(),
            )
                .into_response()
        }
        f => error(svc, f),
    }
}
