//! `serve` (with `--sandbox`, the stand-ins of every upstream) and `migrate`.

use crate::app::layer::Layer;
use crate::app::sandbox::Sandbox;
use crate::app::settings::Settings;
use crate::app::{self, Application, ServeOptions};
use crate::domain::clock::Clock;

pub(super) async fn serve(settings: Settings, sandbox: bool) -> Result<(), String> {
    let options = ServeOptions {
        layer: sandbox.then(|| Box::new(Sandbox::default()) as Box<dyn Layer>),
        background_worker: true,
        // The sandbox's clock can be moved ahead (`POST /sandbox/clock`), to try what
        // happens a day or two later.
        clock: if sandbox {
            Clock::movable()
        } else {
            Clock::system()
        },
    };
    let app = Application::build(settings, options)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(banner) = app.banner() {
        println!("{banner}");
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

pub(super) async fn migrate(settings: Settings) -> Result<(), String> {
    app::migrate(&settings).await.map_err(|e| e.to_string())?;
    println!("database schema is up to date");
    Ok(())
}
