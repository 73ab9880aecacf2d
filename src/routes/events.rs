//! `GET /api/events`: the stored events for the systems of record, as a subscription gets
//! them, for a receiver that missed some or starts anew (admin API).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::admin::{Admin, AdminError};
use super::params::Limit;
use super::responses::{AdminRefusals, QueryRefusal};
use crate::bridge::{Bridge, EventsRequest};
use crate::domain::clock;
use crate::domain::events::{webhook_id, EventType};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/events").route(super::get().to(list_events)));
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Only events that occurred at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only events of these types, comma-separated (`conversation.closed,rating.received`).
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$")]
    types: Option<String>,
    /// Only events after this one: the previous page's `next` (`evt_42`, or `42`).
    #[param(pattern = "^(evt_)?[0-9]+$")]
    after: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// Rendered as this subscription receives them (its `include`); default: no texts,
    /// media or links, and masked numbers.
    #[param(pattern = "^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
    subscription: Option<String>,
}

/// A page of stored events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Oldest first, each as a subscription's receiver gets its body (`type`, `timestamp`,
    /// `data`) with its `id` (the `webhook-id`).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl EventsQuery {
    fn request(&self) -> Result<EventsRequest, AdminError> {
        let invalid = |name: &str, must: &str, value: &str| {
            AdminError::Invalid(format!(
                "query parameter `{name}` must be {must}, not {value:?}"
            ))
        };
        let since = match &self.since {
            Some(since) => clock::parse_rfc3339(since)
                .ok_or_else(|| invalid("since", "an RFC 3339 time", since))?,
            None => 0,
        };
        let types = match &self.types {
            Some(types) => types
                .split(',')
                .map(|name| {
                    EventType::parse(name.trim())
                        .ok_or_else(|| invalid("type", "a list of event types", name))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let after = match &self.after {
            Some(after) => after
                .strip_prefix("evt_")
                .unwrap_or(after)
                .parse::<i64>()
                .map_err(|_| invalid("after", "an event id (evt_42)", after))?,
            None => 0,
        };
        Ok(EventsRequest {
            since,
            after,
            types,
            limit: Limit::or_default(self.limit),
            subscription: self.subscription.clone(),
        })
    }
}

/// The stored events for the systems of record, oldest first, a page at a time: what a
/// subscription was (or would be) sent, for a receiver that missed some or starts anew.
#[utoipa::path(get, path = "/api/events", tag = "admin", params(EventsQuery),
    security(("adminToken" = [])),
    responses((status = 200, body = EventList), QueryRefusal,
              AdminRefusals))]
pub async fn list_events(
    _: Admin,
    query: web::Query<EventsQuery>,
    bridge: web::Data<Bridge>,
) -> Result<HttpResponse, AdminError> {
    let page = bridge.events(query.request()?).await?;
    Ok(HttpResponse::Ok().json(EventList {
        events: page.events,
        next: page.next.map(webhook_id),
    }))
}
