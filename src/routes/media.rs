//! `GET /media/{token}/{name}`: an expert's file, for Webex Connect to fetch and send on
//! WhatsApp (or for a customer who got its link by SMS). Anything but a valid, unexpired
//! token icbridge signed for that name is a plain 404 that says nothing more.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures_util::TryStreamExt;

use super::json_error;
use crate::media_links::MediaFiles;

pub async fn file(
    files: web::Data<Option<MediaFiles>>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (token, name) = path.into_inner();
    let Some(files) = files.as_ref() else {
        return not_found();
    };
    match files.open(&token, &name).await {
        Ok(Some((file, response))) => HttpResponse::Ok()
            .content_type(file.mime_type.as_str())
            .insert_header(ContentDisposition {
                disposition: DispositionType::Inline,
                parameters: vec![DispositionParam::Filename(file.name)],
            })
            .insert_header(("Cache-Control", "private, no-store"))
            // A file that breaks off on its way from Webex is icbridge's to report (the
            // HTTP server's own log of it is filtered out: see `telemetry`).
            .streaming(response.bytes_stream().inspect_err(|error| {
                tracing::warn!(%error, "an expert's file broke off while it was sent");
            })),
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
