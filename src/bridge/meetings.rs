//! Meetings: a claim per conversation, the broker call with its retries, icbridge's own
//! links for the new meeting, and the customer's answer with the guest link.

use super::{
    new_id, Bridge, BridgeError, MessageReply, BROKER_BUDGET, BROKER_RETRIES, CLAIM_LEASE,
    CLAIM_POLL, HOUR_MS, MIN_ATTEMPT_TIME, QUICK_RETRY_DELAY, RENEW_BEFORE_EXPIRY,
    WAIT_FOR_OTHER_REQUEST,
};
use crate::desks::expert_texts::{self, Offer};
use crate::desks::{ExpertDesk, OutOfHours};
use crate::domain::clock;
use crate::domain::{Answer, MadeMeeting, Redirect};
use crate::domain::{Delivery, FollowUps, InboundMessage, LinkRole, MeetingLinks, Purpose};
use crate::store::{Claim, MeetingClaim, NewMeeting, StartLimit};
use crate::upstream::instant_connect::{self, MeetingRequest};
use crate::upstream::{Upstream, UpstreamError, Verdict};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::time::{Duration, Instant};
use url::Url;
use uuid::Uuid;

/// A stored message that needs a meeting, and when its request arrived.
pub(super) struct Arrival<'a> {
    pub message: &'a InboundMessage,
    pub message_row: i64,
    pub follow_ups: &'a FollowUps,
    pub started: Instant,
    pub started_ms: i64,
}

impl Bridge {
    /// The message's answer with its conversation's meeting: under a claim, so that of
    /// concurrent requests for one conversation a single one calls the broker and the
    /// others answer with its meeting once it is stored.
    pub(super) async fn answer_with_meeting(
        &self,
        arrival: &Arrival<'_>,
        desk: &ExpertDesk,
        out_of_hours: Option<&OutOfHours>,
    ) -> Result<MessageReply, BridgeError> {
        let message = arrival.message;
        let reply =
            |answer: &Answer| self.reply(answer, message.customer_name.as_deref(), out_of_hours);
        let (claim_id, sub) = match self.claim_for(arrival).await? {
            Ok(claimed) => claimed,
            Err(answer) => return Ok(reply(&answer)),
        };
        match self
            .open_meeting(
                message,
                arrival.message_row,
                &claim_id,
                &sub,
                desk,
                out_of_hours,
            )
            .await
        {
            Ok(answer) => Ok(reply(&answer)),
            Err(error) => {
                let failed_at = matches!(error, BridgeError::Upstream(_)).then(|| self.now());
                self.inner
                    .store
                    .release_claim(&message.key, &claim_id, failed_at)
                    .await?;
                Err(error)
            }
        }
    }

    /// This request's claim on the conversation's meeting (its id and the meeting's
    /// subject), or the answer another request's meeting gives it.
    async fn claim_for(
        &self,
        arrival: &Arrival<'_>,
    ) -> Result<Result<(String, String), Answer>, BridgeError> {
        let store = &self.inner.store;
        let message = arrival.message;
        let claim_id = new_id();
        let new_sub = Uuid::new_v4().to_string();
        loop {
            let now = self.now();
            let claim = MeetingClaim {
                key: message.key.clone(),
                claim_id: claim_id.clone(),
                new_sub: new_sub.clone(),
                arrived_at: arrival.started_ms,
                now,
                until: now + CLAIM_LEASE.as_millis() as i64,
                limit: self.start_limit(now),
                message: Some(self.waiting(arrival.message_row, arrival.follow_ups)),
            };
            match store.claim_meeting(claim).await? {
                Claim::Claimed { sub, over_limit } => {
                    if let Some(oldest) = over_limit {
                        store.release_claim(&message.key, &claim_id, None).await?;
                        return Err(self.over_limit(message, oldest));
                    }
                    return Ok(Ok((claim_id, sub)));
                }
                // The previous holder stored its meeting since the message found none.
                Claim::Answered(answer) => {
                    self.wake_outbox();
                    return Ok(Err(answer));
                }
                Claim::Busy { failed_at } => {
                    if failed_at.is_some_and(|failed| failed >= arrival.started_ms)
                        || arrival.started.elapsed() >= WAIT_FOR_OTHER_REQUEST
                    {
                        return Err(BridgeError::MeetingUnavailable);
                    }
                    // The next try answers with the holder's meeting once it is stored.
                    tokio::time::sleep(CLAIM_POLL).await;
                }
            }
        }
    }
    /// Under this request's claim: reserves one of the customer's meetings of the hour,
    /// calls the broker, stores the meeting with its deliveries.
    pub(super) async fn open_meeting(
        &self,
        message: &InboundMessage,
        message_row: i64,
        claim_id: &str,
        sub: &str,
        desk: &ExpertDesk,
        out_of_hours: Option<&OutOfHours>,
    ) -> Result<Answer, BridgeError> {
        let inner = &self.inner;
        let (expires_at, links, redirects) = self.make_links(sub).await?;
        let desk = desk.name.clone();
        // Used if the meeting opens a new conversation (an open one keeps its id).
        let conversation_id = new_id();
        let (markdown, card) = expert_texts::notification(
            message,
            Offer::Meeting {
                host_url: links.host_url.as_str(),
                expires_at,
            },
            &self.other_desks(&desk),
        );
        let mut deliveries =
            vec![Delivery::Notification { markdown, card }.entry(Purpose::ExpertNotification)];
        if inner
            .customer_replies
            .as_ref()
            .is_some_and(|r| r.send_links)
        {
            let name = message.customer_name.as_deref();
            let guest_url = links.guest_url.as_str();
            let text = self.guest_link_reply(Some(&desk), guest_url, name, out_of_hours);
            deliveries.extend(self.to_customer(&message.key, text));
        }
        // The notification opens the thread; the customer's files follow it there.
        deliveries.extend(Self::media_relays(message));
        let answer = inner
            .store
            .store_meeting(NewMeeting {
                meeting: MadeMeeting {
                    key: message.key.clone(),
                    customer_name: message.customer_name.clone(),
                    conversation_id: conversation_id.clone(),
                    desk: desk.clone(),
                    meeting_id: new_id(),
                    sub: sub.to_string(),
                    links,
                    claim_id: claim_id.to_string(),
                    redirects,
                },
                expires_at,
                message_row: Some(message_row),
                valid_after: self.now() + RENEW_BEFORE_EXPIRY.as_millis() as i64,
                deliveries,
                now: self.now(),
            })
            .await?;
        if answer.opened_meeting {
            inner.metrics.meeting_created();
            if answer.conversation_id == conversation_id {
                inner.metrics.conversation_opened(&desk);
                if out_of_hours.is_some() {
                    inner.metrics.conversation_out_of_hours(&desk);
                }
            }
            self.wake_outbox();
            tracing::info!(channel = %message.key.channel, customer = %message.key.customer,
                conversation = %answer.conversation_id, meeting = %answer.meeting_id, "meeting created");
        }
        Ok(answer)
    }

    /// How many new meetings a customer may open per hour, from now: reserved by the claim
    /// that opens one, atomically per customer, across instances.
    pub(super) fn start_limit(&self, now: i64) -> Option<StartLimit> {
        let max = self.inner.policy.max_new_meetings_per_hour;
        (max > 0).then_some(StartLimit {
            max: i64::from(max),
            window_start: now - HOUR_MS,
        })
    }

    /// The refusal of a new meeting when the customer opened too many this hour (the
    /// oldest of them at `oldest`).
    pub(super) fn over_limit(&self, message: &InboundMessage, oldest: i64) -> BridgeError {
        let limit = self.inner.policy.max_new_meetings_per_hour;
        let retry_after = Duration::from_millis((oldest + HOUR_MS - self.now()).max(1000) as u64);
        tracing::warn!(customer = %message.key.customer, limit, "new meeting refused: hourly limit reached");
        BridgeError::RateLimited { retry_after }
    }

    /// New links from the broker for the meeting `sub`, and when they expire (Unix ms). No
    /// transaction is open during this call. While the broker asked to wait, it is not
    /// called.
    pub(super) async fn make_links(
        &self,
        sub: &str,
    ) -> Result<(i64, MeetingLinks, Vec<Redirect>), BridgeError> {
        let expires_at = self.now() + self.inner.policy.ttl.as_millis() as i64;
        let request = self.meeting_request(sub, None, expires_at);
        let links = self.new_meeting_links(&request).await?;
        let (links, redirects) = self.hand_out(links);
        Ok((expires_at, links, redirects))
    }

    /// What to ask the broker for: the meeting `sub`'s links, valid from `not_before` (if
    /// given) until `expires_at` (Unix ms), as many of each role as configured.
    pub(super) fn meeting_request(
        &self,
        sub: &str,
        not_before: Option<i64>,
        expires_at: i64,
    ) -> MeetingRequest {
        let policy = &self.inner.policy;
        MeetingRequest {
            sub: sub.to_string(),
            not_before: not_before.map(|at| at.div_euclid(1000)),
            expires_at: expires_at.div_euclid(1000),
            short_urls: policy.short_urls,
            vertical: policy.vertical,
            host_login: policy.host_login,
            hosts: policy.hosts,
            guests: policy.guests,
        }
    }

    /// A new meeting's links (see [`Self::call_broker`]).
    pub(super) async fn new_meeting_links(
        &self,
        request: &MeetingRequest,
    ) -> Result<MeetingLinks, BridgeError> {
        Ok(instant_connect::meeting_links(
            self.call_broker(request).await?,
        )?)
    }

    /// The links `request` asks for, with quick retries (see [`Self::with_retries`]); not
    /// asked for while the broker asked to wait; its failures and recoveries noted.
    pub(super) async fn call_broker(
        &self,
        request: &MeetingRequest,
    ) -> Result<Vec<(LinkRole, Url)>, BridgeError> {
        if let Some(until) = self.inner.pauses.paused_until(Upstream::InstantConnect) {
            let retry_after = Duration::from_millis((until - self.now()).max(1000) as u64);
            return Err(BridgeError::Paused { retry_after });
        }
        match self.with_retries(request).await {
            Ok(result) => {
                self.inner
                    .pauses
                    .works_again(Upstream::InstantConnect)
                    .await?;
                Ok(result)
            }
            Err(error) => {
                let until = self.inner.pauses.note(&error).await?;
                match (error.verdict(), until) {
                    (Some(Verdict::SlowDown(_)), Some(until)) => Err(BridgeError::Paused {
                        retry_after: Duration::from_millis((until - self.now()).max(1000) as u64),
                    }),
                    _ => Err(error.into()),
                }
            }
        }
    }

    /// The links to hand out for a meeting's: with `ICB_PUBLIC_URL`, icbridge's own (a code
    /// each, 128 random bits), and what they redirect to; else the meeting's own.
    pub(super) fn hand_out(&self, links: MeetingLinks) -> (MeetingLinks, Vec<Redirect>) {
        if self.inner.link_base.is_none() {
            return (links, Vec::new());
        }
        let mut redirects = Vec::new();
        let mut own = |role: LinkRole, target: &Url, extra: bool| {
            let (url, redirect) = self
                .own_link(role, target, extra)
                .expect("a public URL is set");
            redirects.push(redirect);
            url
        };
        let guest_url = own(LinkRole::Guest, &links.guest_url, false);
        let host_url = own(LinkRole::Host, &links.host_url, false);
        let more = links
            .more
            .iter()
            .map(|(role, url)| (*role, own(*role, url, true)))
            .collect();
        (
            MeetingLinks {
                host_url,
                guest_url,
                more,
            },
            redirects,
        )
    }

    /// With `ICB_PUBLIC_URL`, icbridge's own link for `target` (`ICB_PUBLIC_URL/j/<code>`,
    /// a code of 128 random bits) and what it redirects to.
    pub(super) fn own_link(
        &self,
        role: LinkRole,
        target: &Url,
        extra: bool,
    ) -> Option<(Url, Redirect)> {
        let base = self.inner.link_base.as_ref()?;
        let code = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        // Under the public URL's own path, if it has one (behind a proxy's prefix).
        let mut url = base.clone();
        url.path_segments_mut()
            .expect("the public URL is a base URL")
            .pop_if_empty()
            .extend(["j", &code]);
        let redirect = Redirect {
            code,
            role: role.as_str(),
            target: target.to_string(),
            extra,
        };
        Some((url, redirect))
    }

    /// Calls the broker, retrying quickly what a retry can fix, within [`BROKER_BUDGET`] in
    /// all so that Webex Connect (10 s timeout) gets an answer in time.
    async fn with_retries(
        &self,
        request: &MeetingRequest,
    ) -> Result<Vec<(LinkRole, Url)>, UpstreamError> {
        let deadline = Instant::now() + BROKER_BUDGET;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let timeout = self.inner.policy.broker_timeout.min(remaining);
            let error = match self.inner.broker.call(request, timeout).await {
                Ok(result) => return Ok(result),
                Err(error) => error,
            };
            attempt += 1;
            let delay = match error.verdict() {
                // A refused token is not tried again now.
                Some(Verdict::CredentialRefused) => return Err(error),
                // A wait the broker asked for is waited, if an answer still fits after it.
                Some(Verdict::SlowDown(Some(asked))) => {
                    let now = self.now();
                    Duration::from_millis((asked.until_ms(now) - now).max(0) as u64)
                }
                _ => QUICK_RETRY_DELAY * attempt,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            // Another attempt is only worth it if it can still get an answer in time.
            let fits = delay + MIN_ATTEMPT_TIME <= remaining;
            if !error.is_retryable() || attempt > BROKER_RETRIES || !fits {
                return Err(error);
            }
            tracing::warn!(%error, attempt, delay_ms = delay.as_millis() as u64, "broker call failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// The customer's text with their guest link: the desk's reply (`[desk.texts] reply`,
    /// else `ICB_REPLY_TEMPLATE`), or out of hours the desk's out-of-hours text. What a desk
    /// does not word itself is in `customers::texts`.
    pub(super) fn guest_link_reply(
        &self,
        desk: Option<&str>,
        guest_url: &str,
        customer_name: Option<&str>,
        out_of_hours: Option<&OutOfHours>,
    ) -> String {
        match out_of_hours {
            Some(closed) => closed.text(&self.inner.desks.of(desk).name, customer_name, guest_url),
            None => self
                .inner
                .reply_texts
                .render(desk, guest_url, customer_name),
        }
    }

    /// A message's answer: the desk's reply with the link, or out of hours its out-of-hours
    /// text.
    pub(super) fn reply(
        &self,
        answer: &Answer,
        customer_name: Option<&str>,
        out_of_hours: Option<&OutOfHours>,
    ) -> MessageReply {
        let desk = answer.desk.as_deref();
        let reply = self.guest_link_reply(desk, &answer.guest_url, customer_name, out_of_hours);
        MessageReply {
            conversation_id: Some(answer.conversation_id.clone()),
            open: out_of_hours.is_none(),
            opted_out: false,
            meeting_id: Some(answer.meeting_id.clone()),
            guest_url: Some(answer.guest_url.clone()),
            reply,
            created: answer.opened_meeting,
            expires_at: Some(clock::rfc3339(answer.expires_at)),
        }
    }
}
