//! One log line per request: request id, method, the route it matched (never the path
//! itself, which can carry a customer's number, nor the query string, which can carry OAuth
//! codes), status and duration. Logs written while handling the request carry
//! the same request id; the response returns it as `X-Request-Id`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument;

use crate::domain::mask_digits;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn request_log(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // A proxy's id is kept when it looks like one; otherwise a fresh one.
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = request.method().to_string();
    let path = loggable_path(&request);
    let span = tracing::info_span!("request", request_id = %request_id);
    let started = Instant::now();
    let mut response = next.call(request).instrument(span.clone()).await?;
    let status = response.status().as_u16();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = %path,
            status,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        )
    });
    Ok(response)
}

/// The path as logged: the pattern of the route it matched (`/api/customers/{number}/export`,
/// `/j/{code}`, `/media/{token}/{name}`), so that numbers, the codes of icbridge's meeting
/// links and the tokens of links to experts' files stay out. A path no route matches is
/// logged with every number in it masked (`/api/customers/+1415•••0123/x`), and under `/j/`
/// and `/media/` as `/j/…` and `/media/…`.
fn loggable_path(request: &ServiceRequest) -> String {
    if let Some(pattern) = request.match_pattern() {
        return pattern;
    }
    let path = request.path();
    if path.starts_with("/media/") {
        "/media/…".to_string()
    } else if path.starts_with("/j/") {
        "/j/…".to_string()
    } else {
        mask_numbers(path)
    }
}

/// Masks every run of 7 or more digits (a phone number, a WhatsApp id) in `text`.
fn mask_numbers(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        masked.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let digits = &rest[..end];
        if digits.len() >= 7 {
            masked.push_str(&mask_digits(digits));
        } else {
            masked.push_str(digits);
        }
        rest = &rest[end..];
    }
    masked.push_str(rest);
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_and_short_digit_runs_kept() {
        assert_eq!(
            mask_numbers("/api/customers/+12344945956/x"),
            "/api/customers/+1234•••5956/x"
        );
        assert_eq!(
            mask_numbers("/x/%2B14155550142?/v1/12/4155550"),
            "/x/%2B1415•••0142?/v1/12/•••5550"
        );
        assert_eq!(mask_numbers("/healthz"), "/healthz");
        assert_eq!(mask_numbers("123456"), "123456");
    }
}
