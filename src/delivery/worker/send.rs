//! How one delivery reaches its upstream: Webex posts (cards, thread messages, files)
//! and Webex Connect's SMS and WhatsApp sends. What becomes of the row afterwards is the
//! worker's (`super`).

use super::OutboxWorker;
use crate::delivery::schedule;
use crate::desks::expert_texts;
use crate::domain::{
    correlation_id, Delivery, ExpertFile, MediaType, MediaUrl, OutboxRow, WebexPost,
};
use crate::upstream::connect::{
    ConnectClient, SmsRequest, WhatsappEnvelope, WhatsappMedia, WhatsappRequest,
};
use crate::upstream::media::FetchError;
use crate::upstream::UpstreamError;

impl OutboxWorker {
    pub(super) async fn send(
        &self,
        row: &OutboxRow,
        delivery: Delivery,
    ) -> Result<String, Failure> {
        let parts = &self.parts;
        let experts = || parts.places.of(row.desk.as_deref()).clone();
        let post = match delivery {
            Delivery::Notification { markdown, card } => WebexPost {
                destination: experts(),
                markdown,
                parent_id: None,
                attachments: vec![card],
                files: Vec::new(),
            },
            Delivery::ThreadMessage { markdown } => self.in_thread(row, markdown).await,
            Delivery::DeskThreadMessage {
                markdown,
                desk,
                thread_message_id,
            } => WebexPost {
                destination: parts.places.of(desk.as_deref()).clone(),
                markdown,
                parent_id: Some(thread_message_id),
                attachments: Vec::new(),
                files: Vec::new(),
            },
            Delivery::ThreadFile {
                markdown,
                url,
                mime_type,
            } => {
                let post = self.in_thread(row, markdown).await;
                return self.send_file(row, post, &url, &mime_type).await;
            }
            Delivery::WebexMessage(post) => post,
            to_customer => return self.send_to_customer(row, to_customer).await,
        };
        Ok(parts.webex.post_message(&post).await?)
    }

    /// Sends through Webex Connect: SMS and WhatsApp.
    async fn send_to_customer(
        &self,
        row: &OutboxRow,
        delivery: Delivery,
    ) -> Result<String, Failure> {
        let connect = self.parts.connect.as_ref().ok_or(Failure::NotConfigured)?;
        match delivery {
            Delivery::Sms {
                from,
                to,
                mut content,
                files,
            } => {
                for file in &files {
                    content.push_str(&format!("\n\n{}: {}", file.name, self.link(file)?));
                }
                let request = SmsRequest {
                    from,
                    to,
                    content: content.trim_start().to_string(),
                    correlation_id: correlation_id(row.id),
                    callback_data: row.conversation_id.clone().unwrap_or_default(),
                };
                Ok(connect.send_sms(&request).await?)
            }
            Delivery::Whatsapp { app_id, waid, body } => {
                let request = WhatsappRequest {
                    app_id,
                    waid,
                    body,
                    correlation_id: correlation_id(row.id),
                    callback_data: row.conversation_id.clone().unwrap_or_default(),
                };
                Ok(connect.send_whatsapp(&request).await?)
            }
            Delivery::WhatsappMedia {
                app_id,
                waid,
                file,
                caption,
            } => {
                let envelope = envelope(row, app_id, waid);
                self.send_whatsapp_file(connect, envelope, &file, caption)
                    .await
            }
            Delivery::WhatsappButtons {
                app_id,
                waid,
                body,
                buttons,
            } => {
                let envelope = envelope(row, app_id, waid);
                Ok(connect
                    .send_whatsapp_buttons(&envelope, &body, &buttons)
                    .await?)
            }
            Delivery::WhatsappTemplate {
                app_id,
                waid,
                template,
                parameters,
            } => {
                let envelope = envelope(row, app_id, waid);
                Ok(connect
                    .send_whatsapp_template(&envelope, &template, &parameters)
                    .await?)
            }
            // `send` posts these itself.
            Delivery::Notification { .. }
            | Delivery::ThreadMessage { .. }
            | Delivery::DeskThreadMessage { .. }
            | Delivery::ThreadFile { .. }
            | Delivery::WebexMessage(_) => {
                unreachable!("a Webex post is not sent through Webex Connect")
            }
        }
    }

    /// An expert's file to a WhatsApp customer: as media when WhatsApp carries its type,
    /// else as a link in a text.
    async fn send_whatsapp_file(
        &self,
        connect: &ConnectClient,
        envelope: WhatsappEnvelope,
        file: &ExpertFile,
        caption: Option<String>,
    ) -> Result<String, Failure> {
        let link = self.link(file)?;
        let Some(media_type) = file.media_type() else {
            // A type WhatsApp does not carry goes as a link.
            let body = match caption {
                Some(caption) => format!("{caption}\n\n{}: {link}", file.name),
                None => format!("{}: {link}", file.name),
            };
            let request = WhatsappRequest {
                app_id: envelope.app_id,
                waid: envelope.waid,
                body,
                correlation_id: envelope.correlation_id,
                callback_data: envelope.callback_data,
            };
            return Ok(connect.send_whatsapp(&request).await?);
        };
        let media = WhatsappMedia {
            url: &link,
            media_type: &media_type,
            caption: caption.as_deref(),
            file_name: &file.name,
        };
        Ok(connect.send_whatsapp_media(&envelope, &media).await?)
    }

    /// Posts a customer's file: by its link, which Webex fetches, or, when Webex cannot
    /// (Webex Connect's links need the service key, others may not be public), downloaded
    /// and uploaded. A file that cannot be had for good (too large, a type not allowed, a
    /// link that refuses, or one that never answered by the last try) still tells the
    /// experts that it came.
    async fn send_file(
        &self,
        row: &OutboxRow,
        mut post: WebexPost,
        url: &MediaUrl,
        mime_type: &MediaType,
    ) -> Result<String, Failure> {
        let webex = &self.parts.webex;
        let media = &self.parts.media;
        // A link into a private network is neither fetched nor handed to Webex.
        if let Some(refusal) = media.refusal(url.as_url()) {
            tracing::warn!(kind = mime_type.kind().noun(), reason = %refusal,
                "a customer's file link is refused; the experts are told");
            post.markdown = expert_texts::customer_file_not_shown(&post.markdown, &refusal);
            return Ok(webex.post_message(&post).await?);
        }
        if !media.needs_credentials(url) {
            post.files = vec![url.as_str().to_string()];
            match webex.post_message(&post).await {
                Ok(id) => return Ok(id),
                Err(error) if webex_could_not_fetch(&error) => post.files.clear(),
                Err(error) => return Err(error.into()),
            }
        }
        match media.fetch(url).await {
            Ok(file) => {
                let name = format!(
                    "{}.{}",
                    file.media_type.kind().noun().replace(' ', "-"),
                    file.media_type.extension()
                );
                match webex
                    .post_message_with_file(&post, &name, file.media_type.as_str(), file.bytes)
                    .await
                {
                    // Webex may refuse a type it does not take: the experts are told.
                    Err(error) if webex_could_not_fetch(&error) => {
                        tracing::warn!(kind = mime_type.kind().noun(), %error,
                            "Webex refused a customer's file; the experts are told");
                        post.markdown = expert_texts::customer_file_not_shown(
                            &post.markdown,
                            &format!("Webex did not take this {} file", file.media_type.as_str()),
                        );
                        Ok(webex.post_message(&post).await?)
                    }
                    sent => Ok(sent?),
                }
            }
            // A host that does not answer is tried again, until the last try.
            Err(FetchError::Upstream(error))
                if error.is_retryable()
                    && schedule::backoff(&self.parts.schedule, row.attempts).is_some() =>
            {
                Err(error.into())
            }
            Err(error) => {
                tracing::warn!(kind = mime_type.kind().noun(), reason = %error,
                    "a customer's file cannot be attached; the experts are told");
                post.markdown =
                    expert_texts::customer_file_not_shown(&post.markdown, &error.to_string());
                Ok(webex.post_message(&post).await?)
            }
        }
    }

    /// The public link to an expert's file, signed now.
    fn link(&self, file: &ExpertFile) -> Result<String, Failure> {
        let links = self
            .parts
            .media_links
            .as_ref()
            .ok_or(Failure::NoPublicUrl)?;
        Ok(links.link(file, self.now()))
    }

    /// Places a thread message under its conversation's thread. Without a thread (its
    /// notification failed for good) it goes to the experts on its own, saying whom it is
    /// about.
    async fn in_thread(&self, row: &OutboxRow, markdown: String) -> WebexPost {
        let markdown = match (&row.thread_message_id, &row.conversation_id) {
            (None, Some(id)) => {
                let about = match self.parts.store.conversation(id).await {
                    Ok(Some(c)) => {
                        format!(
                            "{} · {}",
                            c.key.channel.display_name(),
                            c.key.customer.masked()
                        )
                    }
                    _ => format!("Conversation {id}"),
                };
                format!("**{about}**\n\n{markdown}")
            }
            _ => markdown,
        };
        WebexPost {
            destination: self.parts.places.of(row.desk.as_deref()).clone(),
            markdown,
            parent_id: row.thread_message_id.clone(),
            attachments: Vec::new(),
            files: Vec::new(),
        }
    }
}

/// Who a row's WhatsApp message goes to, with the ids that tie its receipts to the row.
fn envelope(row: &OutboxRow, app_id: String, waid: String) -> WhatsappEnvelope {
    WhatsappEnvelope {
        app_id,
        waid,
        correlation_id: correlation_id(row.id),
        callback_data: row.conversation_id.clone().unwrap_or_default(),
    }
}

/// Webex refused a file link as one it cannot fetch (not a refused token, not a wait).
fn webex_could_not_fetch(error: &UpstreamError) -> bool {
    matches!(
        error,
        UpstreamError::Status {
            status: 400 | 404 | 415 | 422,
            ..
        }
    )
}

/// Why a row could not be sent.
pub(super) enum Failure {
    Upstream(UpstreamError),
    NotConfigured,
    /// An expert's file, queued before `ICB_PUBLIC_URL` was unset.
    NoPublicUrl,
}

impl From<UpstreamError> for Failure {
    fn from(error: UpstreamError) -> Self {
        Failure::Upstream(error)
    }
}
