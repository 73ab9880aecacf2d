//! The Webex Connect messaging API: replies to the customer by SMS or WhatsApp.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use crate::domain::{MediaKind, MediaType, ReplyButton};

use super::{endpoint, status_error, HttpClient, Upstream, UpstreamError};

/// Webex Connect's "over the tenant's rate limit" code: worth retrying later.
/// WhatsApp's "queued" code, the only success.
const QUEUED: &str = "1001";

/// `POST /v1/sms/messages`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsRequest {
    /// The sender id or number, without `+`.
    pub from: String,
    /// E.164 with `+`.
    pub to: String,
    pub content: String,
    pub correlation_id: String,
    pub callback_data: String,
}

/// A WhatsApp text through `POST /resources/v1/messaging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WhatsappRequest {
    pub app_id: String,
    pub waid: String,
    pub body: String,
    pub correlation_id: String,
    pub callback_data: String,
}

/// A file for a WhatsApp media message.
#[derive(Debug, Clone, Copy)]
pub struct WhatsappMedia<'a> {
    pub url: &'a str,
    pub media_type: &'a MediaType,
    pub caption: Option<&'a str>,
    pub file_name: &'a str,
}

/// Who a WhatsApp message goes to, and the ids that tie its receipts back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsappEnvelope {
    pub app_id: String,
    pub waid: String,
    pub correlation_id: String,
    pub callback_data: String,
}

impl WhatsappRequest {
    fn envelope(&self) -> WhatsappEnvelope {
        WhatsappEnvelope {
            app_id: self.app_id.clone(),
            waid: self.waid.clone(),
            correlation_id: self.correlation_id.clone(),
            callback_data: self.callback_data.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsAccepted {
    message_id: String,
}

/// Where Webex Connect's APIs are: the vendor documents SMS on
/// `https://api.{region}.webexconnect.io` and WhatsApp (the messaging API v1) on
/// `https://{region}.webexconnect.io`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectUrls {
    /// `ICB_CONNECT_SMS_URL`: `POST {sms}/v1/sms/messages`.
    pub sms: Url,
    /// `ICB_CONNECT_WHATSAPP_URL`: `POST {whatsapp}/resources/v1/messaging`.
    pub whatsapp: Url,
}

#[derive(Clone)]
pub struct ConnectClient {
    http: HttpClient,
    urls: ConnectUrls,
    service_key: SecretString,
}

impl ConnectClient {
    /// Webex Connect's origins (scheme, host and port of its APIs), and the key that its
    /// media links need there and nowhere else (see [`super::media`]).
    pub fn media_credential(&self) -> (Vec<url::Origin>, SecretString) {
        let mut origins = vec![self.urls.sms.origin(), self.urls.whatsapp.origin()];
        origins.dedup();
        (origins, self.service_key.clone())
    }

    pub fn new(http: HttpClient, urls: ConnectUrls, service_key: SecretString) -> Self {
        Self {
            http,
            urls,
            service_key,
        }
    }

    /// Sends an SMS; returns Webex Connect's message id.
    pub async fn send_sms(&self, sms: &SmsRequest) -> Result<String, UpstreamError> {
        let body = json!({
            "from": sms.from.trim_start_matches('+'),
            "to": sms.to,
            "content": sms.content,
            "contentType": "text",
            "correlationId": sms.correlation_id,
            "callbackData": sms.callback_data,
        });
        let response = self.post(&self.urls.sms, "v1/sms/messages", &body).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Connect, response).await);
        }
        let accepted: SmsAccepted = response.json().await.map_err(|e| invalid(e.to_string()))?;
        Ok(accepted.message_id)
    }

    /// Sends a WhatsApp text; returns the transaction id.
    pub async fn send_whatsapp(&self, message: &WhatsappRequest) -> Result<String, UpstreamError> {
        self.send_messaging(
            &message.envelope(),
            json!({"channels": {"OTT-Messaging": {"wa": {
                "type": "text",
                "text": {"body": message.body},
                "preview_url": "true",
            }}}}),
        )
        .await
    }

    /// Sends a file as a WhatsApp media message (`image`, `document`, `video` or `audio`)
    /// that Webex Connect fetches from `url`; returns the transaction id. Audio takes no
    /// caption; only documents carry a file name.
    pub async fn send_whatsapp_media(
        &self,
        envelope: &WhatsappEnvelope,
        media: &WhatsappMedia<'_>,
    ) -> Result<String, UpstreamError> {
        let kind = media.media_type.kind();
        let mut content = json!({"url": media.url, "mimeType": media.media_type.as_str()});
        if let (Some(caption), false) = (media.caption, kind == MediaKind::Audio) {
            content["caption"] = json!(caption);
        }
        if kind == MediaKind::Document {
            content["filename"] = json!(media.file_name);
        }
        let wa_type = kind.whatsapp_type();
        self.send_messaging(
            envelope,
            json!({"channels": {"OTT-Messaging": {"wa": {"type": wa_type, wa_type: content}}}}),
        )
        .await
    }

    /// Sends a WhatsApp text with reply buttons (Webex Connect's `reply` message, see
    /// docs/upstreams.md); returns the transaction id.
    pub async fn send_whatsapp_buttons(
        &self,
        envelope: &WhatsappEnvelope,
        body: &str,
        buttons: &[ReplyButton],
    ) -> Result<String, UpstreamError> {
        let buttons: Vec<Value> = buttons
            .iter()
            .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
            .collect();
        self.send_messaging(
            envelope,
            json!({"channels": {"OTT-Messaging": {"wa": {
                "type": "reply",
                "reply": {"body": {"text": body}, "action": {"buttons": buttons}},
            }}}}),
        )
        .await
    }

    /// Sends an approved WhatsApp template with its variables; returns the transaction id.
    pub async fn send_whatsapp_template(
        &self,
        envelope: &WhatsappEnvelope,
        template: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<String, UpstreamError> {
        self.send_messaging(
            envelope,
            json!({"message": {"template": template, "parameters": parameters}}),
        )
        .await
    }

    /// `POST /resources/v1/messaging`: the envelope and the message. This API answers
    /// errors with HTTP 200 too: only a `response` array whose code is 1001 is a success.
    async fn send_messaging(
        &self,
        envelope: &WhatsappEnvelope,
        message: Value,
    ) -> Result<String, UpstreamError> {
        let mut body = json!({
            "deliverychannel": "whatsapp",
            "appid": envelope.app_id,
            "destination": [{"waid": [envelope.waid]}],
            "correlationid": envelope.correlation_id,
            "callbackData": envelope.callback_data,
        });
        if let (Value::Object(body), Value::Object(message)) = (&mut body, message) {
            body.extend(message);
        }
        let response = self
            .post(&self.urls.whatsapp, "resources/v1/messaging", &body)
            .await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Connect, response).await);
        }
        let answer: Value = response.json().await.map_err(|e| invalid(e.to_string()))?;
        let outcome = match &answer["response"] {
            Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
            other => other.clone(),
        };
        let code = text(&outcome["code"]).ok_or_else(|| invalid("no `response.code`"))?;
        if code == QUEUED && answer["response"].is_array() {
            return text(&outcome["transid"]).ok_or_else(|| invalid("queued, but no `transid`"));
        }
        Err(UpstreamError::Refused {
            upstream: Upstream::Connect,
            message: text(&outcome["description"]).unwrap_or_default(),
            retryable: code == super::CONNECT_RATE_LIMITED,
            code,
        })
    }

    async fn post(
        &self,
        base_url: &Url,
        path: &str,
        body: &Value,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.http
            .send(
                Upstream::Connect,
                self.http
                    .post(endpoint(base_url, path))
                    .header("key", self.service_key.expose_secret())
                    .json(body),
            )
            .await
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn invalid(reason: impl Into<String>) -> UpstreamError {
    UpstreamError::InvalidResponse {
        upstream: Upstream::Connect,
        reason: reason.into(),
    }
}
