//! The audit log: what administrators and experts did to customers' data, written in the
//! transaction of the action it records.

use sqlx::AnyConnection;

use super::{Store, StoreError};
use crate::domain::AuditEntry;

/// Writes an audit row in the transaction of the action it records.
pub(super) async fn insert_audit(
    tx: &mut AnyConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(&entry.detail)
    .execute(tx)
    .await?;
    Ok(())
}

impl Store {
    /// Writes an audit row on its own (an action that changes nothing, like an export).
    pub async fn record_audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(async move |tx| insert_audit(tx, &entry).await)
            .await
    }

    /// The newest `limit` audit rows, newest first.
    pub async fn audit_entries(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT at, actor, action, subject, detail FROM audit_log
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}
