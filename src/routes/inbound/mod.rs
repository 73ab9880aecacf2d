//! What arrives on `POST /webhooks/connect`: its authentication and its payload shapes.

mod payload;
mod signature;

pub use payload::{parse, Inbound, PayloadError};
pub use signature::{AuthError, ConnectAuth, WebexAuth};
