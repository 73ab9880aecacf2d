//! `/healthz`, `/readyz` and `/metrics`.

use actix_web::{http::StatusCode, web, HttpResponse};

use super::{json_error, ErrorBody, StatusBody};
use crate::bridge::Bridge;
use crate::metrics::Metrics;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = StatusBody, description = "`{\"status\":\"ok\"}`")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(StatusBody::new("ok"))
}

/// The process can do its work: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = StatusBody, description = "`{\"status\":\"ready\"}`"),
              (status = 503, body = ErrorBody, description = "the database does not answer")))]
pub async fn readyz(bridge: web::Data<Bridge>) -> HttpResponse {
    match bridge.ready().await {
        Ok(()) => HttpResponse::Ok().json(StatusBody::new("ready")),
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
    let rows = match bridge.delivery_counts().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: outbox not readable");
            Vec::new()
        }
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render(&rows))
}
