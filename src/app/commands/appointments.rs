//! `appointments add|list|cancel`: booked consultations.

use super::open_bridge;
use crate::app::cli::AppointmentsCommand;
use crate::app::settings::Settings;
use crate::bridge::AppointmentRequest;
use crate::domain::audit::Actor;
use crate::domain::clock;
use crate::domain::{Appointment, CustomerAddress};
use crate::routes::appointments::AppointmentView;

pub(super) async fn appointments(
    settings: Settings,
    command: AppointmentsCommand,
) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let actor = Actor::cli();
    let show = |appointment: &Appointment| {
        let view = AppointmentView::from(appointment);
        println!("{}", serde_json::to_string_pretty(&view).expect("JSON"));
    };
    match command {
        AppointmentsCommand::Add {
            channel,
            customer,
            starts_at,
            duration_minutes,
            to,
            name,
            desk,
            note,
            idempotency_key,
        } => {
            let request = AppointmentRequest {
                channel,
                customer,
                to,
                name,
                starts_at,
                duration_minutes,
                desk,
                note,
            };
            let outcome = bridge
                .book_appointment(&request, idempotency_key.as_deref(), &actor)
                .await
                .map_err(|e| e.to_string())?;
            show(&outcome.appointment);
        }
        AppointmentsCommand::List { from, to, limit } => {
            let instant = |raw: Option<String>| {
                raw.map(|raw| {
                    raw.parse::<jiff::Timestamp>()
                        .map(|at| at.as_millisecond())
                        .map_err(|_| format!("{raw:?} is not RFC 3339 with an offset"))
                })
                .transpose()
            };
            let list = bridge
                .appointments(instant(from)?, instant(to)?, limit.clamp(1, 10_000))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<36}  {:<9}  {:<8} {:<14}  {:<16} {:<20}  ENDS",
                "ID", "STATE", "CHANNEL", "CUSTOMER", "DESK", "STARTS"
            );
            for a in list {
                println!(
                    "{:<36}  {:<9}  {:<8} {:<14}  {:<16} {:<20}  {}",
                    a.id,
                    a.state,
                    a.channel,
                    CustomerAddress::from_stored(a.customer.clone()).masked(),
                    a.desk,
                    clock::rfc3339(a.starts_at),
                    clock::rfc3339(a.ends_at)
                );
            }
        }
        AppointmentsCommand::Cancel { id } => {
            let cancelled = bridge
                .cancel_appointment(&id, &actor)
                .await
                .map_err(|e| e.to_string())?;
            show(&cancelled);
        }
    }
    Ok(())
}
