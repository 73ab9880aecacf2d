//! What the HTTP API documents besides each operation's own answers: the refusals every
//! admin or console operation can give, and the formats of its parameters.

use utoipa::{IntoResponses, ToSchema};

use super::ErrorBody;

/// A phone number in international format, `+` optional (`+14155550123`); icbridge also
/// takes spaces, dashes, dots and parentheses between the digits.
pub const PHONE_NUMBER: &str = r"^\+?[1-9][0-9]{6,14}$";

/// What an expert does to a conversation from the console.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum ConsoleAction {
    Close,
    NewLink,
    Take,
    Release,
}

/// What any operation of the admin API can answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AdminRefusals {
    /// Missing or wrong `Authorization: Bearer <ICB_ADMIN_TOKEN>`.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The admin API is off (`admin_api_off`), or what was asked for does not exist
    /// (`not_found`).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A database error (details only in the logs).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// The database is busy: nothing was changed, retry in a moment (`Retry-After`).
    #[response(status = 503)]
    Busy(ErrorBody),
}

/// A query parameter that does not parse.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum QueryRefusal {
    /// A query parameter is invalid (`invalid`); the message names it.
    #[response(status = 422)]
    Invalid(ErrorBody),
}

/// What a page of the console can answer besides its own: pages for people.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConsolePageRefusals {
    /// Refused by Webex, or not (or no longer) allowed to use the console.
    #[response(status = 403, content_type = "text/html")]
    Forbidden(String),
    /// A database error (details only in the logs).
    #[response(status = 500, content_type = "text/html")]
    Internal(String),
    /// Webex did not answer as expected.
    #[response(status = 502, content_type = "text/html")]
    Upstream(String),
    /// The console is not configured: the page says what to set.
    #[response(status = 503, content_type = "text/html")]
    NotConfigured(String),
}

/// What the console's JSON API can answer besides its own.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ConsoleApiRefusals {
    /// Not signed in, or the session ended (`not_signed_in`).
    #[response(status = 401)]
    NotSignedIn(ErrorBody),
    /// Not (or no longer) allowed to use the console (`not_allowed`), or a missing or wrong
    /// `X-CSRF-Token` (`csrf`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// A database error (details only in the logs).
    #[response(status = 500)]
    Internal(ErrorBody),
    /// Webex or the video service did not answer as expected (`upstream_unavailable`).
    #[response(status = 502)]
    Upstream(ErrorBody),
    /// The console is not configured: a page says what to set.
    #[response(status = 503, content_type = "text/html")]
    NotConfigured(String),
}
