//! What the client trusts of Docker Hub, and what it never does with what it does not:
//!
//! - the token goes only to the configured origin, over https (loopback, where the emulator
//!   and the tests listen, excepted), and never across a redirect;
//! - text taken from a Hub answer is clipped before it reaches an error, a log line, the
//!   Lambda's answer or the checkpoint, so a hostile answer cannot fill them;
//! - an identifier that looks like a token (a secret stored with its fields swapped) is
//!   never echoed.

use std::net::IpAddr;

use url::{Host, Url};

/// The most characters of Hub-sent text that any message carries.
pub const MAX_SHOWN_CHARS: usize = 200;

/// Why a Docker Hub URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubUrlError {
    #[error(
        "the Docker Hub URL {0:?} is plain http to a host that is not this machine: the token would travel \
         unencrypted. Use https:// (plain http is allowed only to 127.0.0.1, ::1 or localhost, for an emulator)"
    )]
    PlainHttp(String),
    #[error("the Docker Hub URL {0:?} is not http(s)://host[:port][/path]")]
    NotHttp(String),
    #[error(
        "the Docker Hub URL {0:?} carries a user name or password; give the credentials through \
         DOCKERHUB_USERNAME/DOCKERHUB_TOKEN or the secret, never in the URL"
    )]
    UserInfo(String),
}

/// Checks that `url` is an origin the token may be sent to: https anywhere, plain http only
/// to a loopback address.
pub fn check_hub_url(url: &Url) -> Result<(), HubUrlError> {
    // The URL minus any user info, so the error cannot echo a password.
    let shown = || {
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(HubUrlError::UserInfo(shown()));
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => Ok(()),
        ("http", Some(host)) if is_loopback(&host) => Ok(()),
        ("http", Some(_)) => Err(HubUrlError::PlainHttp(shown())),
        _ => Err(HubUrlError::NotHttp(shown())),
    }
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

pub use crate::types::clip;

/// Text from a Hub answer as a message may carry it: clipped, control characters (line
/// breaks that could forge log lines) shown as spaces.
pub fn shown(s: &str) -> String {
    let clean: String = s
        .chars()
        .take(MAX_SHOWN_CHARS + 1)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clip(&clean, MAX_SHOWN_CHARS)
}

/// Whether `s` looks like a credential rather than a user or organization name: a Docker
/// access token (`dckr_pat_…`, `dckr_oat_…`), a JWT, or anything a Docker ID cannot be.
pub fn looks_like_a_token(s: &str) -> bool {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("dckr_") || s.starts_with("eyJ") {
        return true;
    }
    let jwt_like = s.split('.').count() == 3 && s.len() > 40;
    // Docker IDs and organization names are short words of letters, digits, '-' and '_'.
    let name_like = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'@');
    jwt_like || !name_like
}

/// The identifier as an error may show it: quoted, or a placeholder when it looks like a
/// token (a secret with `username` and `token` swapped must not put the token in a log).
pub fn shown_identifier(identifier: &str) -> String {
    if looks_like_a_token(identifier) {
        "<the identifier, not shown: it looks like a token; check the username and token fields are not swapped>"
            .to_string()
    } else {
        format!("{identifier:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_over_https_or_to_this_machine_only() {
        for ok in [
            "https://hub.docker.com",
            "https://hub.example.com:8443/api",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://localhost:9000",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_hub_url(&Url::parse(ok).unwrap()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("http://hub.docker.com", "unencrypted"),
            ("http://10.0.0.1:8080", "unencrypted"),
            ("http://localhost.example.com", "unencrypted"),
            ("ftp://hub.docker.com", "not http"),
            ("https://user:pw@hub.docker.com", "never in the URL"),
        ] {
            let e = check_hub_url(&Url::parse(bad).unwrap()).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn hub_text_is_clipped_and_kept_on_one_line() {
        let long = "x".repeat(5_000_000);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN_CHARS + 1);
        assert_eq!(shown("a\nforged line\r"), "a forged line");
        assert_eq!(shown("short"), "short");
    }

    #[test]
    fn identifiers_that_look_like_tokens_are_never_shown() {
        for token in [
            "dckr_pat_2b3e36beeb386dfdaacb9b46004ccb7c",
            "dckr_oat_7awgM4jG5SQvxcvmNzhKj8PQjxo",
            "DCKR_PAT_X",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJlc2lnbmF0dXJl",
            "a b",
            &"a".repeat(65),
        ] {
            let s = shown_identifier(token);
            assert!(!s.contains(token), "{s}");
            assert!(s.contains("not shown"), "{s}");
        }
        assert_eq!(shown_identifier("acme"), "\"acme\"");
        assert_eq!(shown_identifier("ops-bot_2"), "\"ops-bot_2\"");
    }
}
