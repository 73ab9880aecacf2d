//! `/j/<code>`: the links icbridge hands out (with `ICB_PUBLIC_URL`). A person is sent on to
//! the meeting while it may be used; a link preview gets a title and a description; an
//! ended or unknown link gets a short page saying how to get a new one. Unknown codes are
//! counted per client address (the peer's, or the one a trusted proxy forwarded): past a
//! limit, that address is refused for a minute.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::html::plain_page;
use crate::bridge::{Bridge, LinkVisit};
use crate::customers::texts::{link_not_yet_page, LINK_ENDED_PAGE, LINK_PREVIEW_PAGE};
use crate::routes::proxies::TrustedProxies;

/// User agents (matched case-insensitively, as parts) that fetch a link to draw its preview
/// or to scan it for safety, never to join: they are not openings. WhatsApp, iMessage (which
/// presents itself as Facebook's and Twitter's crawlers), Messenger, Slack, Teams and Skype,
/// Telegram, Discord, LinkedIn, Viber, Outlook and Office (Safe Links), and mail scanners.
pub const PREVIEW_AGENTS: [&str; 20] = [
    "whatsapp",
    "facebookexternalhit",
    "facebot",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "skypeuripreview",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "viber",
    "microsoft office",
    "ms-office",
    "bingpreview",
    "googlebot",
    "applebot",
    "google-safety",
    "proofpoint",
    "mimecast",
    "barracuda",
];

/// Unknown codes an address may ask for in a minute; past it, every `/j/` request from it
/// is refused until the minute is over.
const UNKNOWN_PER_MINUTE: u32 = 20;
const MINUTE_MS: i64 = 60_000;
/// Addresses remembered at most; older windows are forgotten first.
const MAX_ADDRESSES: usize = 10_000;

/// Unknown codes per client address, in the current minute of each.
#[derive(Default)]
pub struct UnknownCodes {
    by_address: Mutex<HashMap<String, (i64, u32)>>,
}

impl UnknownCodes {
    fn is_refused(&self, address: &str, now: i64) -> bool {
        let by_address = self.by_address.lock().expect("not poisoned");
        by_address
            .get(address)
            .is_some_and(|(since, count)| now - since < MINUTE_MS && *count >= UNKNOWN_PER_MINUTE)
    }

    fn count(&self, address: &str, now: i64) {
        let mut by_address = self.by_address.lock().expect("not poisoned");
        if by_address.len() >= MAX_ADDRESSES {
            by_address.retain(|_, (since, _)| now - *since < MINUTE_MS);
        }
        let entry = by_address.entry(address.to_string()).or_insert((now, 0));
        if now - entry.0 >= MINUTE_MS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

fn page(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    plain_page(status)
        .insert_header(("X-Robots-Tag", "noindex"))
        .body(body.into())
}

/// The client's address: the peer's, or, from a proxy of `ICB_TRUSTED_PROXIES`, the one
/// the proxies forwarded (see [`TrustedProxies`]).
fn client_address(request: &HttpRequest, proxies: &TrustedProxies) -> String {
    match request.peer_addr() {
        Some(peer) => proxies
            .client_address(peer.ip(), request.headers())
            .to_string(),
        None => "unknown".to_string(),
    }
}

fn is_preview(request: &HttpRequest) -> bool {
    if request.method() == Method::HEAD {
        return true;
    }
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    PREVIEW_AGENTS.iter().any(|known| agent.contains(known))
}

/// One of icbridge's links: on to the meeting (302), a preview page (200), the ended page
/// (410), or the same page for an unknown code (404); 429 for an address that asked for too
/// many unknown codes.
#[utoipa::path(get, operation_id = "visit_link", path = "/j/{code}", tag = "links",
    params(("code" = String, Path, description = "the link's code")),
    responses((status = 302, description = "on to the meeting (`Location`), while it may be used"),
              (status = 200, description = "a link preview's fetch (HEAD, or a preview's user agent): title and description; or a booked consultation's link before it works: from when it does", content_type = "text/html"),
              (status = 410, description = "the consultation this link was for has ended", content_type = "text/html"),
              (status = 404, description = "no such link (the same page)", content_type = "text/html"),
              (status = 429, description = "too many unknown codes from this address; try again in a minute", content_type = "text/html"),
              (status = 503, description = "the link could not be looked up; try again in a few seconds (`Retry-After`)")))]
pub async fn visit(
    request: HttpRequest,
    code: web::Path<String>,
    bridge: web::Data<Bridge>,
    unknown: web::Data<UnknownCodes>,
    proxies: web::Data<TrustedProxies>,
) -> HttpResponse {
    let address = client_address(&request, &proxies);
    let now = bridge.clock().now_ms();
    if unknown.is_refused(&address, now) {
        let mut response = page(StatusCode::TOO_MANY_REQUESTS, LINK_ENDED_PAGE);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(60));
        return response;
    }
    match bridge.visit_link(&code, is_preview(&request)).await {
        Ok(LinkVisit::Redirect(target)) => HttpResponse::Found()
            .insert_header((header::LOCATION, target))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header(("Referrer-Policy", "no-referrer"))
            .finish(),
        Ok(LinkVisit::Preview) => page(StatusCode::OK, LINK_PREVIEW_PAGE),
        Ok(LinkVisit::Ended) => page(StatusCode::GONE, LINK_ENDED_PAGE),
        Ok(LinkVisit::NotYet { from }) => page(StatusCode::OK, link_not_yet_page(&from)),
        Ok(LinkVisit::Unknown) => {
            unknown.count(&address, now);
            page(StatusCode::NOT_FOUND, LINK_ENDED_PAGE)
        }
        Err(error) => {
            tracing::error!(%error, "a link could not be looked up");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
    }
}
