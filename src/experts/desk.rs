//! The experts' desk in Webex. Events from the Webex webhook are recorded first (so a crash
//! loses none) and handled here in the background: an expert's reply in a conversation's
//! thread goes to the customer, and `help`, `list`, `close`, `new link` and the card's
//! buttons do what they say. The bot's own messages are ignored.

use crate::domain::Conversation;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, OnceCell};

use super::commands::{without_mention, Command, Place};
use super::events::{
    outside_replay_window, Received, WebhookEvent, RESOURCE_ACTIONS, RESOURCE_MESSAGES,
};
use super::webhooks::{self, HookReport, HookState};

use crate::bridge::{Bridge, BridgeError};
use crate::delivery::pauses::Pauses;
use crate::delivery::schedule;
use crate::desks::expert_texts::{
    self, ACTION_ADD_GUEST, ACTION_CLOSE, ACTION_NEW_LINK, ACTION_TAKE, ACTION_TRANSFER,
};
use crate::desks::DeskPlaces;
use crate::domain::clock::Clock;
use crate::domain::metrics::Metrics;
use crate::domain::{Destination, WebexPost};
use crate::store::{Store, StoreError, WebexEvent};
use crate::upstream::webex::{Message, Person, WebexClient};
use crate::upstream::{Upstream, UpstreamError};

const LEASE: Duration = Duration::from_secs(60);
/// A reply a catch-up found that was written longer ago than this is announced in the
/// thread as late.
const LATE_AFTER: Duration = Duration::from_secs(60);
/// How soon a catch-up that failed (Webex or the database did not answer) is tried again.
const CATCH_UP_RETRY: Duration = Duration::from_secs(15);
const BATCH: i64 = 32;
/// How long a membership answer from Webex is trusted: someone removed from the experts'
/// space loses the bot's commands at most this much later.
const MEMBERSHIP_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("unreadable event: {0}")]
    Invalid(String),
    /// A pushed event without `data.created` whose message or action is older than the
    /// replay window.
    #[error("{0}")]
    Stale(String),
}

/// A store failure is retried with the event; anything else the bridge refuses cannot
/// become right by retrying.
impl From<BridgeError> for DeskError {
    fn from(error: BridgeError) -> Self {
        match error {
            BridgeError::Store(error) => DeskError::Store(error),
            other => DeskError::Invalid(other.to_string()),
        }
    }
}

/// Someone who wrote to the bot or pressed a card's button, and where.
pub(super) struct Asker<'a> {
    pub(super) person_id: &'a str,
    pub(super) email: Option<&'a str>,
    pub(super) room_id: &'a str,
    /// A direct (one-to-one) room with the bot.
    pub(super) direct: bool,
}

impl<'a> Asker<'a> {
    /// The author of a message.
    fn of(message: &'a Message) -> Self {
        Asker {
            person_id: &message.person_id,
            email: message.person_email.as_deref(),
            room_id: &message.room_id,
            direct: message.room_type == "direct",
        }
    }
}

/// What the desk works with.
pub struct DeskParts {
    pub bridge: Bridge,
    pub webex: WebexClient,
    /// The queue of received events.
    pub events: Store,
    /// Where each desk's experts are: who may use the bot's commands.
    pub places: DeskPlaces,
    pub schedule: Vec<Duration>,
    pub clock: Clock,
    /// Woken when an event is recorded.
    pub wake: Arc<Notify>,
    pub pauses: Pauses,
    /// Whether experts' files can reach customers (`ICB_PUBLIC_URL` is set: Webex Connect
    /// fetches them from icbridge).
    pub files_relayable: bool,
    pub metrics: Metrics,
    /// What icbridge's Webex webhooks must be: where they point (`ICB_PUBLIC_URL`, when
    /// set) and their secret. `None` without `ICB_WEBEX_WEBHOOK_SECRET`: no webhook can
    /// reach icbridge, and none is watched.
    pub webhooks: Option<WebhookSettings>,
    /// How often rooms are listed for messages whose events never came
    /// (`ICB_WEBEX_CATCH_UP_EVERY`).
    pub catch_up_every: Duration,
    /// How often the webhooks are checked (`ICB_WEBEX_WEBHOOK_CHECK_EVERY`).
    pub webhook_check_every: Duration,
}

/// What icbridge's webhooks must look like.
#[derive(Clone)]
pub struct WebhookSettings {
    /// `ICB_PUBLIC_URL/webhooks/webex`, when the public URL is known.
    pub target_url: Option<String>,
    pub secret: secrecy::SecretString,
}

#[derive(Clone)]
pub struct Desk {
    pub(super) bridge: Bridge,
    pub(super) webex: WebexClient,
    pub(super) events: Store,
    pub(super) places: DeskPlaces,
    pub(super) clock: Clock,
    pub(super) wake: Arc<Notify>,
    pub(super) pauses: Pauses,
    pub(super) files_relayable: bool,
    pub(super) bot: Arc<OnceCell<Person>>,
    pub(super) schedule: Arc<[Duration]>,
    /// Whether a person is a member of the experts' space, as Webex said, and when.
    pub(super) memberships: Arc<Mutex<HashMap<String, (bool, Instant)>>>,
    pub(super) metrics: Metrics,
    pub(super) webhooks: Option<WebhookSettings>,
    /// Woken when a catch-up should run soon (an event could not be taken).
    pub(super) catch_up_wake: Arc<Notify>,
    pub(super) catch_up_every: Duration,
    pub(super) webhook_check_every: Duration,
    /// The webhooks as last checked (none before the first check).
    pub(super) webhook_states: Arc<Mutex<Vec<HookReport>>>,
}

impl Desk {
    pub fn new(parts: DeskParts) -> Self {
        Self {
            bridge: parts.bridge,
            webex: parts.webex,
            events: parts.events,
            places: parts.places,
            clock: parts.clock,
            wake: parts.wake,
            pauses: parts.pauses,
            files_relayable: parts.files_relayable,
            bot: Arc::new(OnceCell::new()),
            schedule: parts.schedule.into(),
            memberships: Arc::default(),
            metrics: parts.metrics,
            webhooks: parts.webhooks,
            catch_up_wake: Arc::new(Notify::new()),
            catch_up_every: parts.catch_up_every,
            webhook_check_every: parts.webhook_check_every,
            webhook_states: Arc::default(),
        }
    }

    fn store(&self) -> &Store {
        &self.events
    }

    /// Handles the events that are due, oldest first. Returns how many it handled. None
    /// while Webex asked to wait or refuses the token.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        if self.pauses.paused_until(Upstream::Webex).is_some()
            || self.pauses.refused_credentials().contains(&Upstream::Webex)
        {
            return Ok(0);
        }
        let events = self
            .store()
            .claim_webex_events(self.clock.now_ms(), LEASE.as_millis() as i64, BATCH)
            .await?;
        let count = events.len();
        for event in events {
            self.handle(event).await?;
        }
        Ok(count)
    }

    /// Records an event from the webhook for the background, once. Events older than the
    /// replay window are refused; kinds the desk does not act on are ignored.
    pub async fn receive(
        &self,
        event: &WebhookEvent,
        payload: &str,
    ) -> Result<Received, BridgeError> {
        if !event.is_handled() {
            return Ok(Received::Ignored);
        }
        let now = self.clock.now_ms();
        if let Some(problem) = event.age_problem(now) {
            return Ok(Received::Stale(problem));
        }
        let new = self
            .events
            .record_webex_event(&event.data.id, &event.resource, payload, now)
            .await?;
        if !new {
            return Ok(Received::Duplicate);
        }
        self.wake.notify_one();
        Ok(Received::Recorded)
    }

    /// Handles events until `stop` turns true; beside it, catches up (at start-up, every
    /// `ICB_WEBEX_CATCH_UP_EVERY`, and soon after an event could not be taken) and watches
    /// the webhooks (at start-up and every `ICB_WEBEX_WEBHOOK_CHECK_EVERY`).
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let catching_up = tokio::spawn(self.clone().keep_catching_up(stop.clone()));
        let watching = tokio::spawn(self.clone().keep_watching_webhooks(stop.clone()));
        let wake = self.wake.clone();
        schedule::run_loop("webex desk", wake, stop, || self.run_once()).await;
        let _ = tokio::join!(catching_up, watching);
    }

    /// Tells the expert who pressed a card's button that the press could not be taken (the
    /// database refused it): Webex is not known to send it again, and presses cannot be looked
    /// up later. Posted straight to Webex in the background (the outbox is in the database
    /// that just failed), under the card, where the press was made.
    pub fn press_not_taken(&self, event: &WebhookEvent) {
        if event.resource != RESOURCE_ACTIONS {
            return;
        }
        let (Some(room_id), Some(card)) =
            (event.data.room_id.clone(), event.data.message_id.clone())
        else {
            return;
        };
        let post = WebexPost {
            destination: Destination::RoomId(room_id),
            markdown: expert_texts::PRESS_NOT_TAKEN.into(),
            parent_id: Some(card),
            attachments: Vec::new(),
            files: Vec::new(),
        };
        let webex = self.webex.clone();
        tokio::spawn(async move {
            if let Err(error) = webex.post_message(&post).await {
                tracing::warn!(%error, "could not tell an expert that their button press was not taken");
            }
        });
    }

    /// Asks for a catch-up soon: an event could not be taken, and Webex will not send it
    /// again.
    pub fn catch_up_soon(&self) {
        self.catch_up_wake.notify_one();
    }

    async fn keep_catching_up(self, mut stop: watch::Receiver<bool>) {
        if self.webhooks.is_none() {
            return;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            let next = match self.catch_up().await {
                Ok(_) => self.catch_up_every,
                Err(error) => {
                    tracing::warn!(%error, "could not catch up with Webex; trying again soon");
                    CATCH_UP_RETRY.min(self.catch_up_every)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(next) => {}
                _ = self.catch_up_wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn keep_watching_webhooks(self, mut stop: watch::Receiver<bool>) {
        if self.webhooks.is_none() {
            return;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            if let Err(error) = self.watch_webhooks().await {
                tracing::warn!(%error, "could not check the Webex webhooks");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.webhook_check_every) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Checks icbridge's Webex webhooks and mends them: a disabled one is re-activated, and
    /// with `ICB_PUBLIC_URL` a missing one is created and a wrong one corrected; what
    /// cannot be mended is logged. After a mend, events may have been lost: a catch-up
    /// follows. Returns what was found (also kept for `/readyz` and `/metrics`).
    pub async fn watch_webhooks(&self) -> Result<Vec<HookReport>, UpstreamError> {
        let Some(settings) = &self.webhooks else {
            return Ok(Vec::new());
        };
        let secret = secrecy::ExposeSecret::expose_secret(&settings.secret);
        let wanted = webhooks::Wanted {
            target_url: settings.target_url.as_deref(),
            secret,
        };
        let reports = match webhooks::reconcile(&self.webex, &wanted, webhooks::Mend::Yes).await {
            Ok(reports) => reports,
            Err(error) => {
                self.pauses.note(&error).await.ok();
                return Err(error);
            }
        };
        for report in &reports {
            self.metrics
                .webhook_active(report.resource, report.state.is_active());
            match &report.state {
                HookState::Unchanged => {}
                state if state.was_mended() => tracing::warn!(
                    webhook = report.name, resource = report.resource, id = ?report.id,
                    state = %state, "a Webex webhook was mended; catching up on what it missed"
                ),
                state => tracing::error!(
                    webhook = report.name, resource = report.resource, id = ?report.id,
                    state = %state,
                    "a Webex webhook is not working and cannot be mended here: experts' replies \
                     and commands reach icbridge only by the periodic catch-up (set \
                     ICB_PUBLIC_URL, or run `icbridge webex register`)"
                ),
            }
        }
        if reports.iter().any(|report| report.state.was_mended()) {
            if let Err(error) = self.catch_up().await {
                tracing::warn!(%error, "could not catch up after mending a webhook; trying again soon");
                self.catch_up_soon();
            }
        }
        *self.webhook_states.lock().expect("not poisoned") = reports.clone();
        Ok(reports)
    }

    /// The webhooks as last checked, by resource: `active`, or what is wrong. Empty before
    /// the first check, or when no webhook secret is set.
    pub fn webhook_states(&self) -> Vec<(String, String)> {
        self.webhook_states
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|report| {
                let state = if report.state.is_active() {
                    "active".to_string()
                } else {
                    report.state.to_string()
                };
                (report.resource.to_string(), state)
            })
            .collect()
    }

    async fn handle(&self, event: WebexEvent) -> Result<(), StoreError> {
        match self.process(&event).await {
            Ok(()) => self.store().webex_event_finished(&event.id, None).await,
            Err(DeskError::Store(error)) => Err(error),
            Err(DeskError::Upstream(error)) => {
                let message = error.to_string();
                // Webex asked to wait, or refused the token: the event waits with every
                // other call to Webex, without using up its attempts.
                if let Some(until) = self.pauses.note(&error).await? {
                    tracing::warn!(event = %event.id, error = %message, "webex event waits for Webex");
                    return self
                        .store()
                        .webex_event_retry_at(&event.id, &message, until, false)
                        .await;
                }
                let delay = error
                    .is_retryable()
                    .then(|| schedule::backoff(&self.schedule, event.attempts))
                    .flatten();
                match delay {
                    Some(delay) => {
                        tracing::warn!(event = %event.id, error = %message, "webex event failed, will retry");
                        let next = self.clock.now_ms() + delay.as_millis() as i64;
                        self.store()
                            .webex_event_retry_at(&event.id, &message, next, true)
                            .await
                    }
                    None => {
                        tracing::error!(event = %event.id, error = %message, "webex event failed for good");
                        self.store()
                            .webex_event_finished(&event.id, Some(&message))
                            .await
                    }
                }
            }
            Err(error @ DeskError::Invalid(_)) => {
                let message = error.to_string();
                tracing::error!(event = %event.id, error = %message, "webex event dropped");
                self.store()
                    .webex_event_finished(&event.id, Some(&message))
                    .await
            }
            Err(DeskError::Stale(problem)) => {
                tracing::warn!(event = %event.id, error = %problem, "Webex event refused: outside the replay window");
                self.store()
                    .webex_event_finished(&event.id, Some(&problem))
                    .await
            }
        }
    }

    async fn process(&self, event: &WebexEvent) -> Result<(), DeskError> {
        let hook: WebhookEvent =
            serde_json::from_str(&event.payload).map_err(|e| DeskError::Invalid(e.to_string()))?;
        let bot = self.bot().await?;
        if hook.data.person_id == bot.id || hook.actor_id == bot.id {
            return Ok(());
        }
        match hook.resource.as_str() {
            RESOURCE_MESSAGES => self.on_message(&hook, event.received_at, bot).await,
            RESOURCE_ACTIONS => self.on_card_action(&hook, event.received_at).await,
            other => Err(DeskError::Invalid(format!("unexpected resource {other:?}"))),
        }
    }

    /// A pushed event without `data.created` was let in when it arrived; it is judged now,
    /// by the time of the message or action it names, as of when it arrived. (Webex's
    /// documented events carry `data.created`; one without it must not replay an old
    /// message once its id is forgotten.)
    fn check_age(
        hook: &WebhookEvent,
        created: Option<&str>,
        received_at: i64,
    ) -> Result<(), DeskError> {
        if hook.data.created.is_some() || hook.caught_up.is_some() {
            return Ok(());
        }
        let Some(created) = created else {
            return Err(DeskError::Stale(
                "neither the event nor its message or action says when it was created".into(),
            ));
        };
        match outside_replay_window(created, received_at) {
            Some(problem) => Err(DeskError::Stale(problem)),
            None => Ok(()),
        }
    }

    /// The bot's own identity, asked once.
    pub(super) async fn bot(&self) -> Result<&Person, UpstreamError> {
        self.bot.get_or_try_init(|| self.webex.me()).await
    }

    /// A reply found by a catch-up, written a while ago: the thread is told it went out
    /// late (with the time it was written).
    fn written_late<'m>(&self, hook: &WebhookEvent, message: &'m Message) -> Option<&'m str> {
        message.created.as_deref().filter(|created| {
            hook.caught_up.is_some()
                && crate::domain::clock::parse_rfc3339(created).is_some_and(|created| {
                    created < self.clock.now_ms() - LATE_AFTER.as_millis() as i64
                })
        })
    }

    /// An expert's message: who wrote it, where, and what it asks. (A little over a page
    /// because of its last `match`: one arm per command, the list of what an expert can
    /// say, kept in one place.)
    async fn on_message(
        &self,
        hook: &WebhookEvent,
        received_at: i64,
        bot: &Person,
    ) -> Result<(), DeskError> {
        let message = match &hook.caught_up {
            Some(caught_up) => caught_up.message.clone(),
            None => self.webex.message(&hook.data.id).await?,
        };
        Self::check_age(hook, message.created.as_deref(), received_at)?;
        if message.person_id == bot.id {
            return Ok(());
        }
        let late = self.written_late(hook, &message);
        let text = without_mention(&message.text, &bot.display_name);
        let conversation = match &message.parent_id {
            Some(parent) => self.bridge.conversation_of_webex_message(parent).await?,
            None => None,
        };
        let place = Place {
            room_id: message.room_id.clone(),
            parent_id: message.parent_id.clone(),
        };
        let author = message
            .person_email
            .clone()
            .unwrap_or_else(|| message.person_id.clone());
        let asker = Asker::of(&message);
        if !self.is_expert(&asker).await? {
            return self.refuse(&asker, &place).await;
        }
        if let Some(conversation) = &conversation {
            if let Some(notice) = self.moved_elsewhere(conversation, &message.room_id) {
                return self.answer(&place, notice, None).await;
            }
        }
        // A reply carrying files goes to the customer, whatever its text says.
        if let (false, Some(conversation)) = (message.files.is_empty(), &conversation) {
            return self
                .relay(conversation, &message, text, &author, &place, late)
                .await;
        }
        match (Command::parse(text), conversation) {
            (Command::Help, _) => self.answer(&place, expert_texts::HELP.into(), None).await,
            (Command::List, _) => {
                let open = self.bridge.open_conversations(50).await?;
                let text = expert_texts::open_conversations(&open, self.clock.now_ms());
                self.answer(&place, text, None).await
            }
            (Command::Close, Some(conversation)) => {
                self.close(&conversation, &author, &place).await
            }
            (Command::NewLink, Some(conversation)) => self.new_link(&conversation, &place).await,
            (Command::Take, Some(conversation)) => self.take(&conversation, &author, &place).await,
            (Command::Release, Some(conversation)) => {
                self.release(&conversation, &author, &place).await
            }
            (Command::Transfer(desk), Some(conversation)) => {
                self.transfer(&conversation, &desk, &author, &place).await
            }
            (Command::AddGuest(number), Some(conversation)) => {
                self.add_guest(&conversation, number.as_deref(), &author, &place)
                    .await
            }
            (
                Command::Close
                | Command::NewLink
                | Command::Take
                | Command::Release
                | Command::Transfer(_)
                | Command::AddGuest(_),
                None,
            ) => {
                self.answer(&place, expert_texts::NOT_IN_A_THREAD.into(), None)
                    .await
            }
            (Command::Text, Some(conversation)) => {
                self.relay(&conversation, &message, text, &author, &place, late)
                    .await
            }
            (Command::Text, None) => {
                self.answer(&place, expert_texts::unknown_command(), None)
                    .await
            }
        }
    }

    async fn on_card_action(&self, hook: &WebhookEvent, received_at: i64) -> Result<(), DeskError> {
        let action = self.webex.attachment_action(&hook.data.id).await?;
        Self::check_age(hook, action.created.as_deref(), received_at)?;
        let conversation = self
            .bridge
            .conversation_of_webex_message(&action.message_id)
            .await?;
        let place = Place {
            room_id: action.room_id.clone(),
            parent_id: conversation
                .as_ref()
                .and_then(|c| c.thread_message_id.clone())
                .or(Some(action.message_id.clone())),
        };
        // Who pressed, by email as in thread replies (a card press's event may not carry
        // it): `take` must name the same expert either way.
        let author = match hook.data.person_email.clone() {
            Some(email) => email,
            None => match self.webex.person(&action.person_id).await {
                Ok(person) => person.emails.into_iter().next(),
                Err(error) => {
                    tracing::warn!(%error, "could not look up who pressed a card button");
                    None
                }
            }
            .unwrap_or_else(|| action.person_id.clone()),
        };
        // Cards are posted only where the experts are: a press counts on a card of
        // icbridge's own (it names a conversation), by an expert, where it was posted.
        let asker = Asker {
            person_id: &action.person_id,
            email: hook.data.person_email.as_deref(),
            room_id: &action.room_id,
            direct: self
                .places
                .all()
                .any(|place| matches!(place, Destination::PersonEmail(_))),
        };
        if conversation.is_none() || !self.is_expert(&asker).await? {
            return self.refuse(&asker, &place).await;
        }
        if let Some(conversation) = &conversation {
            if let Some(notice) = self.moved_elsewhere(conversation, &action.room_id) {
                return self.answer(&place, notice, None).await;
            }
        }
        match (action.inputs["action"].as_str(), conversation) {
            (Some(ACTION_CLOSE), Some(conversation)) => {
                self.close(&conversation, &author, &place).await
            }
            (Some(ACTION_NEW_LINK), Some(conversation)) => {
                self.new_link(&conversation, &place).await
            }
            (Some(ACTION_TAKE), Some(conversation)) => {
                self.take(&conversation, &author, &place).await
            }
            (Some(ACTION_ADD_GUEST), Some(conversation)) => {
                self.add_guest(&conversation, None, &author, &place).await
            }
            (Some(ACTION_TRANSFER), Some(conversation)) => {
                let desk = action.inputs["desk"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.transfer(&conversation, &desk, &author, &place).await
            }
            _ => {
                self.answer(&place, expert_texts::unknown_command(), None)
                    .await
            }
        }
    }

    /// The notice for a reply or a press in the space of a desk the conversation was
    /// transferred away from (its old thread), if `room` is such a space: nothing there
    /// reaches the customer or changes the conversation any more.
    fn moved_elsewhere(&self, conversation: &Conversation, room: &str) -> Option<String> {
        let current = self.places.of(conversation.desk.as_deref());
        let in_a_desk_space = self
            .places
            .all()
            .any(|place| matches!(place, Destination::RoomId(id) if id == room));
        match current {
            Destination::RoomId(id) if id != room && in_a_desk_space => Some(
                expert_texts::moved_to_another_desk(&self.bridge.desk_of(conversation)),
            ),
            _ => None,
        }
    }

    /// Whether the asker may use the bot: anyone in the experts' space, and in a direct
    /// room a member of that space (or, when the experts are one person, that person).
    async fn is_expert(&self, asker: &Asker<'_>) -> Result<bool, UpstreamError> {
        for place in self.places.all() {
            let expert = match place {
                Destination::RoomId(room) if asker.room_id == room => true,
                Destination::RoomId(room) if asker.direct => {
                    self.is_member_of_experts_space(room, asker.person_id)
                        .await?
                }
                Destination::PersonEmail(expert) if asker.direct => {
                    let email = match asker.email {
                        Some(email) => vec![email.to_string()],
                        None => self.webex.person(asker.person_id).await?.emails,
                    };
                    email.iter().any(|email| email.eq_ignore_ascii_case(expert))
                }
                _ => false,
            };
            if expert {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn is_member_of_experts_space(
        &self,
        room: &str,
        person_id: &str,
    ) -> Result<bool, UpstreamError> {
        let cached = self
            .memberships
            .lock()
            .expect("not poisoned")
            .get(person_id)
            .filter(|(_, at)| at.elapsed() < MEMBERSHIP_TTL)
            .map(|(member, _)| *member);
        if let Some(member) = cached {
            return Ok(member);
        }
        let member = self.webex.is_member(room, person_id).await?;
        let mut memberships = self.memberships.lock().expect("not poisoned");
        memberships.retain(|_, (_, at)| at.elapsed() < MEMBERSHIP_TTL);
        memberships.insert(person_id.to_string(), (member, Instant::now()));
        Ok(member)
    }
}
