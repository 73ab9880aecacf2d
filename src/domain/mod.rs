//! The vocabulary of icbridge: typed values that are valid once parsed.

mod address;
mod channel;
mod meeting;
mod message;

pub use address::{AddressError, BusinessAddress, CustomerAddress};
pub use channel::Channel;
pub use meeting::{MeetingLinks, ReplyTemplate, TemplateError, Vertical};
pub use message::{
    clean_text, is_line_break, one_line, ConversationKey, InboundMessage, MessageId,
};
