//! Customers' files, downloaded for Webex when it cannot fetch their links itself. The
//! links point at Webex Connect's media storage (which wants the service key) or at a
//! flow author's own host.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::{status_error, HttpClient, Upstream, UpstreamError};
use crate::domain::{MediaType, MediaUrl};

/// How long one download may take in all.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// A customer's file, downloaded.
pub struct Downloaded {
    pub bytes: Vec<u8>,
    pub media_type: MediaType,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The file is not one to relay: it is too large.
    #[error("{0}")]
    Refused(String),
}

#[derive(Clone)]
pub struct MediaClient {
    http: HttpClient,
    max_bytes: u64,
    /// Webex Connect's API origins and service key: the key goes with links to exactly
    /// those origins (scheme, host and port), never elsewhere.
    connect: Option<(Vec<url::Origin>, SecretString)>,
}

impl MediaClient {
    pub fn new(
        http: HttpClient,
        max_bytes: u64,
        connect: Option<(Vec<url::Origin>, SecretString)>,
    ) -> Self {
        Self {
            http,
            max_bytes,
            connect,
        }
    }

    /// Whether a link is Webex Connect's own (Webex cannot fetch it: it needs the key).
    pub fn needs_credentials(&self, url: &MediaUrl) -> bool {
        self.connect
            .as_ref()
            .is_some_and(|(origins, _)| origins.contains(&url.as_url().origin()))
    }

    /// Downloads a file; refused when larger than the cap. The size is checked as the bytes
    /// arrive, not only as announced.
    pub async fn fetch(&self, url: &MediaUrl) -> Result<Downloaded, FetchError> {
        let mut request = self
            .http
            .get(url.as_url().clone())
            .timeout(DOWNLOAD_TIMEOUT);
        if let Some((_, key)) = self
            .connect
            .as_ref()
            .filter(|_| self.needs_credentials(url))
        {
            request = request.header("key", key.expose_secret());
        }
        let response = self.http.send(Upstream::Connect, request).await?;
        if !response.status().is_success() {
            return Err(status_error(Upstream::Connect, response).await.into());
        }
        // Any type is passed on to Webex (it takes files of every type); one not given is
        // a file of unknown type.
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| MediaType::parse(raw).ok())
            .unwrap_or_else(MediaType::unknown);
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes)
        {
            return Err(self.too_large());
        }
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| UpstreamError::Transport {
                upstream: Upstream::Connect,
                source: e.without_url(),
            })?;
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(self.too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Downloaded { bytes, media_type })
    }

    fn too_large(&self) -> FetchError {
        FetchError::Refused(format!(
            "it is larger than {} MiB",
            self.max_bytes / (1024 * 1024)
        ))
    }
}
