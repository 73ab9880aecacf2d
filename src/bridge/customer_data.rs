//! Customers' data and who did what: the audit log, export, erase and the retention purge.

use super::{Bridge, BridgeError, ERASED_REASON};
use crate::customers::data::CustomerExport;
use crate::customers::retention;
use crate::domain::audit::{Action, Actor};
use crate::domain::{AuditEntry, Erasure, PurgeReport};
use crate::domain::{Channel, CustomerAddress};
use std::time::Duration;

impl Bridge {
    /// The audit row of what `actor` does now; written with the change it records.
    pub(super) fn audit_entry(
        &self,
        actor: &Actor,
        action: Action,
        subject: String,
        detail: Option<String>,
    ) -> AuditEntry {
        AuditEntry {
            at: self.now(),
            actor: actor.audit_name(),
            action: action.as_str().to_string(),
            subject,
            detail,
        }
    }

    /// The newest `limit` rows of the audit log.
    pub async fn audit_log(&self, limit: i64) -> Result<Vec<AuditEntry>, BridgeError> {
        self.inner
            .store
            .audit_entries(limit)
            .await
            .map_err(BridgeError::from)
    }

    /// A number as SMS (`+…`) and WhatsApp (digits) store it.
    fn customer_forms(number: &str) -> Result<[String; 2], BridgeError> {
        let sms =
            CustomerAddress::parse(Channel::Sms, number).map_err(BridgeError::InvalidNumber)?;
        let whatsapp = CustomerAddress::parse(Channel::Whatsapp, number)
            .map_err(BridgeError::InvalidNumber)?;
        Ok([sms.as_str().to_string(), whatsapp.as_str().to_string()])
    }

    /// Everything held about the customer with this number, on both channels. Audited.
    pub async fn export_customer(
        &self,
        number: &str,
        actor: &Actor,
    ) -> Result<CustomerExport, BridgeError> {
        let forms = Self::customer_forms(number)?;
        let records = self.inner.store.customer_records(&forms).await?;
        let export = CustomerExport::new(forms.clone(), &records, self.now());
        let detail = format!("{} conversations", export.conversations.len());
        let audit = self.audit_entry(actor, Action::Export, Self::masked(&forms), Some(detail));
        self.inner.store.record_audit(audit).await?;
        Ok(export)
    }

    /// Erases what is held about the customer with this number (see
    /// `Store::erase_customer`). Audited, by the number masked.
    pub async fn erase_customer(
        &self,
        number: &str,
        actor: &Actor,
    ) -> Result<Erasure, BridgeError> {
        let forms = Self::customer_forms(number)?;
        let audit = self.audit_entry(actor, Action::Erase, Self::masked(&forms), None);
        let erasure = self
            .inner
            .store
            .erase_customer(&forms, ERASED_REASON, audit, self.now())
            .await?;
        tracing::info!(customer = %CustomerAddress::from_stored(forms[0].clone()),
            conversations = erasure.conversations, messages = erasure.messages, "customer erased");
        Ok(erasure)
    }

    /// Empties the database's write-ahead log of what erasures left in it, now rather than
    /// in the next quiet second, waiting at most ten seconds: whether it was emptied (`None`:
    /// the database keeps no such log).
    pub async fn empty_database_log(&self) -> Option<bool> {
        self.inner.store.empty_log().await
    }

    fn masked(forms: &[String; 2]) -> String {
        CustomerAddress::from_stored(forms[0].clone()).masked()
    }

    /// Applies a retention of `retention` now.
    pub async fn purge(&self, retention: Duration) -> Result<PurgeReport, BridgeError> {
        self.inner
            .store
            .purge(retention::cutoffs(retention, self.now()))
            .await
            .map_err(BridgeError::from)
    }
}
