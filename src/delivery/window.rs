//! What happens when a WhatsApp message is due for a customer whose 24-hour window is
//! closed: the message is held until they write again, and the first message held of a
//! conversation brings the approved template (when configured) and a notice to the experts.

use crate::desks::expert_texts;
use crate::domain::{Delivery, OutboxEntry, Purpose, WhatsappTemplate};
use crate::store::{Store, StoreError};

/// What is queued with a conversation's first held message: the template to the customer
/// (its variables filled from the conversation now), then the notice in the thread.
pub async fn first_held(
    store: &Store,
    template: Option<&WhatsappTemplate>,
    conversation_id: &str,
    app_id: &str,
    waid: &str,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut entries = Vec::new();
    if let Some(template) = template {
        let customer_name = store
            .conversation(conversation_id)
            .await?
            .and_then(|c| c.customer_name);
        let guest_url = store
            .meetings_of(conversation_id)
            .await?
            .pop()
            .map(|meeting| meeting.guest_url);
        let delivery = Delivery::WhatsappTemplate {
            app_id: app_id.to_string(),
            waid: waid.to_string(),
            template: template.id.clone(),
            parameters: template.parameters(customer_name.as_deref(), guest_url.as_deref(), None),
        };
        entries.push(delivery.entry(Purpose::CustomerReply));
    }
    let notice = expert_texts::window_closed(template.map(|t| t.id.as_str()));
    entries.push(Delivery::ThreadMessage { markdown: notice }.entry(Purpose::ExpertNotice));
    Ok(entries)
}
