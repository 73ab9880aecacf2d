//! The rating after the call (`ICB_SURVEY`): the question asked with a close, and the
//! customer's answer recorded as the conversation's rating (see `crate::customers::survey`).

use super::{Bridge, BridgeError, CloseOutcome, MessageReply};
use crate::customers::survey;
use crate::desks::expert_texts;
use crate::domain::audit::Actor;
use crate::domain::RatingRecord;
use crate::domain::{window_open, Channel, FollowUps, InboundMessage, Purpose};
use crate::store::{same_message, NewSurvey, Rating, RatingOutcome, Recorded, StoreError};

impl Bridge {
    /// The survey's question for the customer of conversation `id`, asked with its close
    /// (`ICB_SURVEY`) if icbridge can reach them and the conversation is open; on WhatsApp
    /// only within their 24-hour window (the question is no template). Whether they opted
    /// out is checked with the close (see `Store::close_conversation`).
    pub(super) async fn survey_for(&self, id: &str) -> Result<Option<NewSurvey>, StoreError> {
        let Some(replies) = self.inner.customer_replies.as_ref().filter(|r| r.survey) else {
            return Ok(None);
        };
        let store = &self.inner.store;
        let Some(conversation) = store.conversation(id).await?.filter(|c| c.open) else {
            return Ok(None);
        };
        let key = &conversation.key;
        if key.channel == Channel::Whatsapp
            && !window_open(store.last_customer_message_at(id, None).await?, self.now())
        {
            return Ok(None);
        }
        let desk = self.inner.desks.of(conversation.desk.as_deref());
        let text = desk.survey().question(
            key.channel,
            &desk.name,
            conversation.customer_name.as_deref(),
        );
        let question = replies.senders.question(key, text, survey::buttons());
        Ok(Some(NewSurvey {
            question: question.entry(Purpose::CustomerReply),
        }))
    }

    /// The rating a message gives, if it reads as an answer to the survey (and surveys
    /// are asked): whether one waits for it is the store's to say.
    pub(super) fn survey_answer(&self, message: &InboundMessage) -> Option<i64> {
        self.inner
            .customer_replies
            .as_ref()
            .filter(|replies| replies.survey)?;
        survey::rating_of(
            message.key.channel,
            &message.text,
            message.button.as_deref(),
        )
    }

    /// A customer's answer to the survey of their conversation closed within a day: recorded
    /// once (a repeat of the message gets the same thanks), kept in that conversation's
    /// transcript, thanked (through Webex Connect when icbridge sends replies) and posted in
    /// its thread; no conversation opens and no meeting is made. `None` when no survey
    /// waits for it (none asked within a day, answered already, or the customer is in an
    /// open conversation): the message is one like any other.
    pub(super) async fn answer_survey(
        &self,
        message: &InboundMessage,
        rating: i64,
    ) -> Result<Option<MessageReply>, StoreError> {
        let store = &self.inner.store;
        let key = &message.key;
        let now = self.now();
        let Some(asked) = store
            .latest_survey(key, now - survey::ANSWER_WITHIN_MS)
            .await?
        else {
            return Ok(None);
        };
        let desk = self.inner.desks.of(asked.desk.as_deref());
        let thanks = desk
            .survey()
            .thanks(&desk.name, message.customer_name.as_deref());
        let reply =
            MessageReply::without_meeting(Some(asked.conversation_id.clone()), thanks.clone());
        match &asked.answered {
            Some((_, by)) if same_message(by.as_deref(), message.message_id.as_ref()) => {
                return Ok(Some(reply))
            }
            Some(_) => return Ok(None),
            None if asked.customer_busy => return Ok(None),
            None => {}
        }
        if store.is_opted_out(key).await? {
            return Ok(None);
        }
        // Recorded as a message that no meeting may answer.
        let message_row = match store
            .record_message(message, i64::MAX, &FollowUps::default(), now)
            .await?
        {
            Recorded::New { message_row } | Recorded::Repeat { message_row, .. } => message_row,
            Recorded::Answered(_) => return Ok(None),
        };
        let thanks = self.answer_to_customer(key, thanks, Purpose::CustomerReply);
        let note = Self::to_thread(expert_texts::rated(rating));
        let outcome = store
            .record_rating(Rating {
                conversation_id: asked.conversation_id.clone(),
                message_row,
                rating,
                deliveries: thanks.into_iter().chain([note]).collect(),
                now,
            })
            .await?;
        match outcome {
            RatingOutcome::Recorded => {
                self.inner.metrics.rated(&desk.name, rating);
                self.wake_outbox();
                tracing::info!(customer = %key.customer, conversation = %asked.conversation_id,
                    rating, "survey answered");
                Ok(Some(reply))
            }
            RatingOutcome::AlreadyRecorded => Ok(Some(reply)),
            RatingOutcome::AnsweredByAnother => Ok(None),
        }
    }

    /// The newest `limit` ratings.
    pub async fn ratings(&self, limit: i64) -> Result<Vec<RatingRecord>, BridgeError> {
        self.inner
            .store
            .ratings(limit)
            .await
            .map_err(BridgeError::from)
    }

    /// With `ICB_SURVEY`: closes the open conversations whose newest meeting's links ran
    /// out within the last day with nothing written since (the consultation is over), so
    /// that their customers are asked for a rating. Returns how many were closed.
    pub async fn close_ended_meetings(&self) -> Result<usize, BridgeError> {
        let surveys = self
            .inner
            .customer_replies
            .as_ref()
            .is_some_and(|replies| replies.survey);
        if !surveys {
            return Ok(0);
        }
        let now = self.now();
        let ended = self
            .inner
            .store
            .conversations_of_ended_meetings(now - ENDED_WITHIN_MS, now, ENDED_BATCH)
            .await?;
        let mut closed = 0;
        for id in ended {
            match self.close(&id, &Actor::MeetingEnded).await {
                Ok(CloseOutcome::Closed) => closed += 1,
                Ok(CloseOutcome::AlreadyClosed | CloseOutcome::Booked { .. })
                | Err(BridgeError::UnknownConversation(_)) => {}
                Err(error @ BridgeError::Store(_)) => return Err(error),
                Err(error) => tracing::warn!(conversation = %id, %error, "not closed"),
            }
        }
        Ok(closed)
    }
}

/// Meetings that ended longer ago than this are left alone (conversations from before the
/// survey was turned on).
const ENDED_WITHIN_MS: i64 = 24 * 3_600_000;
/// Conversations closed in one round, at most; the next round takes more.
const ENDED_BATCH: i64 = 100;
