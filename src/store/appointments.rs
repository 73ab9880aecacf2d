//! Booked consultations: the appointment, its meeting (made at booking, its links valid
//! around the slot), its conversation, and its deliveries (the invitation now, the reminder
//! and the experts' card at their time), all written in one transaction.

use crate::domain::{Appointment, AuditEntry};
use sqlx::AnyConnection;

use super::audit::insert_audit;
use super::conversations::{open_conversation_for, Opening};
use super::events::{appointment_event, conversation_opened, meeting_created, record_events};
use super::links::insert_links;
use super::outbox::{insert_outbox, insert_scheduled, Scheduled};
use super::{Store, StoreError};
use crate::domain::events::EventType;
use crate::domain::{ConversationKey, MadeMeeting, OutboxEntry};

/// What to book: the appointment, its meeting and its deliveries.
pub struct NewAppointment {
    pub id: String,
    /// Its meeting; the claim ends with the booking.
    pub meeting: MadeMeeting,
    pub links_from: i64,
    pub links_until: i64,
    pub starts_at: i64,
    pub ends_at: i64,
    pub note: Option<String>,
    /// The caller's `Idempotency-Key` and the digest of its request.
    pub idempotency: Option<(String, String)>,
    /// Sent at once: the invitation.
    pub now_deliveries: Vec<OutboxEntry>,
    /// Due at `scheduled_at`, not sent once the slot is over: the reminder and the card.
    pub scheduled: Vec<OutboxEntry>,
    pub scheduled_at: i64,
    pub audit: AuditEntry,
    pub now: i64,
}

/// What became of a booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Booking {
    Booked(Appointment),
    /// Booked before with the same idempotency key.
    Existing(Appointment),
    /// The customer already has an appointment that is not over.
    CustomerBooked(Appointment),
}

const SELECT: &str = "SELECT a.id, a.conversation_id, a.meeting_id, a.channel, a.customer,
                             a.business, a.desk, a.starts_at, a.ends_at, a.note, a.state,
                             a.request_digest, a.created_at, a.cancelled_at, m.guest_url,
                             m.host_url, COALESCE(m.not_before, a.starts_at) AS links_from,
                             m.expires_at AS links_until
                      FROM appointments a JOIN meetings m ON m.id = a.meeting_id";

/// The customer's booked appointment that is not over, if any.
async fn booked_for(
    db: &mut AnyConnection,
    key: &ConversationKey,
    now: i64,
) -> Result<Option<Appointment>, StoreError> {
    let sql = format!(
        "{SELECT} WHERE a.channel = $1 AND a.customer = $2 AND a.business = $3
                    AND a.state = 'booked' AND a.ends_at > $4"
    );
    Ok(sqlx::query_as(&sql)
        .bind(key.channel.as_str())
        .bind(key.customer.as_str())
        .bind(key.business.as_str())
        .bind(now)
        .fetch_optional(db)
        .await?)
}

impl Store {
    /// The customer's booked appointment that is not over, if any: looked at again when
    /// booking, in the booking's transaction.
    pub async fn booked_appointment_for(
        &self,
        key: &ConversationKey,
        now: i64,
    ) -> Result<Option<Appointment>, StoreError> {
        booked_for(&mut *self.reader.acquire().await?, key, now).await
    }

    /// (One function on purpose, though long: one transaction whose statements read in the
    /// order they run, one per table it touches.)
    pub async fn book_appointment(&self, new: NewAppointment) -> Result<Booking, StoreError> {
        self.write(async move |tx| {
            if let Some((key, _)) = &new.idempotency {
                let sql = format!("{SELECT} WHERE a.idempotency_key = $1");
                let existing = sqlx::query_as(&sql)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await?;
                if let Some(existing) = existing {
                    return Ok(Booking::Existing(existing));
                }
            }
            if let Some(booked) = booked_for(&mut *tx, &new.meeting.key, new.now).await? {
                return Ok(Booking::CustomerBooked(booked));
            }
            let opening = Opening {
                key: &new.meeting.key,
                id: &new.meeting.conversation_id,
                customer_name: new.meeting.customer_name.as_deref(),
                desk: &new.meeting.desk,
                now: new.now,
            };
            let (conversation_id, _) = open_conversation_for(tx, opening, true).await?;
            sqlx::query(
                "INSERT INTO meetings (id, conversation_id, sub, host_url, guest_url,
                                       not_before, expires_at, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&new.meeting.meeting_id)
            .bind(&conversation_id)
            .bind(&new.meeting.sub)
            .bind(new.meeting.links.host_url.as_str())
            .bind(new.meeting.links.guest_url.as_str())
            .bind(new.links_from)
            .bind(new.links_until)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            insert_links(
                tx,
                &[(
                    &new.meeting.meeting_id,
                    &new.meeting.links,
                    &new.meeting.redirects,
                    new.now,
                )],
            )
            .await?;
            let (idempotency_key, digest) = new.idempotency.clone().unzip();
            sqlx::query(
                "INSERT INTO appointments (id, conversation_id, meeting_id, channel, customer,
                                           business, desk, starts_at, ends_at, note,
                                           idempotency_key, request_digest, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&new.id)
            .bind(&conversation_id)
            .bind(&new.meeting.meeting_id)
            .bind(new.meeting.key.channel.as_str())
            .bind(new.meeting.key.customer.as_str())
            .bind(new.meeting.key.business.as_str())
            .bind(&new.meeting.desk)
            .bind(new.starts_at)
            .bind(new.ends_at)
            .bind(&new.note)
            .bind(idempotency_key)
            .bind(digest)
            .bind(new.now)
            .execute(&mut *tx)
            .await?;
            insert_outbox(tx, &new.now_deliveries, Some(&conversation_id), new.now).await?;
            let scheduled = Scheduled {
                due: new.scheduled_at,
                stale_after: new.ends_at,
            };
            insert_scheduled(tx, &new.scheduled, &conversation_id, scheduled, new.now).await?;
            insert_audit(tx, &new.audit).await?;
            sqlx::query(
                "DELETE FROM meeting_claims
                 WHERE channel = $1 AND customer = $2 AND business = $3 AND claim_id = $4",
            )
            .bind(new.meeting.key.channel.as_str())
            .bind(new.meeting.key.customer.as_str())
            .bind(new.meeting.key.business.as_str())
            .bind(&new.meeting.claim_id)
            .execute(&mut *tx)
            .await?;
            let sql = format!("{SELECT} WHERE a.id = $1");
            let booked: Appointment = sqlx::query_as(&sql)
                .bind(&new.id)
                .fetch_one(&mut *tx)
                .await?;
            // A booking that opens its conversation tells that first, then its meeting.
            let desk = Some(booked.desk.as_str());
            let mut events = Vec::new();
            if conversation_id == new.meeting.conversation_id {
                events.push(conversation_opened(
                    &conversation_id,
                    &new.meeting.key,
                    desk,
                ));
            }
            events.push(meeting_created(
                &conversation_id,
                desk,
                &new.meeting.meeting_id,
                &new.meeting.links,
                new.links_until,
            ));
            events.push(appointment_event(EventType::AppointmentBooked, &booked));
            record_events(tx, &events, new.now).await?;
            Ok(Booking::Booked(booked))
        })
        .await
    }

    pub async fn appointment(&self, id: &str) -> Result<Option<Appointment>, StoreError> {
        let sql = format!("{SELECT} WHERE a.id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    pub async fn appointment_by_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<Appointment>, StoreError> {
        let sql = format!("{SELECT} WHERE a.idempotency_key = $1");
        Ok(sqlx::query_as(&sql)
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Appointments starting in `[from, to)`, soonest first.
    pub async fn appointments(
        &self,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<Appointment>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE a.starts_at >= $1 AND a.starts_at < $2
             ORDER BY a.starts_at, a.id LIMIT $3"
        );
        Ok(sqlx::query_as(&sql)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?)
    }

    /// The conversation's booked appointment that is not over, if any.
    pub async fn booked_appointment_of(
        &self,
        conversation_id: &str,
        now: i64,
    ) -> Result<Option<Appointment>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE a.conversation_id = $1 AND a.state = 'booked' AND a.ends_at > $2
             ORDER BY a.starts_at LIMIT 1"
        );
        Ok(sqlx::query_as(&sql)
            .bind(conversation_id)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// The customer's booked appointment whose links do not work yet, if any.
    pub async fn appointment_ahead(
        &self,
        key: &ConversationKey,
        now: i64,
    ) -> Result<Option<Appointment>, StoreError> {
        let sql = format!(
            "{SELECT} WHERE a.channel = $1 AND a.customer = $2 AND a.business = $3
                        AND a.state = 'booked' AND m.not_before > $4
             ORDER BY a.starts_at LIMIT 1"
        );
        Ok(sqlx::query_as(&sql)
            .bind(key.channel.as_str())
            .bind(key.customer.as_str())
            .bind(key.business.as_str())
            .bind(now)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// Cancels a booked appointment: its scheduled deliveries are not sent, its links end,
    /// `deliveries` are queued (the customer's notice, the thread's) and its conversation
    /// closes. False when it was not booked (cancelled before).
    pub async fn cancel_appointment(
        &self,
        appointment: &Appointment,
        deliveries: Vec<OutboxEntry>,
        reason: &str,
        audit: AuditEntry,
        now: i64,
    ) -> Result<bool, StoreError> {
        let event = appointment_event(EventType::AppointmentCancelled, appointment);
        let (id, conversation_id, meeting_id, reason) = (
            appointment.id.clone(),
            appointment.conversation_id.clone(),
            appointment.meeting_id.clone(),
            reason.to_string(),
        );
        self.write(async move |tx| {
            let cancelled = sqlx::query(
                "UPDATE appointments SET state = 'cancelled', cancelled_at = $1
                 WHERE id = $2 AND state = 'booked'",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !cancelled {
                return Ok(false);
            }
            sqlx::query(
                "UPDATE outbox SET state = 'cancelled', last_error = $1, leased_until = NULL
                 WHERE conversation_id = $2 AND state = 'pending' AND scheduled = 1",
            )
            .bind(&reason)
            .bind(&conversation_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE meetings SET expires_at = $1 WHERE id = $2 AND expires_at > $1")
                .bind(now)
                .bind(&meeting_id)
                .execute(&mut *tx)
                .await?;
            insert_outbox(tx, &deliveries, Some(&conversation_id), now).await?;
            let closed = sqlx::query(
                "UPDATE conversations SET state = 'closed', closed_at = $1,
                                          closed_by = 'appointment cancelled'
                 WHERE id = $2 AND state = 'open'",
            )
            .bind(now)
            .bind(&conversation_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            insert_audit(tx, &audit).await?;
            let mut events = vec![event];
            if closed {
                events.push(super::conversation_events::closed(tx, &conversation_id).await?);
            }
            record_events(tx, &events, now).await?;
            Ok(true)
        })
        .await
    }
}
