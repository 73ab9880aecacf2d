//! The HTTP server: the listening socket, and every route with the data its handlers use.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};

use super::{StartupError, DELIVERY_TIMEOUT, SHUTDOWN_GRACE};
use crate::app::layer::Layer;
use crate::app::settings::Settings;
use crate::bridge::Bridge;
use crate::delivery::media_links::MediaFiles;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::Destination;
use crate::experts::console::{Console, ConsoleSettings};
use crate::experts::Desk;
use crate::routes::admin::AdminToken;
use crate::routes::inbound::{ConnectAuth, WebexAuth};
use crate::routes::links::UnknownCodes;
use crate::routes::proxies::TrustedProxies;
use crate::routes::{self, connect_webhook, health, openapi, webex_webhook};
use crate::store::Store;
use crate::upstream;
use crate::upstream::webex_oauth::WebexOAuthClient;

/// The socket `ICB_LISTEN` names, bound, and the address it got (the port, if it was 0).
pub(super) fn bind(settings: &Settings) -> Result<(TcpListener, SocketAddr), StartupError> {
    let error = |source| StartupError::Bind {
        address: settings.http.listen.clone(),
        source,
    };
    let listener = listen(&settings.http.listen, settings.http.listen_backlog).map_err(error)?;
    let address = listener.local_addr().map_err(error)?;
    Ok((listener, address))
}

/// What the HTTP workers share: each handler's data, made once for every worker.
#[derive(Clone)]
pub(super) struct Routes {
    bridge: web::Data<Bridge>,
    connect_auth: web::Data<ConnectAuth>,
    webex_auth: web::Data<WebexAuth>,
    desk: web::Data<Desk>,
    metrics: web::Data<Metrics>,
    admin_token: web::Data<AdminToken>,
    unknown_codes: web::Data<UnknownCodes>,
    trusted_proxies: web::Data<TrustedProxies>,
    media_files: web::Data<Option<MediaFiles>>,
    /// `None` when the console is not configured: its pages say so.
    console: Option<web::Data<Console>>,
    /// Served after icbridge's own routes.
    layer: Option<Arc<dyn Layer>>,
}

impl Routes {
    /// Every route's data. Fails when the console is configured by halves.
    pub fn new(
        settings: &Settings,
        shared: &super::Shared,
        desk: &Desk,
        media_files: Option<MediaFiles>,
        experts: &Destination,
        layer: Option<Arc<dyn Layer>>,
    ) -> Result<Self, StartupError> {
        if settings.webex.webhook_secret.is_none() {
            tracing::warn!(
                "/webhooks/webex refuses every request: set ICB_WEBEX_WEBHOOK_SECRET (and run \
                 `icbridge webex register`) to let experts answer customers from Webex"
            );
        }
        let console = console(
            settings,
            &shared.store,
            experts,
            &shared.metrics,
            &shared.clock,
        )?;
        Ok(Self {
            bridge: web::Data::new(shared.bridge.clone()),
            connect_auth: web::Data::new(ConnectAuth::new(
                settings.connect.webhook_secret.clone(),
                settings.connect.webhook_token.clone(),
            )),
            webex_auth: web::Data::new(WebexAuth::new(settings.webex.webhook_secret.clone())),
            desk: web::Data::new(desk.clone()),
            metrics: web::Data::new(shared.metrics.clone()),
            admin_token: web::Data::new(AdminToken {
                token: settings.admin.token.clone(),
                name: settings.admin.name.clone(),
            }),
            unknown_codes: web::Data::new(UnknownCodes::default()),
            trusted_proxies: web::Data::new(settings.http.trusted_proxies.clone()),
            media_files: web::Data::new(media_files),
            console: console.map(web::Data::new),
            layer,
        })
    }

    /// Starts the HTTP workers on `listener`. Signals are left to the caller, which
    /// decides the order of shutdown.
    pub fn serve(self, listener: TcpListener, address: SocketAddr) -> Result<Server, StartupError> {
        let server = HttpServer::new(move || {
            App::new()
                .wrap(actix_web::middleware::from_fn(
                    routes::json_method_not_allowed,
                ))
                .wrap(actix_web::middleware::from_fn(
                    routes::request_log::request_log,
                ))
                .configure(|cfg| self.configure(cfg))
                .default_service(web::to(routes::not_found))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: address.to_string(),
            source,
        })?
        .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
        .disable_signals()
        .run();
        Ok(server)
    }

    /// One HTTP worker's routes, with their data.
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.bridge.clone())
            .app_data(self.connect_auth.clone())
            .app_data(self.webex_auth.clone())
            .app_data(self.desk.clone())
            .app_data(self.metrics.clone())
            .app_data(self.admin_token.clone())
            .configure(routes::extractor_errors)
            .configure(routes::admin::configure)
            .configure(routes::appointments::configure)
            .configure(routes::events::configure)
            .service(web::resource("/openapi.json").route(routes::get().to(openapi::document)))
            .service(web::resource("/healthz").route(routes::get().to(health::healthz)))
            .app_data(self.unknown_codes.clone())
            .app_data(self.trusted_proxies.clone())
            .service(web::resource("/j/{code}").route(routes::get().to(routes::links::visit)))
            .app_data(self.media_files.clone())
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
            );
        match &self.console {
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
        }
        if let Some(layer) = &self.layer {
            layer.configure(cfg);
        }
    }
}

/// The expert console, when its three settings are there.
fn console(
    settings: &Settings,
    store: &Store,
    experts: &Destination,
    metrics: &Metrics,
    clock: &Clock,
) -> Result<Option<Console>, StartupError> {
    let (public_url, client_id, client_secret) = match (
        &settings.http.public_url,
        &settings.console.oauth_client_id,
        &settings.console.oauth_client_secret,
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
        settings.webex.api_url.clone(),
        client_id.clone(),
        client_secret.clone(),
    );
    Ok(Some(Console::new(
        store.clone(),
        oauth,
        ConsoleSettings {
            public_url: public_url.clone(),
            webex_api_url: settings.webex.api_url.clone(),
            allowed: settings.console.allowed.clone(),
            widget_base_url: settings.console.widget_base_url.clone(),
        },
        experts.clone(),
        clock.clone(),
    )))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
