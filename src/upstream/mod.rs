//! One typed HTTP client per upstream, all sharing one error type. Base URLs come from
//! configuration, so tests and the sandbox point the same clients at local servers.

pub mod connect;
pub mod events;
pub mod instant_connect;
pub mod media;
pub mod webex;
pub mod webex_oauth;

use std::time::Duration;

use reqwest::header::RETRY_AFTER;

use crate::domain::metrics::Metrics;
use reqwest::Response;
use serde::Deserialize;

pub use crate::domain::Upstream;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{upstream}: request failed: {source}")]
    Transport {
        upstream: Upstream,
        #[source]
        source: reqwest::Error,
    },
    #[error("{upstream}: HTTP {status}: {}{}", message.as_deref().unwrap_or("no message"), tracking_suffix(tracking_id))]
    Status {
        upstream: Upstream,
        status: u16,
        message: Option<String>,
        /// The `code` of the error body, where the upstream gives one (Webex Connect).
        code: Option<String>,
        tracking_id: Option<String>,
        retry_after: Option<RetryAfter>,
    },
    /// An answer that says "no" in its body rather than its status (Webex Connect's
    /// WhatsApp API answers errors with HTTP 200).
    #[error("{upstream}: refused with code {code}: {message}")]
    Refused {
        upstream: Upstream,
        code: String,
        message: String,
        retryable: bool,
    },
    #[error("{upstream}: unexpected response: {reason}")]
    InvalidResponse { upstream: Upstream, reason: String },
}

fn tracking_suffix(tracking_id: &Option<String>) -> String {
    tracking_id
        .as_deref()
        .map(|id| format!(" (trackingId {id})"))
        .unwrap_or_default()
}

impl UpstreamError {
    /// Whether trying the same request again later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Transport { .. } => true,
            UpstreamError::Status { status, .. } => {
                // 423: Webex is still scanning a file for malware.
                *status >= 500 || matches!(status, 408 | 409 | 423 | 425 | 429)
            }
            UpstreamError::Refused { retryable, .. } => *retryable,
            // The request went through but the answer is unreadable: repeating it could
            // send twice.
            UpstreamError::InvalidResponse { .. } => false,
        }
    }

    pub fn upstream(&self) -> Upstream {
        match self {
            UpstreamError::Transport { upstream, .. }
            | UpstreamError::Status { upstream, .. }
            | UpstreamError::Refused { upstream, .. }
            | UpstreamError::InvalidResponse { upstream, .. } => *upstream,
        }
    }

    /// What this error says about every call to its upstream with the same credential, not
    /// only this one: wait (a `429` or `503` with `Retry-After`, Webex Connect's tenant rate
    /// limit `7020`), or the credential is refused (`401` anywhere; `403` or `7001` from
    /// Webex Connect).
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            UpstreamError::Status {
                status: 429 | 503,
                retry_after: Some(wait),
                ..
            } => Some(Verdict::SlowDown(Some(*wait))),
            UpstreamError::Status { status: 401, .. } => Some(Verdict::CredentialRefused),
            UpstreamError::Status {
                upstream: Upstream::Connect,
                status: 403,
                ..
            } => Some(Verdict::CredentialRefused),
            UpstreamError::Refused { code, .. } if code == CONNECT_RATE_LIMITED => {
                Some(Verdict::SlowDown(None))
            }
            // Webex Connect's reference also shows its codes with a 4xx status.
            UpstreamError::Refused { code, .. }
            | UpstreamError::Status {
                upstream: Upstream::Connect,
                code: Some(code),
                ..
            } if code == CONNECT_AUTH_FAILED => Some(Verdict::CredentialRefused),
            UpstreamError::Status {
                upstream: Upstream::Connect,
                code: Some(code),
                retry_after,
                ..
            } if code == CONNECT_RATE_LIMITED => Some(Verdict::SlowDown(*retry_after)),
            _ => None,
        }
    }
}

/// Webex Connect's "tenant rate limit exceeded", answered with HTTP 200.
pub const CONNECT_RATE_LIMITED: &str = "7020";
/// Webex Connect's "authentication failed".
pub const CONNECT_AUTH_FAILED: &str = "7001";

/// What an upstream asks of all calls with a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Wait before calling it again: as long as it said, or (`None`) it named no time.
    SlowDown(Option<RetryAfter>),
    /// The credential is refused: calls fail until it is replaced or works again.
    CredentialRefused,
}

/// A `Retry-After` value: seconds, or an HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Seconds(u64),
    At(std::time::SystemTime),
}

impl RetryAfter {
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        match value.parse::<u64>() {
            Ok(seconds) => Some(RetryAfter::Seconds(seconds)),
            Err(_) => httpdate::parse_http_date(value).ok().map(RetryAfter::At),
        }
    }

    /// The instant (Unix ms) it names, counted from `now_ms` for seconds.
    pub fn until_ms(self, now_ms: i64) -> i64 {
        match self {
            RetryAfter::Seconds(seconds) => now_ms.saturating_add(
                i64::try_from(seconds)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            ),
            RetryAfter::At(at) => match at.duration_since(std::time::UNIX_EPOCH) {
                Ok(since_epoch) => since_epoch.as_millis() as i64,
                Err(_) => now_ms,
            },
        }
    }
}

/// The error body Webex APIs use: `{"message", "errors":[{"description"}], "trackingId"}`;
/// Webex Connect's is `{"code", "message"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    message: Option<String>,
    code: Option<serde_json::Value>,
    tracking_id: Option<String>,
    /// OAuth errors: `{"error": "invalid_grant", "error_description": "..."}`.
    error: Option<String>,
    #[serde(rename = "error_description")]
    error_description: Option<String>,
    /// Webex Connect's WhatsApp API: `{"response": {"code": "7001", "description": ...}}`.
    response: Option<ConnectOutcome>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ConnectOutcome {
    code: Option<serde_json::Value>,
    description: Option<String>,
}

/// Turns a non-success response into an error, keeping what helps an operator: the
/// upstream's message, its tracking id and its `Retry-After`.
async fn status_error(upstream: Upstream, response: Response) -> UpstreamError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(RetryAfter::parse);
    let header_tracking_id = response
        .headers()
        .get("trackingid")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body: ErrorBody = response.json().await.unwrap_or_default();
    if let Some(outcome) = body.response.take() {
        body.code = body.code.or(outcome.code);
        body.message = body.message.or(outcome.description);
    }
    let oauth_error = body.error.map(|error| match &body.error_description {
        Some(description) => format!("{error}: {description}"),
        None => error,
    });
    let code = body.code.as_ref().map(code_text);
    let message = match (body.code, body.message.or(oauth_error)) {
        (Some(code), Some(message)) => Some(format!("{} {message}", code_text(&code))),
        (None, message) => message,
        (Some(code), None) => Some(code_text(&code)),
    };
    UpstreamError::Status {
        upstream,
        status,
        message,
        code,
        tracking_id: body.tracking_id.or(header_tracking_id),
        retry_after,
    }
}

fn code_text(code: &serde_json::Value) -> String {
    match code {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn transport(upstream: Upstream) -> impl FnOnce(reqwest::Error) -> UpstreamError {
    move |source| UpstreamError::Transport {
        upstream,
        source: source.without_url(),
    }
}

/// Joins a path to a configured base URL, keeping the base's own path
/// (`https://webexapis.com/v1` + `messages` = `https://webexapis.com/v1/messages`).
fn endpoint(base: &url::Url, path: &str) -> String {
    format!("{}/{}", base.as_str().trim_end_matches('/'), path)
}

/// The HTTP client of every upstream client: rustls, a user agent, timeouts, and each
/// request's duration in the metrics.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    metrics: Option<Metrics>,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> Self {
        Self::trusting(timeout, &[])
    }

    /// A client that also trusts `extra_roots` (certificates of a private CA).
    pub fn trusting(timeout: Duration, extra_roots: &[reqwest::Certificate]) -> Self {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("icbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)));
        for root in extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let inner = builder.build().expect("the TLS backend is compiled in");
        Self {
            inner,
            metrics: None,
        }
    }

    /// A client for customers' file links: it follows no redirect by itself (the caller
    /// decides where credentials go, see [`media::MediaClient::fetch`]), and unless
    /// `private_addresses` connects only to public addresses, whatever a name resolves to.
    pub fn for_links(
        timeout: Duration,
        extra_roots: &[reqwest::Certificate],
        private_addresses: bool,
    ) -> Self {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("icbridge/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none());
        for root in extra_roots {
            builder = builder.add_root_certificate(root.clone());
        }
        if !private_addresses {
            builder = builder.dns_resolver(std::sync::Arc::new(media::PublicAddresses));
        }
        Self {
            inner: builder.build().expect("the TLS backend is compiled in"),
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn get(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.inner.get(url)
    }

    pub fn post(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.inner.post(url)
    }

    pub fn head(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.inner.head(url)
    }

    pub fn put(&self, url: impl reqwest::IntoUrl) -> reqwest::RequestBuilder {
        self.inner.put(url)
    }

    /// Sends a request to `upstream`, timing it.
    pub async fn send(
        &self,
        upstream: Upstream,
        request: reqwest::RequestBuilder,
    ) -> Result<Response, UpstreamError> {
        let started = std::time::Instant::now();
        let result = request.send().await;
        if let Some(metrics) = &self.metrics {
            let status = match &result {
                Ok(response) => format!("{}xx", response.status().as_u16() / 100),
                Err(_) => "error".to_string(),
            };
            metrics.upstream_request(upstream.label(), &status, started.elapsed().as_secs_f64());
        }
        result.map_err(transport(upstream))
    }
}
