//! Bearer tokens: self-contained JWTs, so the server keeps no session state.
//!
//! Invariant: a token is accepted iff its signature matches [`SIGNING_KEY`] and the clock is before its
//! `exp`. Which org it may read is decided by the caller from the `org` claim.

use axum::http::HeaderValue;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One key for every org, as Hub has: a token minted for another org verifies, and is then refused
/// with 403 rather than 401.
const SIGNING_KEY: &[u8] = b"dockerhub-audit emulator signing key";

/// `{"alg":"HS256","typ":"JWT"}`, encoded once.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Claims {
    /// The identifier that exchanged the secret: a username or the org name.
    pub(super) sub: String,
    /// Issue time, unix seconds.
    pub(super) iat: i64,
    /// Expiry, unix seconds: the token is refused from this second on.
    pub(super) exp: i64,
    /// The org the token may read.
    pub(super) org: String,
    pub(super) jti: u64,
}

/// Why a bearer token was refused; the message is what the 401 body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum TokenError {
    #[error("Authentication credentials were not provided.")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// Mints a signed token for `claims`.
pub(super) fn issue(claims: &Claims) -> String {
    // Serializing a plain struct of strings and integers cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{HEADER}.{payload}");
    let signature = sign(&signing_input);
    format!("{signing_input}.{signature}")
}

/// Checks an `Authorization: Bearer <jwt>` header against the signature and the clock.
pub(super) fn verify(authorization: Option<&HeaderValue>, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let value = authorization
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Invalid)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(TokenError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(TokenError::Invalid);
    }
    let (signing_input, signature) = token.trim().rsplit_once('.').ok_or(TokenError::Invalid)?;
    let (_, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
    if sign(signing_input) != signature {
        return Err(TokenError::Invalid);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Invalid)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
    if now.timestamp() >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// base64url of the hex SHA-256 of key and signing input: not HMAC, but unforgeable enough for tests.
fn sign(signing_input: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(SIGNING_KEY);
    hasher.update(signing_input.as_bytes());
    URL_SAFE_NO_PAD.encode(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "acme".into(),
            iat: 1_000,
            exp: 1_600,
            org: "acme".into(),
            jti: 1,
        }
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).expect("ascii")
    }

    #[test]
    fn header_is_the_documented_one() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER).expect("base64");
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn round_trip_and_expiry() {
        let token = issue(&claims());
        let at = |s| DateTime::from_timestamp(s, 0).expect("valid");
        assert_eq!(verify(Some(&bearer(&token)), at(1_599)), Ok(claims()));
        assert_eq!(verify(Some(&bearer(&token)), at(1_600)), Err(TokenError::Expired));
        assert_eq!(verify(None, at(1_000)), Err(TokenError::Missing));
    }

    #[test]
    fn tampering_is_refused() {
        let token = issue(&claims());
        let forged = Claims {
            org: "other".into(),
            ..claims()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = &forged_payload;
        let now = DateTime::from_timestamp(1_000, 0).expect("valid");
        assert_eq!(
            verify(Some(&bearer(&parts.join("."))), now),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify(Some(&bearer("a.b")), now), Err(TokenError::Invalid));
        assert_eq!(
            verify(Some(&HeaderValue::from_static("Basic abc")), now),
            Err(TokenError::Invalid)
        );
    }
}
