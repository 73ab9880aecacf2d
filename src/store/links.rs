//! The links icbridge hands out in place of Instant Connect's: where each code leads, whether
//! its meeting is still the conversation's live one, and its first opening.

use crate::domain::{LinkRecord, MeetingLinkRecord, Redirect};
use sqlx::AnyConnection;

use super::conversation_events;
use super::engine::rows_of_placeholders;
use super::events::record_events;
use super::outbox::insert_outbox;
use super::{Store, StoreError};
use crate::domain::{LinkRole, Meeting, MeetingLinks, OutboxEntry};

impl Store {
    pub async fn link(&self, code: &str) -> Result<Option<LinkRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT l.target, l.role, l.extra, t.conversation_id, t.created_at, t.expires_at,
                    t.not_before, c.desk, l.opened_at,
                    (CASE WHEN c.state = 'open' AND t.id = (
                         -- The meeting messages are answered with (see `live_meeting`).
                         SELECT m.id FROM meetings m WHERE m.conversation_id = t.conversation_id
                         ORDER BY m.expires_at DESC, m.created_at DESC LIMIT 1)
                     THEN 1 ELSE 0 END) AS current
             FROM links l JOIN meetings t ON t.id = l.meeting_id
                          JOIN conversations c ON c.id = t.conversation_id
             WHERE l.code = $1",
        )
        .bind(code)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Records the first opening of link `code` and queues `notice` (if any) and its
    /// `link.opened` event with it; false when it was opened before.
    pub async fn record_opening(
        &self,
        code: &str,
        conversation_id: &str,
        notice: Option<OutboxEntry>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (code, conversation_id) = (code.to_string(), conversation_id.to_string());
        self.write(async move |tx| {
            let first = sqlx::query(
                "UPDATE links SET opened_at = $1 WHERE code = $2 AND opened_at IS NULL",
            )
            .bind(now)
            .bind(&code)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if first {
                insert_outbox(tx, notice.as_slice(), Some(&conversation_id), now).await?;
                let event = conversation_events::link_opened(tx, &code, now).await?;
                record_events(tx, event.as_slice(), now).await?;
            }
            Ok(first)
        })
        .await
    }
}

/// A new meeting's links as stored: its id, its links, the codes handed out for them, and
/// when it was made.
pub(super) type NewLinks<'a> = (&'a str, &'a MeetingLinks, &'a [Redirect], i64);

/// Stores new meetings' links with their roles, and the codes of icbridge's own links, in
/// one statement each.
pub(super) async fn insert_links(
    tx: &mut AnyConnection,
    meetings: &[NewLinks<'_>],
) -> Result<(), StoreError> {
    let links: Vec<_> = meetings
        .iter()
        .flat_map(|(id, links, _, now)| links.all().map(move |(role, url)| (*id, role, url, *now)))
        .collect();
    if !links.is_empty() {
        let sql = format!(
            "INSERT INTO meeting_links (meeting_id, role, url, sent_to, created_at) VALUES {}",
            rows_of_placeholders(links.len(), 5, 1)
        );
        let mut query = sqlx::query(&sql);
        for (meeting_id, role, url, now) in links {
            query = query
                .bind(meeting_id)
                .bind(role.as_str())
                .bind(url.as_str())
                .bind(None::<&str>)
                .bind(now);
        }
        query.execute(&mut *tx).await?;
    }
    let redirects: Vec<_> = meetings
        .iter()
        .flat_map(|(id, _, redirects, _)| redirects.iter().map(move |redirect| (*id, redirect)))
        .collect();
    insert_redirects(tx, &redirects).await
}

pub(super) async fn insert_meeting_link(
    tx: &mut AnyConnection,
    meeting_id: &str,
    role: LinkRole,
    url: &str,
    sent_to: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO meeting_links (meeting_id, role, url, sent_to, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(meeting_id)
    .bind(role.as_str())
    .bind(url)
    .bind(sent_to)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Stores the codes of icbridge's own links (each with its meeting), in one statement.
pub(super) async fn insert_redirects(
    tx: &mut AnyConnection,
    redirects: &[(&str, &Redirect)],
) -> Result<(), StoreError> {
    if redirects.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO links (code, meeting_id, role, target, extra) VALUES {}",
        rows_of_placeholders(redirects.len(), 5, 1)
    );
    let mut query = sqlx::query(&sql);
    for (meeting_id, redirect) in redirects {
        query = query
            .bind(&redirect.code)
            .bind(*meeting_id)
            .bind(redirect.role)
            .bind(&redirect.target)
            .bind(i64::from(redirect.extra));
    }
    query.execute(&mut *tx).await?;
    Ok(())
}

/// One more guest link for a meeting, and what goes with it.
pub struct NewGuestLink {
    pub conversation_id: String,
    pub meeting_id: String,
    pub url: String,
    /// The own link's code, with ICB_PUBLIC_URL.
    pub redirect: Option<Redirect>,
    /// The masked number it is sent to.
    pub sent_to: Option<String>,
    pub deliveries: Vec<OutboxEntry>,
    pub audit: crate::domain::AuditEntry,
    pub now: i64,
}

impl Store {
    /// The conversation's newest meeting whose links still work (or will, for a booked one).
    pub async fn live_meeting_of(
        &self,
        conversation_id: &str,
        now: i64,
    ) -> Result<Option<Meeting>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, conversation_id, sub, host_url, guest_url, not_before, expires_at, created_at FROM meetings
             WHERE conversation_id = $1 AND expires_at > $2
             ORDER BY expires_at DESC, created_at DESC LIMIT 1",
        )
        .bind(conversation_id)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Stores an added guest's link with its deliveries and audit row.
    pub async fn add_guest_link(&self, new: NewGuestLink) -> Result<(), StoreError> {
        self.write(async move |tx| {
            insert_meeting_link(
                tx,
                &new.meeting_id,
                LinkRole::Guest,
                &new.url,
                new.sent_to.as_deref(),
                new.now,
            )
            .await?;
            let redirects: Vec<_> = new
                .redirect
                .iter()
                .map(|redirect| (new.meeting_id.as_str(), redirect))
                .collect();
            insert_redirects(tx, &redirects).await?;
            insert_outbox(tx, &new.deliveries, Some(&new.conversation_id), new.now).await?;
            super::audit::insert_audit(tx, &new.audit).await
        })
        .await
    }

    /// The links of a conversation's meetings, oldest first.
    pub async fn meeting_links_of(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<MeetingLinkRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT l.meeting_id, l.role, l.url, l.sent_to, l.created_at
             FROM meeting_links l JOIN meetings m ON m.id = l.meeting_id
             WHERE m.conversation_id = $1 ORDER BY l.id",
        )
        .bind(conversation_id)
        .fetch_all(&self.reader)
        .await?)
    }
}
