//! Meeting claims (`meeting_claims`): which request creates a conversation's meeting, and
//! the customer's hourly limit of new meetings that a claim reserves (`meeting_starts`;
//! `meeting_limit_locks` on PostgreSQL). The claims of concurrent requests are written in
//! batches (see [`super::engine`]).

use sqlx::AnyConnection;

use super::answers::{answer_waiting, live_meeting, UnansweredMessage};
use super::engine::{rows_of_placeholders, Backend};
use super::{Store, StoreError};
use crate::domain::{Answer, ConversationKey, MadeMeeting};

/// A request's try to become the one that creates a conversation's meeting.
#[derive(Debug, Clone)]
pub struct MeetingClaim {
    pub key: ConversationKey,
    pub claim_id: String,
    /// The subject taken unless an earlier claim that stored no meeting left one.
    pub new_sub: String,
    /// When the request arrived: a broker failure of the holder after it is shared.
    pub arrived_at: i64,
    pub now: i64,
    pub until: i64,
    pub limit: Option<StartLimit>,
    /// The message that needs the meeting; `None` when an expert asked for one.
    pub message: Option<UnansweredMessage>,
}

/// The outcome of trying to become the one request that creates a conversation's meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request creates the meeting, with this subject: the one an earlier attempt
    /// that stored no meeting asked the broker for, so that a retry gets that meeting
    /// again rather than a second one.
    /// `over_limit` is set, with the oldest start within the window, when the claim could
    /// not reserve a new meeting of the customer's hour (see [`StartLimit`]): the caller
    /// releases the claim.
    Claimed {
        sub: String,
        over_limit: Option<i64>,
    },
    /// The message needs no new meeting after all: this is its answer (the previous
    /// holder's meeting, or what a concurrent delivery of it got).
    Answered(Answer),
    /// Another request is creating it; `failed_at` is set when the last one gave up.
    Busy { failed_at: Option<i64> },
}

/// The customer's (channel and number, any business address) new meetings allowed per
/// window, reserved by the claim that opens one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartLimit {
    pub max: i64,
    pub window_start: i64,
}

impl Store {
    /// Tries to become the request that creates the conversation's meeting, until
    /// `claim.until`. Succeeds when nobody holds the claim or the holder's claim ran out,
    /// unless the last holder gave up on a broker failure after `arrived_at`: a request that
    /// was waiting for that attempt shares its failure instead of trying again. The claim
    /// keeps the subject of an earlier claim that stored no meeting, or takes `new_sub`.
    ///
    /// A waiting message that a live meeting can answer is answered instead: the previous
    /// holder may have stored its meeting since the message found none.
    ///
    /// With a `limit`, the claim also reserves one of the customer's new meetings, in the
    /// same transaction (the reservation ends with the claim if no meeting is stored).
    pub async fn claim_meeting(&self, claim: MeetingClaim) -> Result<Claim, StoreError> {
        let (backend, now) = (self.backend, claim.now);
        // What the look after the commit needs, on PostgreSQL only (see below).
        let look_after = match (backend, &claim.message) {
            (Backend::Postgres, Some(message)) => {
                Some((claim.key.clone(), claim.claim_id.clone(), message.clone()))
            }
            _ => None,
        };
        let claimed = self
            .batches
            .as_ref()
            .expect("a store handed out by `connect` writes through its batches")
            .claims
            .write(claim)
            .await?;
        // On PostgreSQL the claim is made whether or not a live meeting is there (see the
        // free `claim_meeting`): looked for now, when every earlier commit is visible.
        let (Claim::Claimed { .. }, Some((key, claim_id, message))) = (&claimed, look_after) else {
            return Ok(claimed);
        };
        let live = live_meeting(
            &mut *self.reader.acquire().await?,
            &key,
            now,
            message.valid_after,
        )
        .await?;
        if live.is_none() {
            return Ok(claimed);
        }
        self.write(async move |tx| {
            release_claim(tx, &key, &claim_id, None).await?;
            let answer = answer_waiting(tx, &key, &message, now).await?;
            // Closed meanwhile: the next try claims again.
            Ok(answer.map_or(Claim::Busy { failed_at: None }, Claim::Answered))
        })
        .await
    }

    /// Gives a claim up without a meeting, and the meeting start it reserved;
    /// `failed_at` tells waiters the broker failed.
    pub async fn release_claim(
        &self,
        key: &ConversationKey,
        claim_id: &str,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let (key, claim_id) = (key.clone(), claim_id.to_string());
        self.write(async move |tx| release_claim(tx, &key, &claim_id, failed_at).await)
            .await
    }
}

/// Claims in one write, one after the other (see [`Store::claim_meeting`]); each one's
/// outcome, in order. Together they share one savepoint instead of one each.
pub(super) async fn claim_meetings(
    store: Store,
    claims: Vec<MeetingClaim>,
) -> Result<Vec<Claim>, StoreError> {
    let backend = store.backend;
    store
        .write(async move |tx| {
            let mut outcomes = Vec::with_capacity(claims.len());
            for claim in claims {
                outcomes.push(claim_meeting(tx, backend, claim).await?);
            }
            Ok(outcomes)
        })
        .await
}

/// See [`Store::claim_meeting`].
async fn claim_meeting(
    tx: &mut AnyConnection,
    backend: Backend,
    claim: MeetingClaim,
) -> Result<Claim, StoreError> {
    let MeetingClaim { key, claim_id, .. } = &claim;
    let valid_after = claim
        .message
        .as_ref()
        .map_or(i64::MAX, |message| message.valid_after);
    // Only while no live meeting makes the claim unnecessary. On SQLite the claim's own
    // statement looks: one write runs at a time, so it sees whatever was committed before.
    // A PostgreSQL statement that waited for the previous holder's commit judges by what was
    // committed when it began; there the look comes after the commit, on a reader (see
    // `Store::claim_meeting`), which also spares the one writer, PostgreSQL's bottleneck.
    let no_live_meeting = match backend {
        Backend::Sqlite => {
            "NOT EXISTS (
                 SELECT 1 FROM conversations c JOIN meetings t ON t.conversation_id = c.id
                 WHERE c.channel = $1 AND c.customer = $2 AND c.business = $3
                   AND c.state = 'open' AND t.expires_at > $9
                   AND (t.not_before IS NULL OR t.not_before <= $7))"
        }
        Backend::Postgres => "true",
    };
    let claimed: Option<String> = sqlx::query_scalar(&format!(
        "INSERT INTO meeting_claims (channel, customer, business, claim_id, claimed_until, sub)
         SELECT $1, $2, $3, $4, $5, $6 WHERE {no_live_meeting}
         ON CONFLICT (channel, customer, business) DO UPDATE
             SET claim_id = excluded.claim_id,
                 claimed_until = excluded.claimed_until,
                 failed_at = NULL,
                 sub = COALESCE(meeting_claims.sub, excluded.sub)
             WHERE meeting_claims.claimed_until <= $7
               AND (meeting_claims.failed_at IS NULL OR meeting_claims.failed_at < $8)
         RETURNING sub"
    ))
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(claim_id)
    .bind(claim.until)
    .bind(&claim.new_sub)
    .bind(claim.now)
    .bind(claim.arrived_at)
    .bind(valid_after)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(sub) = claimed {
        let over_limit = match claim.limit {
            Some(limit) => reserve_start(tx, backend, key, claim_id, limit, claim.now).await?,
            None => None,
        };
        return Ok(Claim::Claimed { sub, over_limit });
    }
    // Not claimed on SQLite: perhaps the live meeting is there.
    if let (Some(message), Backend::Sqlite) = (&claim.message, backend) {
        if let Some(answer) = answer_waiting(tx, key, message, claim.now).await? {
            return Ok(Claim::Answered(answer));
        }
    }
    let failed_at = sqlx::query_scalar(
        "SELECT failed_at FROM meeting_claims
         WHERE channel = $1 AND customer = $2 AND business = $3",
    )
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    Ok(Claim::Busy { failed_at })
}

/// Gives a claim up without a meeting, and the meeting start it reserved.
async fn release_claim(
    tx: &mut AnyConnection,
    key: &ConversationKey,
    claim_id: &str,
    failed_at: Option<i64>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE meeting_claims SET claimed_until = 0, failed_at = $1
         WHERE channel = $2 AND customer = $3 AND business = $4 AND claim_id = $5",
    )
    .bind(failed_at)
    .bind(key.channel.as_str())
    .bind(key.customer.as_str())
    .bind(key.business.as_str())
    .bind(claim_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM meeting_starts WHERE claim_id = $1")
        .bind(claim_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Reserves one of the customer's new meetings of the window for the claim `claim_id`:
/// `None` when reserved, or the oldest start within the window when the limit is reached.
/// On PostgreSQL concurrent reservations for one customer wait for each other (the upsert
/// on `meeting_limit_locks` locks the customer's row until the commit), so that together
/// they never pass the limit; SQLite runs one write transaction at a time anyway.
async fn reserve_start(
    tx: &mut AnyConnection,
    backend: Backend,
    key: &ConversationKey,
    claim_id: &str,
    limit: StartLimit,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let (channel, customer) = (key.channel.as_str(), key.customer.as_str());
    if backend == Backend::Postgres {
        sqlx::query(
            "INSERT INTO meeting_limit_locks (channel, customer) VALUES ($1, $2)
             ON CONFLICT (channel, customer) DO UPDATE SET channel = excluded.channel",
        )
        .bind(channel)
        .bind(customer)
        .execute(&mut *tx)
        .await?;
    }
    let (started, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(started_at) FROM meeting_starts
         WHERE channel = $1 AND customer = $2 AND started_at > $3",
    )
    .bind(channel)
    .bind(customer)
    .bind(limit.window_start)
    .fetch_one(&mut *tx)
    .await?;
    if started >= limit.max {
        return Ok(Some(oldest.unwrap_or(now)));
    }
    sqlx::query(
        "INSERT INTO meeting_starts (channel, customer, claim_id, started_at)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(channel)
    .bind(customer)
    .bind(claim_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(None)
}

/// The claims end, with the subjects they kept (also when a later claimant of a claim that
/// ran out took the subject over: it is used now).
pub(super) async fn end_claims(
    tx: &mut AnyConnection,
    jobs: &[&MadeMeeting],
) -> Result<(), StoreError> {
    // Row values, so that each claim is found by its key, not every claim looked through.
    let sql = format!(
        "WITH v AS (VALUES {})
         DELETE FROM meeting_claims
         WHERE (channel, customer, business, claim_id)
                   IN (SELECT column1, column2, column3, column4 FROM v)
            OR (channel, customer, business, sub)
                   IN (SELECT column1, column2, column3, column5 FROM v)",
        rows_of_placeholders(jobs.len(), 5, 1)
    );
    let mut query = sqlx::query(&sql);
    for job in jobs {
        query = query
            .bind(job.key.channel.as_str())
            .bind(job.key.customer.as_str())
            .bind(job.key.business.as_str())
            .bind(&job.claim_id)
            .bind(&job.sub);
    }
    query.execute(tx).await?;
    Ok(())
}
