//! What each subcommand does.

use crate::domain::{Appointment, OutboxState};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::app::cli::{
    AppointmentsCommand, AuditCommand, Cli, Command, ConversationStateArg, ConversationsCommand,
    CustomerCommand, OutboxCommand, OutboxStatusArg, VerticalArg, WebexCommand,
};
use crate::app::settings::Settings;
use crate::app::telemetry;
use crate::app::{self, Application, BridgeRuntime, ServeOptions};
use crate::bridge::{AppointmentRequest, Bridge, CloseOutcome};
use crate::delivery::pauses::Pauses;
use crate::desks::{Desks, DEFAULT_DESK};
use crate::domain::audit::Actor;
use crate::domain::clock::{self, Clock};
use crate::domain::metrics::Metrics;
use crate::domain::{CustomerAddress, Vertical};
use crate::experts::webhooks::{self, HookState};
use crate::routes::admin::ConversationDetailView;
use crate::routes::appointments::AppointmentView;
use crate::store::Store;
use crate::upstream::instant_connect::{InstantConnectClient, MeetingRequest};
use crate::upstream::webex::WebexClient;
use crate::upstream::{self};

const CLI_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("icbridge: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let result = match cli.command {
        Command::Serve { sandbox } => serve(settings, sandbox).await,
        Command::Migrate => migrate(settings).await,
        Command::Link {
            sub,
            vertical,
            long,
            host_login,
            ttl,
            json,
        } => {
            let vertical = match vertical {
                Some(VerticalArg::Gen) => Vertical::Gen,
                Some(VerticalArg::Hc) => Vertical::Hc,
                None => settings.vertical,
            };
            let request = MeetingRequest {
                sub: sub.unwrap_or_else(|| Uuid::new_v4().to_string()),
                expires_at: (Clock::system().now_ms()
                    + ttl.unwrap_or(settings.link_ttl).as_millis() as i64)
                    .div_euclid(1000),
                short_urls: settings.short_urls && !long,
                vertical,
                host_login: host_login || settings.host_login,
                not_before: None,
                hosts: 1,
                guests: 1,
            };
            link(settings, request, json).await
        }
        Command::Check => return check(settings).await,
        Command::Outbox { command } => outbox(settings, command).await,
        Command::Conversations { command } => conversations(settings, command).await,
        Command::Appointments { command } => appointments(settings, command).await,
        Command::Purge => purge(settings).await,
        Command::Customer { command } => customer(settings, command).await,
        Command::Audit {
            command: AuditCommand::List { limit },
        } => audit(settings, limit).await,
        Command::Webex {
            command: WebexCommand::Register { public_url },
        } => register_webhooks(settings, public_url).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("icbridge: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings, sandbox: bool) -> Result<(), String> {
    let options = ServeOptions {
        sandbox,
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
    if let Some(banner) = app.sandbox_banner() {
        println!("{banner}");
    }
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    println!("database schema is up to date");
    Ok(())
}

async fn link(settings: Settings, request: MeetingRequest, as_json: bool) -> Result<(), String> {
    let token = settings
        .webex_token
        .ok_or("set ICB_WEBEX_TOKEN (a Webex bot token or a personal access token)")?;
    let client = InstantConnectClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.ic_base_url,
        settings.ic_join_url,
        token,
    );
    let links = client
        .create_meeting(&request, CLI_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let expires_at = clock::rfc3339(request.expires_at * 1000);
    if as_json {
        let body = json!({
            "sub": request.sub,
            "hostUrl": links.host_url.as_str(),
            "guestUrl": links.guest_url.as_str(),
            "expiresAt": expires_at,
        });
        println!("{body}");
    } else {
        println!("host:    {}", links.host_url);
        println!("guest:   {}", links.guest_url);
        println!("sub:     {}", request.sub);
        println!("expires: {expires_at}");
    }
    Ok(())
}

/// The bridge on the configured database (migrated), for the admin verbs: they do what the
/// admin API does. What they queue is delivered by a running `icbridge serve`.
async fn open_bridge(settings: &Settings) -> Result<Bridge, String> {
    let store = Store::connect(&settings.database_url)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let runtime = BridgeRuntime {
        metrics: Metrics::new(),
        clock: Clock::system(),
        outbox_wake: Default::default(),
        sandbox: false,
        pauses: Pauses::new(store.clone(), Clock::system()),
    };
    app::bridge(settings, store, runtime).map_err(|e| e.to_string())
}

async fn conversations(settings: Settings, command: ConversationsCommand) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    match command {
        ConversationsCommand::List { state, limit } => {
            let state = match state {
                ConversationStateArg::Open => Some("open"),
                ConversationStateArg::Closed => Some("closed"),
                ConversationStateArg::All => None,
            };
            let list = bridge
                .conversations(state, limit)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<36}  {:<8} {:<14} {:<6}  {:<16} {:<20}  {:<20}  TAKEN BY",
                "ID", "CHANNEL", "CUSTOMER", "STATE", "DESK", "CREATED", "LINKS UNTIL"
            );
            for c in list {
                let links = match (c.links_expire_at, c.waiting_since) {
                    (Some(until), _) => clock::rfc3339(until),
                    (None, Some(_)) => "waits for opening".into(),
                    (None, None) => "-".into(),
                };
                println!(
                    "{:<36}  {:<8} {:<14} {:<6}  {:<16} {:<20}  {:<20}  {}",
                    c.id,
                    c.key.channel.as_str(),
                    c.key.customer.masked(),
                    if c.open { "open" } else { "closed" },
                    bridge.desk_of(&c),
                    clock::rfc3339(c.created_at),
                    links,
                    c.assignee.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        ConversationsCommand::Show { id } => {
            let detail = bridge
                .conversation_detail(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no conversation with id {id}"))?;
            let view = ConversationDetailView::from(&detail);
            println!("{}", serde_json::to_string_pretty(&view).expect("JSON"));
            Ok(())
        }
        ConversationsCommand::Close { id } => {
            // The experts' thread is told, as when an expert closes it.
            let outcome = bridge
                .close(&id, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            match outcome {
                CloseOutcome::Closed => println!("closed"),
                CloseOutcome::AlreadyClosed => println!("already closed"),
                CloseOutcome::Booked { appointment_id, .. } => {
                    return Err(format!(
                        "not closed: it has booked consultation {appointment_id}; \
                         `icbridge appointments cancel {appointment_id}` calls it off"
                    ))
                }
            }
            Ok(())
        }
    }
}

async fn appointments(settings: Settings, command: AppointmentsCommand) -> Result<(), String> {
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

async fn customer(settings: Settings, command: CustomerCommand) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let actor = Actor::cli();
    let json = match command {
        CustomerCommand::Export { number } => serde_json::to_string_pretty(
            &bridge
                .export_customer(&number, &actor)
                .await
                .map_err(|e| e.to_string())?,
        ),
        CustomerCommand::Erase { number } => serde_json::to_string_pretty(
            &bridge
                .erase_customer(&number, &actor)
                .await
                .map_err(|e| e.to_string())?,
        ),
    };
    println!("{}", json.expect("JSON"));
    Ok(())
}

async fn audit(settings: Settings, limit: i64) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let entries = bridge
        .audit_log(limit.clamp(1, 10_000))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "{:<20}  {:<32}  {:<8}  {:<40}  DETAIL",
        "AT", "WHO", "ACTION", "SUBJECT"
    );
    for entry in entries {
        println!(
            "{:<20}  {:<32}  {:<8}  {:<40}  {}",
            clock::rfc3339(entry.at),
            entry.actor,
            entry.action,
            entry.subject,
            entry.detail.as_deref().unwrap_or("-"),
        );
    }
    Ok(())
}

async fn purge(settings: Settings) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    let report = bridge
        .purge(settings.retention)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "retention {}: {} message texts erased, {} conversations anonymised, {} receipts, \
         {} delivery payloads, {} held WhatsApp messages, {} Webex events and {} expired \
         sessions removed",
        humantime::format_duration(settings.retention),
        report.message_texts_erased,
        report.conversations_anonymised,
        report.receipts_deleted,
        report.outbox_payloads_cleared,
        report.held_messages_dropped,
        report.webex_events_deleted,
        report.sessions_deleted,
    );
    Ok(())
}

async fn outbox(settings: Settings, command: OutboxCommand) -> Result<(), String> {
    let bridge = open_bridge(&settings).await?;
    match command {
        OutboxCommand::List { status, limit } => {
            let state = status.map(|status| match status {
                OutboxStatusArg::Pending => OutboxState::Pending,
                OutboxStatusArg::Held => OutboxState::Held,
                OutboxStatusArg::Dead => OutboxState::Dead,
                OutboxStatusArg::Sent => OutboxState::Sent,
                OutboxStatusArg::Cancelled => OutboxState::Cancelled,
            });
            let rows = bridge
                .deliveries(state, limit)
                .await
                .map_err(|e| e.to_string())?;
            let now = Clock::system().now_ms();
            for pause in bridge.upstream_pauses().await.map_err(|e| e.to_string())? {
                if pause.credential_refused() {
                    println!(
                        "{}: credential refused since {}, deliveries wait: {}",
                        pause.upstream,
                        clock::rfc3339(pause.updated_at),
                        pause.reason
                    );
                } else if pause.paused_until > now {
                    println!(
                        "{}: paused until {} (it asked to wait): {}",
                        pause.upstream,
                        clock::rfc3339(pause.paused_until),
                        pause.reason
                    );
                }
            }
            println!(
                "{:>6}  {:<20} {:<8} {:>8}  {:<20}  LAST ERROR",
                "ID", "KIND", "STATE", "ATTEMPTS", "CREATED"
            );
            for row in rows {
                println!(
                    "{:>6}  {:<20} {:<8} {:>8}  {:<20}  {}",
                    row.id,
                    row.kind,
                    row.state,
                    row.attempts,
                    clock::rfc3339(row.created_at),
                    row.last_error.as_deref().unwrap_or("-"),
                );
            }
            Ok(())
        }
        OutboxCommand::Retry { id: Some(id), .. } => {
            bridge
                .retry_delivery(id, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            println!("outbox row {id} is due now; a running icbridge delivers it");
            Ok(())
        }
        OutboxCommand::Retry {
            id: None,
            kind,
            since,
            ..
        } => {
            let since = since
                .map(|since| {
                    clock::parse_rfc3339(&since)
                        .ok_or_else(|| format!("--since: not an RFC 3339 time: {since:?}"))
                })
                .transpose()?;
            let revived = bridge
                .retry_dead_deliveries(kind.as_deref(), since, &Actor::cli())
                .await
                .map_err(|e| e.to_string())?;
            println!("{revived} dead rows are due now; a running icbridge delivers them");
            Ok(())
        }
    }
}

/// Makes the bot's two webhooks point at this icbridge: creates what is missing, corrects
/// what differs (a disabled one is re-activated), leaves the rest alone.
async fn register_webhooks(settings: Settings, public_url: Option<url::Url>) -> Result<(), String> {
    let token = settings
        .webex_token
        .ok_or("set ICB_WEBEX_TOKEN (the bot's token)")?;
    let secret = settings
        .webex_webhook_secret
        .ok_or("set ICB_WEBEX_WEBHOOK_SECRET: Webex signs every event with it")?;
    let public_url = public_url.or(settings.public_url).ok_or(
        "give --public-url https://… (or set ICB_PUBLIC_URL): where Webex can reach icbridge",
    )?;
    let target_url = crate::app::webex_webhook_url(&public_url);
    let webex = WebexClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.webex_api_url,
        token,
    );
    let wanted = webhooks::Wanted {
        target_url: Some(&target_url),
        secret: secrecy::ExposeSecret::expose_secret(&secret),
    };
    let reports = webhooks::reconcile(&webex, &wanted, webhooks::Mend::Yes)
        .await
        .map_err(|e| e.to_string())?;
    for report in reports {
        let done = match report.state {
            HookState::Unchanged => "unchanged",
            HookState::Created => "created",
            _ => "updated",
        };
        println!(
            "{done:<9} {} ({}) -> {target_url} [{}]",
            report.name,
            report.resource,
            report.id.as_deref().unwrap_or("new")
        );
    }
    Ok(())
}

/// Runs every check and prints each as `ok` or `failed` with the reason.
async fn check(settings: Settings) -> ExitCode {
    let mut failed = false;
    let mut report = |ok: bool, what: &str, detail: String| {
        failed |= !ok;
        println!("{:<7} {what}: {detail}", if ok { "ok" } else { "failed" });
    };

    let auth = match (
        &settings.connect_webhook_secret,
        &settings.connect_webhook_token,
    ) {
        (Some(_), Some(_)) => Some("X-Hub-Signature secret and bearer token set"),
        (Some(_), None) => Some("X-Hub-Signature secret set"),
        (None, Some(_)) => Some("bearer token set"),
        (None, None) => None,
    };
    match auth {
        Some(detail) => report(true, "webhook auth", detail.into()),
        None => report(
            false,
            "webhook auth",
            "set ICB_CONNECT_WEBHOOK_SECRET or ICB_CONNECT_WEBHOOK_TOKEN".into(),
        ),
    }

    match Store::connect(&settings.database_url).await {
        Ok(store) => match store.ping().await {
            Ok(()) => {
                report(true, "database", "reachable".into());
                // What a running icbridge found: credentials the upstreams refuse.
                for pause in store.upstream_pauses().await.unwrap_or_default() {
                    if pause.credential_refused() {
                        let detail = format!(
                            "refused since {} ({}); deliveries wait until it works again",
                            clock::rfc3339(pause.updated_at),
                            pause.reason
                        );
                        report(false, &format!("{} credential", pause.upstream), detail);
                    }
                }
            }
            Err(e) => report(false, "database", e.to_string()),
        },
        Err(e) => report(false, "database", e.to_string()),
    }

    let Some(token) = settings.webex_token.clone() else {
        report(false, "webex token", "set ICB_WEBEX_TOKEN".into());
        report(false, "expert target", "not checked without a token".into());
        return exit_code(failed);
    };
    let webex = WebexClient::new(
        upstream::HttpClient::new(CLI_TIMEOUT),
        settings.webex_api_url.clone(),
        token,
    );
    match webex.me().await {
        Ok(me) => report(
            true,
            "webex token",
            format!("{} ({})", me.display_name, me.emails.join(", ")),
        ),
        Err(e) => report(false, "webex token", e.to_string()),
    }
    // The webhooks that bring experts' replies: only looked at, never changed here.
    match &settings.webex_webhook_secret {
        // Optional: without it, experts are notified but cannot answer from Webex.
        None => report(
            true,
            "webex webhooks",
            "not used: ICB_WEBEX_WEBHOOK_SECRET is not set, so experts cannot answer from \
             Webex (set it and run `icbridge webex register`)"
                .into(),
        ),
        Some(secret) => {
            let target_url = settings
                .public_url
                .as_ref()
                .map(crate::app::webex_webhook_url);
            let wanted = webhooks::Wanted {
                target_url: target_url.as_deref(),
                secret: secrecy::ExposeSecret::expose_secret(secret),
            };
            match webhooks::reconcile(&webex, &wanted, webhooks::Mend::No).await {
                Ok(reports) => {
                    for hook in reports {
                        let detail = match &hook.id {
                            Some(id) => format!("{} [{id}]", hook.state),
                            None => format!(
                                "{} (run `icbridge webex register --public-url …`)",
                                hook.state
                            ),
                        };
                        report(
                            hook.state.is_active(),
                            &format!("webex webhook {}", hook.resource),
                            detail,
                        );
                    }
                }
                Err(e) => report(false, "webex webhooks", e.to_string()),
            }
        }
    }
    if settings.expert_target.is_none() && settings.desks.is_empty() {
        report(
            false,
            "expert target",
            "set ICB_EXPERT_ROOM_ID, ICB_EXPERT_EMAIL or ICB_EXPERT_ROOM_TITLE".into(),
        );
        return exit_code(failed);
    }
    // Each desk's experts: the default desk of ICB_EXPERT_* as before, the [[desk]]
    // entries by name.
    match Desks::configure(&settings.desks, settings.expert_target.as_ref()) {
        Err(e) => report(false, "desks", e.to_string()),
        Ok(desks) => {
            for desk in desks.all() {
                let what = if desk.name == DEFAULT_DESK && settings.expert_target.is_some() {
                    "expert target".to_string()
                } else {
                    format!("desk {}", desk.name)
                };
                let hours = desk
                    .hours_now(Clock::system().now_ms())
                    .map(|hours| format!("; {hours}"))
                    .unwrap_or_default();
                match webex.resolve(&desk.target).await {
                    Ok(destination) => report(true, &what, format!("{destination:?}{hours}")),
                    Err(e) => report(false, &what, e.to_string()),
                }
            }
        }
    }
    exit_code(failed)
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
