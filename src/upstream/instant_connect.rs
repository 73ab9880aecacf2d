//! The Instant Connect broker: `POST /api/v2/joseencrypt` turns a meeting subject into
//! host and guest links.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{endpoint, status_error, HttpClient, Upstream, UpstreamError};
use crate::domain::{LinkRole, MeetingLinks, Vertical};

/// The broker's audience; the same for every caller.
pub const AUDIENCE: &str = "a4d886b0-979f-4e2c-a958-3e8c14605e51";

/// What to ask the broker for.
#[derive(Debug, Clone)]
pub struct MeetingRequest {
    /// Unique per meeting; everyone with links for the same `sub` meets in the same room.
    pub sub: String,
    /// Unix seconds after which the links stop working.
    pub expires_at: i64,
    /// Unix seconds before which the links do not work yet (a booked consultation's).
    pub not_before: Option<i64>,
    /// How many host and guest links (the broker gives at most 25 in all; a call for one
    /// more guest of an existing meeting asks for no host link).
    pub hosts: u8,
    pub guests: u8,
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
    num_host: u8,
    num_guest: u8,
}

#[derive(Serialize)]
struct Jwt<'a> {
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
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

    /// A new meeting's links (at least one of each role): one call to the broker, abandoned
    /// after `timeout`.
    pub async fn create_meeting(
        &self,
        request: &MeetingRequest,
        timeout: Duration,
    ) -> Result<MeetingLinks, UpstreamError> {
        meeting_links(self.call(request, timeout).await?)
    }

    /// The links the request asks for, hosts first: a new meeting's, or more for the
    /// existing meeting `request.sub` (the same subject puts everyone in the same meeting).
    /// One call, abandoned after `timeout`.
    pub async fn call(
        &self,
        request: &MeetingRequest,
        timeout: Duration,
    ) -> Result<Vec<(LinkRole, Url)>, UpstreamError> {
        let body = JoseEncryptBody {
            aud: AUDIENCE,
            jwt: Jwt {
                sub: &request.sub,
                nbf: request.not_before,
                exp: request.expires_at,
            },
            provide_short_urls: request.short_urls,
            vertical_type: request.vertical.as_str(),
            login_url_for_host: request.host_login,
            num_host: request.hosts,
            num_guest: request.guests,
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

    /// The links asked for, hosts first, each built as the request's mode says.
    fn links(
        &self,
        answer: JoseEncryptResponse,
        request: &MeetingRequest,
    ) -> Result<Vec<(LinkRole, Url)>, UpstreamError> {
        if answer.host.len() < usize::from(request.hosts)
            || answer.guest.len() < usize::from(request.guests)
        {
            return Err(invalid(format!(
                "{} host and {} guest links asked for, {} and {} given",
                request.hosts,
                request.guests,
                answer.host.len(),
                answer.guest.len()
            )));
        }
        let base = match (request.short_urls, answer.base_url) {
            (false, _) => None,
            (true, None) => return Err(invalid("short links asked for, but no `baseUrl`")),
            (true, Some(base)) => {
                Some(Url::parse(&base).map_err(|e| invalid(format!("`baseUrl`: {e}")))?)
            }
        };
        let hosts = answer
            .host
            .into_iter()
            .take(request.hosts.into())
            .map(|link| (LinkRole::Host, link));
        let guests = answer
            .guest
            .into_iter()
            .take(request.guests.into())
            .map(|link| (LinkRole::Guest, link));
        hosts
            .chain(guests)
            .map(|(role, link)| {
                let url = match &base {
                    Some(base) => short_link(base, link.short)?,
                    None => {
                        let page = match role {
                            LinkRole::Host => "login",
                            LinkRole::Guest => "talk",
                        };
                        self.long_link(request.vertical, page, link.cipher)?
                    }
                };
                Ok((role, url))
            })
            .collect()
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

/// A new meeting's links from all the broker gave: at least one of each role.
pub fn meeting_links(links: Vec<(LinkRole, Url)>) -> Result<MeetingLinks, UpstreamError> {
    MeetingLinks::from_all(links).ok_or_else(|| invalid("no `host[0]` or no `guest[0]`"))
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
