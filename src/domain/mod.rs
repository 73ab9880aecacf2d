//! The vocabulary of icbridge: typed values that are valid once parsed, and what the
//! outbox delivers.

mod address;
mod appointment;
pub mod audit;
mod channel;
pub mod clock;
mod console;
mod conversation;
mod customer;
mod delivery;
pub mod events;
mod links;
mod media;
mod meeting;
mod message;
pub mod metrics;
pub mod names;
mod outbox;
mod receipt;
pub mod replay;
mod upstream;
mod whatsapp;

pub use address::{mask_digits, AddressError, BusinessAddress, CustomerAddress};
pub use appointment::Appointment;
pub use audit::AuditEntry;
pub use channel::Channel;
pub use console::ConsoleSession;
pub use conversation::{
    Answer, Conversation, QueueItem, RatingRecord, TakeOutcome, TranscriptEntry, Waiting,
};
pub use customer::{
    CustomerRecords, DeliveryRecord, Erasure, MeetingRecord, MessageRecord, OptOutRecord,
    PurgeReport, ReceiptRecord,
};
pub use delivery::{
    correlation_id, numbered_parts, outbox_id_of, Delivery, Destination, FollowUps, LinkReply,
    OutboxEntry, Purpose, ReplyButton, ReplySenders, WebexPost, SMS_MAX_CHARS, WHATSAPP_MAX_CHARS,
};
pub use links::{LinkRecord, MeetingLinkRecord, Redirect};
pub use media::{
    Attachment, ExpertFile, Location, Media, MediaKind, MediaType, MediaUrl, MAX_ATTACHMENTS,
};
pub use meeting::{
    LinkRole, MadeMeeting, Meeting, MeetingLinks, ReplyTemplate, ReplyTexts, TemplateError,
    TextKind, TextValues, Vertical,
};
pub use message::{
    clean_text, is_line_break, one_line, ConversationKey, InboundMessage, MessageId,
};
pub use outbox::{OutboxRow, OutboxState, UpstreamPause};
pub use receipt::{DeliveryReceipt, DeliveryStatus, WHATSAPP_WINDOW_CLOSED};
pub use upstream::{ExpertTarget, Upstream};
pub use whatsapp::{window_open, WhatsappTemplate, WINDOW};
