//! `/console`: the expert console's pages and its small JSON API.

use crate::domain::ConsoleSession;
use crate::domain::TakeOutcome;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::admin::MeetingLinkView;
use super::html::{html_page, plain_page};
use super::responses::{ConsoleApiRefusals, ConsolePageRefusals};
use super::{json_error, ErrorBody};
use crate::bridge::{Bridge, BridgeError, CloseOutcome, NewLinkOutcome};
use crate::domain::audit::Actor;
use crate::domain::clock;
use crate::experts::console::{page, Console, ConsoleError, LOGIN_TIMEOUT_MS};

const COOKIE: &str = "icb_console";
/// The browser's part of a login in progress: set by `/console/login`, asked for by the
/// callback, so that nobody can finish a login of theirs in someone else's browser.
const LOGIN_COOKIE: &str = "icb_login";
/// Ratings the queue's page lists.
const RECENT_RATINGS: i64 = 20;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(super::get().to(console)))
        .service(web::resource("/console/login").route(super::get().to(login)))
        .service(web::resource("/console/callback").route(super::get().to(callback)))
        .service(web::resource("/console/logout").route(web::post().to(logout)))
        .service(web::resource("/console/app.js").route(super::get().to(app_js)))
        .service(web::resource("/console/console.css").route(super::get().to(app_css)))
        .service(web::resource("/console/api/queue").route(super::get().to(queue)))
        .service(web::resource("/console/api/widget").route(super::get().to(widget)))
        .service(
            web::resource("/console/api/conversations/{id}").route(super::get().to(transcript)),
        )
        .service(
            web::resource("/console/api/conversations/{id}/{action}").route(web::post().to(act)),
        );
}

/// Without OAuth settings, every console URL says what to set.
pub async fn not_configured() -> HttpResponse {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        page::message(
            "Console not configured",
            "Set ICB_PUBLIC_URL, ICB_OAUTH_CLIENT_ID and ICB_OAUTH_CLIENT_SECRET (a Webex integration) to use the expert console.",
        ),
        None,
    )
}

fn html(status: StatusCode, body: String, console: Option<&Console>) -> HttpResponse {
    match console {
        Some(console) => html_page(
            status,
            &page::content_security_policy(console.widget_base_url()),
        )
        .body(body),
        None => plain_page(status).body(body),
    }
}

fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

fn cookie_value(request: &HttpRequest) -> Option<String> {
    request.cookie(COOKIE).map(|c| c.value().to_string())
}

fn login_cookie_value(request: &HttpRequest) -> Option<String> {
    request.cookie(LOGIN_COOKIE).map(|c| c.value().to_string())
}

/// Lives as long as a login may take, for the console's paths only; sent along when Webex
/// sends the browser back (a top-level `GET`, which `SameSite=Lax` allows).
fn login_cookie(console: &Console, value: String) -> Cookie<'static> {
    Cookie::build(LOGIN_COOKIE, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(console.secure_cookie())
        .max_age(CookieDuration::seconds(LOGIN_TIMEOUT_MS / 1000))
        .finish()
}

fn session_cookie(console: &Console, value: String, session: &ConsoleSession) -> Cookie<'static> {
    let lifetime = (session.refresh_expires_at - console.now()).max(0) / 1000;
    Cookie::build(COOKIE, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(console.secure_cookie())
        .max_age(CookieDuration::seconds(lifetime))
        .finish()
}

/// A signed-in expert, for the console's JSON API: taking it as an argument is the check.
pub struct Expert(ConsoleSession);

/// A signed-in expert on the page: without a session, the browser goes to the login.
pub struct ExpertOnPage(ConsoleSession);

/// A signed-in expert's action from the page, with its anti-CSRF token (`X-CSRF-Token`).
pub struct ExpertAction(ConsoleSession);

/// Why a request may not use the console, answered as its caller expects.
pub struct ConsoleRefusal {
    error: ConsoleError,
    as_json: bool,
    console: web::Data<Console>,
}

impl std::fmt::Debug for ConsoleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.error, f)
    }
}

impl std::fmt::Display for ConsoleRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl actix_web::ResponseError for ConsoleRefusal {
    fn error_response(&self) -> HttpResponse {
        error_response(&self.error, self.as_json, &self.console)
    }
}

/// The request's session, checked once for every console endpoint that needs one.
async fn signed_in(
    request: &HttpRequest,
    as_json: bool,
    with_csrf: bool,
) -> Result<ConsoleSession, ConsoleRefusal> {
    let console = request
        .app_data::<web::Data<Console>>()
        .expect("console routes are mounted with the console")
        .clone();
    let checked = async {
        let session = console.session(cookie_value(request).as_deref()).await?;
        if with_csrf {
            let given = request
                .headers()
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            Console::check_csrf(&session, given)?;
        }
        Ok(session)
    }
    .await;
    checked.map_err(|error| ConsoleRefusal {
        error,
        as_json,
        console,
    })
}

macro_rules! session_extractor {
    ($name:ident, as_json: $json:expr, with_csrf: $csrf:expr) => {
        impl actix_web::FromRequest for $name {
            type Error = ConsoleRefusal;
            type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

            fn from_request(
                request: &HttpRequest,
                _: &mut actix_web::dev::Payload,
            ) -> Self::Future {
                let request = request.clone();
                Box::pin(async move { signed_in(&request, $json, $csrf).await.map($name) })
            }
        }
    };
}

session_extractor!(Expert, as_json: true, with_csrf: false);
session_extractor!(ExpertOnPage, as_json: false, with_csrf: false);
session_extractor!(ExpertAction, as_json: true, with_csrf: true);

/// An error as the page (`html`) or the page's script (JSON) should see it.
fn error_response(error: &ConsoleError, as_json: bool, console: &Console) -> HttpResponse {
    let (status, code) = match &error {
        ConsoleError::NotSignedIn => (StatusCode::UNAUTHORIZED, "not_signed_in"),
        ConsoleError::BadState => (StatusCode::BAD_REQUEST, "bad_state"),
        ConsoleError::OtherBrowser => (StatusCode::BAD_REQUEST, "other_browser"),
        ConsoleError::Denied(_) => (StatusCode::FORBIDDEN, "login_denied"),
        ConsoleError::NotAllowed(_) => (StatusCode::FORBIDDEN, "not_allowed"),
        ConsoleError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
        ConsoleError::Upstream(_) | ConsoleError::Bridge(_) => {
            (StatusCode::BAD_GATEWAY, "upstream_unavailable")
        }
        ConsoleError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
    };
    let text = match &error {
        ConsoleError::Store(e) => {
            tracing::error!(error = %e, "console error");
            "internal error".to_string()
        }
        ConsoleError::Upstream(e) => {
            tracing::warn!(error = %e, "console: Webex did not answer as expected");
            "Webex did not answer as expected; try again.".to_string()
        }
        other => other.to_string(),
    };
    if as_json {
        json_error(status, code, text)
    } else if matches!(error, ConsoleError::NotSignedIn) {
        redirect("/console/login")
    } else {
        html(
            status,
            page::message("Sign-in problem", &text),
            Some(console),
        )
    }
}

/// The expert console (HTML); without a session, a redirect to the login.
#[utoipa::path(get, operation_id = "console_page", path = "/console", tag = "console",
    responses((status = 200, content_type = "text/html", body = String, description = "the console page"),
              (status = 303, description = "not signed in: to /console/login"),
              ConsolePageRefusals))]
pub async fn console(
    ExpertOnPage(session): ExpertOnPage,
    console: web::Data<Console>,
) -> HttpResponse {
    html(
        StatusCode::OK,
        page::console(&session, console.experts(), console.widget_base_url()),
        Some(&console),
    )
}

/// Starts a Webex login (OAuth with PKCE), bound to this browser by a cookie.
#[utoipa::path(get, operation_id = "console_login", path = "/console/login", tag = "console",
    responses((status = 303, description = "to Webex's authorize page, with the login's cookie `icb_login`"),
              ConsolePageRefusals))]
pub async fn login(request: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    match console
        .start_login(login_cookie_value(&request).as_deref())
        .await
    {
        Ok((authorize_url, browser)) => {
            let mut response = redirect(&authorize_url);
            response
                .add_cookie(&login_cookie(&console, browser))
                .expect("a valid cookie");
            response
        }
        Err(error) => error_response(&error, false, &console),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// Webex sends the browser back here after the login.
#[utoipa::path(get, operation_id = "console_callback", path = "/console/callback", tag = "console", params(Callback),
    responses((status = 303, description = "signed in: to /console"),
              (status = 400, content_type = "text/html", body = String, description = "unknown, expired or reused login, or one this browser did not start (no `icb_login` cookie of its own)"),
              (status = 422, body = ErrorBody, description = "a query parameter given twice"),
              ConsolePageRefusals))]
pub async fn callback(
    request: HttpRequest,
    query: web::Query<Callback>,
    console: web::Data<Console>,
) -> HttpResponse {
    let browser = login_cookie_value(&request);
    let result = match (&query.error, &query.code, &query.state) {
        // A refusal still uses up its state, so it cannot be replayed.
        (Some(error), _, Some(state)) => {
            let _ = console
                .finish_login_refused(state, browser.as_deref())
                .await;
            Err(ConsoleError::Denied(error.clone()))
        }
        (Some(error), _, None) => Err(ConsoleError::Denied(error.clone())),
        (None, Some(code), Some(state)) => {
            console.finish_login(code, state, browser.as_deref()).await
        }
        _ => Err(ConsoleError::BadState),
    };
    match result {
        Ok((cookie, session)) => {
            let mut response = redirect("/console");
            response
                .add_cookie(&session_cookie(&console, cookie, &session))
                .expect("a valid cookie");
            response
        }
        Err(error) => error_response(&error, false, &console),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutForm {
    /// The page's anti-CSRF token.
    csrf: Option<String>,
}

/// Signs out (form field `csrf`).
#[utoipa::path(post, operation_id = "console_logout", path = "/console/logout", tag = "console",
    request_body(content = LogoutForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, content_type = "text/html", body = String, description = "signed out"),
              (status = 413, body = ErrorBody, description = "the body is larger than 64 KiB"),
              (status = 415, body = ErrorBody, description = "the body is not a form (`application/x-www-form-urlencoded`)"),
              (status = 422, body = ErrorBody, description = "the form is not one the page sends"),
              ConsolePageRefusals))]
pub async fn logout(
    request: HttpRequest,
    form: web::Form<LogoutForm>,
    console: web::Data<Console>,
) -> HttpResponse {
    let result = async {
        let session = console.session(cookie_value(&request).as_deref()).await?;
        Console::check_csrf(&session, form.csrf.as_deref())?;
        console.logout(&session).await
    }
    .await;
    match result {
        Ok(()) | Err(ConsoleError::NotSignedIn) => {
            let mut response = html(
                StatusCode::OK,
                page::message("Signed out", "You are signed out of the icbridge console."),
                Some(&console),
            );
            let mut gone = Cookie::build(COOKIE, "").path("/console").finish();
            gone.make_removal();
            response.add_cookie(&gone).expect("a valid cookie");
            response
        }
        Err(error) => error_response(&error, false, &console),
    }
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page::APP_JS)
}

async fn app_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page::APP_CSS)
}

/// The open conversations, for the page to show.
#[utoipa::path(get, operation_id = "console_queue", path = "/console/api/queue", tag = "console",
    responses((status = 200, body = serde_json::Value, description = "`conversations`, the newest `ratings` and `tokenGeneration`"),
              ConsoleApiRefusals))]
pub async fn queue(
    Expert(session): Expert,
    console: web::Data<Console>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    let found = async {
        let items = bridge.queue(200).await?;
        Ok::<_, BridgeError>((items, bridge.ratings(RECENT_RATINGS).await?))
    };
    let (items, ratings) = match found.await {
        Ok(found) => found,
        Err(error) => return error_response(&ConsoleError::from(error), true, &console),
    };
    let conversations: Vec<_> = items
        .iter()
        .map(|item| {
            let c = &item.conversation;
            json!({
                "id": c.id,
                "channel": c.key.channel.display_name(),
                "customer": c.key.customer.masked(),
                "customerName": c.customer_name,
                "lastMessage": item.last_message,
                "lastMessageAt": item.last_message_at.map(clock::rfc3339),
                "linkExpiresAt": c.links_expire_at.map(clock::rfc3339),
                "hostUrl": item.host_url,
                "assignee": c.assignee,
                "takenByMe": c.assignee.as_deref() == Some(session.email.as_str()),
                "desk": bridge.desk_of(c),
                "waitingSince": clock::rfc3339(c.created_at),
                // Wrote out of hours and waits for the desk to open.
                "outOfHours": c.waiting_since.is_some(),
                "linkOpenedAt": item.link_opened_at.map(clock::rfc3339),
                // A booked consultation's conversation is open from the booking on.
                "bookedFor": item.booked_for.map(clock::rfc3339),
            })
        })
        .collect();
    // Rated conversations are closed: they are listed on their own, newest first.
    let default_desk = &bridge.desks().default_desk().name;
    let ratings: Vec<_> = ratings
        .iter()
        .map(|r| {
            json!({
                "conversationId": r.conversation_id,
                "customer": r.customer_masked(),
                "desk": r.desk.as_deref().unwrap_or(default_desk),
                "rating": r.rating,
                "answeredAt": clock::rfc3339(r.answered_at),
            })
        })
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"conversations": conversations, "ratings": ratings,
                     "tokenGeneration": session.token_generation}))
}

/// A conversation's transcript, for the row an expert opens.
#[utoipa::path(get, operation_id = "console_transcript", path = "/console/api/conversations/{id}", tag = "console",
    params(("id" = String, Path, description = "the conversation")),
    responses((status = 200, body = serde_json::Value, description = "`transcript`: `author`, `text`, `at`; `links`: `role`, `url`, `sentTo`; `rating`, once the customer rated the closed conversation"),
              (status = 404, body = ErrorBody, description = "no such conversation"),
              ConsoleApiRefusals))]
pub async fn transcript(
    Expert(_session): Expert,
    path: web::Path<String>,
    console: web::Data<Console>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    match bridge.conversation_detail(&path).await {
        Ok(Some(detail)) => {
            let lines: Vec<_> = detail
                .transcript
                .iter()
                .map(|line| {
                    json!({
                        "author": line.author,
                        "authorEmail": line.author_email,
                        "text": line.text,
                        "at": clock::rfc3339(line.at),
                    })
                })
                .collect();
            let links: Vec<_> = detail.links.iter().map(MeetingLinkView::from).collect();
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(json!({ "transcript": lines, "links": links, "rating": detail.conversation.rating }))
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "not_found", "no such conversation"),
        Err(error) => error_response(&error.into(), true, &console),
    }
}

/// The Space Widget's current access token, after a refresh.
#[utoipa::path(get, operation_id = "console_widget", path = "/console/api/widget", tag = "console",
    responses((status = 200, body = serde_json::Value, description = "`accessToken` and `tokenGeneration`"),
              ConsoleApiRefusals))]
pub async fn widget(Expert(session): Expert) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"accessToken": session.access_token, "tokenGeneration": session.token_generation}))
}

/// `close`, `new-link`, `take` or `release` on a conversation, from the page (header
/// `X-CSRF-Token`), as the signed-in expert.
#[utoipa::path(post, operation_id = "console_act", path = "/console/api/conversations/{id}/{action}", tag = "console",
    params(("id" = String, Path, description = "the conversation"),
           ("action" = inline(super::responses::ConsoleAction), Path, description = "what to do")),
    responses((status = 200, body = super::StatusBody, description = "`closed`, `already_closed`, `created`, `in_progress`, `taken`, `already_yours`, `taken_by_another`, `released` or `not_yours`"),
              (status = 404, body = ErrorBody, description = "no such conversation, or an unknown action"),
              ConsoleApiRefusals))]
pub async fn act(
    ExpertAction(session): ExpertAction,
    path: web::Path<(String, String)>,
    console: web::Data<Console>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let outcome = match action.as_str() {
        "close" => bridge
            .close(&id, &Actor::Expert(session.email.clone()))
            .await
            .map(|outcome| match outcome {
                CloseOutcome::Closed => "closed",
                CloseOutcome::AlreadyClosed => "already_closed",
                CloseOutcome::Booked { .. } => "booked",
            }),
        "new-link" => bridge.new_link(&id).await.map(|outcome| match outcome {
            NewLinkOutcome::Created => "created",
            NewLinkOutcome::InProgress => "in_progress",
            NewLinkOutcome::Closed => "already_closed",
        }),
        "take" => bridge
            .take(&id, &session.email)
            .await
            .map(|outcome| match outcome {
                TakeOutcome::Taken => "taken",
                TakeOutcome::AlreadyYours => "already_yours",
                TakeOutcome::TakenBy(_) => "taken_by_another",
                TakeOutcome::Closed | TakeOutcome::Unknown => "already_closed",
            }),
        "release" => bridge.release(&id, &session.email).await.map(|released| {
            if released {
                "released"
            } else {
                "not_yours"
            }
        }),
        _ => return json_error(StatusCode::NOT_FOUND, "not_found", "unknown action"),
    };
    let outcome = match outcome {
        Err(BridgeError::UnknownConversation(_)) => {
            return json_error(StatusCode::NOT_FOUND, "not_found", "no such conversation")
        }
        Err(BridgeError::Store(e)) => Err(ConsoleError::from(e)),
        Err(e) => return json_error(StatusCode::BAD_GATEWAY, "upstream_unavailable", e),
        Ok(status) => Ok(status),
    };
    match outcome {
        Ok(status) => HttpResponse::Ok().json(json!({ "status": status })),
        Err(error) => error_response(&error, true, &console),
    }
}
