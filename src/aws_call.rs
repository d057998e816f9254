//! One signed HTTP call to an AWS service, for the few calls whose SDK crate would cost more
//! to build than the rest of the tool (Glue's view, SNS's Publish, Lambda's Invoke). Knows
//! no adapter: each caller shapes its own request and reads its own answer.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// A SigV4-signing client for one service, with the SDK configuration's region and
/// credentials.
#[derive(Clone)]
pub struct SignedClient {
    /// The signing name (`glue`, `sns`, `lambda`).
    service: &'static str,
    endpoint: String,
    region: String,
    credentials: SharedCredentialsProvider,
}

impl std::fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedClient")
            .field("service", &self.service)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// What a service answered: the status and the body's text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A JSON error answer's kind (`__type`, without its namespace) and message (either
    /// case), each shown safely; empty when the body says neither.
    pub fn json_error(&self) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&self.text).unwrap_or_default();
        let kind = v["__type"]
            .as_str()
            .unwrap_or("")
            .rsplit('#')
            .next()
            .unwrap_or("");
        let message = v["message"].as_str().or(v["Message"].as_str()).unwrap_or("");
        (crate::hub::trust::shown(kind), crate::hub::trust::shown(message))
    }
}

/// One HTTP client for every signed call of the process: built once (its TLS setup is
/// the costly part), on the first call that needs it, not at a cold start.
fn http() -> Result<&'static reqwest::Client, String> {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = HTTP.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client for AWS: {e}"))?;
    Ok(HTTP.get_or_init(|| c))
}

impl SignedClient {
    /// From the SDK configuration: its region and credentials, and the endpoint the SDK would
    /// use (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`, else the regional one).
    pub fn new(sdk: &aws_config::SdkConfig, service: &'static str) -> Result<Self, String> {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or("no AWS region is configured: set AWS_REGION")?;
        let credentials = sdk
            .credentials_provider()
            .ok_or("no AWS credentials are configured")?;
        let endpoint = std::env::var(format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase()))
            .ok()
            .or_else(|| sdk.endpoint_url().map(str::to_string))
            .unwrap_or_else(|| format!("https://{service}.{region}.amazonaws.com"));
        Ok(SignedClient {
            service,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            region,
            credentials,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// POSTs `body` to `path` (from the endpoint's root, starting with `/`) with `headers`,
    /// signed. An error only when no answer came; any status is an [`Answer`].
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Answer, String> {
        let service = self.service;
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials for {service}: {e}"))?;
        let identity = creds.into();
        let url = format!("{}{path}", self.endpoint);
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| format!("cannot sign a {service} request: {e}"))?
            .into();
        let signable =
            SignableRequest::new("POST", &url, headers.iter().copied(), SignableBody::Bytes(&body))
                .map_err(|e| format!("cannot sign a {service} request: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("cannot sign a {service} request: {e}"))?
            .into_parts();
        let mut req = http()?.post(&url).body(body);
        for (k, v) in headers.iter().copied().chain(instructions.headers()) {
            req = req.header(k, v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{service} did not answer: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{service}: cannot read the answer: {e}"))?;
        Ok(Answer { status, text })
    }
}
