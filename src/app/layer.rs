//! What the `serve` command may add on top of the service without start-up knowing what
//! it is: stand-ins of the upstreams, served by the same process, for instance.

use std::net::SocketAddr;

use actix_web::web;

use crate::app::settings::Settings;

/// Something served beside icbridge's own routes, set up once the listener is bound.
///
/// A layer provides the upstreams and credentials it needs itself, so start-up does not
/// refuse settings that would not do for production when one is added.
pub trait Layer: Send + Sync {
    /// Adjusts the settings before anything is opened with them; `address` is where this
    /// process listens. Called once, before [`Layer::configure`].
    fn prepare(&mut self, settings: &mut Settings, address: SocketAddr);

    /// Adds the layer's routes to an HTTP worker's app (called once per worker).
    fn configure(&self, cfg: &mut web::ServiceConfig);

    /// What to print once the service is up, if anything.
    fn banner(&self, address: SocketAddr) -> Option<String>;
}
