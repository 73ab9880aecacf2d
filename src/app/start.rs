//! Building and running the service: bind, check the configuration, open the database,
//! wire the clients, start the HTTP server and the outbox worker.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use secrecy::SecretString;
use tokio::sync::{watch, Notify};
use url::Url;

use crate::app::sandbox;
use crate::app::settings::{FollowupReply, LongReplies, ReplyMode, Settings};
use crate::app::workers;
use crate::bridge::{Bridge, BridgeParts, CustomerReplies, MeetingPolicy};
use crate::delivery::media_links::{MediaFiles, MediaLinks};
use crate::delivery::pauses::Pauses;
use crate::delivery::{OutboxParts, OutboxWorker};
use crate::desks::{DeskPlaces, Desks};
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::ExpertTarget;
use crate::domain::{Destination, ReplySenders, WhatsappTemplate};
use crate::experts::console::{Console, ConsoleSettings};
use crate::experts::{Desk, DeskParts, WebhookSettings};
use crate::routes::admin::AdminToken;
use crate::routes::inbound::{ConnectAuth, WebexAuth};
use crate::routes::{self, connect_webhook, health, openapi, webex_webhook};
use crate::store::{Store, StoreError};
use crate::upstream::connect::ConnectClient;
use crate::upstream::instant_connect::InstantConnectClient;
use crate::upstream::media::MediaClient;
use crate::upstream::webex::{ResolveError, WebexClient};
use crate::upstream::webex_oauth::WebexOAuthClient;
use crate::upstream::{self};

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

#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Serve stand-ins of every upstream and point the clients at them.
    pub sandbox: bool,
    /// Run the outbox worker in the background (tests drive it step by step instead).
    pub background_worker: bool,
    /// The time leases, retries and expiries are decided by (tests move a manual one).
    pub clock: Clock,
}

pub struct Application {
    address: SocketAddr,
    server: Server,
    worker: OutboxWorker,
    outbox_wake: Arc<Notify>,
    desk: Desk,
    bridge: Bridge,
    retention: Duration,
    background_worker: bool,
    sandbox: bool,
    webhook_token_hint: Option<String>,
    /// The sandbox set the admin API's token (none was configured).
    admin_token_hint: bool,
}

impl Application {
    pub async fn build(
        mut settings: Settings,
        options: ServeOptions,
    ) -> Result<Self, StartupError> {
        if !options.sandbox {
            check_serve_settings(&settings)?;
        }
        let listener = listen(&settings.listen, settings.listen_backlog).map_err(|source| {
            StartupError::Bind {
                address: settings.listen.clone(),
                source,
            }
        })?;
        let address = listener.local_addr().map_err(|source| StartupError::Bind {
            address: settings.listen.clone(),
            source,
        })?;

        let admin_token_hint = options.sandbox && settings.admin_token.is_none();
        let webhook_token_hint = if options.sandbox {
            use_sandbox_upstreams(&mut settings, address)
        } else {
            None
        };

        let metrics = Metrics::new();
        let clock = options.clock.clone();
        let store = Store::connect(&settings.database_url).await?;
        store.migrate().await?;

        let token = settings
            .webex_token
            .clone()
            .ok_or_else(|| StartupError::Config("set ICB_WEBEX_TOKEN".into()))?;
        let webex = WebexClient::new(
            upstream::HttpClient::new(DELIVERY_TIMEOUT).with_metrics(metrics.clone()),
            settings.webex_api_url.clone(),
            token.clone(),
        );
        let connect = match (settings.connect_urls(), &settings.connect_service_key) {
            (Some(urls), Some(key)) => Some(ConnectClient::new(
                upstream::HttpClient::new(DELIVERY_TIMEOUT).with_metrics(metrics.clone()),
                urls,
                key.clone(),
            )),
            _ => None,
        };
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
        let places = DeskPlaces::new(places, desks.default_desk().name.clone());
        // The default desk's place: the console's space.
        let experts = places.of(None).clone();

        let outbox_wake = Arc::new(Notify::new());
        let pauses = Pauses::new(store.clone(), clock.clone());
        pauses.refresh().await?;
        let bridge = bridge(
            &settings,
            store.clone(),
            BridgeRuntime {
                metrics: metrics.clone(),
                clock: clock.clone(),
                outbox_wake: outbox_wake.clone(),
                sandbox: options.sandbox,
                pauses: pauses.clone(),
            },
        )?;
        let desk_wake = Arc::new(Notify::new());
        let desk = Desk::new(DeskParts {
            bridge: bridge.clone(),
            webex: webex.clone(),
            events: store.clone(),
            places: places.clone(),
            schedule: settings.retry_schedule.clone(),
            clock: clock.clone(),
            wake: desk_wake,
            pauses: pauses.clone(),
            files_relayable: settings.public_url.is_some(),
            metrics: metrics.clone(),
            webhooks: settings
                .webex_webhook_secret
                .clone()
                .map(|secret| WebhookSettings {
                    target_url: settings.public_url.as_ref().map(webex_webhook_url),
                    secret,
                }),
            catch_up_every: settings.webex_catch_up_every,
            webhook_check_every: settings.webex_webhook_check_every,
        });
        let media_roots = match &settings.media_ca_file {
            None => Vec::new(),
            Some(path) => std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())
                })
                .map_err(|e| {
                    StartupError::Config(format!("ICB_MEDIA_CA_FILE {}: {e}", path.display()))
                })?,
        };
        let media = MediaClient::new(
            upstream::HttpClient::for_links(
                DELIVERY_TIMEOUT,
                &media_roots,
                settings.media_private_addresses,
            )
            .with_metrics(metrics.clone()),
            settings.media_max_bytes,
            settings.media_private_addresses,
            connect.as_ref().map(ConnectClient::media_credential),
        );
        let media_links = match &settings.public_url {
            None => None,
            Some(public_url) => {
                let candidate = hex::encode(rand::random::<[u8; 32]>());
                let secret = store.server_secret("media_links", &candidate).await?;
                Some(MediaLinks::new(
                    SecretString::from(secret),
                    public_url.clone(),
                    settings.media_link_ttl,
                ))
            }
        };
        let media_files = web::Data::new(media_links.clone().map(|links| MediaFiles {
            links,
            webex: webex.clone(),
            clock: clock.clone(),
        }));
        let worker = OutboxWorker::new(OutboxParts {
            media_links: media_links.clone(),
            store: store.clone(),
            webex,
            connect,
            media,
            whatsapp_template: settings.whatsapp_template.clone(),
            places: places.clone(),
            schedule: settings.retry_schedule.clone(),
            lease: settings.outbox_lease,
            metrics: metrics.clone(),
            clock: clock.clone(),
            pauses,
        });
        let auth = ConnectAuth::new(
            settings.connect_webhook_secret.clone(),
            settings.connect_webhook_token.clone(),
        );
        if settings.webex_webhook_secret.is_none() {
            tracing::warn!(
                "/webhooks/webex refuses every request: set ICB_WEBEX_WEBHOOK_SECRET (and run \
                 `icbridge webex register`) to let experts answer customers from Webex"
            );
        }
        let console =
            build_console(&settings, &store, &experts, &metrics, &clock)?.map(web::Data::new);
        let webex_auth = web::Data::new(WebexAuth::new(settings.webex_webhook_secret.clone()));
        let desk_data = web::Data::new(desk.clone());
        let metrics_data = web::Data::new(metrics);
        let admin_token = web::Data::new(AdminToken {
            token: settings.admin_token.clone(),
            name: settings.admin_name.clone(),
        });

        let sandbox = options.sandbox;
        let sandbox_state = web::Data::new(sandbox::SandboxState::new(
            &settings.webex_api_url,
            &settings
                .public_url
                .as_ref()
                .map(webex_webhook_url)
                .unwrap_or_default(),
            settings
                .webex_webhook_secret
                .as_ref()
                .map(secrecy::ExposeSecret::expose_secret)
                .unwrap_or_default(),
        ));
        let bridge_data = web::Data::new(bridge.clone());
        let unknown_codes = web::Data::new(routes::links::UnknownCodes::default());
        let trusted_proxies = web::Data::new(settings.trusted_proxies.clone());
        let auth = web::Data::new(auth);
        let server = HttpServer::new(move || {
            let app = App::new()
                .wrap(actix_web::middleware::from_fn(
                    routes::json_method_not_allowed,
                ))
                .wrap(actix_web::middleware::from_fn(
                    routes::request_log::request_log,
                ))
                .app_data(bridge_data.clone())
                .app_data(auth.clone())
                .app_data(webex_auth.clone())
                .app_data(desk_data.clone())
                .app_data(metrics_data.clone())
                .app_data(admin_token.clone())
                .configure(routes::extractor_errors)
                .configure(routes::admin::configure)
                .configure(routes::appointments::configure)
                .service(web::resource("/openapi.json").route(routes::get().to(openapi::document)))
                .service(web::resource("/healthz").route(routes::get().to(health::healthz)))
                .app_data(unknown_codes.clone())
                .app_data(trusted_proxies.clone())
                .service(web::resource("/j/{code}").route(routes::get().to(routes::links::visit)))
                .app_data(media_files.clone())
                .configure(routes::media::configure)
                .service(web::resource("/metrics").route(routes::get().to(health::metrics)))
                .service(web::resource("/readyz").route(routes::get().to(health::readyz)))
                .service(
                    web::resource("/webhooks/connect")
                        .route(web::post().to(connect_webhook::receive))
                        .route(web::head().to(connect_webhook::head)),
                )
                .service(
                    web::resource("/webhooks/webex").route(web::post().to(webex_webhook::receive)),
                )
                .configure(|cfg| match &console {
                    Some(console) => {
                        cfg.app_data(console.clone())
                            .configure(routes::console::configure);
                    }
                    None => {
                        cfg.service(
                            web::resource("/console")
                                .route(routes::get().to(routes::console::not_configured)),
                        )
                        .route(
                            "/console/{rest:.*}",
                            web::to(routes::console::not_configured),
                        );
                    }
                })
                .default_service(web::to(routes::not_found));
            if sandbox {
                let state = sandbox_state.clone();
                app.configure(|cfg| sandbox::configure(cfg, state))
            } else {
                app
            }
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        // Signals are handled in `run_until_stopped`, which decides the order of shutdown.
        .disable_signals()
        .run();

        tracing::info!(address = %address, sandbox, "listening on http://{address}");
        Ok(Self {
            address,
            server,
            worker,
            outbox_wake,
            desk,
            bridge,
            retention: settings.retention,
            background_worker: options.background_worker,
            sandbox,
            webhook_token_hint,
            admin_token_hint,
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

    /// What to print at start-up in sandbox mode: a curl that posts a sample message.
    pub fn sandbox_banner(&self) -> Option<String> {
        if !self.sandbox {
            return None;
        }
        let base = format!("http://{}", client_address(self.address));
        let auth = match &self.webhook_token_hint {
            Some(token) => format!("-H 'Authorization: Bearer {token}' "),
            None => "-H \"Authorization: Bearer $ICB_CONNECT_WEBHOOK_TOKEN\" ".into(),
        };
        let admin = if self.admin_token_hint {
            format!(
                "The admin API (booked consultations: POST {base}/api/appointments) takes\n\
                 -H 'Authorization: Bearer {}'.\n",
                crate::app::sandbox::SANDBOX_ADMIN_TOKEN
            )
        } else {
            String::new()
        };
        Some(format!(
            "icbridge sandbox: the Instant Connect broker, Webex and Webex Connect are local stand-ins.\n\
             Post a sample WhatsApp message:\n\n  \
             curl -s {base}/webhooks/connect {auth}-H 'Content-Type: application/json' \\\n    \
             -d '{{\"channel\":\"whatsapp\",\"from\":\"14155550142\",\"to\":\"a_155054536910425280\",\"text\":\"Hello, can I get a video call with an advisor?\",\"name\":\"Alice Example\"}}'\n\n\
             Then see what icbridge sent (expert notification, customer reply):\n\n  \
             curl -s {base}/sandbox/messages\n\n\
             Photos, experts' files (POST {base}/sandbox/expert-reply) and WhatsApp's 24-hour window\n\
             (POST {base}/sandbox/clock): see the README.\n{admin}"
        ))
    }

    /// Serves until SIGTERM/SIGINT (or the server is stopped), then lets the worker finish
    /// its current send.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let workers = self.background_worker.then(|| {
            (
                tokio::spawn(self.worker.run(self.outbox_wake, stopped.clone())),
                tokio::spawn(self.desk.run(stopped.clone())),
                tokio::spawn(workers::openings(self.bridge.clone(), stopped.clone())),
                tokio::spawn(workers::retention(self.bridge, self.retention, stopped)),
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

/// The expert console, when its three settings are there.
fn build_console(
    settings: &Settings,
    store: &Store,
    experts: &Destination,
    metrics: &Metrics,
    clock: &Clock,
) -> Result<Option<Console>, StartupError> {
    let (public_url, client_id, client_secret) = match (
        &settings.public_url,
        &settings.oauth_client_id,
        &settings.oauth_client_secret,
    ) {
        (Some(url), Some(id), Some(secret)) => (url, id, secret),
        // ICB_PUBLIC_URL alone serves experts' files, without a console.
        (_, None, None) => return Ok(None),
        _ => {
            return Err(StartupError::Config(
                "the expert console needs all of ICB_PUBLIC_URL, ICB_OAUTH_CLIENT_ID and ICB_OAUTH_CLIENT_SECRET"
                    .into(),
            ))
        }
    };
    let oauth = WebexOAuthClient::new(
        upstream::HttpClient::new(DELIVERY_TIMEOUT).with_metrics(metrics.clone()),
        settings.webex_api_url.clone(),
        client_id.clone(),
        client_secret.clone(),
    );
    Ok(Some(Console::new(
        store.clone(),
        oauth,
        ConsoleSettings {
            public_url: public_url.clone(),
            webex_api_url: settings.webex_api_url.clone(),
            allowed: settings.console_allowed.clone(),
            widget_base_url: settings.widget_base_url.clone(),
        },
        experts.clone(),
        clock.clone(),
    )))
}

/// What a bridge runs with besides the settings.
pub struct BridgeRuntime {
    pub metrics: Metrics,
    pub clock: Clock,
    /// Woken when deliveries are queued.
    pub outbox_wake: Arc<Notify>,
    pub sandbox: bool,
    /// Upstreams that asked to wait or refused the credential, shared with the workers.
    pub pauses: Pauses,
}

/// The bridge as the settings describe it, for `serve` and for the CLI's verbs. It makes
/// no upstream call until asked to.
pub fn bridge(
    settings: &Settings,
    store: Store,
    runtime: BridgeRuntime,
) -> Result<Bridge, StartupError> {
    // `serve` refuses to start without a token; the CLI's verbs never call the broker.
    let token = settings
        .webex_token
        .clone()
        .unwrap_or_else(|| SecretString::from(""));
    let broker = InstantConnectClient::new(
        upstream::HttpClient::new(settings.ic_timeout).with_metrics(runtime.metrics.clone()),
        settings.ic_base_url.clone(),
        settings.ic_join_url.clone(),
        token,
    );
    let connect_configured =
        settings.connect_urls().is_some() && settings.connect_service_key.is_some();
    let customer_replies = connect_configured.then(|| CustomerReplies {
        senders: ReplySenders {
            sms_sender: settings.sms_sender.clone(),
            whatsapp_app_id: settings.whatsapp_app_id.clone(),
        },
        send_links: settings.reply_mode(runtime.sandbox) == ReplyMode::Connect,
        resend_link_on_followup: settings.followup_reply == FollowupReply::Link,
        whatsapp_template: settings.whatsapp_template.clone(),
        survey: settings.survey,
        refuse_long_replies: settings.long_replies == LongReplies::Refuse,
    });
    let desks = Desks::for_cli(&settings.desks, settings.expert_target.as_ref());
    Ok(Bridge::new(BridgeParts {
        reply_texts: desks.reply_texts(settings.reply_template.clone()),
        desks,
        store,
        broker,
        policy: MeetingPolicy {
            ttl: settings.link_ttl,
            vertical: settings.vertical,
            short_urls: settings.short_urls,
            host_login: settings.host_login,
            hosts: settings.meeting_hosts,
            guests: settings.meeting_guests,
            appointment_reminder: settings.appointment_reminder,
            appointment_early_join: settings.appointment_early_join,
            broker_timeout: settings.ic_timeout,
            max_new_meetings_per_hour: settings.max_new_meetings_per_hour,
        },
        customer_replies,
        outbox_wake: runtime.outbox_wake,
        metrics: runtime.metrics,
        clock: runtime.clock,
        pauses: runtime.pauses,
        link_base: settings.public_url.clone(),
    }))
}

const NO_EXPERTS: &str =
    "set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE: where experts are notified";

/// Refuses to serve with a configuration that cannot work, naming what to set.
fn check_serve_settings(settings: &Settings) -> Result<(), StartupError> {
    let mut missing = Vec::new();
    if settings.webex_token.is_none() {
        missing.push(
            "set ICB_WEBEX_TOKEN: the Webex bot token, for Instant Connect and the Webex API"
                .to_string(),
        );
    }
    if settings.connect_webhook_secret.is_none() && settings.connect_webhook_token.is_none() {
        missing.push(
            "set ICB_CONNECT_WEBHOOK_SECRET (Outbound Webhooks, X-Hub-Signature) or \
             ICB_CONNECT_WEBHOOK_TOKEN (a flow's HTTP Request node, Authorization: Bearer): \
             /webhooks/connect refuses every request without one"
                .to_string(),
        );
    }
    if settings.expert_target.is_none() && settings.desks.is_empty() {
        missing.push(NO_EXPERTS.to_string());
    }
    if settings.reply_mode(false) == ReplyMode::Connect {
        if settings.connect_urls().is_none() {
            missing.push(
                "ICB_REPLY_MODE=connect needs ICB_CONNECT_API_URL (or both ICB_CONNECT_SMS_URL \
                 and ICB_CONNECT_WHATSAPP_URL)"
                    .to_string(),
            );
        }
        if settings.connect_service_key.is_none() {
            missing.push("ICB_REPLY_MODE=connect needs ICB_CONNECT_SERVICE_KEY".to_string());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StartupError::Config(missing.join("; ")))
    }
}

/// Points every upstream at the stand-ins this process serves, with stand-in credentials.
/// Returns the webhook bearer token to show in the sample curl, if the sandbox chose it.
fn use_sandbox_upstreams(settings: &mut Settings, address: SocketAddr) -> Option<String> {
    let base = format!("http://{}/sandbox", client_address(address));
    let url = |path: &str| Url::parse(&format!("{base}{path}")).expect("a valid local URL");
    let upstream_token = || Some(SecretString::from(sandbox::SANDBOX_UPSTREAM_TOKEN));
    settings.ic_base_url = url("/ic");
    settings.ic_join_url = url("");
    settings.webex_api_url = url("/webex/v1");
    // Webex Connect's two hosts, as in production: SMS and WhatsApp apart.
    settings.connect_api_url = None;
    settings.connect_sms_url = Some(url("/connect-sms"));
    settings.connect_whatsapp_url = Some(url("/connect"));
    settings.webex_token = upstream_token();
    settings.connect_service_key = upstream_token();
    // The sandbox's experts' space is the default desk, unless a [[desk]] is.
    if !settings.desks.iter().any(|desk| desk.default) {
        settings.expert_target = Some(ExpertTarget::RoomId(sandbox::SANDBOX_EXPERT_ROOM.into()));
    }
    // WhatsApp customers who have not written for a day get the stand-in's template.
    if settings.whatsapp_template.is_none() {
        settings.whatsapp_template = Some(
            WhatsappTemplate::parse(
                sandbox::SANDBOX_TEMPLATE,
                Some("name={customer_name},link={guest_url}"),
            )
            .expect("the sandbox's template is valid"),
        );
    }
    // The admin API (appointments, ratings, customers' data) answers a known token.
    if settings.admin_token.is_none() {
        settings.admin_token = Some(SecretString::from(sandbox::SANDBOX_ADMIN_TOKEN));
    }
    // Closing a conversation asks for a rating: the stand-in shows the question.
    settings.survey = true;
    // The stand-in's webhooks are signed with a secret, so that the desk watches them (and
    // catches up on what a disabled one lost).
    if settings.webex_webhook_secret.is_none() {
        settings.webex_webhook_secret =
            Some(SecretString::from(sandbox::SANDBOX_WEBEX_WEBHOOK_SECRET));
    }
    // The console logs in through the Webex stand-in.
    settings.public_url = Some(url("").join("/").expect("a valid local URL"));
    settings.oauth_client_id = Some(sandbox::SANDBOX_OAUTH_CLIENT.into());
    settings.oauth_client_secret = Some(SecretString::from(sandbox::SANDBOX_UPSTREAM_TOKEN));
    tracing::warn!(
        "sandbox mode: upstreams are local stand-ins under {base}; nothing reaches Webex or customers"
    );
    if settings.connect_webhook_token.is_none() {
        tracing::warn!(
            "sandbox mode: /webhooks/connect accepts the bearer token {:?} since ICB_CONNECT_WEBHOOK_TOKEN is not set",
            sandbox::SANDBOX_WEBHOOK_TOKEN
        );
        settings.connect_webhook_token = Some(SecretString::from(sandbox::SANDBOX_WEBHOOK_TOKEN));
        return Some(sandbox::SANDBOX_WEBHOOK_TOKEN.to_string());
    }
    None
}

/// Binds `address` with a listen backlog of `backlog` connections (the standard library's
/// bind uses 128, too few for a burst of new connections: the rest wait for a SYN retry,
/// a second or more). The kernel caps it at `net.core.somaxconn`.
fn listen(address: &str, backlog: u32) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs;

    let mut last_error = None;
    for address in address.to_socket_addrs()? {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(address),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        match socket
            .bind(&address.into())
            .and_then(|()| socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX)))
        {
            Ok(()) => return Ok(socket.into()),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// The address a local client uses to reach a listener (`0.0.0.0` is not connectable).
fn client_address(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        ip if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port())
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connections that are not accepted yet wait in the backlog: with the standard
    /// library's 128, the 130th connection's handshake would not complete.
    #[test]
    fn the_listen_backlog_holds_a_burst_of_connections() {
        let listener = listen("127.0.0.1:0", 400).unwrap();
        let address = listener.local_addr().unwrap();
        let mut connections = Vec::new();
        for n in 0..300 {
            let connected =
                std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500));
            assert!(connected.is_ok(), "connection {n}: {connected:?}");
            connections.push(connected.unwrap());
        }
    }
}
