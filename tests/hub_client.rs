//! The Docker Hub client against the emulator over real HTTP: tokens, the 401-once rule,
//! bad credentials, 403, rate limits in both `Retry-After` forms, and every fault kind.

mod common;

use std::sync::Arc;

use chrono::Duration;
use common::*;
use dockerhub_audit::clock::ManualClock;
use dockerhub_audit::hub::{ApiStats, HubClient, HubConfig};
use dockerhub_audit::ports::{
    AuditLog, CredentialSource, Credentials, CredentialsError, HubError, PageQuery, Secret,
};
use dockerhub_audit_emulator::{Fault, RetryAfterForm};

fn q(page: u32) -> PageQuery {
    PageQuery {
        from: t0() - Duration::days(2),
        to: t0(),
        page,
        page_size: 100,
        action: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuses_the_token_and_refreshes_it_by_its_exp() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(300, 2, 1), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    for p in 1..=3 {
        assert_eq!(c.page(&org(), q(p), None).await.unwrap().len(), 100);
    }
    assert_eq!(emu.stats().token_requests, 1, "one token for many requests");
    // 9 minutes 30 later the token is within the refresh margin of its 10-minute exp.
    clock.advance(Duration::seconds(570));
    c.page(&org(), q(1), None).await.unwrap();
    assert_eq!(emu.stats().token_requests, 2);
    assert_eq!(
        emu.stats().unauthorized,
        0,
        "refreshed before it expired, not after a 401"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_gets_one_new_token_and_a_retry() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(50, 2, 2), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    c.page(&org(), q(1), None).await.unwrap();
    emu.push_faults([Fault::ExpireToken]);
    assert_eq!(c.page(&org(), q(1), None).await.unwrap().len(), 50);
    assert_eq!(emu.stats().token_requests, 2);
    // Two 401s in a row: the second is final, and no third token is asked for.
    emu.push_faults([Fault::ExpireToken, Fault::ExpireToken]);
    let err = c.page(&org(), q(1), None).await.unwrap_err();
    assert!(matches!(err, HubError::Auth(_)), "{err:?}");
    assert!(err.to_string().contains("DOCKERHUB_TOKEN"), "{err}");
    assert_eq!(emu.stats().token_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_fail_at_once_without_a_retry_storm() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(10, 1, 3), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), "dckr_oat_wrong");
    let err = c.page(&org(), q(1), None).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::Auth(_)));
    assert!(
        msg.contains("DOCKERHUB_USERNAME") && msg.contains("lock"),
        "{msg}"
    );
    assert!(
        !msg.contains("dckr_oat_wrong"),
        "the secret must not appear in errors"
    );
    assert_eq!(emu.stats().token_requests, 1);
    assert_eq!(emu.stats().list_requests, 0);
    // The next run of a warm client does not log in again with what was refused.
    let again = c.page(&org(), q(1), None).await.unwrap_err();
    assert!(again.to_string().contains("not tried again"), "{again}");
    assert_eq!(emu.stats().token_requests, 1);
}

/// Credentials that an operator replaces while the client lives (a rotated secret).
struct Rotating(std::sync::Mutex<String>, std::sync::atomic::AtomicU32);

#[async_trait::async_trait]
impl CredentialSource for Rotating {
    async fn get(&self) -> Result<Credentials, CredentialsError> {
        Ok(Credentials {
            identifier: "acme".into(),
            secret: Secret::new(self.0.lock().unwrap().clone()),
        })
    }
    async fn invalidate(&self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_reads_the_secret_again_and_tries_only_a_new_one() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(10, 1, 3), Arc::new(clock.clone())).await;
    let creds = Arc::new(Rotating(
        std::sync::Mutex::new("dckr_oat_revoked".into()),
        Default::default(),
    ));
    let cfg = HubConfig {
        base_url: url::Url::parse(&hub.url()).unwrap(),
        retry_base: std::time::Duration::from_millis(5),
        ..HubConfig::default()
    };
    let c = HubClient::new(cfg, creds.clone(), Arc::new(clock.clone())).unwrap();
    assert!(matches!(c.page(&org(), q(1), None).await, Err(HubError::Auth(_))));
    assert!(
        creds.1.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the secret is read again"
    );
    assert!(c.page(&org(), q(1), None).await.is_err());
    assert_eq!(
        emu.stats().token_requests,
        1,
        "the refused secret is not sent twice"
    );
    // The operator puts the new token in place: the very next run uses it.
    *creds.0.lock().unwrap() = SECRET.into();
    assert_eq!(c.page(&org(), q(1), None).await.unwrap().len(), 10);
    assert_eq!(emu.stats().token_requests, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_failures_are_retried() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(10, 1, 4), Arc::new(clock.clone())).await;
    emu.fail_token_requests(2);
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    assert_eq!(c.page(&org(), q(1), None).await.unwrap().len(), 10);
    assert_eq!(emu.stats().token_requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_log_is_a_clear_403() {
    let clock = ManualClock::new(t0());
    let (_emu, hub) = start(emulator_config(10, 1, 5), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let other = dockerhub_audit::types::Org::new("other").unwrap();
    let err = c.page(&other, q(1), None).await.unwrap_err();
    assert!(matches!(err, HubError::Forbidden(_)), "{err:?}");
    assert!(err.to_string().contains("Audit Log Read"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_kind_costs_retries_not_events() {
    let clock = ManualClock::new(t0());
    let mut cfg = emulator_config(40, 1, 6);
    cfg.slow = std::time::Duration::from_millis(300);
    let (emu, hub) = start(cfg, Arc::new(clock.clone())).await;
    let mut c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    let want = c.page(&org(), q(1), None).await.unwrap();
    assert_eq!(want.len(), 40);
    let faults = [
        Fault::ServerError(500),
        Fault::ServerError(502),
        Fault::ServerError(503),
        Fault::Truncated,
        Fault::MalformedJson,
        Fault::WrongTypes,
        Fault::InvalidUtf8,
        Fault::HugeField,
    ];
    for f in faults.clone() {
        emu.push_faults([f.clone()]);
        let got = c
            .page(&org(), q(1), None)
            .await
            .unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert_eq!(got, want, "{f:?} changed the page");
    }
    let s = c.stats();
    assert_eq!(ApiStats::get(&s.retries), faults.len() as u64);
    // A slow answer past the request timeout is a timeout, then a retry.
    drop(c);
    c = {
        let mut cfg = dockerhub_audit::hub::HubConfig {
            base_url: url::Url::parse(&hub.url()).unwrap(),
            retry_base: std::time::Duration::from_millis(5),
            ..Default::default()
        };
        cfg.request_timeout = std::time::Duration::from_millis(100);
        let creds = Arc::new(dockerhub_audit::credentials::env::StaticCredentials::new(
            "acme",
            dockerhub_audit::ports::Secret::new(SECRET),
        ));
        dockerhub_audit::hub::HubClient::new(cfg, creds, Arc::new(clock.clone())).unwrap()
    };
    emu.push_faults([Fault::Slow]);
    assert_eq!(c.page(&org(), q(1), None).await.unwrap(), want);
    assert_eq!(ApiStats::get(&c.stats().retries), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_that_never_ends_is_a_clear_error() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(10, 1, 7), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    emu.push_faults(std::iter::repeat_n(Fault::MalformedJson, 6));
    let err = c.page(&org(), q(1), None).await.unwrap_err();
    assert!(matches!(err, HubError::Unavailable(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("6 times") && msg.contains("not valid JSON") && msg.contains("next run"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_honour_retry_after_in_both_forms() {
    for form in [RetryAfterForm::Seconds, RetryAfterForm::UnixTime] {
        // The wall clock here: Retry-After as a unix time is read against it.
        let clock = Arc::new(dockerhub_audit::clock::SystemClock);
        let mut cfg = emulator_config(20, 1, 8);
        cfg.retry_after = form;
        let (emu, hub) = start(cfg, clock.clone()).await;
        let c = client(&hub.url(), clock.clone(), SECRET);
        let q = PageQuery {
            from: chrono::Utc::now() - Duration::days(2),
            to: chrono::Utc::now(),
            page: 1,
            page_size: 100,
            action: None,
        };
        emu.push_faults([Fault::TooManyRequests]);
        let started = std::time::Instant::now();
        assert_eq!(c.page(&org(), q, None).await.unwrap().len(), 20);
        let waited = started.elapsed();
        assert_eq!(ApiStats::get(&c.stats().throttled), 1, "{form:?}");
        // Seconds: "1" is a whole second (a sleep is never shorter). A unix time read as
        // seconds would be a 56-year wait, refused as out of time: success proves the form
        // was told apart.
        if form == RetryAfterForm::Seconds {
            assert!(
                waited >= std::time::Duration::from_millis(900),
                "{form:?}: waited {waited:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_bounds_waiting() {
    let clock = ManualClock::new(t0());
    let (emu, hub) = start(emulator_config(10, 1, 9), Arc::new(clock.clone())).await;
    let c = client(&hub.url(), Arc::new(clock.clone()), SECRET);
    emu.push_faults([Fault::TooManyRequests]);
    let err = c
        .page(&org(), q(1), Some(std::time::Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(matches!(err, HubError::OutOfTime(_)), "{err:?}");
}

/// A stand-in Hub that answers the token exchange (or, with `token_ok`, the list request)
/// with `status` and `Location: <to>`, counting what reached it.
async fn redirecting_hub(
    status: u16,
    to: String,
    token_ok: bool,
) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use axum::http::{header::LOCATION, StatusCode};
    use axum::response::IntoResponse;
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let hits = counted.clone();
        let to = to.clone();
        async move {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let redirect = (StatusCode::from_u16(status).unwrap(), [(LOCATION, to)]).into_response();
            if token_ok && req.uri().path() == "/v2/auth/token" {
                return axum::Json(
                    serde_json::json!({"access_token": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln"}),
                )
                .into_response();
            }
            redirect
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_never_followed_and_the_token_goes_nowhere_else() {
    // Whatever a redirect says, nothing reaches the place it names: not the long-lived
    // token (the exchange's body), not the bearer JWT (a list request's header).
    let (elsewhere, reached) = redirecting_hub(200, String::new(), true).await;
    for (status, token_ok) in [
        (307, false),
        (308, false),
        (301, false),
        (302, false),
        (307, true),
        (308, true),
    ] {
        let (hub, hits) = redirecting_hub(status, format!("{elsewhere}/v2/auth/token"), token_ok).await;
        let clock = ManualClock::new(t0());
        let c = client(&hub, Arc::new(clock), SECRET);
        let err = c.page(&org(), q(1), None).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, HubError::Rejected(_)), "{status}: {err:?}");
        let port = elsewhere.rsplit(':').next().unwrap();
        assert!(
            text.contains(&format!("HTTP {status}")) && text.contains(&format!("127.0.0.1:{port}")),
            "the error names the redirect and where it pointed: {text}"
        );
        assert!(text.contains("never followed"), "{text}");
        assert!(!text.contains(SECRET) && !text.contains("eyJ"), "{text}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            if token_ok { 2 } else { 1 },
            "{status}: not retried"
        );
    }
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the other listener"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_another_host_is_refused_before_anything_is_sent() {
    let creds = Arc::new(dockerhub_audit::credentials::env::StaticCredentials::new(
        "acme",
        Secret::new(SECRET),
    ));
    for url in ["http://hub.docker.com", "http://192.0.2.1:8080"] {
        let cfg = HubConfig {
            base_url: url::Url::parse(url).unwrap(),
            ..HubConfig::default()
        };
        let err = HubClient::new(cfg, creds.clone(), Arc::new(ManualClock::new(t0())))
            .err()
            .expect("refused");
        assert!(err.contains("https://") && err.contains("unencrypted"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identifier_that_looks_like_a_token_is_never_echoed() {
    // A secret stored with its fields swapped: the "username" is the token.
    let (emu, hub) = start(emulator_config(10, 2, 9), Arc::new(ManualClock::new(t0()))).await;
    let swapped = "dckr_pat_0123456789abcdefSWAPPED";
    let creds = Arc::new(dockerhub_audit::credentials::env::StaticCredentials::new(
        swapped,
        Secret::new("acme"),
    ));
    let cfg = HubConfig {
        base_url: url::Url::parse(&hub.url()).unwrap(),
        ..HubConfig::default()
    };
    let c = HubClient::new(cfg, creds, Arc::new(ManualClock::new(t0()))).unwrap();
    for _ in 0..2 {
        // The refusal, then the "refused earlier" answer: neither shows it.
        let err = c.page(&org(), q(1), None).await.unwrap_err().to_string();
        assert!(!err.contains("SWAPPED") && !err.contains("dckr_pat_"), "{err}");
        assert!(err.contains("looks like a token"), "{err}");
    }
    assert_eq!(emu.stats().token_requests, 1);
}
