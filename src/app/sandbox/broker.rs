//! The Instant Connect broker's stand-in: it hands out links that open a local page.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{refusal, SandboxState};
use crate::routes::html::plain_page;
use crate::routes::json_error;

/// The broker: hands out short codes that open a local page, or long links to the same.
pub(super) async fn joseencrypt(
    request: HttpRequest,
    state: web::Data<SandboxState>,
    body: web::Json<Value>,
) -> HttpResponse {
    if let Some(refused) = refusal(&request) {
        return refused;
    }
    let Some(sub) = body["jwt"]["sub"].as_str().filter(|s| !s.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "jwt.sub is required",
        );
    };
    let short_urls = body["provideShortUrls"].as_bool().unwrap_or(false);
    let mut links = state.links.lock().expect("not poisoned");
    let mut link = |role: &'static str| {
        let short: String = Uuid::new_v4().simple().to_string()[..7].to_string();
        links.insert(short.clone(), (role, sub.to_string()));
        let cipher = format!("sandbox.{role}.{short}");
        if short_urls {
            json!({"cipher": cipher, "short": short})
        } else {
            json!({"cipher": cipher})
        }
    };
    // As many links of each role as asked for (the broker's defaults: one each).
    let count = |field: &str| body[field].as_u64().unwrap_or(1).min(25);
    let hosts: Vec<Value> = (0..count("numHost")).map(|_| link("host")).collect();
    let guests: Vec<Value> = (0..count("numGuest")).map(|_| link("guest")).collect();
    let mut answer = json!({"host": hosts, "guest": guests});
    if short_urls {
        let base = format!("{}/sandbox/visit/", origin(&request));
        answer["baseUrl"] = json!(base);
    }
    HttpResponse::Ok().json(answer)
}

fn origin(request: &HttpRequest) -> String {
    let info = request.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub(super) async fn visit(path: web::Path<String>, state: web::Data<SandboxState>) -> HttpResponse {
    let code = path.into_inner();
    let found = state
        .links
        .lock()
        .expect("not poisoned")
        .get(&code)
        .cloned();
    match found {
        Some((role, sub)) => meeting_page(role, &sub),
        None => plain_page(StatusCode::NOT_FOUND).body("<!doctype html><title>Unknown link</title><p>This sandbox link is unknown (links live as long as the sandbox process).</p>"),
    }
}

pub(super) async fn long_link(
    path: web::Path<(String, String)>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (_vertical, page) = path.into_inner();
    let role = if page == "login" { "host" } else { "guest" };
    let data = query.get("data").map(String::as_str).unwrap_or("");
    meeting_page(role, data)
}

fn meeting_page(role: &str, meeting: &str) -> HttpResponse {
    let meeting = html_escape(meeting);
    plain_page(StatusCode::OK).body(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>icbridge sandbox meeting</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>Sandbox meeting</h1><p>You opened the <strong>{role}</strong> link of meeting <code>{meeting}</code>.</p>\
         <p>In production this link opens Webex Instant Connect.</p></body></html>"
    ))
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
