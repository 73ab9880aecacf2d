//! The OpenAPI document of the HTTP API, generated from the handlers and their types (a
//! test calls every operation in it and checks each answers with a documented status).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, appointments, connect_webhook, console, health, links, webex_webhook};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "icbridge",
        description = "Turns a customer's SMS or WhatsApp message into a Webex Instant Connect video consultation."
    ),
    paths(
        connect_webhook::receive,
        connect_webhook::head,
        webex_webhook::receive,
        health::healthz,
        health::readyz,
        health::metrics,
        document,
        admin::list_conversations,
        admin::show_conversation,
        admin::close_conversation,
        admin::list_outbox,
        admin::retry_dead,
        admin::retry_outbox,
        admin::export_customer,
        admin::erase_customer,
        admin::audit_log,
        appointments::book,
        appointments::list,
        appointments::cancel,
        admin::list_ratings,
        links::visit,
        console::console,
        console::login,
        console::callback,
        console::logout,
        console::queue,
        console::widget,
        console::act,
    ),
    modifiers(&Security)
)]
struct ApiDoc;

/// How each kind of caller proves who it is.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme("adminToken", bearer("ICB_ADMIN_TOKEN"));
        components.add_security_scheme("webhookToken", bearer("ICB_CONNECT_WEBHOOK_TOKEN"));
        components.add_security_scheme(
            "hubSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub-Signature",
                "hex HMAC-SHA256 of the raw body with ICB_CONNECT_WEBHOOK_SECRET",
            ))),
        );
        components.add_security_scheme(
            "sparkSignature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Spark-Signature",
                "hex HMAC-SHA1 of the raw body with ICB_WEBEX_WEBHOOK_SECRET",
            ))),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
pub async fn document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serialises")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.as_str())
}
