use actix_web::{http::StatusCode, web, HttpResponse};
use serde_json::json;

use super::json_error;
use crate::metrics::Metrics;
use crate::store::Store;

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The process can do its work: the database answers.
pub async fn readyz(store: web::Data<Store>) -> HttpResponse {
    match store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready"})),
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
pub async fn metrics(store: web::Data<Store>, metrics: web::Data<Metrics>) -> HttpResponse {
    let rows = match store.outbox_counts().await {
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
