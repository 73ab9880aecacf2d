//! The sandbox's clock: moved ahead on request, to see what happens a day or two later.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::bridge::Bridge;
use crate::domain::clock::rfc3339;
use crate::routes::json_error;

#[derive(serde::Deserialize)]
pub(super) struct MoveClock {
    /// `48h`, `2days`, ...
    advance: Option<String>,
    /// A desk's name: to the time it next opens.
    until_opening: Option<String>,
}

/// Moves the sandbox's clock ahead, to see what happens a day or two later (WhatsApp's
/// 24-hour window, expired links) or when a desk opens; the conversations that waited for
/// an opening desk are handed over at once.
pub(super) async fn move_clock(
    bridge: web::Data<Bridge>,
    body: web::Json<MoveClock>,
) -> HttpResponse {
    let clock = bridge.clock();
    let now = clock.now_ms();
    let by = match (&body.advance, &body.until_opening) {
        (Some(advance), None) => match humantime::parse_duration(advance) {
            Ok(by) => by,
            Err(_) => {
                return json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_duration",
                    "`advance` must be a duration such as `48h` or `2days`",
                )
            }
        },
        (None, Some(name)) => {
            let Some(desk) = bridge.desks().find(name) else {
                return json_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown_desk",
                    "`until_opening` must name a configured desk",
                );
            };
            match desk.out_of_hours(now).and_then(|closed| closed.opens_at) {
                Some(opens_at) => Duration::from_millis((opens_at - now).max(0) as u64),
                None => Duration::ZERO,
            }
        }
        _ => {
            return json_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "give `advance` (a duration such as `48h`) or `until_opening` (a desk's name)",
            )
        }
    };
    if !clock.is_movable() {
        return json_error(
            StatusCode::CONFLICT,
            "clock_fixed",
            "this clock cannot be moved",
        );
    }
    clock.advance(by);
    let handed_over = match bridge.release_waiting().await {
        Ok(count) => count,
        Err(error) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "store", error),
    };
    HttpResponse::Ok().json(json!({"now": rfc3339(clock.now_ms()), "handedOver": handed_over}))
}
