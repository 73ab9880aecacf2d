//! Delivery receipts (`delivery_receipts`), each matched to the outbound message (`outbox`)
//! it reports on.

use super::{Store, StoreError};
use crate::domain::DeliveryReceipt;

/// The outbound message a delivery receipt reports on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptMatch {
    pub outbox_id: i64,
    pub conversation_id: Option<String>,
    pub kind: String,
    /// The delivery, as queued (its JSON).
    pub payload: String,
    /// A receipt with the same code was received before for this message.
    pub repeated: bool,
}

impl Store {
    /// Stores a delivery receipt and updates the outbound message it reports on (found by
    /// `outbox_id`, from the receipt's correlation id, or by Webex Connect's transaction id).
    pub async fn record_receipt(
        &self,
        receipt: &DeliveryReceipt,
        outbox_id: Option<i64>,
        status: &str,
        payload: &str,
        now: i64,
    ) -> Result<Option<ReceiptMatch>, StoreError> {
        let (receipt, status, payload) = (receipt.clone(), status.to_string(), payload.to_string());
        self.write(async move |tx| {
            let matched: Option<(i64, Option<String>, String, String)> = sqlx::query_as(
                "UPDATE outbox SET delivery_status = $1, delivery_code = $2
                 WHERE id = (SELECT id FROM outbox
                             -- Only customer replies are sent through Webex Connect.
                             WHERE id = $3 OR (upstream_id = $4 AND kind = 'customer_reply')
                             ORDER BY id LIMIT 1)
                 RETURNING id, conversation_id, kind, payload",
            )
            .bind(&status)
            .bind(&receipt.code)
            .bind(outbox_id)
            .bind(&receipt.transid)
            .fetch_optional(&mut *tx)
            .await?;
            let matched = match matched {
                Some((outbox_id, conversation_id, kind, payload)) => {
                    let earlier: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM delivery_receipts
                         WHERE outbox_id = $1 AND code IS NOT DISTINCT FROM $2",
                    )
                    .bind(outbox_id)
                    .bind(&receipt.code)
                    .fetch_one(&mut *tx)
                    .await?;
                    Some(ReceiptMatch {
                        outbox_id,
                        conversation_id,
                        kind,
                        payload,
                        repeated: earlier > 0,
                    })
                }
                None => None,
            };
            sqlx::query(
                "INSERT INTO delivery_receipts (correlation_id, transid, code, status,
                                                channel, outbox_id, payload, received_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&receipt.correlation_id)
            .bind(&receipt.transid)
            .bind(&receipt.code)
            .bind(&status)
            .bind(&receipt.channel)
            .bind(matched.as_ref().map(|m| m.outbox_id))
            // A receipt matched to no delivery is attributed to no customer, so no erasure
            // could find the number its body names: that body is not kept.
            .bind(if matched.is_some() {
                payload.as_str()
            } else {
                "{}"
            })
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Ok(matched)
        })
        .await
    }
}
