//! The upstreams' clients `serve` delivers with, and where each desk's experts are.

use std::collections::HashMap;

use super::{StartupError, DELIVERY_TIMEOUT};
use crate::app::settings::Settings;
use crate::desks::{DeskPlaces, Desks};
use crate::domain::metrics::Metrics;
use crate::domain::{Destination, ExpertTarget};
use crate::upstream;
use crate::upstream::connect::ConnectClient;
use crate::upstream::media::MediaClient;
use crate::upstream::webex::WebexClient;

/// The clients of Webex, Webex Connect and customers' media hosts, and the desks' places.
pub(super) struct Clients {
    pub webex: WebexClient,
    /// `None` unless Webex Connect's API hosts and service key are set.
    pub connect: Option<ConnectClient>,
    pub media: MediaClient,
    /// Where each desk's notifications go, as Webex resolved it.
    pub places: DeskPlaces,
    /// The default desk's place: the console's space.
    pub experts: Destination,
}

impl Clients {
    /// Builds the clients and asks Webex where each desk's experts are.
    pub async fn build(settings: &Settings, metrics: &Metrics) -> Result<Self, StartupError> {
        let token = settings
            .webex
            .token
            .clone()
            .ok_or_else(|| StartupError::Config("set ICB_WEBEX_TOKEN".into()))?;
        let webex = WebexClient::new(
            upstream::HttpClient::new(DELIVERY_TIMEOUT).with_metrics(metrics.clone()),
            settings.webex.api_url.clone(),
            token,
        );
        let connect = match (settings.connect.urls(), &settings.connect.service_key) {
            (Some(urls), Some(key)) => Some(ConnectClient::new(
                upstream::HttpClient::new(DELIVERY_TIMEOUT).with_metrics(metrics.clone()),
                urls,
                key.clone(),
            )),
            _ => None,
        };
        let places = desk_places(settings, &webex).await?;
        // The default desk's place: the console's space.
        let experts = places.of(None).clone();
        let media = media_client(settings, metrics, connect.as_ref())?;
        Ok(Self {
            webex,
            connect,
            media,
            places,
            experts,
        })
    }
}

/// Each desk's place (a room or a person), resolved by Webex.
async fn desk_places(settings: &Settings, webex: &WebexClient) -> Result<DeskPlaces, StartupError> {
    let desks = Desks::configure(&settings.desks, settings.expert_target.as_ref())
        .map_err(|e| StartupError::Config(e.to_string()))?;
    let mut places = HashMap::new();
    for desk in desks.all() {
        let place = webex.resolve(&desk.target).await.map_err(|error| {
            let key = match desk.target {
                ExpertTarget::RoomId(_) => "room_id",
                ExpertTarget::RoomTitle(_) => "room_title",
                ExpertTarget::Email(_) => "email",
            };
            StartupError::Config(format!("desk {:?}: `{key}`: {error}", desk.name))
        })?;
        tracing::info!(desk = %desk.name, experts = ?place, "a desk's notifications go here");
        places.insert(desk.name.clone(), place);
    }
    Ok(DeskPlaces::new(places, desks.default_desk().name.clone()))
}

/// The client that downloads customers' files, trusting `ICB_MEDIA_CA_FILE` too.
fn media_client(
    settings: &Settings,
    metrics: &Metrics,
    connect: Option<&ConnectClient>,
) -> Result<MediaClient, StartupError> {
    let media_roots = match &settings.media.ca_file {
        None => Vec::new(),
        Some(path) => std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string()))
            .map_err(|e| {
                StartupError::Config(format!("ICB_MEDIA_CA_FILE {}: {e}", path.display()))
            })?,
    };
    Ok(MediaClient::new(
        upstream::HttpClient::for_links(
            DELIVERY_TIMEOUT,
            &media_roots,
            settings.media.private_addresses,
        )
        .with_metrics(metrics.clone()),
        settings.media.max_bytes,
        settings.media.private_addresses,
        connect.map(ConnectClient::media_credential),
    ))
}
