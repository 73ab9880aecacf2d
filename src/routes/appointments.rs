//! Booked consultations in the admin API: `POST /api/appointments` (with an optional
//! `Idempotency-Key`), `GET /api/appointments?from&to`, `DELETE /api/appointments/{id}`.

use crate::domain::Appointment;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::admin::Admin;
use super::params::Limit;
use super::responses::{AdminRefusals, QueryRefusal};
use super::{busy_response, json_error, ErrorBody};
use crate::bridge::{AppointmentError, AppointmentRequest, Bridge, BridgeError};
use crate::domain::clock;
use crate::domain::CustomerAddress;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/appointments")
            .route(web::post().to(book))
            .route(super::get().to(list)),
    )
    .service(web::resource("/api/appointments/{id}").route(web::delete().to(cancel)));
}

/// An appointment as the admin API shows it; the customer's number is masked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentView {
    pub id: String,
    pub conversation_id: String,
    pub meeting_id: String,
    /// `sms` or `whatsapp`.
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    /// Masked: `+1415•••0123`.
    pub customer: String,
    pub business_address: String,
    pub desk: String,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: String,
    /// From when until when the links work.
    #[schema(format = DateTime)]
    pub links_from: String,
    #[schema(format = DateTime)]
    pub links_until: String,
    pub guest_url: String,
    pub note: Option<String>,
    /// `booked` or `cancelled`.
    #[schema(value_type = crate::domain::names::AppointmentState)]
    pub state: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub cancelled_at: Option<String>,
}

impl From<&Appointment> for AppointmentView {
    fn from(a: &Appointment) -> Self {
        AppointmentView {
            id: a.id.clone(),
            conversation_id: a.conversation_id.clone(),
            meeting_id: a.meeting_id.clone(),
            channel: a.channel.clone(),
            customer: CustomerAddress::from_stored(a.customer.clone()).masked(),
            business_address: a.business.clone(),
            desk: a.desk.clone(),
            starts_at: clock::rfc3339(a.starts_at),
            ends_at: clock::rfc3339(a.ends_at),
            links_from: clock::rfc3339(a.links_from),
            links_until: clock::rfc3339(a.links_until),
            guest_url: a.guest_url.clone(),
            note: a.note.clone(),
            state: a.state.clone(),
            created_at: clock::rfc3339(a.created_at),
            cancelled_at: a.cancelled_at.map(clock::rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppointmentList {
    pub appointments: Vec<AppointmentView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AppointmentQuery {
    /// Appointments starting at or after this instant (RFC 3339); default now.
    #[param(format = DateTime)]
    from: Option<String>,
    /// And before this one; default: no end.
    #[param(format = DateTime)]
    to: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
}

impl ResponseError for AppointmentError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppointmentError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppointmentError::IdempotencyConflict
            | AppointmentError::CustomerBooked(_)
            | AppointmentError::CannotInvite(_)
            | AppointmentError::AlreadyCancelled => StatusCode::CONFLICT,
            AppointmentError::Unknown(_) => StatusCode::NOT_FOUND,
            AppointmentError::Bridge(BridgeError::Store(e)) if e.is_busy() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppointmentError::Bridge(
                BridgeError::Upstream(_)
                | BridgeError::Paused { .. }
                | BridgeError::MeetingUnavailable,
            ) => StatusCode::BAD_GATEWAY,
            AppointmentError::Bridge(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            AppointmentError::Invalid { field, .. } => HttpResponse::build(status).json(json!({
                "error": "invalid",
                "field": field,
                "message": self.to_string(),
            })),
            AppointmentError::IdempotencyConflict => {
                json_error(status, "idempotency_key_reused", self)
            }
            AppointmentError::CustomerBooked(_) => json_error(status, "customer_booked", self),
            AppointmentError::CannotInvite(_) => json_error(status, "cannot_invite", self),
            AppointmentError::AlreadyCancelled => json_error(status, "already_cancelled", self),
            AppointmentError::Unknown(_) => json_error(status, "not_found", self),
            AppointmentError::Bridge(BridgeError::Store(e)) if e.is_busy() => busy_response(e),
            AppointmentError::Bridge(e @ BridgeError::Paused { retry_after }) => {
                let mut response = json_error(status, "upstream_unavailable", e);
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(retry_after.as_secs().max(1)),
                );
                response
            }
            AppointmentError::Bridge(
                e @ (BridgeError::Upstream(_) | BridgeError::MeetingUnavailable),
            ) => {
                tracing::warn!(error = %e, "no meeting for the appointment");
                json_error(
                    status,
                    "upstream_unavailable",
                    "the video service did not make the meeting; nothing was booked",
                )
            }
            AppointmentError::Bridge(e) => {
                tracing::error!(error = %e, "appointments: answering 500");
                json_error(status, "internal_error", "internal error")
            }
        }
    }
}

/// Books a consultation: the meeting is made at once (its links work from
/// `ICB_APPOINTMENT_EARLY_JOIN` before the start until as long after the end), the customer
/// is invited at once and reminded `ICB_APPOINTMENT_REMINDER` before the start, when the
/// desk's experts get the card. With `Idempotency-Key`, the same key and body give the same
/// answer (`Idempotent-Replayed: true`), another body 409. Audited.
#[utoipa::path(post, operation_id = "book_appointment", path = "/api/appointments", tag = "admin",
    request_body = AppointmentRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retried request safe")),
    security(("adminToken" = [])),
    responses((status = 201, body = AppointmentView),
              (status = 400, body = ErrorBody, description = "the body is not JSON"),
              (status = 413, body = ErrorBody, description = "the body is larger than 64 KiB"),
              (status = 415, body = ErrorBody, description = "the body is not `application/json`"),
              (status = 422, body = ErrorBody, description = "a field is invalid (`field` names it); nothing was stored"),
              (status = 409, body = ErrorBody, description = "the Idempotency-Key was used with another body, the customer has an appointment that is not over, or icbridge cannot send invitations"),
              (status = 502, body = ErrorBody, description = "the video service made no meeting; nothing was booked"),
              AdminRefusals))]
pub async fn book(
    Admin(admin): Admin,
    http: HttpRequest,
    body: web::Json<AppointmentRequest>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AppointmentError> {
    let key = http
        .headers()
        .get("Idempotency-Key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty());
    if key.is_some_and(|key| key.len() > 200) {
        return Err(AppointmentError::Invalid {
            field: "Idempotency-Key",
            reason: "is longer than 200 characters".into(),
        });
    }
    let outcome = bridge.book_appointment(&body, key, &admin).await?;
    let mut response = HttpResponse::Created();
    if !outcome.created {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(AppointmentView::from(&outcome.appointment)))
}

fn instant(field: &'static str, raw: Option<&str>) -> Result<Option<i64>, AppointmentError> {
    raw.map(|raw| {
        raw.trim()
            .parse::<jiff::Timestamp>()
            .map(|at| at.as_millisecond())
            .map_err(|_| AppointmentError::Invalid {
                field,
                reason: "must be RFC 3339 with an offset".into(),
            })
    })
    .transpose()
}

/// Appointments starting in `[from, to)`, soonest first (cancelled ones too).
#[utoipa::path(get, operation_id = "list_appointments", path = "/api/appointments", tag = "admin", params(AppointmentQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = AppointmentList),
              QueryRefusal,
              AdminRefusals))]
pub async fn list(
    _: Admin,
    query: web::Query<AppointmentQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AppointmentError> {
    let from = instant("from", query.from.as_deref())?;
    let to = instant("to", query.to.as_deref())?;
    let list = bridge
        .appointments(from, to, Limit::or_default(query.limit))
        .await?;
    Ok(HttpResponse::Ok().json(AppointmentList {
        appointments: list.iter().map(AppointmentView::from).collect(),
    }))
}

/// Cancels an appointment: the customer and the thread are told, the reminder and the card
/// are not sent, the links end and the conversation closes. Audited.
#[utoipa::path(delete, operation_id = "cancel_appointment", path = "/api/appointments/{id}", tag = "admin",
    security(("adminToken" = [])),
    responses((status = 200, body = AppointmentView), (status = 409, body = ErrorBody, description = "cancelled before"),
              AdminRefusals))]
pub async fn cancel(
    Admin(admin): Admin,
    path: web::Path<String>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AppointmentError> {
    let cancelled = bridge
        .cancel_appointment(&path.into_inner(), &admin)
        .await?;
    Ok(HttpResponse::Ok().json(AppointmentView::from(&cancelled)))
}
