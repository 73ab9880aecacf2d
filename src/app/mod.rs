//! Starting and running icbridge: its settings, the command line, logging, the background
//! workers, and the sandbox of stand-ins that `serve --sandbox` adds.

pub mod cli;
pub mod commands;
pub mod layer;
pub mod loops;
pub mod sandbox;
pub mod settings;
mod start;
pub mod telemetry;

pub use start::*;
