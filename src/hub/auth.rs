//! The bearer token: its lifetime read from the JWT, and when to refresh it.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::ports::Secret;

/// Docker Hub documents 10 minutes; used when the token carries no readable `exp`.
pub const DEFAULT_TTL: Duration = Duration::minutes(10);
/// Refresh this long before `exp`, so a request never leaves with a token about to lapse.
pub const REFRESH_MARGIN: Duration = Duration::seconds(60);

/// A token and the time it is good until.
#[derive(Debug, Clone)]
pub struct BearerToken {
    pub token: Secret,
    pub expires_at: DateTime<Utc>,
}

impl BearerToken {
    /// `issued_at` is when the exchange answered; `exp` from the payload wins when present.
    pub fn new(token: String, issued_at: DateTime<Utc>) -> Self {
        let expires_at = jwt_exp(&token).unwrap_or(issued_at + DEFAULT_TTL);
        BearerToken {
            token: Secret::new(token),
            expires_at,
        }
    }

    /// Whether to use it for a request sent at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now + REFRESH_MARGIN < self.expires_at
    }
}

/// The `exp` claim of a JWT, without checking the signature (the Hub checks it; we only
/// need to know when to refresh).
pub fn jwt_exp(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = v.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode("{}"),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn reads_exp_or_assumes_ten_minutes() {
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let t = BearerToken::new(jwt(r#"{"exp": 1000300}"#), now);
        assert_eq!(t.expires_at, DateTime::from_timestamp(1_000_300, 0).unwrap());
        assert!(t.is_fresh(now));
        assert!(!t.is_fresh(now + Duration::seconds(241)));
        let opaque = BearerToken::new("not-a-jwt".into(), now);
        assert_eq!(opaque.expires_at, now + DEFAULT_TTL);
        assert_eq!(jwt_exp(&jwt(r#"{"sub": "x"}"#)), None);
        assert_eq!(jwt_exp("a.%%%.c"), None);
    }
}
