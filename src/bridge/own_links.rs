//! icbridge's own links (`/j/<code>`): where a visit goes, and when a link has ended.

use super::{Bridge, BridgeError};
use crate::desks::expert_texts::{self};

/// What a visit to one of icbridge's links (`/j/<code>`) gets.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkVisit {
    /// On to the meeting: Instant Connect's link.
    Redirect(String),
    /// A link preview's or scanner's fetch of a live link: title and description only.
    Preview,
    /// The consultation it was for has ended: closed, replaced by a newer link, or expired.
    Ended,
    /// A booked consultation's link before it works: from when it does, in the desk's time.
    NotYet {
        from: String,
    },
    Unknown,
}

/// The length of a link's code: 16 random bytes, base64url.
const LINK_CODE_CHARS: usize = 22;

impl Bridge {
    /// A visit to link `code`: on to the meeting while it is the open conversation's live
    /// one, else the ended page. The first opening of a guest link that is not a
    /// preview's fetch is recorded, posted in the thread (once) and timed.
    pub async fn visit_link(&self, code: &str, preview: bool) -> Result<LinkVisit, BridgeError> {
        let shaped = code.len() == LINK_CODE_CHARS
            && code
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !shaped {
            return Ok(LinkVisit::Unknown);
        }
        let store = &self.inner.store;
        let Some(link) = store.link(code).await? else {
            return Ok(LinkVisit::Unknown);
        };
        let now = self.now();
        if link.current == 0 || link.expires_at <= now {
            return Ok(LinkVisit::Ended);
        }
        if preview {
            return Ok(LinkVisit::Preview);
        }
        if let Some(from) = link.not_before.filter(|from| *from > now) {
            let desk = self.inner.desks.of(link.desk.as_deref());
            return Ok(LinkVisit::NotYet {
                from: desk.local_time(from),
            });
        }
        // The customer's link and the experts' host link: their first opening is an event,
        // and the customer's is posted in the thread.
        let customers = link.role == "guest" && link.extra == 0;
        if (customers || link.role == "host") && link.opened_at.is_none() {
            let notice = customers.then(|| Self::to_thread(expert_texts::link_opened(now)));
            if store
                .record_opening(code, &link.conversation_id, notice, now)
                .await?
            {
                if customers {
                    self.inner
                        .metrics
                        .link_opened((now - link.created_at) as f64 / 1000.0);
                    tracing::info!(conversation = %link.conversation_id, "the customer opened the link");
                }
                self.wake_outbox();
            }
        }
        Ok(LinkVisit::Redirect(link.target))
    }
}
