//! The command line: `icbridge [--config FILE] <serve|migrate|link|check>`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "icbridge",
    version,
    about = "Turns a customer's SMS or WhatsApp message into a Webex Instant Connect video consultation"
)]
pub struct Cli {
    /// TOML file with settings (keys: the ICB_ variable names without ICB_, lower-case).
    /// Environment variables win over it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: webhooks, health endpoints and the delivery worker.
    Serve {
        /// Run without any credentials against built-in stand-ins of Instant Connect,
        /// Webex and Webex Connect (served under /sandbox/ by this process).
        #[arg(long)]
        sandbox: bool,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Create one Instant Connect meeting and print its host and guest links.
    Link {
        /// Meeting subject; everyone with links of the same subject meets in the same room.
        /// Default: a fresh UUID.
        #[arg(long)]
        sub: Option<String>,
        /// UI template (default: ICB_VERTICAL).
        #[arg(long, value_enum)]
        vertical: Option<VerticalArg>,
        /// Long links (the JWE in the URL) instead of short /visit/ links.
        #[arg(long)]
        long: bool,
        /// Make the host's short link ask the host to sign in.
        #[arg(long)]
        host_login: bool,
        /// How long the links stay valid, e.g. 30m or 2h (default: ICB_LINK_TTL).
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the configuration and the upstream credentials; exits 1 if a check fails.
    Check,
    /// Show and revive outbox rows: the deliveries to Webex and Webex Connect.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Show and close conversations (the admin API's verbs).
    Conversations {
        #[command(subcommand)]
        command: ConversationsCommand,
    },
    /// Booked consultations: book one (the customer is invited at once), list, cancel.
    Appointments {
        #[command(subcommand)]
        command: AppointmentsCommand,
    },
    /// Apply the retention now: erase message texts older than ICB_RETENTION, anonymise
    /// conversations closed before it. `serve` also does this every hour.
    Purge,
    /// A customer's data on request: everything held about a number, or erasing it.
    Customer {
        #[command(subcommand)]
        command: CustomerCommand,
    },
    /// What administrators and experts did to customers' data.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Events for the systems of record (Standard Webhooks): a signing secret, resending,
    /// enabling a subscription a receiver's `410` disabled.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Set up the Webex side.
    Webex {
        #[command(subcommand)]
        command: WebexCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CustomerCommand {
    /// Print, as JSON, every conversation, message, attachment reference, delivery and
    /// receipt about a number (SMS and WhatsApp).
    Export {
        /// The customer's number, international format (+14155550123).
        number: String,
    },
    /// Erase what is held about a number (texts, names, attachment references, deliveries'
    /// and receipts' content; the number replaced; pending deliveries cancelled) and print
    /// what was erased.
    Erase {
        /// The customer's number, international format (+14155550123).
        number: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print a fresh signing secret (`whsec_`…) for a subscription's `secret`.
    Secret,
    /// Queue the stored events since a time again; receivers recognise those they got by
    /// their `webhook-id`, which stays the same.
    Resend {
        /// RFC 3339, e.g. `2026-11-30T08:00:00Z`.
        #[arg(long)]
        since: String,
        /// Only to this subscription (default: every enabled one that takes them).
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Enable a subscription whose receiver answered `410 Gone`: new events are queued for
    /// it again (revive what died meanwhile with `icbridge outbox retry --dead`).
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The newest audit rows, newest first.
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConversationsCommand {
    /// List conversations, newest first.
    List {
        #[arg(long, value_enum, default_value = "open")]
        state: ConversationStateArg,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Show one conversation with its meetings and transcript, as JSON.
    Show { id: String },
    /// Close a conversation; the customer's next message opens a new one.
    Close { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AppointmentsCommand {
    /// Book a consultation; prints the appointment as JSON.
    Add {
        /// `sms` or `whatsapp`.
        #[arg(long)]
        channel: String,
        /// The customer's number, international format.
        #[arg(long)]
        customer: String,
        /// When it starts, RFC 3339 with an offset (2026-12-01T09:00:00+01:00).
        #[arg(long)]
        starts_at: String,
        /// How long, in minutes (at most 480).
        #[arg(long, default_value_t = 30)]
        duration_minutes: i64,
        /// The business address to write from (default ICB_SMS_SENDER or ICB_WHATSAPP_APP_ID).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        desk: Option<String>,
        /// For the experts, on the card.
        #[arg(long)]
        note: Option<String>,
        /// Makes running the same command again safe.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Appointments starting from now (or `--from`), soonest first.
    List {
        /// RFC 3339.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Cancel an appointment: the customer is told, the links end.
    Cancel { id: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ConversationStateArg {
    Open,
    Closed,
    All,
}

#[derive(Debug, Subcommand)]
pub enum WebexCommand {
    /// Create or update the bot's webhooks (new messages, card buttons) so that Webex calls
    /// PUBLIC_URL/webhooks/webex, signed with ICB_WEBEX_WEBHOOK_SECRET. Safe to run again.
    Register {
        /// icbridge's public base URL, e.g. https://bridge.example.com (default: ICB_PUBLIC_URL).
        #[arg(long, value_name = "URL")]
        public_url: Option<url::Url>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List rows, newest first.
    List {
        /// Only rows in this state.
        #[arg(long, value_enum)]
        status: Option<OutboxStatusArg>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Make a dead (or waiting) row due now, with a fresh retry schedule; with `--dead`,
    /// every dead row (of `--kind`, queued since `--since`).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["id", "dead"])))]
    Retry {
        /// The row's id, as `outbox list` shows it.
        id: Option<i64>,
        /// Every dead row.
        #[arg(long, conflicts_with = "id")]
        dead: bool,
        /// With `--dead`: only rows of this kind (`expert_notification`, `expert_notice`,
        /// `customer_reply`, `opt_out_reply`).
        #[arg(long, requires = "dead")]
        kind: Option<String>,
        /// With `--dead`: only rows queued since this time (RFC 3339, e.g.
        /// `2026-11-30T08:00:00Z`).
        #[arg(long, requires = "dead")]
        since: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutboxStatusArg {
    Pending,
    /// WhatsApp messages waiting for the customer to write again.
    Held,
    Dead,
    Sent,
    /// Never sent: the customer opted out (STOP).
    Cancelled,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VerticalArg {
    Gen,
    Hc,
}
