//! Whether a message may go to its recipient now. Decided here, by the outbox at send time,
//! for every message icbridge sends to a customer's or a guest's number (relays, meeting
//! links, invitations, reminders, the survey, templates), whenever it was queued:
//!
//! - **Opt-out**: a recipient who sent STOP gets nothing but the answer to their STOP,
//!   START or HELP (`opted_out`). The store reads the *recipient's* opt-out with the row
//!   (`OutboxRow::customer_opted_out`), so a guest who opted out is not invited either.
//! - **WhatsApp's 24-hour window**: a free-form WhatsApp message outside the recipient's
//!   window is held for the customer (and released when they write, or replaced by the
//!   approved template), and cancelled for anyone else, who cannot release it
//!   (`held_for_the_window`).
//!
//! Elsewhere, intake does not answer an opted-out customer on its fast path and the survey
//! is not asked of one: those only spare queuing a message this module would cancel.

use crate::delivery::window;
use crate::domain::{window_open, Delivery, OutboxRow, Purpose};
use crate::store::{Outcome, StoreError};

use super::OutboxWorker;

/// Why a row to a customer who opted out was not sent (the row's `last_error`).
pub const OPTED_OUT: &str = "cancelled: the customer opted out (STOP)";
/// Why the survey's question to a WhatsApp customer was not sent (the row's `last_error`).
pub const SURVEY_OUTSIDE_WINDOW: &str =
    "cancelled: the customer's 24-hour WhatsApp window closed before the survey went out";
/// Why a WhatsApp text to someone other than the conversation's customer was not sent.
pub const RECIPIENT_OUTSIDE_WINDOW: &str =
    "cancelled: the recipient has not written on WhatsApp in the last 24 hours (send an approved template)";

/// A row to a recipient who opted out is cancelled, whenever it was queued; only the answer
/// to their STOP, START or HELP (its own purpose) goes out.
pub(super) fn opted_out(row: &OutboxRow) -> Option<Outcome> {
    if row.kind == Purpose::CUSTOMER_REPLY && row.customer_opted_out != 0 {
        tracing::info!(outbox_id = row.id, "not sent: the recipient opted out");
        return Some(Outcome::Cancelled {
            reason: OPTED_OUT.to_string(),
        });
    }
    None
}

impl OutboxWorker {
    /// A free-form WhatsApp message is judged against the customer's 24-hour window when
    /// it is sent, not when it was queued: outside it, it is held (see `whatsapp_window`).
    /// The survey's buttons are not held: asked when the customer writes next, about
    /// something else, the question would make no sense; it is not asked.
    pub(super) async fn held_for_the_window(
        &self,
        row: &OutboxRow,
        delivery: &Delivery,
    ) -> Option<Outcome> {
        let (Delivery::Whatsapp { app_id, waid, .. }
        | Delivery::WhatsappMedia { app_id, waid, .. }
        | Delivery::WhatsappButtons { app_id, waid, .. }) = delivery
        else {
            return None;
        };
        let conversation = row.conversation_id.as_deref()?;
        let store = &self.parts.store;
        let result =
            async {
                let recipient = row.recipient.as_deref();
                let last = store
                    .last_customer_message_at(conversation, recipient)
                    .await?;
                if window_open(last, self.now()) {
                    return Ok(None);
                }
                // Someone other than the conversation's customer (a guest) whose window is
                // closed: nothing they write would release a held copy, so it is not sent.
                let customer = store
                    .conversation(conversation)
                    .await?
                    .map(|c| c.key.customer);
                if let (Some(recipient), Some(customer)) = (recipient, customer) {
                    if recipient != customer.as_str() {
                        tracing::info!(outbox_id = row.id, conversation,
                        "not sent: the recipient has not written on WhatsApp in the last 24 hours");
                        return Ok(Some(Outcome::Cancelled {
                            reason: RECIPIENT_OUTSIDE_WINDOW.to_string(),
                        }));
                    }
                }
                if matches!(delivery, Delivery::WhatsappButtons { .. }) {
                    tracing::info!(
                        outbox_id = row.id,
                        conversation,
                        "survey not asked: the customer's 24-hour window is closed"
                    );
                    return Ok(Some(Outcome::Cancelled {
                        reason: SURVEY_OUTSIDE_WINDOW.to_string(),
                    }));
                }
                let template = self.parts.whatsapp_template.as_ref();
                let first_held =
                    window::first_held(store, template, conversation, app_id, waid).await?;
                tracing::info!(
                    outbox_id = row.id,
                    conversation,
                    "WhatsApp message held: the customer's 24-hour window is closed"
                );
                Ok::<_, StoreError>(Some(Outcome::Held {
                    first_held,
                    at: self.now(),
                }))
            }
            .await;
        match result {
            Ok(outcome) => outcome,
            Err(error) => Some(Outcome::Postponed {
                next_attempt_at: self.now() + 1000,
                reason: Some(format!(
                    "could not read the customer's last message: {error}"
                )),
            }),
        }
    }
}
