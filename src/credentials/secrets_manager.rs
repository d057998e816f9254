//! Credentials from AWS Secrets Manager: one secret per org holding
//! `{"username": "...", "token": "..."}` (or `identifier` / `secret`).
//!
//! Cached for at most five minutes, and forgotten on a Docker Hub 401, so a rotated token
//! is picked up without a redeploy. Errors name the secret, never its value.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::aws::error_text as aws_error;
use crate::ports::{CredentialSource, Credentials, CredentialsError, Secret};

/// How long a value read from Secrets Manager is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

pub struct SecretsManagerCredentials {
    client: Client,
    secret_id: String,
    cached: Mutex<Option<(Credentials, Instant)>>,
}

impl SecretsManagerCredentials {
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerCredentials {
            client,
            secret_id: secret_id.into(),
            cached: Mutex::new(None),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    async fn fetch(&self) -> Result<Credentials, CredentialsError> {
        let text = read_secret(&self.client, &self.secret_id).await?;
        parse_secret(&self.secret_id, &text)
    }
}

/// The secret's text. Errors name the secret and say what to do, never its value.
async fn read_secret(client: &Client, id: &str) -> Result<String, CredentialsError> {
    let out = client.get_secret_value().secret_id(id).send().await.map_err(|e| {
            let not_found = e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception());
            if not_found {
                CredentialsError(format!(
                    "secret {id:?} does not exist in Secrets Manager: create it with \
                     {{\"username\": \"<org name for an organization access token>\", \"token\": \"<the token>\"}}"
                ))
            } else {
                CredentialsError(format!(
                    "cannot read secret {id:?} from Secrets Manager ({}); check the region and the \
                     secretsmanager:GetSecretValue permission",
                    aws_error(&e)
                ))
            }
        })?;
    let text = out.secret_string().ok_or_else(|| {
        CredentialsError(format!(
            "secret {id:?} holds binary data; store it as a JSON string"
        ))
    })?;
    Ok(text.to_string())
}

/// A shared secret's entries by org.
type Entries = std::sync::Arc<serde_json::Map<String, Value>>;

/// One secret for many orgs: `{"<org>": {"username": "...", "token": "..."}, ...}`, read
/// once for all of them and cached as a per-org secret is; a 401 of any org forgets it, so
/// a token rotated in it is picked up without a redeploy.
pub struct SharedSecret {
    client: Client,
    secret_id: String,
    cached: Mutex<Option<(Entries, Instant)>>,
}

impl SharedSecret {
    pub fn new(client: Client, secret_id: impl Into<String>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(SharedSecret {
            client,
            secret_id: secret_id.into(),
            cached: Mutex::new(None),
        })
    }

    /// The credentials of `org` from it.
    pub fn entry(self: &std::sync::Arc<Self>, org: &str) -> SharedSecretEntry {
        SharedSecretEntry {
            shared: self.clone(),
            org: org.to_string(),
        }
    }

    async fn map(&self) -> Result<Entries, CredentialsError> {
        let mut cached = self.cached.lock().await;
        if let Some((m, at)) = cached.as_ref() {
            if at.elapsed() < CACHE_TTL {
                return Ok(m.clone());
            }
        }
        let text = read_secret(&self.client, &self.secret_id).await?;
        let map = std::sync::Arc::new(parse_shared(&self.secret_id, &text)?);
        *cached = Some((map.clone(), Instant::now()));
        Ok(map)
    }
}

/// Parses a shared secret: a JSON object of orgs. Errors never echo a value.
pub fn parse_shared(id: &str, text: &str) -> Result<serde_json::Map<String, Value>, CredentialsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(CredentialsError(format!(
            "secret {id:?} is not a JSON object of orgs; store it as {{\"<org>\": {{\"username\": \"...\", \"token\": \"...\"}}, ...}}"
        ))),
    }
}

/// One org's view of a [`SharedSecret`].
pub struct SharedSecretEntry {
    shared: std::sync::Arc<SharedSecret>,
    org: String,
}

#[async_trait]
impl CredentialSource for SharedSecretEntry {
    async fn get(&self) -> Result<Credentials, CredentialsError> {
        let map = self.shared.map().await?;
        let id = &self.shared.secret_id;
        let org = &self.org;
        let entry = map.get(org).ok_or_else(|| {
            CredentialsError(format!(
                "secret {id:?} has no entry for {org}: add \"{org}\": {{\"username\": \"...\", \"token\": \"...\"}} to it"
            ))
        })?;
        parse_secret(&format!("{id}, entry {org}"), &entry.to_string())
    }

    async fn invalidate(&self) {
        *self.shared.cached.lock().await = None;
    }
}

/// Parses the secret's JSON. Errors name the secret and the problem, never the value.
pub fn parse_secret(id: &str, text: &str) -> Result<Credentials, CredentialsError> {
    let shape = "{\"username\": \"...\", \"token\": \"...\"}";
    let v: Value = serde_json::from_str(text)
        .map_err(|_| CredentialsError(format!("secret {id:?} is not JSON; store it as {shape}")))?;
    let field = |names: [&str; 2]| -> Result<String, CredentialsError> {
        for n in names {
            if let Some(s) = v.get(n).and_then(Value::as_str) {
                let s = s.trim();
                if looks_like_placeholder(s) {
                    return Err(CredentialsError(format!(
                        "secret {id:?} still holds a placeholder in {n:?}; put the real value there"
                    )));
                }
                return Ok(s.to_string());
            }
        }
        Err(CredentialsError(format!(
            "secret {id:?} has no string field {:?} (or {:?}); store it as {shape}",
            names[0], names[1]
        )))
    };
    let identifier = field(["username", "identifier"])?;
    let secret = field(["token", "secret"])?;
    Ok(Credentials {
        identifier,
        secret: Secret::new(secret),
    })
}

fn looks_like_placeholder(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    s.is_empty()
        || (s.starts_with('<') && s.ends_with('>'))
        || (s.starts_with("${") && s.ends_with('}'))
        || [
            "changeme",
            "change-me",
            "change_me",
            "placeholder",
            "replace_me",
            "replace-me",
            "replaceme",
            "todo",
            "xxx",
            "dummy",
        ]
        .iter()
        .any(|p| l == *p || l.starts_with(&format!("{p} ")) || l.contains("placeholder"))
}

#[async_trait]
impl CredentialSource for SecretsManagerCredentials {
    async fn get(&self) -> Result<Credentials, CredentialsError> {
        let mut cached = self.cached.lock().await;
        if let Some((c, at)) = cached.as_ref() {
            if at.elapsed() < CACHE_TTL {
                return Ok(c.clone());
            }
        }
        let c = self.fetch().await?;
        *cached = Some((c.clone(), Instant::now()));
        Ok(c)
    }

    async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_shapes_and_refuses_the_rest_without_echoing_values() {
        let c = parse_secret("s", r#"{"username": "acme", "token": "dckr_oat_real"}"#).unwrap();
        assert_eq!(
            (c.identifier.as_str(), c.secret.expose()),
            ("acme", "dckr_oat_real")
        );
        let c = parse_secret("s", r#"{"identifier": "acme", "secret": "dckr_pat_x"}"#).unwrap();
        assert_eq!(c.secret.expose(), "dckr_pat_x");
        for (text, says) in [
            ("dckr_oat_plain_text", "not JSON"),
            (r#"{"username": "acme"}"#, "no string field \"token\""),
            (r#"{"token": "dckr_oat_real"}"#, "no string field \"username\""),
            (r#"{"username": "acme", "token": "<your token>"}"#, "placeholder"),
            (r#"{"username": "acme", "token": "CHANGEME"}"#, "placeholder"),
            (r#"{"username": "acme", "token": ""}"#, "placeholder"),
        ] {
            let err = parse_secret("dockerhub-audit/acme", text).unwrap_err().0;
            assert!(
                err.contains(says) && err.contains("dockerhub-audit/acme"),
                "{text}: {err}"
            );
            assert!(
                !err.contains("dckr_oat_real") && !err.contains("dckr_oat_plain_text"),
                "{err}"
            );
        }
    }
}
