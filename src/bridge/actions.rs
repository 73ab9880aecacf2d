//! What experts (in Webex, in the console) and administrators do to a conversation: close,
//! take, release, transfer, relay a reply, ask for a new link.

use super::{new_id, Bridge, BridgeError, CLAIM_LEASE};
use crate::desks::expert_texts::{self, Offer};
use crate::desks::Desks;
use crate::domain::audit::{Action, Actor};
use crate::domain::{Conversation, MadeMeeting, TakeOutcome};
use crate::domain::{Delivery, ExpertFile, InboundMessage, OutboxEntry, Purpose};
use crate::store::{Claim, ExpertMessage, MeetingClaim, NewMeeting};
use uuid::Uuid;

/// What became of a request for a new meeting (`new link`).
#[derive(Debug, PartialEq, Eq)]
pub enum NewLinkOutcome {
    Created,
    /// Another request is creating a meeting for the conversation right now.
    InProgress,
    Closed,
}

/// What became of a request to move a conversation to another desk.
#[derive(Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    Transferred,
    /// No desk of that name; the desks there are.
    UnknownDesk(Vec<String>),
    AlreadyThere,
    Closed,
}

/// What became of a request to close a conversation.
#[derive(Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    Closed,
    AlreadyClosed,
    /// Not closed: it has a booked consultation that is not over (it stays open for it;
    /// cancelling the appointment closes it).
    Booked {
        appointment_id: String,
        starts_at: i64,
    },
}

impl Bridge {
    /// Closes a conversation, telling the experts' thread who closed it. The expert's
    /// `close`, the console, the admin API and the CLI all come here.
    pub async fn close(&self, id: &str, actor: &Actor) -> Result<CloseOutcome, BridgeError> {
        let store = &self.inner.store;
        if let Some(booked) = store.booked_appointment_of(id, self.now()).await? {
            return Ok(CloseOutcome::Booked {
                appointment_id: booked.id,
                starts_at: booked.starts_at,
            });
        }
        let closed_by = actor.shown();
        let notice = Self::to_thread(expert_texts::closed(&closed_by));
        let audit = self.audit_entry(actor, Action::Close, format!("conversation {id}"), None);
        let survey = self.survey_for(id).await?;
        if store
            .close_conversation(id, &closed_by, &[notice], survey, audit, self.now())
            .await?
        {
            self.wake_outbox();
            tracing::info!(conversation = %id, "conversation closed");
            return Ok(CloseOutcome::Closed);
        }
        match store.conversation(id).await? {
            Some(_) => Ok(CloseOutcome::AlreadyClosed),
            None => Err(BridgeError::UnknownConversation(id.to_string())),
        }
    }

    /// Makes `who` (an expert's Webex email or id) the conversation's assignee, telling the
    /// thread; the expert's `take`, the card's Take button and the console come here.
    pub async fn take(&self, id: &str, who: &str) -> Result<TakeOutcome, BridgeError> {
        let notice = Self::to_thread(expert_texts::taken(who));
        let outcome = self
            .inner
            .store
            .take_conversation(id, who, &[notice], self.now())
            .await?;
        if outcome == TakeOutcome::Taken {
            self.wake_outbox();
            tracing::info!(conversation = %id, "conversation taken");
            if let Some(conversation) = self.inner.store.conversation(id).await? {
                let waited = (self.now() - conversation.created_at) as f64 / 1000.0;
                self.inner
                    .metrics
                    .conversation_taken(&self.desk_of(&conversation), waited);
                // A customer who wrote out of hours has no meeting yet: the expert who
                // takes the conversation gets one, and the customer its link.
                if conversation.links_expire_at.is_none() {
                    self.meeting_for_taker(id).await?;
                }
            }
        }
        Ok(outcome)
    }

    /// Makes the meeting of a conversation taken without one. The take stands when the
    /// broker fails: the thread says so, and `new link` tries again.
    async fn meeting_for_taker(&self, id: &str) -> Result<(), BridgeError> {
        match self.new_link(id).await {
            Ok(_) => Ok(()),
            Err(BridgeError::Store(error)) => Err(error.into()),
            Err(error) => {
                tracing::warn!(conversation = %id, %error, "no meeting for a taken conversation");
                let notice = Self::to_thread(expert_texts::link_failed(&error.to_string()));
                self.inner
                    .store
                    .enqueue(&[notice], Some(id), self.now())
                    .await?;
                self.wake_outbox();
                Ok(())
            }
        }
    }

    /// The desks, as configured.
    pub fn desks(&self) -> &Desks {
        &self.inner.desks
    }

    /// The desk a conversation belongs to (conversations from before desks: the default).
    pub fn desk_of(&self, conversation: &Conversation) -> String {
        conversation
            .desk
            .clone()
            .unwrap_or_else(|| self.inner.desks.default_desk().name.clone())
    }

    /// Moves a conversation to another desk: a note in the old thread, and the other desk
    /// gets a notification (the newest meeting's host link, the customer's last message),
    /// which opens the conversation's thread there. `transfer <desk>` and the card come here.
    pub async fn transfer(
        &self,
        id: &str,
        to: &str,
        actor: &Actor,
    ) -> Result<TransferOutcome, BridgeError> {
        let by = actor.shown();
        let by = by.as_str();
        let desks = &self.inner.desks;
        let Some(target) = desks.find(to) else {
            let names = desks.all().iter().map(|d| d.name.clone()).collect();
            return Ok(TransferOutcome::UnknownDesk(names));
        };
        let store = &self.inner.store;
        let conversation = self.known_conversation(id).await?;
        if !conversation.open {
            return Ok(TransferOutcome::Closed);
        }
        let current = self.desk_of(&conversation);
        if current == target.name {
            return Ok(TransferOutcome::AlreadyThere);
        }
        let meeting = store.meetings_of(id).await?.pop();
        let last_words = store
            .transcript(id)
            .await?
            .into_iter()
            .rev()
            .find(|line| line.author == "customer")
            .map(|line| line.text)
            .unwrap_or_default();
        let message = InboundMessage {
            key: conversation.key.clone(),
            text: last_words,
            message_id: None,
            customer_name: conversation.customer_name.clone(),
            media: Default::default(),
            button: None,
        };
        let offer = match &meeting {
            Some(meeting) => Offer::Meeting {
                host_url: &meeting.host_url,
                expires_at: meeting.expires_at,
            },
            None => Offer::Waiting {
                since: conversation.created_at,
            },
        };
        let (markdown, card) =
            expert_texts::notification(&message, offer, &self.other_desks(&target.name));
        let markdown = expert_texts::transferred_from(&current, by) + &markdown;
        let mut deliveries = Vec::new();
        if let Some(thread) = conversation.thread_message_id.clone() {
            let note = Delivery::DeskThreadMessage {
                markdown: expert_texts::transferred(&target.name, by),
                desk: Some(current),
                thread_message_id: thread,
            };
            deliveries.push(note.entry(Purpose::ExpertNotice));
        }
        deliveries
            .push(Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification));
        let detail = format!("to desk {}", target.name);
        let audit = self.audit_entry(
            actor,
            Action::Transfer,
            format!("conversation {id}"),
            Some(detail),
        );
        if !store
            .transfer_conversation(id, &target.name, &deliveries, audit, self.now())
            .await?
        {
            return Ok(TransferOutcome::Closed);
        }
        self.wake_outbox();
        tracing::info!(conversation = %id, desk = %target.name, "conversation transferred");
        Ok(TransferOutcome::Transferred)
    }

    pub(super) async fn known_conversation(&self, id: &str) -> Result<Conversation, BridgeError> {
        self.inner
            .store
            .conversation(id)
            .await?
            .ok_or_else(|| BridgeError::UnknownConversation(id.to_string()))
    }

    /// The desks a conversation of `desk` could move to.
    pub(super) fn other_desks(&self, desk: &str) -> Vec<String> {
        self.inner
            .desks
            .all()
            .iter()
            .filter(|d| d.name != desk)
            .map(|d| d.name.clone())
            .collect()
    }

    /// Clears the assignee if it is `who`; returns whether it was.
    pub async fn release(&self, id: &str, who: &str) -> Result<bool, BridgeError> {
        let notice = Self::to_thread(expert_texts::released(who));
        let released = self
            .inner
            .store
            .release_conversation(id, who, &[notice], self.now())
            .await?;
        if released {
            self.wake_outbox();
        }
        Ok(released)
    }

    /// Relays an expert's reply (its text and files) to the customer and keeps it in the
    /// transcript, the files named. Returns false when it was relayed before (a repeated
    /// event).
    pub async fn relay_to_customer(
        &self,
        conversation: &Conversation,
        webex_message_id: &str,
        text: &str,
        files: &[ExpertFile],
        author_email: Option<&str>,
    ) -> Result<bool, BridgeError> {
        let Some(replies) = self.inner.customer_replies.as_ref() else {
            return Ok(false);
        };
        let to_customer = if files.is_empty() {
            vec![replies.senders.reply(&conversation.key, text.to_string())]
        } else {
            replies
                .senders
                .reply_with_files(&conversation.key, text, files)
        };
        // Too long for the channel, and the operator wants such replies refused: the
        // expert is told, and nothing is sent or kept.
        let over = to_customer
            .iter()
            .map(Delivery::chars_over_limit)
            .max()
            .unwrap_or(0);
        if replies.refuse_long_replies && over > 0 {
            let notice = expert_texts::reply_too_long(conversation.key.channel, over);
            self.inner
                .store
                .enqueue(
                    &[Self::to_thread(notice)],
                    Some(&conversation.id),
                    self.now(),
                )
                .await?;
            self.wake_outbox();
            return Ok(false);
        }
        let opted_out = self.inner.store.is_opted_out(&conversation.key).await?;
        let deliveries: Vec<OutboxEntry> = if opted_out {
            // Kept in the transcript; the expert is told it did not go (the outbox would not
            // send it anyway).
            vec![Self::to_thread(expert_texts::not_sent_opted_out())]
        } else {
            to_customer
                .into_iter()
                .flat_map(|delivery| delivery.entries(Purpose::CustomerReply))
                .collect()
        };
        let mut transcript = text.to_string();
        for file in files {
            transcript.push_str(&format!("\n[file: {}]", file.name));
        }
        let relayed = self
            .inner
            .store
            .record_expert_message(
                ExpertMessage {
                    conversation,
                    message_id: webex_message_id,
                    text: transcript.trim_start(),
                    author_email,
                    files,
                    to_customer: !opted_out,
                },
                &deliveries,
                self.now(),
            )
            .await?;
        self.wake_outbox();
        Ok(relayed)
    }

    /// Makes a new meeting for an open conversation at an expert's request: the new host
    /// link goes to the thread, the new guest link to the customer (when icbridge can
    /// reach them).
    pub async fn new_link(&self, id: &str) -> Result<NewLinkOutcome, BridgeError> {
        let store = &self.inner.store;
        let conversation = self.known_conversation(id).await?;
        if !conversation.open {
            return Ok(NewLinkOutcome::Closed);
        }
        let key = &conversation.key;
        let claim_id = new_id();
        let now = self.now();
        let Claim::Claimed { sub, .. } = store
            .claim_meeting(MeetingClaim {
                key: key.clone(),
                claim_id: claim_id.clone(),
                new_sub: Uuid::new_v4().to_string(),
                arrived_at: now,
                now,
                until: now + CLAIM_LEASE.as_millis() as i64,
                limit: None,
                message: None,
            })
            .await?
        else {
            return Ok(NewLinkOutcome::InProgress);
        };
        let result = async {
            let (expires_at, links, redirects) = self.make_links(&sub).await?;
            let customer = self.to_customer(
                key,
                self.guest_link_reply(
                    conversation.desk.as_deref(),
                    links.guest_url.as_str(),
                    conversation.customer_name.as_deref(),
                    None,
                ),
            );
            let thread = Self::to_thread(expert_texts::new_link(
                links.host_url.as_str(),
                expires_at,
                !customer.is_empty(),
            ));
            store
                .store_meeting(NewMeeting {
                    meeting: MadeMeeting {
                        key: key.clone(),
                        customer_name: conversation.customer_name.clone(),
                        conversation_id: conversation.id.clone(),
                        desk: self.desk_of(&conversation),
                        meeting_id: new_id(),
                        sub: sub.clone(),
                        links,
                        claim_id: claim_id.clone(),
                        redirects,
                    },
                    expires_at,
                    message_row: None,
                    // Whatever meeting is live, the expert asked for a new one.
                    valid_after: i64::MAX,
                    deliveries: std::iter::once(thread).chain(customer).collect(),
                    now: self.now(),
                })
                .await?;
            Ok::<_, BridgeError>(())
        }
        .await;
        match result {
            Ok(()) => {
                self.inner.metrics.meeting_created();
                self.wake_outbox();
                tracing::info!(conversation = %conversation.id, "new meeting at an expert's request");
                Ok(NewLinkOutcome::Created)
            }
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(|| self.now());
                store.release_claim(key, &claim_id, failed_at).await?;
                Err(error)
            }
        }
    }
}
