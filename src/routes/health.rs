//! `/healthz`, `/readyz` and `/metrics`.

use std::collections::BTreeMap;

use actix_web::{http::StatusCode, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::{json_error, ErrorBody, StatusBody};
use crate::bridge::Bridge;
use crate::domain::clock;
use crate::domain::metrics::Metrics;
use crate::experts::Desk;
use crate::upstream::Upstream;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = StatusBody, description = "`{\"status\":\"ok\"}`")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusBody::new("ok"))
}

/// Readiness, and how the upstreams' credentials fare.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// By upstream (`webex`, `connect`, `instant_connect`): `ok`, or why its credential is
    /// refused. A refused credential does not make the instance unready: intake goes on,
    /// and deliveries to that upstream wait.
    pub credentials: BTreeMap<String, String>,
    /// icbridge's Webex webhooks by resource (`messages`, `attachmentActions`) as last
    /// checked (every minute): `active`, or what is wrong. Empty before the first check or
    /// without `ICB_WEBEX_WEBHOOK_SECRET`. A webhook that is not active does not make the
    /// instance unready: experts' messages then arrive by the periodic catch-up.
    pub webhooks: BTreeMap<String, String>,
}

/// The process can do its work: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness),
              (status = 503, body = ErrorBody, description = "the database does not answer")))]
pub async fn readyz(bridge: web::Data<Bridge>, desk: web::Data<Desk>) -> HttpResponse {
    let pauses = match bridge.ready().await {
        Ok(()) => bridge.upstream_pauses().await,
        Err(e) => Err(e),
    };
    match pauses {
        Ok(pauses) => {
            let credentials = Upstream::ALL
                .into_iter()
                .map(|upstream| {
                    let refused = pauses
                        .iter()
                        .find(|p| p.upstream == upstream.label() && p.credential_refused());
                    let state = match refused {
                        Some(p) => format!(
                            "refused since {}: {}",
                            clock::rfc3339(p.updated_at),
                            p.reason
                        ),
                        None => "ok".to_string(),
                    };
                    (upstream.label().to_string(), state)
                })
                .collect();
            HttpResponse::Ok().json(Readiness {
                status: "ready".into(),
                credentials,
                webhooks: desk.webhook_states().into_iter().collect(),
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database does not answer",
            )
        }
    }
}

/// Prometheus metrics of this instance, with the outbox's rows by state.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String,
               description = "Prometheus text format")))]
pub async fn metrics(bridge: web::Data<Bridge>, metrics: web::Data<Metrics>) -> HttpResponse {
    let figures = match bridge.database_figures().await {
        Ok(figures) => figures,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the database is not readable");
            Default::default()
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render(&figures))
}
