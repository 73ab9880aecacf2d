//! More people in a meeting: an expert's `add guest` (or the card's button) gets one more
//! guest link for the conversation's live meeting, and may have it sent to a number.

use super::{Bridge, BridgeError};
use crate::customers::texts;
use crate::desks::expert_texts;
use crate::domain::audit::{Action, Actor};
use crate::domain::{
    Channel, ConversationKey, CustomerAddress, Delivery, LinkRole, OutboxEntry, Purpose,
};
use crate::store::NewGuestLink;

/// What became of `add guest`.
#[derive(Debug, PartialEq, Eq)]
pub enum AddGuestOutcome {
    /// The new guest link (also posted in the thread).
    Added {
        guest_url: String,
    },
    /// The conversation has no meeting whose links still work.
    NoMeeting,
    Closed,
}

impl Bridge {
    /// One more guest link for the conversation's live meeting (the broker is asked for a
    /// guest link of the same subject, valid as long as the meeting's), posted in the
    /// thread; with `number`, also sent there by the conversation's channel.
    pub async fn add_guest(
        &self,
        id: &str,
        number: Option<&str>,
        actor: &Actor,
    ) -> Result<AddGuestOutcome, BridgeError> {
        let conversation = self.known_conversation(id).await?;
        if !conversation.open {
            return Ok(AddGuestOutcome::Closed);
        }
        let key = &conversation.key;
        let to = number
            .map(|number| CustomerAddress::parse(key.channel, number))
            .transpose()
            .map_err(BridgeError::InvalidNumber)?;
        let store = &self.inner.store;
        let Some(meeting) = store.live_meeting_of(id, self.now()).await? else {
            return Ok(AddGuestOutcome::NoMeeting);
        };
        let mut request =
            self.meeting_request(&meeting.sub, meeting.not_before, meeting.expires_at);
        (request.hosts, request.guests) = (0, 1);
        let (_, target) = self
            .call_broker(&request)
            .await?
            .into_iter()
            .find(|(role, _)| *role == LinkRole::Guest)
            .expect("the broker client refuses an answer without the guest link asked for");
        let (guest_url, redirect) = match self.own_link(LinkRole::Guest, &target, true) {
            Some((url, redirect)) => (url.to_string(), Some(redirect)),
            None => (target.to_string(), None),
        };
        let sent_to = to.as_ref().map(CustomerAddress::masked);
        let guest = to.map(|to| ConversationKey {
            channel: key.channel,
            customer: to,
            business: key.business.clone(),
        });
        // A number that opted out (STOP) gets nothing: the expert shares the link another
        // way. (The outbox checks each recipient again when it sends.)
        let opted_out = match &guest {
            Some(guest) => store.is_opted_out(guest).await?,
            None => false,
        };
        let note = match (&sent_to, opted_out) {
            (Some(number), true) => {
                expert_texts::guest_not_sent_opted_out(&guest_url, number, &actor.shown())
            }
            _ => expert_texts::guest_added(&guest_url, sent_to.as_deref(), &actor.shown()),
        };
        let mut deliveries = vec![Self::to_thread(note)];
        if let (Some(guest), false) = (&guest, opted_out) {
            deliveries.extend(self.guest_invitation(guest, &guest_url));
        }
        let audit = self.audit_entry(
            actor,
            Action::AddGuest,
            format!("conversation {id}"),
            sent_to.clone().map(|to| format!("sent to {to}")),
        );
        store
            .add_guest_link(NewGuestLink {
                conversation_id: id.to_string(),
                meeting_id: meeting.id,
                url: guest_url.clone(),
                redirect,
                sent_to,
                deliveries,
                audit,
                now: self.now(),
            })
            .await?;
        self.wake_outbox();
        tracing::info!(conversation = %id, "guest link added");
        Ok(AddGuestOutcome::Added { guest_url })
    }

    /// The guest's link, by the conversation's channel: on WhatsApp the approved template
    /// when there is one (the guest has not written), else a text.
    fn guest_invitation(&self, guest: &ConversationKey, guest_url: &str) -> Option<OutboxEntry> {
        let replies = self.inner.customer_replies.as_ref()?;
        let text = texts::guest_invitation(guest_url);
        let delivery = match (guest.channel, replies.senders.reply(guest, text)) {
            (Channel::Whatsapp, Delivery::Whatsapp { app_id, waid, body }) => {
                match &replies.whatsapp_template {
                    Some(template) => Delivery::WhatsappTemplate {
                        app_id,
                        waid,
                        template: template.id.clone(),
                        parameters: template.parameters(None, Some(guest_url), None),
                    },
                    None => Delivery::Whatsapp { app_id, waid, body },
                }
            }
            (_, delivery) => delivery,
        };
        Some(delivery.entry(Purpose::CustomerReply))
    }
}
