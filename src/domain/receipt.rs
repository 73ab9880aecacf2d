//! What Webex Connect reports about a message icbridge sent (its delivery receipts).

/// A delivery report for a message icbridge sent through Webex Connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReceipt {
    pub correlation_id: Option<String>,
    pub transid: Option<String>,
    pub code: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
}

/// Where a message icbridge sent stands, as its receipts tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Submitted,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Submitted => "submitted",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
            DeliveryStatus::Failed => "failed",
        }
    }
}

/// WhatsApp's "24-hour customer service window closed": free-form messages only reach a
/// customer within 24 hours of their last message.
pub const WHATSAPP_WINDOW_CLOSED: &str = "7710";

impl DeliveryReceipt {
    /// Webex Connect's codes: 7500 delivered, 7501 submitted, 7502 read (WhatsApp); every
    /// other code reports a failure (7710 window closed, 7101/7102 bad addresses...).
    pub fn status(&self) -> DeliveryStatus {
        match self.code.as_deref() {
            Some("7500") => DeliveryStatus::Delivered,
            Some("7501") => DeliveryStatus::Submitted,
            Some("7502") => DeliveryStatus::Read,
            Some(_) => DeliveryStatus::Failed,
            None => match self
                .status
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("delivered") => DeliveryStatus::Delivered,
                Some("read") => DeliveryStatus::Read,
                Some("submitted" | "sent") => DeliveryStatus::Submitted,
                _ => DeliveryStatus::Failed,
            },
        }
    }

    pub fn is_whatsapp_window_closed(&self) -> bool {
        self.code.as_deref() == Some(WHATSAPP_WINDOW_CLOSED)
    }
}
