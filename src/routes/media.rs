//! `GET /media/{token}/{name}`: an expert's file, for Webex Connect to fetch and send on
//! WhatsApp (or for a customer who got its link by SMS). Anything but a valid, unexpired
//! token icbridge signed for that name is a plain 404 that says nothing more.
//!
//! The files are the experts' and are served from icbridge's own origin (the console's), so
//! nothing of theirs may run there: only pictures, sound, video and PDF are shown in the
//! browser, anything else (HTML, SVG, …) is a download, and every answer under `/media/`
//! is sandboxed and never sniffed as another type.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};
use futures_util::TryStreamExt;

use super::json_error;
use crate::delivery::media_links::{shown_inline, MediaFiles};

/// The policy of every answer under `/media/`: a document of its own origin, running nothing
/// and loading nothing.
pub const MEDIA_POLICY: &str = "sandbox; default-src 'none'";

/// Mounts `/media/` (its files come from `web::Data<Option<MediaFiles>>`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/media")
            .wrap(
                DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::CONTENT_SECURITY_POLICY, MEDIA_POLICY)),
            )
            .service(web::resource("/{token}/{name}").route(super::get().to(file)))
            .default_service(web::to(super::not_found)),
    );
}

pub async fn file(
    files: web::Data<Option<MediaFiles>>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (token, name) = path.into_inner();
    let Some(files) = files.as_ref() else {
        return not_found();
    };
    match files.open(&token, &name).await {
        Ok(Some((file, response))) => {
            let disposition = if shown_inline(&file.mime_type) {
                DispositionType::Inline
            } else {
                DispositionType::Attachment
            };
            HttpResponse::Ok()
                .content_type(file.mime_type.as_str())
                .insert_header(ContentDisposition {
                    disposition,
                    parameters: vec![DispositionParam::Filename(file.name)],
                })
                .insert_header((header::CACHE_CONTROL, "private, no-store"))
                // A file that breaks off on its way from Webex is icbridge's to report (the
                // HTTP server's own log of it is filtered out: see `telemetry`).
                .streaming(response.bytes_stream().inspect_err(|error| {
                    tracing::warn!(%error, "an expert's file broke off while it was sent");
                }))
        }
        Ok(None) => not_found(),
        Err(error) => {
            tracing::warn!(%error, "an expert's file could not be read from Webex");
            if error.is_retryable() {
                json_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "try again later",
                )
            } else {
                not_found()
            }
        }
    }
}

fn not_found() -> HttpResponse {
    json_error(StatusCode::NOT_FOUND, "not_found", "no such file")
}
