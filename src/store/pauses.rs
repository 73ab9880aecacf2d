//! Upstreams that asked icbridge to wait, or refused its credential.

use super::{Store, StoreError};
use crate::domain::UpstreamPause;

/// Which upstream an outbox row is delivered through: its SQL, from the row's `kind`
/// (customer replies go through Webex Connect, everything else to Webex).
pub(super) const UPSTREAM_OF_ROW: &str =
    "(CASE WHEN kind IN ('customer_reply', 'opt_out_reply') THEN 'connect' \
      WHEN kind = 'event' THEN 'events' ELSE 'webex' END)";

impl Store {
    /// Pauses calls to `upstream` until `until` (a later pause already recorded is kept),
    /// or, with `credential_refused`, until a probe succeeds (and at least until `until`).
    pub async fn pause_upstream(
        &self,
        upstream: &str,
        until: i64,
        credential_refused: bool,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let (upstream, reason) = (upstream.to_string(), reason.to_string());
        self.write(async move |tx| {
            sqlx::query(
                "INSERT INTO upstream_pauses
                     (upstream, paused_until, credential_failing, reason, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (upstream) DO UPDATE
                     SET paused_until = CASE
                             WHEN excluded.credential_failing = 1 THEN excluded.paused_until
                             WHEN upstream_pauses.paused_until > excluded.paused_until
                                 THEN upstream_pauses.paused_until
                             ELSE excluded.paused_until END,
                         credential_failing = CASE
                             WHEN excluded.credential_failing = 1 THEN 1
                             ELSE upstream_pauses.credential_failing END,
                         reason = excluded.reason,
                         updated_at = excluded.updated_at",
            )
            .bind(&upstream)
            .bind(until)
            .bind(i64::from(credential_refused))
            .bind(&reason)
            .bind(now)
            .execute(tx)
            .await?;
            Ok(())
        })
        .await
    }

    /// Ends a pause: the upstream takes calls (and the credential works) again.
    pub async fn resume_upstream(&self, upstream: &str, now: i64) -> Result<(), StoreError> {
        let upstream = upstream.to_string();
        self.write(async move |tx| {
            release_waiting_rows(tx, &upstream, now).await?;
            sqlx::query("DELETE FROM upstream_pauses WHERE upstream = $1")
                .bind(&upstream)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Makes a refused credential's probe due now (it stays refused until the probe
    /// works): a token replaced before the time a previous run planned is tried at once.
    pub async fn probe_upstream_now(&self, upstream: &str, now: i64) -> Result<(), StoreError> {
        let upstream = upstream.to_string();
        self.write(async move |tx| {
            release_waiting_rows(tx, &upstream, now).await?;
            sqlx::query("UPDATE upstream_pauses SET paused_until = $1 WHERE upstream = $2")
                .bind(now)
                .bind(&upstream)
                .execute(&mut *tx)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every recorded pause, ended or not.
    pub async fn upstream_pauses(&self) -> Result<Vec<UpstreamPause>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT upstream, paused_until, credential_failing, reason, updated_at
             FROM upstream_pauses ORDER BY upstream",
        )
        .fetch_all(&self.reader)
        .await?)
    }
}

/// The rows that wait for `upstream`'s pause to end (due after now, by its end) are due
/// now; rows being sent (leased) are left alone.
async fn release_waiting_rows(
    tx: &mut sqlx::AnyConnection,
    upstream: &str,
    now: i64,
) -> Result<(), StoreError> {
    let until: Option<i64> =
        sqlx::query_scalar("SELECT paused_until FROM upstream_pauses WHERE upstream = $1")
            .bind(upstream)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(until) = until else {
        return Ok(());
    };
    sqlx::query(&format!(
        "UPDATE outbox SET next_attempt_at = $1
         WHERE state = 'pending' AND leased_until IS NULL
           AND next_attempt_at > $1 AND next_attempt_at <= $2
           AND {UPSTREAM_OF_ROW} = $3"
    ))
    .bind(now)
    .bind(until)
    .bind(upstream)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
