//! What the desk does for each of the experts' commands (see `commands`): close, new link,
//! take, release, transfer, add guest, or relay a reply to the customer; and the answers
//! and refusals the bot gives.

use super::commands::Place;
use super::desk::{Asker, Desk, DeskError};
use crate::bridge::{AddGuestOutcome, BridgeError, CloseOutcome, NewLinkOutcome, TransferOutcome};
use crate::desks::expert_texts::{self};
use crate::domain::audit::Actor;
use crate::domain::{Conversation, Delivery, Destination, Purpose, TakeOutcome, WebexPost};
use crate::upstream::webex::Message;

impl Desk {
    /// A short answer without any data for someone who is not an expert.
    pub(super) async fn refuse(&self, asker: &Asker<'_>, place: &Place) -> Result<(), DeskError> {
        tracing::warn!(
            person = %asker.email.map(mask_email).unwrap_or_else(|| "unknown".into()),
            direct = asker.direct,
            "bot command refused: not an expert"
        );
        self.answer(place, expert_texts::NOT_FOR_YOU.into(), None)
            .await
    }

    pub(super) async fn close(
        &self,
        conversation: &Conversation,
        author: &str,
        place: &Place,
    ) -> Result<(), DeskError> {
        let actor = Actor::Expert(author.to_string());
        match self.bridge.close(&conversation.id, &actor).await {
            Ok(CloseOutcome::Closed) => Ok(()),
            Ok(CloseOutcome::Booked { starts_at, .. }) => {
                let desk = self.bridge.desks().of(conversation.desk.as_deref());
                let text = expert_texts::booked_not_closed(&desk.local_time(starts_at));
                self.answer(place, text, Some(&conversation.id)).await
            }
            Ok(CloseOutcome::AlreadyClosed) | Err(BridgeError::UnknownConversation(_)) => {
                let text = expert_texts::ALREADY_CLOSED.into();
                self.answer(place, text, Some(&conversation.id)).await
            }
            Err(error) => Err(error.into()),
        }
    }

    /// `add guest`: the new guest link goes to the thread (the bridge queues it); what went
    /// wrong is said here.
    pub(super) async fn add_guest(
        &self,
        conversation: &Conversation,
        number: Option<&str>,
        author: &str,
        place: &Place,
    ) -> Result<(), DeskError> {
        let actor = Actor::Expert(author.to_string());
        let answer = match self
            .bridge
            .add_guest(&conversation.id, number, &actor)
            .await
        {
            Ok(AddGuestOutcome::Added { .. }) => return Ok(()),
            Ok(AddGuestOutcome::NoMeeting) => expert_texts::NO_MEETING_FOR_GUEST.to_string(),
            Ok(AddGuestOutcome::Closed) => expert_texts::ALREADY_CLOSED.to_string(),
            Err(BridgeError::Store(error)) => return Err(error.into()),
            Err(BridgeError::InvalidNumber(error)) => format!("Not a phone number: {error}."),
            // Not retried: the expert sees why and can ask again.
            Err(error) => expert_texts::link_failed(&error.to_string()),
        };
        self.answer(place, answer, Some(&conversation.id)).await
    }

    pub(super) async fn new_link(
        &self,
        conversation: &Conversation,
        place: &Place,
    ) -> Result<(), DeskError> {
        let answer = match self.bridge.new_link(&conversation.id).await {
            Ok(NewLinkOutcome::Created) => return Ok(()),
            Ok(NewLinkOutcome::InProgress) => expert_texts::LINK_IN_PROGRESS.to_string(),
            Ok(NewLinkOutcome::Closed) => expert_texts::ALREADY_CLOSED.to_string(),
            Err(BridgeError::Store(error)) => return Err(error.into()),
            // Not retried: the expert sees why and can ask again.
            Err(error) => expert_texts::link_failed(&error.to_string()),
        };
        self.answer(place, answer, Some(&conversation.id)).await
    }

    /// `take`: the thread says who has it (the bridge queues that); a loser of a race,
    /// or a second taker, is told who has it.
    pub(super) async fn take(
        &self,
        conversation: &Conversation,
        author: &str,
        place: &Place,
    ) -> Result<(), DeskError> {
        let answer = match self.bridge.take(&conversation.id, author).await? {
            TakeOutcome::Taken => return Ok(()),
            TakeOutcome::AlreadyYours => expert_texts::ALREADY_YOURS.to_string(),
            TakeOutcome::TakenBy(other) => expert_texts::taken_by_other(&other),
            TakeOutcome::Closed | TakeOutcome::Unknown => expert_texts::ALREADY_CLOSED.to_string(),
        };
        self.answer(place, answer, Some(&conversation.id)).await
    }

    /// `transfer <desk>`: the bridge tells both desks; a wrong name or desk is answered.
    pub(super) async fn transfer(
        &self,
        conversation: &Conversation,
        desk: &str,
        author: &str,
        place: &Place,
    ) -> Result<(), DeskError> {
        let actor = Actor::Expert(author.to_string());
        let answer = match self.bridge.transfer(&conversation.id, desk, &actor).await? {
            TransferOutcome::Transferred => return Ok(()),
            TransferOutcome::UnknownDesk(desks) => expert_texts::unknown_desk(desk, &desks),
            TransferOutcome::AlreadyThere => expert_texts::ALREADY_AT_THAT_DESK.into(),
            TransferOutcome::Closed => expert_texts::ALREADY_CLOSED.into(),
        };
        self.answer(place, answer, Some(&conversation.id)).await
    }

    pub(super) async fn release(
        &self,
        conversation: &Conversation,
        author: &str,
        place: &Place,
    ) -> Result<(), DeskError> {
        if self.bridge.release(&conversation.id, author).await? {
            return Ok(());
        }
        let text = expert_texts::NOT_TAKEN_BY_YOU.to_string();
        self.answer(place, text, Some(&conversation.id)).await
    }

    pub(super) async fn relay(
        &self,
        conversation: &Conversation,
        message: &Message,
        text: &str,
        author: &str,
        place: &Place,
        late: Option<&str>,
    ) -> Result<(), DeskError> {
        // While a conversation is taken, only its assignee answers the customer.
        if let Some(assignee) = conversation.assignee.as_deref().filter(|a| *a != author) {
            let notice = expert_texts::not_the_assignee(assignee);
            return self.answer(place, notice, Some(&conversation.id)).await;
        }
        let refusal = if !conversation.open {
            expert_texts::ALREADY_CLOSED
        } else if !self.bridge.can_reach_customers() {
            expert_texts::RELAY_NOT_CONFIGURED
        } else {
            let mut files = Vec::new();
            if !message.files.is_empty() && !self.files_relayable {
                self.answer(
                    place,
                    expert_texts::FILES_NOT_RELAYED.into(),
                    Some(&conversation.id),
                )
                .await?;
            } else {
                for url in &message.files {
                    files.push(self.webex.file_info(url).await?);
                }
            }
            if text.trim().is_empty() && files.is_empty() {
                return Ok(());
            }
            let relayed = self
                .bridge
                .relay_to_customer(conversation, &message.id, text, &files, Some(author))
                .await?;
            tracing::info!(conversation = %conversation.id, files = files.len(), "expert reply relayed to the customer");
            if let (true, Some(written_at)) = (relayed, late) {
                let notice = expert_texts::relayed_late(written_at);
                self.answer(place, notice, Some(&conversation.id)).await?;
            }
            return Ok(());
        };
        self.answer(place, refusal.into(), Some(&conversation.id))
            .await
    }

    /// The bot's answer, through the outbox like every other message.
    pub(super) async fn answer(
        &self,
        place: &Place,
        markdown: String,
        conversation_id: Option<&str>,
    ) -> Result<(), DeskError> {
        let message = Delivery::WebexMessage(WebexPost {
            destination: Destination::RoomId(place.room_id.clone()),
            markdown,
            parent_id: place.parent_id.clone(),
            attachments: Vec::new(),
            files: Vec::new(),
        });
        self.bridge
            .enqueue(&[(message, Purpose::ExpertNotice)], conversation_id)
            .await?;
        Ok(())
    }
}

/// `m•••@example.com`: enough to tell people apart in a log, not to write to them.
pub(super) fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            format!("{}•••@{domain}", local.chars().next().unwrap_or('?'))
        }
        None => "•••".to_string(),
    }
}
