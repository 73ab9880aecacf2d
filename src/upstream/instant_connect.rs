//! The Instant Connect broker: `POST /api/v2/joseencrypt` turns a meeting subject into
//! host and guest links.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{endpoint, status_error, HttpClient, Upstream, UpstreamError};
use crate::domain::{MeetingLinks, Vertical};

/// The broker's audience; the same for every caller.
pub const AUDIENCE: &str = "a4d886b0-979f-4e2c-a958-3e8c14605e51";

/// What to ask the broker for.
#[derive(Debug, Clone)]
pub struct MeetingRequest {
    /// Unique per meeting; everyone with links for the same `sub` meets in the same room.
    pub sub: String,
    /// Unix seconds after which the links stop working.
    pub expires_at: i64,
    pub short_urls: bool,
    pub vertical: Vertical,
    pub host_login: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoseEncryptBody<'a> {
    aud: &'static str,
    jwt: Jwt<'a>,
    provide_short_urls: bool,
    vertical_type: &'static str,
    login_url_for_host: bool,
}

#[derive(Serialize)]
struct Jwt<'a> {
    sub: &'a str,
    exp: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoseEncryptResponse {
    #[serde(default)]
    host: Vec<Link>,
    #[serde(default)]
    guest: Vec<Link>,
    base_url: Option<String>,
}

#[derive(Deserialize)]
struct Link {
    cipher: Option<String>,
    short: Option<String>,
}

#[derive(Clone)]
pub struct InstantConnectClient {
    http: HttpClient,
    base_url: Url,
    join_url: Url,
    token: SecretString,
}

impl InstantConnectClient {
    /// `join_url` is where long-mode links point (`https://instant.webex.com`).
    pub fn new(http: HttpClient, base_url: Url, join_url: Url, token: SecretString) -> Self {
        Self {
            http,
            base_url,
            join_url,
            token,
        }
    }

    /// One call to the broker, abandoned after `timeout`.
    pub async fn create_meeting(
        &self,
        request: &MeetingRequest,
        timeout: Duration,
    ) -> Result<MeetingLinks, UpstreamError> {
        let body = JoseEncryptBody {
            aud: AUDIENCE,
            jwt: Jwt {
                sub: &request.sub,
                exp: request.expires_at,
            },
            provide_short_urls: request.short_urls,
            vertical_type: request.vertical.as_str(),
            login_url_for_host: request.host_login,
        };
        let response = self
            .http
            .send(
                Upstream::InstantConnect,
                self.http
                    .post(endpoint(&self.base_url, "api/v2/joseencrypt"))
                    .bearer_auth(self.token.expose_secret())
                    .timeout(timeout)
                    .json(&body),
            )
            .await?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(status_error(Upstream::InstantConnect, response).await);
        }
        let answer: JoseEncryptResponse = response
            .json()
            .await
            .map_err(|e| invalid(format!("body is not the expected JSON: {e}")))?;
        self.links(answer, request)
    }

    fn links(
        &self,
        answer: JoseEncryptResponse,
        request: &MeetingRequest,
    ) -> Result<MeetingLinks, UpstreamError> {
        let host = answer
            .host
            .into_iter()
            .next()
            .ok_or_else(|| invalid("no `host[0]`"))?;
        let guest = answer
            .guest
            .into_iter()
            .next()
            .ok_or_else(|| invalid("no `guest[0]`"))?;
        if request.short_urls {
            let base = answer
                .base_url
                .ok_or_else(|| invalid("short links asked for, but no `baseUrl`"))?;
            let base = Url::parse(&base).map_err(|e| invalid(format!("`baseUrl`: {e}")))?;
            Ok(MeetingLinks {
                host_url: short_link(&base, host.short)?,
                guest_url: short_link(&base, guest.short)?,
            })
        } else {
            Ok(MeetingLinks {
                host_url: self.long_link(request.vertical, "login", host.cipher)?,
                guest_url: self.long_link(request.vertical, "talk", guest.cipher)?,
            })
        }
    }

    /// `https://instant.webex.com/{gen|hc}/v1/{login|talk}?int=jose&v=1&data=<cipher>`
    fn long_link(
        &self,
        vertical: Vertical,
        page: &str,
        cipher: Option<String>,
    ) -> Result<Url, UpstreamError> {
        let cipher = cipher
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("a link without `cipher`"))?;
        let mut url = Url::parse(&endpoint(
            &self.join_url,
            &format!("{}/v1/{page}", vertical.as_str()),
        ))
        .map_err(|e| invalid(format!("join URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("int", "jose")
            .append_pair("v", "1")
            .append_pair("data", &cipher);
        Ok(url)
    }
}

fn short_link(base: &Url, short: Option<String>) -> Result<Url, UpstreamError> {
    let short = short
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric()))
        .ok_or_else(|| invalid("a link without a valid `short` code"))?;
    // `baseUrl` ends in `/visit/`: the code is appended, not joined over the last segment.
    let base = base.as_str().trim_end_matches('/');
    Url::parse(&format!("{base}/{short}")).map_err(|e| invalid(format!("short link: {e}")))
}

fn invalid(reason: impl Into<String>) -> UpstreamError {
    UpstreamError::InvalidResponse {
        upstream: Upstream::InstantConnect,
        reason: reason.into(),
    }
}
