//! Every HTML answer icbridge gives (the console, the pages of its links, the sandbox's
//! meeting pages, their error pages) is built here, with the same security headers: not
//! cached, never sniffed as another type, no referrer sent on, and a Content-Security-Policy
//! that forbids framing.

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::HttpResponseBuilder;

/// The policy of a page without scripts: inline styles and icbridge's own style sheet,
/// nothing else; no forms, no `<base>`, no framing.
pub const PLAIN_PAGE_POLICY: &str = "default-src 'none'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// An HTML answer under `policy` (which must keep `frame-ancestors 'none'`), without its
/// body yet: add headers, then `.body(…)`.
pub fn html_page(status: StatusCode, policy: &str) -> HttpResponseBuilder {
    let mut response = HttpResponseBuilder::new(status);
    response
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CONTENT_SECURITY_POLICY, policy.to_string()));
    response
}

/// A page without scripts: [`PLAIN_PAGE_POLICY`].
pub fn plain_page(status: StatusCode) -> HttpResponseBuilder {
    html_page(status, PLAIN_PAGE_POLICY)
}
