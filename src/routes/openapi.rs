//! The OpenAPI document of the HTTP API, generated from the handlers and their types (a
//! test calls every operation in it and checks each answers with a documented status).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, appointments, connect_webhook, console, events, health, links, webex_webhook};

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
        events::list_events,
        links::visit,
        console::console,
        console::login,
        console::callback,
        console::logout,
        console::queue,
        console::transcript,
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

/// The whole document: the HTTP API's operations, and the events sent to subscriptions
/// (`webhooks`).
pub fn full_document() -> serde_json::Value {
    let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    super::event_docs::add_to(&mut document);
    document
}

/// This document.
#[utoipa::path(get, operation_id = "openapi_document", path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "the OpenAPI document", content_type = "application/json")))]
pub async fn document() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        serde_json::to_string_pretty(&full_document()).expect("the document serialises")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document.as_str())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).unwrap()
    }

    /// Every operation: (method, path, operation).
    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut all = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                all.push((method.clone(), path.clone(), operation.clone()));
            }
        }
        all
    }

    /// A schema, its `$ref` followed.
    fn resolved<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                &document["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    /// Whether a schema (or one of its `oneOf`, as `Option`s are written) says more than
    /// "a string": an enum, a format or a pattern.
    fn constrained(document: &Value, schema: &Value) -> bool {
        let schema = resolved(document, schema);
        if let Some(alternatives) = schema["oneOf"].as_array() {
            return alternatives
                .iter()
                .filter(|a| a["type"] != "null")
                .all(|a| constrained(document, a));
        }
        schema.get("enum").is_some()
            || schema.get("format").is_some()
            || schema.get("pattern").is_some()
    }

    #[test]
    fn every_event_type_is_a_documented_webhook() {
        let document = full_document();
        for event in crate::domain::events::EventType::ALL {
            let post = &document["webhooks"][event.as_str()]["post"];
            let schema = &post["requestBody"]["content"]["application/json"]["schema"];
            let name = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
            let body = &document["components"]["schemas"][name];
            assert_eq!(body["properties"]["type"]["const"], event.as_str());
            let headers: Vec<&str> = post["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(
                headers,
                ["webhook-id", "webhook-timestamp", "webhook-signature"]
            );
        }
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn operation_ids_are_unique() {
        let document = document();
        let mut seen = HashSet::new();
        for (method, path, operation) in operations(&document) {
            let id = operation["operationId"].as_str().unwrap().to_string();
            assert!(
                seen.insert(id.clone()),
                "{method} {path}: operationId {id} is used twice"
            );
        }
    }

    #[test]
    fn string_parameters_say_what_they_take() {
        // Free text: ids, codes, the OAuth round trip's values.
        let free = [
            "id",
            "code",
            "Idempotency-Key",
            "/console/callback state",
            "/console/callback error",
        ];
        let document = document();
        for (method, path, operation) in operations(&document) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let schema = &parameter["schema"];
                if free.contains(&name) || free.contains(&format!("{path} {name}").as_str()) {
                    continue;
                }
                assert!(
                    constrained(&document, schema) || schema["type"] == "integer",
                    "{method} {path}: parameter {name} is any string: {schema}"
                );
            }
        }
    }

    #[test]
    fn times_channels_and_states_are_described() {
        let document = document();
        let is_time = |name: &str| {
            name.ends_with("At")
                || ["at", "since", "waitingSince", "linksFrom", "linksUntil"].contains(&name)
        };
        let mut checked = 0;
        for (schema_name, schema) in document["components"]["schemas"].as_object().unwrap() {
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                if is_time(name) {
                    let format = &resolved(&document, property)["format"];
                    assert_eq!(format, "date-time", "{schema_name}.{name}");
                    checked += 1;
                } else if ["channel", "state", "kind"].contains(&name.as_str()) {
                    assert!(
                        constrained(&document, property),
                        "{schema_name}.{name}: {property}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 30, "{checked}");
        for (method, path, operation) in operations(&document) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                if is_time(name) || ["from", "to"].contains(&name) {
                    assert_eq!(
                        parameter["schema"]["format"], "date-time",
                        "{method} {path} {name}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_limits_icbridge_enforces_are_documented() {
        let document = document();
        let schemas = &document["components"]["schemas"];
        let flow = &schemas["FlowMessage"]["properties"];
        assert_eq!(flow["text"]["maxLength"], 4096);
        assert_eq!(flow["attachments"]["maxItems"], 10);
        let booking = &schemas["AppointmentRequest"]["properties"];
        assert_eq!(booking["durationMinutes"]["minimum"], 1);
        assert_eq!(booking["durationMinutes"]["maximum"], 480);
        for (field, length) in [("to", 64), ("name", 100), ("desk", 100), ("note", 1000)] {
            assert_eq!(booking[field]["maxLength"], length, "{field}");
        }
        for (method, path, operation) in operations(&document) {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["name"] == "limit" {
                    let schema = &parameter["schema"];
                    assert_eq!(
                        (&schema["minimum"], &schema["maximum"]),
                        (&1.into(), &1000.into()),
                        "{method} {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn refusals_of_parameters_bodies_and_the_admin_api_are_documented() {
        let document = document();
        for (method, path, operation) in operations(&document) {
            let answers = |status: &str| operation["responses"].get(status).is_some();
            let parameters: Vec<&Value> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            let parsed = parameters.iter().any(|p| {
                let query = p["in"] == "query";
                let text = p["schema"]["type"] == "string";
                (query && (!text || constrained(&document, &p["schema"])))
                    || p["schema"]["type"] == "integer"
            });
            if parsed {
                assert!(
                    answers("422"),
                    "{method} {path}: a parameter can be refused"
                );
            }
            if operation.get("requestBody").is_some() {
                assert!(answers("413"), "{method} {path}: a body can be too large");
                // The webhooks take any content type and say themselves what is wrong.
                if !path.starts_with("/webhooks/") {
                    for status in ["415", "422"] {
                        assert!(answers(status), "{method} {path}: {status} for the body");
                    }
                }
            }
            if path.starts_with("/api/") {
                for status in ["401", "404", "500", "503"] {
                    assert!(answers(status), "{method} {path}: {status}");
                }
            }
        }
        let audit = &document["paths"]["/api/audit"]["get"]["parameters"];
        let names: Vec<&str> = audit
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["limit"], "/api/audit takes only a limit");
    }
}
