//! Booked consultations: a CRM or an administrator books a slot for a customer; the meeting
//! is made at once with links that work only around the slot, the customer is invited at
//! once and reminded before the start, and the desk's experts get the card at reminder
//! time. A customer who writes before the slot is told when it is, and gets no new meeting.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{new_id, Bridge, BridgeError, CLAIM_LEASE, CLAIM_POLL, WAIT_FOR_OTHER_REQUEST};
use crate::customers::texts;
use crate::desks::expert_texts::{self, Offer};
use crate::desks::ExpertDesk;
use crate::domain::audit::{Action, Actor};
use crate::domain::clock;
use crate::domain::{
    window_open, Answer, Appointment, BusinessAddress, Channel, ConversationKey, CustomerAddress,
    Delivery, InboundMessage, MadeMeeting, MeetingLinks, OutboxEntry, Purpose,
};
use crate::store::{Booking, Claim, MeetingClaim, NewAppointment, StoreError};

use super::MessageReply;

/// The longest consultation that can be booked.
const MAX_DURATION_MINUTES: i64 = 8 * 60;
const MAX_NOTE_CHARS: usize = 1000;
const MAX_NAME_CHARS: usize = 100;
/// Why an appointment's scheduled deliveries were not sent (their `last_error`).
const CANCELLED_REASON: &str = "cancelled: the appointment was cancelled";

/// A booking, as `POST /api/appointments` and `icbridge appointments add` take it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppointmentRequest {
    /// `sms` or `whatsapp`.
    #[schema(value_type = crate::domain::names::ChannelName)]
    pub channel: String,
    /// The customer's number, international format (`+14155550123`).
    #[schema(pattern = r"^\+?[1-9][0-9]{6,14}$")]
    pub customer: String,
    /// The business address to write from (the SMS sender or the WhatsApp app); default
    /// `ICB_SMS_SENDER` or `ICB_WHATSAPP_APP_ID`.
    #[serde(default)]
    #[schema(max_length = 64)]
    pub to: Option<String>,
    /// The customer's name, for the texts.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub name: Option<String>,
    /// RFC 3339 with an offset: `2026-12-01T09:00:00+01:00`.
    #[schema(format = DateTime)]
    pub starts_at: String,
    /// 1 to 480; a whole number (`30` or `30.0`).
    #[serde(deserialize_with = "whole_minutes")]
    #[schema(minimum = 1, maximum = 480)]
    pub duration_minutes: i64,
    /// The desk whose experts take it; default the desk the business address routes to.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub desk: Option<String>,
    /// For the experts: shown on the card.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: Option<String>,
}

/// Why a booking or a cancellation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    #[error("`{field}` {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyConflict,
    #[error("the customer already has appointment {0}, which is not over")]
    CustomerBooked(String),
    #[error("{0}")]
    CannotInvite(&'static str),
    #[error("no appointment with id {0}")]
    Unknown(String),
    #[error("the appointment is cancelled already")]
    AlreadyCancelled,
    #[error(transparent)]
    Bridge(#[from] BridgeError),
}

impl From<StoreError> for AppointmentError {
    fn from(error: StoreError) -> Self {
        AppointmentError::Bridge(error.into())
    }
}

/// A booking's answer: the appointment, and whether this request booked it (else it is the
/// one booked before with the same Idempotency-Key).
#[derive(Debug, Clone)]
pub struct AppointmentOutcome {
    pub appointment: Appointment,
    pub created: bool,
}

/// A valid booking.
struct Slot {
    key: ConversationKey,
    name: Option<String>,
    starts_at: i64,
    ends_at: i64,
    desk: String,
    note: Option<String>,
}

/// `durationMinutes`: a whole number, written as JSON writes it (`30`, or `30.0` as some
/// clients serialise every number).
fn whole_minutes<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)
        .map_err(|_| serde::de::Error::custom("`durationMinutes` must be a whole number"))?;
    number
        .as_i64()
        .or_else(|| {
            number
                .as_f64()
                .filter(|minutes| minutes.fract() == 0.0 && minutes.abs() < 1e15)
                .map(|minutes| minutes as i64)
        })
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`durationMinutes` must be a whole number, not {number}"
            ))
        })
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AppointmentError {
    AppointmentError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Optional text, trimmed; empty is absent.
fn optional(
    text: &Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, AppointmentError> {
    let text = text.as_deref().map(str::trim).filter(|t| !t.is_empty());
    match text {
        Some(text) if text.chars().count() > max => {
            Err(invalid(field, format!("is longer than {max} characters")))
        }
        text => Ok(text.map(str::to_string)),
    }
}

impl Bridge {
    /// Books a consultation (see the module). With `idempotency_key`, a repeat of the same
    /// request gets the same appointment; the key with another request is refused.
    ///
    /// (A little over a page: the booking's steps in the order they run, each with what
    /// undoes it when a later one fails.)
    pub async fn book_appointment(
        &self,
        request: &AppointmentRequest,
        idempotency_key: Option<&str>,
        actor: &Actor,
    ) -> Result<AppointmentOutcome, AppointmentError> {
        let store = &self.inner.store;
        let request_json = serde_json::to_vec(request).expect("a request serialises");
        // What an Idempotency-Key's repeat must match.
        let digest = hex::encode(Sha256::digest(request_json));
        if let Some(key) = idempotency_key {
            if let Some(earlier) = store.appointment_by_idempotency_key(key).await? {
                return Self::repeat(earlier, &digest);
            }
        }
        let slot = self.valid_slot(request)?;
        // Refused before the broker is asked (and again in the booking's transaction).
        if let Some(booked) = store.booked_appointment_for(&slot.key, self.now()).await? {
            return Err(AppointmentError::CustomerBooked(booked.id));
        }
        let desk = self.inner.desks.of(Some(&slot.desk));
        let policy = &self.inner.policy;
        let margin = policy.appointment_early_join.as_millis() as i64;
        let (links_from, links_until) = (slot.starts_at - margin, slot.ends_at + margin);
        // Concurrent bookings of one customer (the same request sent twice at once, above
        // all): one claims the customer's conversation and asks the broker; the others wait
        // for its appointment and answer with it.
        let claim_id = new_id();
        let sub = match self
            .claim_for_booking(&slot.key, &claim_id, idempotency_key, &digest)
            .await?
        {
            Ok(sub) => sub,
            Err(outcome) => return outcome,
        };
        let request_links = self.meeting_request(&sub, Some(links_from), links_until);
        let links = match self.new_meeting_links(&request_links).await {
            Ok(links) => links,
            Err(error) => {
                store
                    .release_claim(&slot.key, &claim_id, Some(self.now()))
                    .await?;
                return Err(error.into());
            }
        };
        let (links, redirects) = self.hand_out(links);
        let now = self.now();
        let window = (links_from, links_until);
        let (now_deliveries, scheduled, remind_at) =
            self.booking_deliveries(&slot, desk, &links, window, now);
        let id = new_id();
        let detail = format!("{} at {}", desk.name, clock::rfc3339(slot.starts_at));
        let audit = self.audit_entry(
            actor,
            Action::Book,
            format!("appointment {id}"),
            Some(detail),
        );
        let booking = store
            .book_appointment(NewAppointment {
                meeting: MadeMeeting {
                    key: slot.key.clone(),
                    customer_name: slot.name.clone(),
                    conversation_id: new_id(),
                    desk: desk.name.clone(),
                    meeting_id: new_id(),
                    sub,
                    claim_id: claim_id.clone(),
                    links,
                    redirects,
                },
                id,
                links_from,
                links_until,
                starts_at: slot.starts_at,
                ends_at: slot.ends_at,
                note: slot.note.clone(),
                idempotency: idempotency_key.map(|key| (key.to_string(), digest.clone())),
                now_deliveries,
                scheduled,
                scheduled_at: remind_at,
                audit,
                now,
            })
            .await;
        // Ended with a booking stored; given back (its subject kept) when none was.
        store.release_claim(&slot.key, &claim_id, None).await?;
        self.booked(booking, idempotency_key, &digest, &slot).await
    }

    /// The messages a booking sends: the invitation now; the reminder and the experts'
    /// card at the reminder's time (`remind_at`), or now when the booking is that close.
    fn booking_deliveries(
        &self,
        slot: &Slot,
        desk: &ExpertDesk,
        links: &MeetingLinks,
        (links_from, links_until): (i64, i64),
        now: i64,
    ) -> (Vec<OutboxEntry>, Vec<OutboxEntry>, i64) {
        let when = desk.local_time(slot.starts_at);
        let from = desk.local_time(links_from);
        let guest_url = links.guest_url.to_string();
        let name = slot.name.as_deref();
        let invitation = self.about_the_slot(
            slot,
            texts::appointment_booked(name, &desk.name, &when, &from, &guest_url),
            &when,
            &guest_url,
        );
        let message = InboundMessage {
            key: slot.key.clone(),
            text: slot.note.clone().unwrap_or_default(),
            message_id: None,
            customer_name: slot.name.clone(),
            media: Default::default(),
            button: None,
        };
        let (markdown, card) = expert_texts::notification(
            &message,
            Offer::Meeting {
                host_url: links.host_url.as_str(),
                expires_at: links_until,
            },
            &self.other_desks(&desk.name),
        );
        let markdown = expert_texts::appointment_due(&when) + &markdown;
        let card = Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification);
        let reminder = self.about_the_slot(
            slot,
            texts::appointment_reminder(name, &desk.name, &when, &guest_url),
            &when,
            &guest_url,
        );
        let remind_at = slot.starts_at - self.inner.policy.appointment_reminder.as_millis() as i64;
        // Booked less than the reminder's lead before the start: the invitation is the
        // reminder, and the experts get the card now.
        if remind_at <= now {
            (vec![invitation, card], Vec::new(), remind_at)
        } else {
            (vec![invitation], vec![reminder, card], remind_at)
        }
    }

    /// The answer to a booking the store took (or refused): with an idempotency key that
    /// another request stored first, that request's appointment.
    async fn booked(
        &self,
        booking: Result<Booking, StoreError>,
        idempotency_key: Option<&str>,
        digest: &str,
        slot: &Slot,
    ) -> Result<AppointmentOutcome, AppointmentError> {
        let booking = match booking {
            Ok(booking) => booking,
            // Two requests with the same key at once: the other one's booking stands.
            Err(error) => match idempotency_key {
                Some(key) => match self.inner.store.appointment_by_idempotency_key(key).await? {
                    Some(earlier) => return Self::repeat(earlier, digest),
                    None => return Err(error.into()),
                },
                None => return Err(error.into()),
            },
        };
        match booking {
            Booking::Booked(appointment) => {
                self.wake_outbox();
                self.inner.metrics.meeting_created();
                tracing::info!(appointment = %appointment.id, customer = %slot.key.customer,
                    desk = %appointment.desk, "consultation booked");
                Ok(AppointmentOutcome {
                    appointment,
                    created: true,
                })
            }
            Booking::Existing(earlier) => Self::repeat(earlier, digest),
            Booking::CustomerBooked(booked) => Err(AppointmentError::CustomerBooked(booked.id)),
        }
    }

    /// Claims the customer's conversation for a booking (see `Store::claim_meeting`):
    /// `Ok(Ok(sub))` with the meeting's subject, or `Ok(Err(answer))` when another request
    /// booked meanwhile (the same request: its appointment; another: the customer is
    /// booked) or failed (its error).
    async fn claim_for_booking(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        idempotency_key: Option<&str>,
        digest: &str,
    ) -> Result<Result<String, Result<AppointmentOutcome, AppointmentError>>, AppointmentError>
    {
        let store = &self.inner.store;
        let started = std::time::Instant::now();
        let started_ms = self.now();
        loop {
            let now = self.now();
            let claim = store
                .claim_meeting(MeetingClaim {
                    key: key.clone(),
                    claim_id: claim_id.to_string(),
                    new_sub: uuid::Uuid::new_v4().to_string(),
                    arrived_at: started_ms,
                    now,
                    until: now + CLAIM_LEASE.as_millis() as i64,
                    limit: None,
                    message: None,
                })
                .await?;
            let (sub, failed_at) = match claim {
                Claim::Claimed { sub, .. } => (Some(sub), None),
                Claim::Busy { failed_at } => (None, failed_at),
                Claim::Answered(_) => (None, None),
            };
            // Looked at again under the claim too: the holder before may have booked and
            // ended its claim just now.
            let earlier = match idempotency_key {
                Some(key) => store
                    .appointment_by_idempotency_key(key)
                    .await?
                    .map(|earlier| Self::repeat(earlier, digest)),
                None => None,
            };
            let answer = match earlier {
                Some(answer) => Some(answer),
                None => store
                    .booked_appointment_for(key, now)
                    .await?
                    .map(|booked| Err(AppointmentError::CustomerBooked(booked.id))),
            };
            match (sub, answer) {
                (Some(_), Some(answer)) => {
                    store.release_claim(key, claim_id, None).await?;
                    return Ok(Err(answer));
                }
                (Some(sub), None) => return Ok(Ok(sub)),
                (None, Some(answer)) => return Ok(Err(answer)),
                (None, None) => {}
            }
            if failed_at.is_some_and(|failed| failed >= started_ms)
                || started.elapsed() >= WAIT_FOR_OTHER_REQUEST
            {
                return Ok(Err(Err(BridgeError::MeetingUnavailable.into())));
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }

    /// The answer to a repeated Idempotency-Key.
    fn repeat(earlier: Appointment, digest: &str) -> Result<AppointmentOutcome, AppointmentError> {
        if earlier.request_digest.as_deref() != Some(digest) {
            return Err(AppointmentError::IdempotencyConflict);
        }
        Ok(AppointmentOutcome {
            appointment: earlier,
            created: false,
        })
    }

    fn valid_slot(&self, request: &AppointmentRequest) -> Result<Slot, AppointmentError> {
        let channel = match request.channel.trim() {
            "" => {
                return Err(invalid(
                    "channel",
                    "is empty; it must be `sms` or `whatsapp`",
                ))
            }
            raw => Channel::parse(raw)
                .ok_or_else(|| invalid("channel", "must be `sms` or `whatsapp`"))?,
        };
        let customer = CustomerAddress::parse(channel, &request.customer)
            .map_err(|e| invalid("customer", e.to_string()))?;
        let replies = self
            .inner
            .customer_replies
            .as_ref()
            .ok_or(AppointmentError::CannotInvite(
            "icbridge cannot send invitations: set ICB_CONNECT_API_URL and ICB_CONNECT_SERVICE_KEY",
        ))?;
        if channel == Channel::Whatsapp && replies.whatsapp_template.is_none() {
            return Err(AppointmentError::CannotInvite(
                "a WhatsApp invitation needs the approved template: set ICB_WHATSAPP_TEMPLATE",
            ));
        }
        let default_sender = match channel {
            Channel::Sms => replies.senders.sms_sender.clone(),
            Channel::Whatsapp => replies.senders.whatsapp_app_id.clone(),
        };
        let to = optional(&request.to, "to", 64)?
            .or(default_sender)
            .ok_or_else(|| {
                invalid(
                    "to",
                    "is needed: no ICB_SMS_SENDER or ICB_WHATSAPP_APP_ID is set",
                )
            })?;
        let business = BusinessAddress::parse(&to).map_err(|e| invalid("to", e.to_string()))?;
        let (starts_at, ends_at) = self.slot_times(request)?;
        let desk = self.slot_desk(request, &business)?;
        Ok(Slot {
            key: ConversationKey {
                channel,
                customer,
                business,
            },
            name: optional(&request.name, "name", MAX_NAME_CHARS)?,
            starts_at,
            ends_at,
            desk,
            note: optional(&request.note, "note", MAX_NOTE_CHARS)?,
        })
    }

    /// When the slot starts and ends: a time to come, for a sensible duration.
    fn slot_times(&self, request: &AppointmentRequest) -> Result<(i64, i64), AppointmentError> {
        let starts_at = request
            .starts_at
            .trim()
            .parse::<jiff::Timestamp>()
            .map_err(|_| {
                invalid(
                    "startsAt",
                    "must be RFC 3339 with an offset (2026-12-01T09:00:00+01:00)",
                )
            })?
            .as_millisecond();
        if starts_at <= self.now() {
            return Err(invalid("startsAt", "is in the past"));
        }
        if !(1..=MAX_DURATION_MINUTES).contains(&request.duration_minutes) {
            return Err(invalid(
                "durationMinutes",
                format!("must be 1 to {MAX_DURATION_MINUTES} (8 hours)"),
            ));
        }
        Ok((starts_at, starts_at + request.duration_minutes * 60_000))
    }

    /// The desk named, or the one the business address routes to.
    fn slot_desk(
        &self,
        request: &AppointmentRequest,
        business: &BusinessAddress,
    ) -> Result<String, AppointmentError> {
        let desks = &self.inner.desks;
        let desk = match optional(&request.desk, "desk", 100)? {
            Some(name) => desks
                .find(&name)
                .ok_or_else(|| {
                    let names: Vec<_> = desks.all().iter().map(|d| d.name.as_str()).collect();
                    invalid(
                        "desk",
                        format!("is not a desk; the desks are {}", names.join(", ")),
                    )
                })?
                .name
                .clone(),
            None => desks.route(business, "").name.clone(),
        };
        Ok(desk)
    }

    /// A message about the slot: by SMS `text`; on WhatsApp the approved template (the
    /// customer has usually not written in 24 hours), `{appointment}` being the time.
    fn about_the_slot(
        &self,
        slot: &Slot,
        text: String,
        when: &str,
        guest_url: &str,
    ) -> OutboxEntry {
        let replies = self
            .inner
            .customer_replies
            .as_ref()
            .expect("checked when the slot was validated");
        match (
            replies.senders.reply(&slot.key, text),
            &replies.whatsapp_template,
        ) {
            (Delivery::Whatsapp { app_id, waid, .. }, Some(template)) => {
                Delivery::WhatsappTemplate {
                    app_id,
                    waid,
                    template: template.id.clone(),
                    parameters: template.parameters(
                        slot.name.as_deref(),
                        Some(guest_url),
                        Some(when),
                    ),
                }
            }
            (delivery, _) => delivery,
        }
        .entry(Purpose::CustomerReply)
    }

    pub async fn appointments(
        &self,
        from: Option<i64>,
        to: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Appointment>, BridgeError> {
        let from = from.unwrap_or_else(|| self.now());
        self.inner
            .store
            .appointments(from, to.unwrap_or(i64::MAX), limit)
            .await
            .map_err(BridgeError::from)
    }

    pub async fn appointment(&self, id: &str) -> Result<Option<Appointment>, BridgeError> {
        self.inner
            .store
            .appointment(id)
            .await
            .map_err(BridgeError::from)
    }

    /// Cancels a booked appointment: the customer is told, the thread too, the reminder and
    /// the card are not sent, the links end (icbridge's own show the ended page) and the
    /// conversation closes.
    pub async fn cancel_appointment(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<Appointment, AppointmentError> {
        let store = &self.inner.store;
        let appointment = store
            .appointment(id)
            .await?
            .ok_or_else(|| AppointmentError::Unknown(id.to_string()))?;
        if appointment.state != "booked" {
            return Err(AppointmentError::AlreadyCancelled);
        }
        let desk = self.inner.desks.of(Some(&appointment.desk));
        let when = desk.local_time(appointment.starts_at);
        let conversation = self
            .known_conversation(&appointment.conversation_id)
            .await?;
        // On WhatsApp only a customer who wrote in the last 24 hours can be told: the
        // approved template invites, it does not cancel.
        let reachable = match conversation.key.channel {
            Channel::Sms => true,
            Channel::Whatsapp => window_open(
                store
                    .last_customer_message_at(&conversation.id, None)
                    .await?,
                self.now(),
            ),
        };
        let told = match reachable {
            true => self.to_customer(
                &conversation.key,
                texts::appointment_cancelled(&desk.name, &when),
            ),
            false => Vec::new(),
        };
        let note = expert_texts::appointment_cancelled(&when, &actor.shown(), !told.is_empty());
        let mut deliveries: Vec<OutboxEntry> = told;
        deliveries.push(Self::to_thread(note));
        let audit = self.audit_entry(actor, Action::Cancel, format!("appointment {id}"), None);
        let cancelled = store
            .cancel_appointment(
                &appointment,
                deliveries,
                CANCELLED_REASON,
                audit,
                self.now(),
            )
            .await?;
        if !cancelled {
            return Err(AppointmentError::AlreadyCancelled);
        }
        self.wake_outbox();
        tracing::info!(appointment = %id, "appointment cancelled");
        Ok(store.appointment(id).await?.unwrap_or(appointment))
    }

    /// The customer's appointment whose links do not work yet, if they have one: a message
    /// before the slot is answered with it.
    pub(super) async fn appointment_ahead(
        &self,
        key: &ConversationKey,
    ) -> Result<Option<Ahead>, StoreError> {
        let Some(appointment) = self.inner.store.appointment_ahead(key, self.now()).await? else {
            return Ok(None);
        };
        let desk = self.inner.desks.of(Some(&appointment.desk));
        let text = texts::appointment_ahead(
            &desk.name,
            &desk.local_time(appointment.starts_at),
            &desk.local_time(appointment.links_from),
            &appointment.guest_url,
        );
        Ok(Some(Ahead { appointment, text }))
    }

    /// A message (stored as `message_row`) from a customer whose appointment's links do not
    /// work yet: answered with the appointment's meeting and shown to the experts; the
    /// reply names the slot. No new meeting.
    pub(super) async fn answer_ahead_of_slot(
        &self,
        message: &InboundMessage,
        message_row: i64,
        ahead: Ahead,
    ) -> Result<MessageReply, StoreError> {
        let mut follow_ups = self.follow_ups(message);
        follow_ups.link_reply = None;
        follow_ups.relays.extend(self.answer_to_customer(
            &message.key,
            ahead.text.clone(),
            Purpose::CustomerReply,
        ));
        self.inner
            .store
            .answer_with(
                message_row,
                &message.key,
                &ahead.answer(),
                &follow_ups,
                self.now(),
            )
            .await?;
        self.wake_outbox();
        tracing::info!(customer = %message.key.customer, appointment = %ahead.appointment.id,
            "message before the booked slot answered with the slot");
        Ok(ahead.reply())
    }
}

/// A booked appointment whose links do not work yet, and the text that says when it is.
pub(super) struct Ahead {
    pub appointment: Appointment,
    text: String,
}

impl Ahead {
    /// Its meeting, as the answer to a message.
    fn answer(&self) -> Answer {
        let a = &self.appointment;
        Answer {
            conversation_id: a.conversation_id.clone(),
            meeting_id: a.meeting_id.clone(),
            guest_url: a.guest_url.clone(),
            host_url: a.host_url.clone(),
            expires_at: a.links_until,
            opened_meeting: false,
            desk: Some(a.desk.clone()),
        }
    }

    /// The reply to a message before the slot: its meeting, and the text naming the slot.
    pub fn reply(&self) -> MessageReply {
        let a = &self.appointment;
        MessageReply {
            conversation_id: Some(a.conversation_id.clone()),
            meeting_id: Some(a.meeting_id.clone()),
            guest_url: Some(a.guest_url.clone()),
            expires_at: Some(clock::rfc3339(a.links_until)),
            ..MessageReply::without_meeting(None, self.text.clone())
        }
    }
}
