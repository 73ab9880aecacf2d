//! `/console`: the expert console's pages and its small JSON API.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::json_error;
use crate::bridge::{Bridge, NewLinkOutcome};
use crate::clock::{self, now_ms};
use crate::console::{page, Console, ConsoleError};
use crate::store::ConsoleSession;

const COOKIE: &str = "icb_console";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(console)))
        .service(web::resource("/console/login").route(web::get().to(login)))
        .service(web::resource("/console/callback").route(web::get().to(callback)))
        .service(web::resource("/console/logout").route(web::post().to(logout)))
        .service(web::resource("/console/app.js").route(web::get().to(app_js)))
        .service(web::resource("/console/console.css").route(web::get().to(app_css)))
        .service(web::resource("/console/api/queue").route(web::get().to(queue)))
        .service(web::resource("/console/api/widget").route(web::get().to(widget)))
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
    let mut response = HttpResponse::build(status);
    response
        .content_type(ContentType::html())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"));
    let policy = match console {
        Some(console) => page::content_security_policy(console.widget_base_url()),
        None => "default-src 'self'; frame-ancestors 'none'".to_string(),
    };
    response.insert_header(("Content-Security-Policy", policy));
    response.body(body)
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

fn session_cookie(console: &Console, value: String, session: &ConsoleSession) -> Cookie<'static> {
    let lifetime = (session.refresh_expires_at - now_ms()).max(0) / 1000;
    Cookie::build(COOKIE, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(console.secure_cookie())
        .max_age(CookieDuration::seconds(lifetime))
        .finish()
}

/// An error as the page (`html`) or the page's script (JSON) should see it.
fn error_response(error: ConsoleError, as_json: bool, console: &Console) -> HttpResponse {
    let (status, code) = match &error {
        ConsoleError::NotSignedIn => (StatusCode::UNAUTHORIZED, "not_signed_in"),
        ConsoleError::BadState => (StatusCode::BAD_REQUEST, "bad_state"),
        ConsoleError::Denied(_) => (StatusCode::FORBIDDEN, "login_denied"),
        ConsoleError::NotAllowed(_) => (StatusCode::FORBIDDEN, "not_allowed"),
        ConsoleError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
        ConsoleError::Upstream(_) => (StatusCode::BAD_GATEWAY, "upstream_unavailable"),
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

async fn console(request: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    match console.session(cookie_value(&request).as_deref()).await {
        Ok(session) => html(
            StatusCode::OK,
            page::console(&session, console.experts(), console.widget_base_url()),
            Some(&console),
        ),
        Err(error) => error_response(error, false, &console),
    }
}

async fn login(console: web::Data<Console>) -> HttpResponse {
    match console.start_login().await {
        Ok(authorize_url) => redirect(&authorize_url),
        Err(error) => error_response(error, false, &console),
    }
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

async fn callback(query: web::Query<Callback>, console: web::Data<Console>) -> HttpResponse {
    let result = match (&query.error, &query.code, &query.state) {
        // A refusal still uses up its state, so it cannot be replayed.
        (Some(error), _, Some(state)) => {
            let _ = console.finish_login_refused(state).await;
            Err(ConsoleError::Denied(error.clone()))
        }
        (Some(error), _, None) => Err(ConsoleError::Denied(error.clone())),
        (None, Some(code), Some(state)) => console.finish_login(code, state).await,
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
        Err(error) => error_response(error, false, &console),
    }
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: Option<String>,
}

async fn logout(
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
        Err(error) => error_response(error, false, &console),
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
async fn queue(
    request: HttpRequest,
    console: web::Data<Console>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    let session = match console.session(cookie_value(&request).as_deref()).await {
        Ok(session) => session,
        Err(error) => return error_response(error, true, &console),
    };
    let items = match bridge.store().queue(200).await {
        Ok(items) => items,
        Err(error) => return error_response(error.into(), true, &console),
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
            })
        })
        .collect();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"conversations": conversations, "tokenGeneration": session.token_generation}))
}

/// The widget's settings with the current access token, after a refresh.
async fn widget(request: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    match console.session(cookie_value(&request).as_deref()).await {
        Ok(session) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(json!({"accessToken": session.access_token, "tokenGeneration": session.token_generation})),
        Err(error) => error_response(error, true, &console),
    }
}

/// `close` or `new-link` on a conversation, from the page (with its anti-CSRF token).
async fn act(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    console: web::Data<Console>,
    bridge: web::Data<Bridge>,
) -> HttpResponse {
    let (id, action) = path.into_inner();
    let result = async {
        let session = console.session(cookie_value(&request).as_deref()).await?;
        let csrf = request
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        Console::check_csrf(&session, csrf)?;
        let conversation = bridge.store().conversation(&id).await?;
        Ok::<_, ConsoleError>((session, conversation))
    }
    .await;
    let (session, conversation) = match result {
        Ok(found) => found,
        Err(error) => return error_response(error, true, &console),
    };
    let Some(conversation) = conversation else {
        return json_error(StatusCode::NOT_FOUND, "not_found", "no such conversation");
    };
    let outcome = match action.as_str() {
        "close" => bridge
            .close(&conversation, &session.email)
            .await
            .map(|closed| if closed { "closed" } else { "already_closed" })
            .map_err(ConsoleError::from),
        "new-link" => match bridge.new_link(&conversation).await {
            Ok(NewLinkOutcome::Created) => Ok("created"),
            Ok(NewLinkOutcome::InProgress) => Ok("in_progress"),
            Ok(NewLinkOutcome::Closed) => Ok("already_closed"),
            Err(crate::bridge::BridgeError::Store(e)) => Err(e.into()),
            Err(e) => {
                return json_error(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable", e);
            }
        },
        _ => return json_error(StatusCode::NOT_FOUND, "not_found", "unknown action"),
    };
    match outcome {
        Ok(status) => HttpResponse::Ok().json(json!({ "status": status })),
        Err(error) => error_response(error, true, &console),
    }
}
