//! The database `serve` runs on, and what it keeps for the whole deployment.

use secrecy::SecretString;

use super::StartupError;
use crate::app::settings::Settings;
use crate::delivery::media_links::MediaLinks;
use crate::store::Store;

/// The configured database, migrated to the current schema.
pub(super) async fn open(settings: &Settings) -> Result<Store, StartupError> {
    let store = Store::connect(&settings.data.database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// `icbridge migrate`: creates or upgrades the configured database's schema.
pub async fn migrate(settings: &Settings) -> Result<(), StartupError> {
    open(settings).await?.close().await;
    Ok(())
}

/// Signed links to experts' files under `ICB_PUBLIC_URL`, when it is set. The signing
/// secret is the deployment's: the first instance to start chooses it, the others read it.
pub(super) async fn media_links(
    settings: &Settings,
    store: &Store,
) -> Result<Option<MediaLinks>, StartupError> {
    let Some(public_url) = &settings.http.public_url else {
        return Ok(None);
    };
    let candidate = hex::encode(rand::random::<[u8; 32]>());
    let secret = store.server_secret("media_links", &candidate).await?;
    Ok(Some(MediaLinks::new(
        SecretString::from(secret),
        public_url.clone(),
        settings.media.link_ttl,
    )))
}

/// Writes the configured event subscriptions to the database (where events are matched
/// to them when recorded), and says at start-up where events go and what personal data
/// leaves icbridge with them.
pub(super) async fn event_subscriptions(
    settings: &Settings,
    store: &Store,
) -> Result<(), StartupError> {
    let subscriptions = &settings.events.subscriptions;
    let disabled = store.sync_event_subscriptions(subscriptions).await?;
    for subscription in subscriptions {
        let events: Vec<&str> = subscription.events.iter().map(|p| p.as_str()).collect();
        tracing::info!(subscription = %subscription.name, url = %subscription.url,
            events = %if events.is_empty() { "*".to_string() } else { events.join(",") },
            "events are sent to this subscription");
        let personal = subscription.include.personal_data();
        if !personal.is_empty() {
            tracing::warn!(subscription = %subscription.name, include = %personal.join(","),
                "this subscription is sent personal data");
        }
        if disabled.contains(&subscription.name) {
            tracing::warn!(subscription = %subscription.name,
                "this subscription is disabled (its receiver answered 410 Gone): \
                 `icbridge events enable NAME` enables it again");
        }
    }
    Ok(())
}
