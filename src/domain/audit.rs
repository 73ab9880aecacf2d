//! Who does what to customers' data: administrators (the admin API, the command line) and
//! experts. Closing, retrying, transferring, exporting and erasing are written to the audit
//! log with who did them.

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The admin API, by its token's configured name (`ICB_ADMIN_NAME`).
    Admin(String),
    /// The command line, by the operating system's user.
    Cli(String),
    /// An expert, by their Webex identity, in Webex or the console.
    Expert(String),
    /// icbridge itself, closing a conversation whose meeting ended (with `ICB_SURVEY`).
    MeetingEnded,
}

impl Actor {
    /// The command line's user (`$USER`, else `$LOGNAME`).
    pub fn cli() -> Self {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_string());
        Actor::Cli(user)
    }

    /// As the audit log names it: `admin:ops`, `cli:root`, `expert:anna@clinic.example`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Admin(name) => format!("admin:{name}"),
            Actor::Cli(user) => format!("cli:{user}"),
            Actor::Expert(who) => format!("expert:{who}"),
            Actor::MeetingEnded => "icbridge:meeting-ended".to_string(),
        }
    }

    /// As the experts' thread names it.
    pub fn shown(&self) -> String {
        match self {
            Actor::Admin(_) | Actor::Cli(_) => "an administrator".to_string(),
            Actor::Expert(who) => who.clone(),
            Actor::MeetingEnded => "icbridge, as its meeting ended".to_string(),
        }
    }
}

/// What the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Close,
    Retry,
    Transfer,
    Export,
    Erase,
    Book,
    Cancel,
    AddGuest,
    /// Events for the systems of record queued again (`icbridge events resend`).
    Resend,
    /// An event subscription enabled again after a `410` (`icbridge events enable`).
    Enable,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Close => "close",
            Action::Retry => "retry",
            Action::Transfer => "transfer",
            Action::Export => "export",
            Action::Erase => "erase",
            Action::Book => "book",
            Action::Cancel => "cancel",
            Action::AddGuest => "add_guest",
            Action::Resend => "resend",
            Action::Enable => "enable",
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditEntry {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: Option<String>,
}
