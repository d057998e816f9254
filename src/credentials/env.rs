//! Credentials from `DOCKERHUB_USERNAME` and `DOCKERHUB_TOKEN`.

use async_trait::async_trait;

use crate::ports::{CredentialSource, Credentials, CredentialsError, Secret};

pub const USERNAME_VAR: &str = "DOCKERHUB_USERNAME";
pub const TOKEN_VAR: &str = "DOCKERHUB_TOKEN";

/// Credentials read once from the environment (or given directly).
#[derive(Debug, Clone)]
pub struct StaticCredentials(Credentials);

impl StaticCredentials {
    pub fn new(identifier: impl Into<String>, secret: Secret) -> Self {
        StaticCredentials(Credentials {
            identifier: identifier.into(),
            secret,
        })
    }

    /// Reads the two variables; the error says which is missing and what to put there.
    pub fn from_env() -> Result<Self, CredentialsError> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let user = get(USERNAME_VAR).ok_or_else(|| {
            CredentialsError(format!(
                "{USERNAME_VAR} is not set: set it to your Docker Hub username, or to the organization name when {TOKEN_VAR} is an organization access token"
            ))
        })?;
        let token = get(TOKEN_VAR).ok_or_else(|| {
            CredentialsError(format!(
                "{TOKEN_VAR} is not set: set it to an organization access token with \"Audit Log Read\", or an owner's personal access token"
            ))
        })?;
        Ok(Self::new(user.trim(), Secret::new(token.trim())))
    }
}

#[async_trait]
impl CredentialSource for StaticCredentials {
    async fn get(&self) -> Result<Credentials, CredentialsError> {
        Ok(self.0.clone())
    }
}
