//! The admin API under `/api/`: `Authorization: Bearer ICB_ADMIN_TOKEN`; off when unset.

use crate::domain::Conversation;
use crate::domain::{AuditEntry, Erasure, MeetingLinkRecord, OutboxRow, TranscriptEntry};
use std::future::{ready, Ready};

use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};

use super::params::{ConversationStates, DeliveryStates, Limit};
use super::responses::{AdminRefusals, QueryRefusal};
use super::{busy_response, json_error, ErrorBody, StatusBody};
use crate::bridge::{Bridge, BridgeError, CloseOutcome, ConversationDetail};
use crate::customers::data::CustomerExport;
use crate::domain::audit::Actor;
use crate::domain::clock;
use crate::domain::names::DeliveryKind;
use crate::domain::Media;

/// The admin token, if the admin API is on.
#[derive(Clone)]
/// The admin API's token, and who holds it (`ICB_ADMIN_NAME`, for the audit log).
pub struct AdminToken {
    pub token: Option<SecretString>,
    pub name: String,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/conversations").route(super::get().to(list_conversations)))
        .service(web::resource("/api/conversations/{id}").route(super::get().to(show_conversation)))
        .service(
            web::resource("/api/conversations/{id}/close")
                .route(web::post().to(close_conversation)),
        )
        .service(web::resource("/api/outbox").route(super::get().to(list_outbox)))
        .service(web::resource("/api/outbox/retry").route(web::post().to(retry_dead)))
        .service(web::resource("/api/outbox/{id}/retry").route(web::post().to(retry_outbox)))
        .service(
            web::resource("/api/customers/{number}/export").route(super::get().to(export_customer)),
        )
        .service(
            web::resource("/api/customers/{number}/erase").route(web::post().to(erase_customer)),
        )
        .service(web::resource("/api/audit").route(super::get().to(audit_log)))
        .service(web::resource("/api/ratings").route(super::get().to(list_ratings)));
}

/// A request that may use the admin API: it carries `Authorization: Bearer
/// <ICB_ADMIN_TOKEN>`. Taking it as an argument is the check; it acts as the token's holder.
pub struct Admin(pub Actor);

#[derive(Debug, thiserror::Error)]
pub enum AdminRefusal {
    #[error("the admin API is off: set ICB_ADMIN_TOKEN")]
    Off,
    #[error("missing or wrong Authorization: Bearer <ICB_ADMIN_TOKEN>")]
    Unauthorized,
}

impl ResponseError for AdminRefusal {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminRefusal::Off => StatusCode::NOT_FOUND,
            AdminRefusal::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            AdminRefusal::Off => "admin_api_off",
            AdminRefusal::Unauthorized => "unauthorized",
        };
        json_error(self.status_code(), code, self)
    }
}

impl FromRequest for Admin {
    type Error = AdminRefusal;
    type Future = Ready<Result<Self, AdminRefusal>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(admin) = request.app_data::<web::Data<AdminToken>>() else {
            return ready(Err(AdminRefusal::Off));
        };
        let Some(expected) = admin.token.clone() else {
            return ready(Err(AdminRefusal::Off));
        };
        let given = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        // Compared as digests, in constant time: the comparison tells nothing about the
        // token's length or its first differing byte.
        let valid = given.is_some_and(|given| {
            let given = Sha256::digest(given.as_bytes());
            bool::from(given.ct_eq(&Sha256::digest(expected.expose_secret().as_bytes())))
        });
        ready(if valid {
            Ok(Admin(Actor::Admin(admin.name.clone())))
        } else {
            Err(AdminRefusal::Unauthorized)
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(&'static str),
    /// The database failed (the bridge's `Store` error).
    #[error(transparent)]
    Database(BridgeError),
}

impl From<BridgeError> for AdminError {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::UnknownConversation(_) => AdminError::NotFound("no such conversation"),
            BridgeError::InvalidNumber(_) | BridgeError::UnknownSubscription(_) => {
                AdminError::Invalid(error.to_string())
            }
            error @ BridgeError::Store(_) => AdminError::Database(error),
            // Closing and retrying call no upstream.
            other => AdminError::BadRequest(other.to_string()),
        }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            AdminError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Database(e) if e.is_busy() => StatusCode::SERVICE_UNAVAILABLE,
            AdminError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            AdminError::BadRequest(_) => json_error(self.status_code(), "bad_request", self),
            AdminError::Invalid(_) => json_error(self.status_code(), "invalid", self),
            AdminError::NotFound(_) => json_error(self.status_code(), "not_found", self),
            AdminError::Database(e) if e.is_busy() => busy_response(e),
            AdminError::Database(e) => {
                tracing::error!(error = %e, "admin API: database error");
                json_error(self.status_code(), "internal_error", "internal error")
            }
        }
    }
}

/// A conversation as the admin API shows it; the customer's number is masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    /// `sms` or `whatsapp`.
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    /// Masked: `+1415•••0123`.
    pub customer: String,
    pub customer_name: Option<String>,
    pub business_address: String,
    /// `open` or `closed`.
    #[schema(value_type = crate::domain::names::ConversationState)]
    pub state: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub link_expires_at: Option<String>,
    pub thread_message_id: Option<String>,
    /// The expert who took the conversation: only their replies reach the customer.
    pub assignee: Option<String>,
    /// The desk it belongs to; absent for conversations from before desks (the default
    /// desk's).
    pub desk: Option<String>,
    /// Since when it has waited for its desk to open (the customer wrote out of hours);
    /// absent once the desk got it or a meeting was made.
    #[schema(format = DateTime)]
    pub waiting_since: Option<String>,
    /// How the customer rated it (1 to 5) after it was closed, if they answered the
    /// survey (`ICB_SURVEY`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<i64>,
}

impl From<&Conversation> for ConversationView {
    fn from(c: &Conversation) -> Self {
        ConversationView {
            id: c.id.clone(),
            channel: c.key.channel.as_str().to_string(),
            customer: c.key.customer.masked(),
            customer_name: c.customer_name.clone(),
            business_address: c.key.business.as_str().to_string(),
            state: if c.open { "open" } else { "closed" }.to_string(),
            created_at: clock::rfc3339(c.created_at),
            link_expires_at: c.links_expire_at.map(clock::rfc3339),
            thread_message_id: c.thread_message_id.clone(),
            assignee: c.assignee.clone(),
            desk: c.desk.clone(),
            waiting_since: c.waiting_since.map(clock::rfc3339),
            rating: c.rating,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingView {
    pub id: String,
    pub host_url: String,
    pub guest_url: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A link of a meeting, with whom it is for.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingLinkView {
    pub meeting_id: String,
    /// `host` or `guest`.
    pub role: String,
    pub url: String,
    /// For an added guest whose link was sent: the number, masked.
    pub sent_to: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&MeetingLinkRecord> for MeetingLinkView {
    fn from(link: &MeetingLinkRecord) -> Self {
        MeetingLinkView {
            meeting_id: link.meeting_id.clone(),
            role: link.role.clone(),
            url: link.url.clone(),
            sent_to: link.sent_to.clone(),
            created_at: clock::rfc3339(link.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TranscriptLine {
    /// `customer` or `expert`.
    pub author: String,
    pub author_email: Option<String>,
    /// Empty once erased by retention.
    pub text: String,
    /// Files the customer sent with the message (links, never the bytes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationLine>,
    #[schema(format = DateTime)]
    pub at: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentLine {
    pub url: String,
    pub mime_type: String,
    pub caption: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocationLine {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
    pub map_url: String,
}

impl TranscriptLine {
    fn of(entry: &TranscriptEntry) -> Self {
        let media = Media::from_stored(entry.media.as_deref());
        TranscriptLine {
            author: entry.author.clone(),
            author_email: entry.author_email.clone(),
            text: entry.text.clone(),
            attachments: media
                .attachments
                .iter()
                .map(|a| AttachmentLine {
                    url: a.url.as_str().to_string(),
                    mime_type: a.mime_type.as_str().to_string(),
                    caption: a.caption.clone(),
                })
                .collect(),
            location: media.location.map(|place| LocationLine {
                map_url: place.map_url(),
                latitude: place.latitude,
                longitude: place.longitude,
                name: place.name,
                address: place.address,
            }),
            at: clock::rfc3339(entry.at),
        }
    }
}

/// A conversation with its meetings and its transcript (customer and expert messages).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetailView {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub meetings: Vec<MeetingView>,
    /// Every link of its meetings with its role (more guests added by experts too).
    pub links: Vec<MeetingLinkView>,
    pub transcript: Vec<TranscriptLine>,
}

impl From<&ConversationDetail> for ConversationDetailView {
    fn from(detail: &ConversationDetail) -> Self {
        ConversationDetailView {
            conversation: (&detail.conversation).into(),
            meetings: detail
                .meetings
                .iter()
                .map(|m| MeetingView {
                    id: m.id.clone(),
                    host_url: m.host_url.clone(),
                    guest_url: m.guest_url.clone(),
                    expires_at: clock::rfc3339(m.expires_at),
                    created_at: clock::rfc3339(m.created_at),
                })
                .collect(),
            links: detail.links.iter().map(MeetingLinkView::from).collect(),
            transcript: detail.transcript.iter().map(TranscriptLine::of).collect(),
        }
    }
}

/// A delivery without its payload (which holds message texts and numbers).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: i64,
    /// `expert_notification`, `expert_notice`, `customer_reply` or `opt_out_reply` (the
    /// answer to STOP, START or HELP).
    #[schema(value_type = crate::domain::names::DeliveryKind)]
    pub kind: String,
    pub conversation_id: Option<String>,
    /// `pending`, `held`, `sent`, `dead` or `cancelled` (never sent: the customer opted
    /// out).
    #[schema(value_type = crate::domain::names::DeliveryState)]
    pub state: String,
    pub attempts: i64,
    #[schema(format = DateTime)]
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub upstream_id: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&OutboxRow> for DeliveryView {
    fn from(row: &OutboxRow) -> Self {
        DeliveryView {
            id: row.id,
            kind: row.kind.clone(),
            conversation_id: row.conversation_id.clone(),
            state: row.state.clone(),
            attempts: row.attempts,
            next_attempt_at: clock::rfc3339(row.next_attempt_at),
            last_error: row.last_error.clone(),
            upstream_id: row.upstream_id.clone(),
            created_at: clock::rfc3339(row.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<ConversationView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub outbox: Vec<DeliveryView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedDelivery {
    /// `pending`.
    pub status: String,
    pub id: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConversationQuery {
    /// Only conversations in this state; default all.
    #[param(inline)]
    state: Option<ConversationStates>,
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// Only deliveries in this state; default all.
    #[param(inline)]
    state: Option<DeliveryStates>,
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

/// How many of a list: `/api/audit`, `/api/ratings`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LimitQuery {
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

/// Conversations, newest first.
#[utoipa::path(get, path = "/api/conversations", tag = "admin", params(ConversationQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = ConversationList), QueryRefusal,
              AdminRefusals))]
pub async fn list_conversations(
    _: Admin,
    query: web::Query<ConversationQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let state = query.state.and_then(ConversationStates::only);
    let list = bridge
        .conversations(state, Limit::or_default(query.limit))
        .await?;
    Ok(HttpResponse::Ok().json(ConversationList {
        conversations: list.iter().map(ConversationView::from).collect(),
    }))
}

/// One conversation with its meetings and transcript.
#[utoipa::path(get, path = "/api/conversations/{id}", tag = "admin", security(("adminToken" = [])),
    responses((status = 200, body = ConversationDetailView),
              AdminRefusals))]
pub async fn show_conversation(
    _: Admin,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let detail = bridge
        .conversation_detail(&path.into_inner())
        .await?
        .ok_or(AdminError::NotFound("no such conversation"))?;
    Ok(HttpResponse::Ok().json(ConversationDetailView::from(&detail)))
}

/// Close a conversation (the experts' thread is told).
#[utoipa::path(post, path = "/api/conversations/{id}/close", tag = "admin",
    security(("adminToken" = [])),
    responses((status = 200, body = StatusBody, description = "`closed` or `already_closed`"),
              (status = 409, body = ErrorBody, description = "it has a booked consultation that is not over: cancel the appointment to call it off"),
              AdminRefusals))]
pub async fn close_conversation(
    Admin(admin): Admin,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let status = match bridge.close(&path.into_inner(), &admin).await? {
        CloseOutcome::Closed => "closed",
        CloseOutcome::AlreadyClosed => "already_closed",
        CloseOutcome::Booked { appointment_id, .. } => {
            return Ok(json_error(
                StatusCode::CONFLICT,
                "booked",
                format!(
                    "it has booked consultation {appointment_id}, which is not over: \
                     DELETE /api/appointments/{appointment_id} calls it off"
                ),
            ))
        }
    };
    Ok(HttpResponse::Ok().json(StatusBody::new(status)))
}

/// Deliveries, newest first (without their payloads).
#[utoipa::path(get, path = "/api/outbox", tag = "admin", params(DeliveryQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = DeliveryList), QueryRefusal,
              AdminRefusals))]
pub async fn list_outbox(
    _: Admin,
    query: web::Query<DeliveryQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let state = query.state.and_then(DeliveryStates::only);
    let rows = bridge
        .deliveries(state, Limit::or_default(query.limit))
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        outbox: rows.iter().map(DeliveryView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeadQuery {
    /// Only deliveries of this kind.
    #[param(inline)]
    kind: Option<DeliveryKind>,
    /// Only deliveries queued since this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetriedDeliveries {
    /// `pending`.
    pub status: String,
    /// How many dead deliveries are due again.
    pub count: u64,
}

/// Make every dead delivery (of a kind, queued since a time) due now, with a fresh retry
/// schedule.
#[utoipa::path(post, path = "/api/outbox/retry", tag = "admin", params(DeadQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = RetriedDeliveries), QueryRefusal,
              AdminRefusals))]
pub async fn retry_dead(
    Admin(admin): Admin,
    query: web::Query<DeadQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let since = match &query.since {
        Some(since) => Some(clock::parse_rfc3339(since).ok_or_else(|| {
            AdminError::Invalid(format!(
                "query parameter `since` must be an RFC 3339 time, not {since:?}"
            ))
        })?),
        None => None,
    };
    let kind = query.kind.map(DeliveryKind::as_str);
    let count = bridge.retry_dead_deliveries(kind, since, &admin).await?;
    Ok(HttpResponse::Ok().json(RetriedDeliveries {
        status: "pending".into(),
        count,
    }))
}

/// Make a dead (or waiting) delivery due now, with a fresh retry schedule.
#[utoipa::path(post, path = "/api/outbox/{id}/retry", tag = "admin",
    security(("adminToken" = [])),
    responses((status = 200, body = RetriedDelivery),
              (status = 422, body = ErrorBody, description = "the id is not a whole number"),
              AdminRefusals))]
pub async fn retry_outbox(
    Admin(admin): Admin,
    path: web::Path<i64>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let id = path.into_inner();
    match bridge.retry_delivery(id, &admin).await {
        Ok(()) => Ok(HttpResponse::Ok().json(RetriedDelivery {
            status: "pending".into(),
            id,
        })),
        Err(BridgeError::UnknownDelivery(_)) => Err(AdminError::NotFound(
            "no pending or dead outbox row with this id",
        )),
        Err(error) => Err(error.into()),
    }
}

/// Everything held about a customer: every conversation, message (with its files' links and
/// location), delivery and receipt, on SMS and WhatsApp. Audited.
#[utoipa::path(get, path = "/api/customers/{number}/export", tag = "admin",
    params(("number" = String, Path, pattern = r"^\+?[1-9][0-9]{6,14}$",
        description = "the customer's number, international format (`+14155550123`)")),
    security(("adminToken" = [])),
    responses((status = 200, body = CustomerExport), (status = 422, body = ErrorBody, description = "not a phone number"),
              AdminRefusals))]
pub async fn export_customer(
    Admin(admin): Admin,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let export = bridge.export_customer(&path.into_inner(), &admin).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(export))
}

/// Erases what is held about a customer (texts, names, files' links, the content of
/// deliveries and receipts; the number replaced, open conversations closed, pending
/// deliveries cancelled) and says what was erased. Audited.
#[utoipa::path(post, path = "/api/customers/{number}/erase", tag = "admin",
    params(("number" = String, Path, pattern = r"^\+?[1-9][0-9]{6,14}$",
        description = "the customer's number, international format (`+14155550123`)")),
    security(("adminToken" = [])),
    responses((status = 200, body = Erasure), (status = 422, body = ErrorBody, description = "not a phone number"),
              AdminRefusals))]
pub async fn erase_customer(
    Admin(admin): Admin,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let erasure = bridge.erase_customer(&path.into_inner(), &admin).await?;
    Ok(HttpResponse::Ok().json(erasure))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    #[schema(format = DateTime)]
    pub at: String,
    /// `admin:<ICB_ADMIN_NAME>`, `cli:<user>` or `expert:<Webex identity>`.
    pub actor: String,
    /// `close`, `retry`, `transfer`, `export` or `erase`.
    pub action: String,
    /// A conversation, a delivery, or a customer's masked number.
    pub subject: String,
    pub detail: Option<String>,
}

impl From<&AuditEntry> for AuditView {
    fn from(entry: &AuditEntry) -> Self {
        AuditView {
            at: clock::rfc3339(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            subject: entry.subject.clone(),
            detail: entry.detail.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub audit: Vec<AuditView>,
}

/// What administrators and experts did to customers' data, newest first.
#[utoipa::path(get, path = "/api/audit", tag = "admin", params(LimitQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = AuditList), QueryRefusal,
              AdminRefusals))]
pub async fn audit_log(
    _: Admin,
    query: web::Query<LimitQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let entries = bridge.audit_log(Limit::or_default(query.limit)).await?;
    Ok(HttpResponse::Ok().json(AuditList {
        audit: entries.iter().map(AuditView::from).collect(),
    }))
}

/// A customer's rating of a closed conversation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatingView {
    pub conversation_id: String,
    /// `sms` or `whatsapp`.
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    /// Masked: `+1415•••0123`.
    pub customer: String,
    /// The desk of the conversation.
    pub desk: String,
    /// 1 (poor) to 5 (excellent); WhatsApp's buttons give 5, 3 or 1.
    pub rating: i64,
    /// When the survey was asked (the conversation closed) and answered.
    #[schema(format = DateTime)]
    pub asked_at: String,
    #[schema(format = DateTime)]
    pub answered_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RatingList {
    pub ratings: Vec<RatingView>,
}

/// Customers' ratings after their conversations were closed, newest first.
#[utoipa::path(get, path = "/api/ratings", tag = "admin", params(LimitQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = RatingList), QueryRefusal,
              AdminRefusals))]
pub async fn list_ratings(
    _: Admin,
    query: web::Query<LimitQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let ratings = bridge.ratings(Limit::or_default(query.limit)).await?;
    let default_desk = &bridge.desks().default_desk().name;
    Ok(HttpResponse::Ok().json(RatingList {
        ratings: ratings
            .iter()
            .map(|r| RatingView {
                conversation_id: r.conversation_id.clone(),
                channel: r.channel.clone(),
                customer: r.customer_masked(),
                desk: r.desk.clone().unwrap_or_else(|| default_desk.clone()),
                rating: r.rating,
                asked_at: clock::rfc3339(r.asked_at),
                answered_at: clock::rfc3339(r.answered_at),
            })
            .collect(),
    }))
}
