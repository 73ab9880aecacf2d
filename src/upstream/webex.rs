//! The Webex API, as the bot: post messages to experts, read its own identity, find rooms.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{endpoint, status_error, HttpClient, Upstream, UpstreamError};
use crate::domain::ExpertTarget;
use crate::domain::{Destination, ExpertFile, WebexPost};

/// `GET /messages/{id}` (webhooks do not carry the text), or one item of `GET /messages`.
/// Kept as read when a listing finds it (see `desk::catch_up`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub room_id: String,
    #[serde(default)]
    pub room_type: String,
    #[serde(default)]
    pub text: String,
    pub parent_id: Option<String>,
    #[serde(default)]
    pub person_id: String,
    pub person_email: Option<String>,
    /// Links to the message's files (fetching them needs the bot token).
    #[serde(default)]
    pub files: Vec<String>,
    /// When it was posted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// `GET /attachment/actions/{id}`: a press of a card's `Action.Submit` button.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentAction {
    pub id: String,
    pub message_id: String,
    pub room_id: String,
    #[serde(default)]
    pub person_id: String,
    #[serde(default)]
    pub inputs: serde_json::Value,
    /// When the button was pressed (RFC 3339).
    #[serde(default)]
    pub created: Option<String>,
}

/// A webhook registration (its `Debug` leaves the secret out).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(default, skip_serializing)]
    pub id: String,
    pub name: String,
    pub target_url: String,
    pub resource: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("target_url", &self.target_url)
            .field("resource", &self.resource)
            .field("event", &self.event)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: String,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub display_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Room {
    pub id: String,
    #[serde(default)]
    pub title: String,
    /// When the room last saw a message (RFC 3339).
    #[serde(default)]
    pub last_activity: Option<String>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("no group space titled {title:?} has the bot as a member; spaces found: {found}")]
    NoMatch { title: String, found: String },
    #[error("{count} group spaces are titled {title:?}; set ICB_EXPERT_ROOM_ID to one of: {ids}")]
    Ambiguous {
        title: String,
        count: usize,
        ids: String,
    },
}

#[derive(Clone)]
pub struct WebexClient {
    http: HttpClient,
    base_url: Url,
    token: SecretString,
    /// Parsed once: every relay posts here, and parsing it again cost more than the
    /// request's JSON.
    messages_url: Url,
}

impl WebexClient {
    pub fn new(http: HttpClient, base_url: Url, token: SecretString) -> Self {
        let messages_url = Url::parse(&endpoint(&base_url, "messages"))
            .expect("a path segment joined to a URL is a URL");
        Self {
            http,
            base_url,
            token,
            messages_url,
        }
    }

    /// Posts a message and returns its id.
    pub async fn post_message(&self, message: &WebexPost) -> Result<String, UpstreamError> {
        self.create_message(|request| request.json(message)).await
    }

    /// `POST /messages` with the body `with_body` gives it; returns the new message's id.
    async fn create_message(
        &self,
        with_body: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<String, UpstreamError> {
        let request = self
            .http
            .post(self.messages_url.clone())
            .bearer_auth(self.token.expose_secret());
        let response = self.http.send(Upstream::Webex, with_body(request)).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Webex, response).await);
        }
        let created: Created =
            response
                .json()
                .await
                .map_err(|e| UpstreamError::InvalidResponse {
                    upstream: Upstream::Webex,
                    reason: format!("message created, but the answer has no id: {e}"),
                })?;
        Ok(created.id)
    }

    /// Posts a message with a file icbridge uploads itself (`multipart/form-data`), for
    /// files Webex cannot fetch from their link.
    pub async fn post_message_with_file(
        &self,
        message: &WebexPost,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, UpstreamError> {
        let file = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime_type)
            .map_err(|e| UpstreamError::InvalidResponse {
                upstream: Upstream::Webex,
                reason: format!("not a MIME type: {e}"),
            })?;
        let mut form = reqwest::multipart::Form::new();
        form = match &message.destination {
            Destination::RoomId(id) => form.text("roomId", id.clone()),
            Destination::PersonEmail(email) => form.text("toPersonEmail", email.clone()),
        };
        if let Some(parent) = &message.parent_id {
            form = form.text("parentId", parent.clone());
        }
        form = form
            .text("markdown", message.markdown.clone())
            .part("files", file);
        self.create_message(|request| request.multipart(form)).await
    }

    /// A message's file as icbridge relays it: its type and name, from a `HEAD` of its link
    /// (Webex names the file in `Content-Disposition`).
    pub async fn file_info(&self, url: &str) -> Result<ExpertFile, UpstreamError> {
        let url = self.own_link(url)?;
        let request = self
            .http
            .head(url.clone())
            .bearer_auth(self.token.expose_secret());
        let response = self.http.send(Upstream::Webex, request).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Webex, response).await);
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mime_type = header(reqwest::header::CONTENT_TYPE)
            .and_then(|raw| raw.split(';').next().map(|t| t.trim().to_ascii_lowercase()))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = header(reqwest::header::CONTENT_DISPOSITION)
            .as_deref()
            .and_then(file_name_of)
            .unwrap_or_else(|| "file".into());
        Ok(ExpertFile {
            url: url.into(),
            mime_type,
            name,
        })
    }

    /// Opens a message's file for reading, with the bot token. Only links to Webex's own
    /// API are followed.
    pub async fn open_file(&self, url: &str) -> Result<reqwest::Response, UpstreamError> {
        let url = self.own_link(url)?;
        let request = self
            .http
            .get(url)
            .timeout(std::time::Duration::from_secs(300))
            .bearer_auth(self.token.expose_secret());
        let response = self.http.send(Upstream::Webex, request).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Webex, response).await);
        }
        Ok(response)
    }

    /// `url` if it is a link to Webex's API (where the bot token may go), else an error.
    fn own_link(&self, url: &str) -> Result<Url, UpstreamError> {
        let base = self.base_url.as_str().trim_end_matches('/');
        Url::parse(url)
            .ok()
            .filter(|parsed| {
                parsed.as_str().starts_with(&format!("{base}/"))
                    && !parsed.path().split('/').any(|segment| segment == "..")
            })
            .ok_or_else(|| UpstreamError::InvalidResponse {
                upstream: Upstream::Webex,
                reason: "a file link that is not Webex's".into(),
            })
    }

    pub async fn message(&self, id: &str) -> Result<Message, UpstreamError> {
        let url = endpoint(&self.base_url, &format!("messages/{}", path_segment(id)));
        self.get_json(&url).await.map(|(message, _)| message)
    }

    pub async fn attachment_action(&self, id: &str) -> Result<AttachmentAction, UpstreamError> {
        let url = endpoint(
            &self.base_url,
            &format!("attachment/actions/{}", path_segment(id)),
        );
        self.get_json(&url).await.map(|(action, _)| action)
    }

    /// The messages of room `room_id` the bot may list, newest first, back to (and
    /// including) the first one posted at or before `since` (Unix ms), following pages: in a
    /// group space only those that mention the bot (`mentioned_only`: Webex lets a bot list
    /// no others there), in a direct room all of them.
    pub async fn messages_since(
        &self,
        room_id: &str,
        mentioned_only: bool,
        since: i64,
    ) -> Result<Vec<Message>, UpstreamError> {
        let mut url = self.url_with_query("messages")?;
        url.query_pairs_mut()
            .append_pair("roomId", room_id)
            .append_pair("max", "100");
        if mentioned_only {
            url.query_pairs_mut().append_pair("mentionedPeople", "me");
        }
        let mut messages = Vec::new();
        let mut next = Some(url.to_string());
        // A bound on pages (10,000 messages) protects against a server that links a page
        // to itself.
        for _ in 0..100 {
            let Some(url) = next.take() else { break };
            let (page, link): (Items<Message>, _) = self.get_json(&url).await?;
            let reached_since = page.items.iter().any(|message| {
                message
                    .created
                    .as_deref()
                    .and_then(crate::domain::clock::parse_rfc3339)
                    .is_some_and(|created| created <= since)
            });
            messages.extend(page.items);
            if reached_since {
                break;
            }
            next = link;
        }
        Ok(messages)
    }

    /// The bot's direct (one-to-one) rooms, most recently active first, as far back as
    /// `since` (Unix ms).
    pub async fn direct_rooms_since(&self, since: i64) -> Result<Vec<Room>, UpstreamError> {
        let mut rooms = Vec::new();
        let mut next = Some(endpoint(
            &self.base_url,
            "rooms?type=direct&sortBy=lastactivity&max=100",
        ));
        for _ in 0..100 {
            let Some(url) = next.take() else { break };
            let (page, link): (Items<Room>, _) = self.get_json(&url).await?;
            let mut older = false;
            for room in page.items {
                let active = room
                    .last_activity
                    .as_deref()
                    .and_then(crate::domain::clock::parse_rfc3339);
                if active.is_some_and(|active| active < since) {
                    older = true;
                    break;
                }
                rooms.push(room);
            }
            if older {
                break;
            }
            next = link;
        }
        Ok(rooms)
    }

    fn url_with_query(&self, path: &str) -> Result<Url, UpstreamError> {
        Url::parse(&endpoint(&self.base_url, path)).map_err(|e| UpstreamError::InvalidResponse {
            upstream: Upstream::Webex,
            reason: format!("the Webex API URL cannot take a path: {e}"),
        })
    }

    /// Every webhook of the bot, following pages.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, UpstreamError> {
        let mut hooks = Vec::new();
        let mut next = Some(endpoint(&self.base_url, "webhooks?max=100"));
        for _ in 0..100 {
            let Some(url) = next.take() else { break };
            let (page, link): (Items<Webhook>, _) = self.get_json(&url).await?;
            hooks.extend(page.items);
            next = link;
        }
        Ok(hooks)
    }

    pub async fn create_webhook(&self, hook: &Webhook) -> Result<Webhook, UpstreamError> {
        self.send_json(self.http.post(endpoint(&self.base_url, "webhooks")), hook)
            .await
    }

    /// `PUT /webhooks/{id}`: Webex lets name, target, secret and status change.
    pub async fn update_webhook(&self, id: &str, hook: &Webhook) -> Result<Webhook, UpstreamError> {
        let url = endpoint(&self.base_url, &format!("webhooks/{}", path_segment(id)));
        let body = serde_json::json!({
            "name": hook.name, "targetUrl": hook.target_url, "secret": hook.secret, "status": "active",
        });
        self.send_json(self.http.put(url), &body).await
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        body: &impl Serialize,
    ) -> Result<T, UpstreamError> {
        let request = request.bearer_auth(self.token.expose_secret()).json(body);
        let response = self.http.send(Upstream::Webex, request).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Webex, response).await);
        }
        response
            .json()
            .await
            .map_err(|e| UpstreamError::InvalidResponse {
                upstream: Upstream::Webex,
                reason: e.to_string(),
            })
    }

    /// Whether a person is a member of a room (`GET /memberships?roomId=…&personId=…`; the
    /// bot must be in the room itself).
    pub async fn is_member(&self, room_id: &str, person_id: &str) -> Result<bool, UpstreamError> {
        let mut url = self.url_with_query("memberships")?;
        url.query_pairs_mut()
            .append_pair("roomId", room_id)
            .append_pair("personId", person_id);
        let (memberships, _): (Items<serde_json::Value>, _) = self.get_json(url.as_str()).await?;
        Ok(!memberships.items.is_empty())
    }

    /// `GET /people/{id}`.
    pub async fn person(&self, id: &str) -> Result<Person, UpstreamError> {
        let url = endpoint(&self.base_url, &format!("people/{}", path_segment(id)));
        self.get_json(&url).await.map(|(person, _)| person)
    }

    /// `GET /people/me`: the bot itself; also proves the token works.
    pub async fn me(&self) -> Result<Person, UpstreamError> {
        self.get_json(&endpoint(&self.base_url, "people/me"))
            .await
            .map(|(person, _)| person)
    }

    /// Every group space the bot is in, following `Link: <...>; rel="next"` pages.
    pub async fn group_rooms(&self) -> Result<Vec<Room>, UpstreamError> {
        let mut rooms = Vec::new();
        let mut next = Some(endpoint(&self.base_url, "rooms?type=group&max=1000"));
        // A bound on pages protects against a server that links a page to itself.
        for _ in 0..100 {
            let Some(url) = next.take() else { break };
            let (page, link): (Items<Room>, _) = self.get_json(&url).await?;
            rooms.extend(page.items);
            next = link;
        }
        Ok(rooms)
    }

    /// Turns the configured expert target into a destination, looking a title up.
    pub async fn resolve(&self, target: &ExpertTarget) -> Result<Destination, ResolveError> {
        let title = match target {
            ExpertTarget::RoomId(id) => return Ok(Destination::RoomId(id.clone())),
            ExpertTarget::Email(email) => return Ok(Destination::PersonEmail(email.clone())),
            ExpertTarget::RoomTitle(title) => title,
        };
        let rooms = self.group_rooms().await?;
        let matches: Vec<&Room> = rooms.iter().filter(|r| &r.title == title).collect();
        match matches.as_slice() {
            [room] => Ok(Destination::RoomId(room.id.clone())),
            [] => Err(ResolveError::NoMatch {
                title: title.clone(),
                found: if rooms.is_empty() {
                    "none".into()
                } else {
                    rooms
                        .iter()
                        .map(|r| format!("{:?}", r.title))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
            several => Err(ResolveError::Ambiguous {
                title: title.clone(),
                count: several.len(),
                ids: several
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
    ) -> Result<(T, Option<String>), UpstreamError> {
        let response = self
            .http
            .send(
                Upstream::Webex,
                self.http.get(url).bearer_auth(self.token.expose_secret()),
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Webex, response).await);
        }
        let next = response
            .headers()
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link);
        let body = response
            .json()
            .await
            .map_err(|e| UpstreamError::InvalidResponse {
                upstream: Upstream::Webex,
                reason: e.to_string(),
            })?;
        Ok((body, next))
    }
}

/// An id as one URL path segment (Webex ids are base64url, but never trust input).
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The `rel="next"` target of an RFC 8288 `Link` header value, if it has one.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let is_next = params.split(';').any(|param| {
            let param = param.trim().replace(' ', "");
            param == "rel=\"next\"" || param == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

/// The file name of a `Content-Disposition` header, kept to letters, digits, `.`, `-` and
/// `_` (it ends up in a link and a WhatsApp document).
fn file_name_of(disposition: &str) -> Option<String> {
    let raw = disposition
        .split(';')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("filename="))?
        .trim_matches('"');
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = name.trim_start_matches('.').to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_link() {
        let header = r#"<https://webexapis.com/v1/rooms?cursor=abc>; rel="next", <https://x/prev>; rel="prev""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://webexapis.com/v1/rooms?cursor=abc")
        );
        assert_eq!(next_link(r#"<https://x/prev>; rel="prev""#), None);
    }

    #[test]
    fn file_names_keep_to_safe_characters() {
        assert_eq!(
            file_name_of("attachment; filename=\"care plan (1).pdf\"").as_deref(),
            Some("care_plan__1_.pdf")
        );
        assert_eq!(
            file_name_of("attachment; filename=\"../../x\"").as_deref(),
            Some("_.._x")
        );
        assert_eq!(file_name_of("inline"), None);
    }
}
