//! Building and running the service, in steps: check the settings and bind ([`checks`],
//! [`server`]), open the database ([`store`]), make the upstreams' clients ([`clients`]),
//! the bridge ([`bridge`]), the background workers ([`workers`]), then the HTTP server
//! ([`server`]). [`Application::run_until_stopped`] serves and shuts down in order.

mod bridge;
mod checks;
mod clients;
mod server;
mod store;
mod workers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use tokio::sync::{watch, Notify};
use url::Url;

pub use bridge::{connect_bridge, open_bridge};
pub use store::migrate;

use crate::app::layer::Layer;
use crate::app::loops;
use crate::app::settings::Settings;
use crate::bridge::Bridge;
use crate::delivery::media_links::MediaFiles;
use crate::delivery::pauses::Pauses;
use crate::delivery::OutboxWorker;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::experts::Desk;
use crate::store::{Store, StoreError};
use crate::upstream::webex::ResolveError;
use bridge::{bridge, BridgeRuntime};
use clients::Clients;
use server::Routes;

/// Timeout for Webex and Webex Connect calls made by the outbox worker.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish on SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("ICB_LISTEN: cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("expert notifications: {0}")]
    Experts(#[from] ResolveError),
}

/// What the bridge, the workers and the HTTP handlers share.
struct Shared {
    store: Store,
    bridge: Bridge,
    metrics: Metrics,
    clock: Clock,
    /// Upstreams that asked to wait or refused the credential.
    pauses: Pauses,
}

#[derive(Default)]
pub struct ServeOptions {
    /// Served beside icbridge's routes, with the settings it adjusts (the `serve` command
    /// adds stand-ins of every upstream this way, on request).
    pub layer: Option<Box<dyn Layer>>,
    /// Run the outbox worker in the background (tests drive it step by step instead).
    pub background_worker: bool,
    /// The time leases, retries and expiries are decided by (tests move a manual one).
    pub clock: Clock,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("layer", &self.layer.is_some())
            .field("background_worker", &self.background_worker)
            .field("clock", &self.clock)
            .finish()
    }
}

pub struct Application {
    address: SocketAddr,
    server: Server,
    worker: OutboxWorker,
    outbox_wake: Arc<Notify>,
    desk: Desk,
    bridge: Bridge,
    /// Closed last, once nothing uses it.
    store: Store,
    retention: Duration,
    background_worker: bool,
    layer: Option<Arc<dyn Layer>>,
}

impl Application {
    /// Builds the service in the order its parts need each other: the settings checked,
    /// the socket bound, the database, the upstreams' clients, the bridge, the background
    /// workers, then the HTTP server (already accepting; `run_until_stopped` serves).
    pub async fn build(
        mut settings: Settings,
        options: ServeOptions,
    ) -> Result<Self, StartupError> {
        let mut layer = options.layer;
        // A layer brings the upstreams and credentials that production settings must name.
        if layer.is_none() {
            checks::serve_settings(&settings)?;
        }
        let (listener, address) = server::bind(&settings)?;
        if let Some(layer) = layer.as_mut() {
            layer.prepare(&mut settings, address);
        }

        let metrics = Metrics::new();
        let clock = options.clock;
        let store = store::open(&settings).await?;
        store::event_subscriptions(&settings, &store).await?;
        let clients = Clients::build(&settings, &metrics).await?;
        let outbox_wake = Arc::new(Notify::new());
        let pauses = Pauses::new(store.clone(), clock.clone());
        pauses.refresh().await?;
        let runtime = BridgeRuntime {
            metrics: metrics.clone(),
            clock: clock.clone(),
            outbox_wake: outbox_wake.clone(),
            pauses: pauses.clone(),
        };
        let bridge = bridge(&settings, store.clone(), runtime)?;
        let shared = Shared {
            store,
            bridge,
            metrics,
            clock,
            pauses,
        };

        let desk = workers::desk(&settings, &shared, &clients);
        let media_links = store::media_links(&settings, &shared.store).await?;
        let media_files = media_links.clone().map(|links| MediaFiles {
            links,
            webex: clients.webex.clone(),
            clock: shared.clock.clone(),
        });
        let experts = clients.experts.clone();
        let worker = workers::outbox(&settings, &shared, clients, media_links);

        let layer: Option<Arc<dyn Layer>> = layer.map(Arc::from);
        let routes = Routes::new(
            &settings,
            &shared,
            &desk,
            media_files,
            &experts,
            layer.clone(),
        )?;
        let server = routes.serve(listener, address)?;
        tracing::info!(address = %address, "listening on http://{address}");
        Ok(Self {
            address,
            server,
            worker,
            outbox_wake,
            desk,
            bridge: shared.bridge,
            store: shared.store,
            retention: settings.data.retention,
            background_worker: options.background_worker,
            layer,
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The worker that delivers the outbox; tests drive it with `run_once`.
    pub fn outbox_worker(&self) -> OutboxWorker {
        self.worker.clone()
    }

    /// The desk that handles Webex events; tests drive it with `run_once`.
    pub fn desk(&self) -> Desk {
        self.desk.clone()
    }

    /// The bridge; tests hand waiting conversations to opening desks with it.
    pub fn bridge(&self) -> Bridge {
        self.bridge.clone()
    }

    /// What the layer added by `serve` (if any) has to say once the service is up.
    pub fn banner(&self) -> Option<String> {
        self.layer.as_ref()?.banner(self.address)
    }

    /// Serves until SIGTERM/SIGINT (or the server is stopped), then lets the worker finish
    /// its current send, and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let store = self.store;
        let (stop, stopped) = watch::channel(false);
        let workers = self.background_worker.then(|| {
            (
                tokio::spawn(self.worker.run(self.outbox_wake, stopped.clone())),
                tokio::spawn(self.desk.run(stopped.clone())),
                tokio::spawn(loops::openings(self.bridge.clone(), stopped.clone())),
                tokio::spawn(loops::retention(self.bridge, self.retention, stopped)),
            )
        });
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let finished = tokio::select! {
            result = &mut server => Some(result),
            () = shutdown_signal() => None,
        };
        // The background workers stop first: they finish what they are sending and record
        // it while the HTTP workers, and the database connections opened on their threads,
        // are still up. Then the server stops, finishing the requests in progress.
        let _ = stop.send(true);
        if let Some((outbox, desk, openings, retention)) = workers {
            let _ = tokio::join!(outbox, desk, openings, retention);
            tracing::info!("background workers stopped");
        }
        let result = match finished {
            Some(result) => result,
            None => {
                handle.stop(true).await;
                server.await
            }
        };
        tracing::info!("HTTP server stopped");
        // On SQLite the log is copied into the database file, which is left whole: a
        // busy desk's log may have grown to hundreds of megabytes beside it.
        store.close().await;
        result.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Where Webex delivers the experts' events: `/webhooks/webex` under the public URL.
pub fn webex_webhook_url(public_url: &Url) -> String {
    format!(
        "{}/webhooks/webex",
        public_url.as_str().trim_end_matches('/')
    )
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping: finishing deliveries in progress, then requests");
}
