//! Links to experts' files that Webex Connect can fetch: `ICB_PUBLIC_URL/media/<token>/<name>`.
//! Webex keeps the file and wants the bot token for it, so icbridge serves it itself, and
//! only to someone holding a token it signed: HMAC-SHA256, with a secret the instances
//! share through the database, over the file's Webex link, type, name and expiry.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use url::Url;

use crate::domain::clock::Clock;
use crate::domain::{ExpertFile, MediaType};
use crate::upstream::webex::WebexClient;
use crate::upstream::UpstreamError;

/// How long a link works by default: long enough for WhatsApp to fetch it, and for a
/// customer to open one sent by SMS soon after.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct MediaLinks {
    secret: SecretString,
    public_url: Url,
    ttl: Duration,
}

/// What a token names.
#[derive(Serialize, Deserialize)]
struct Claims {
    /// The Webex link.
    u: String,
    /// The type.
    m: String,
    /// The name.
    n: String,
    /// Expiry, Unix ms.
    e: i64,
}

impl MediaLinks {
    pub fn new(secret: SecretString, public_url: Url, ttl: Duration) -> Self {
        Self {
            secret,
            public_url,
            ttl,
        }
    }

    /// The public link to `file`, valid from `now` for the configured time. It ends with
    /// the file's name: WhatsApp wants links that end with the type's extension.
    pub fn link(&self, file: &ExpertFile, now: i64) -> String {
        let claims = Claims {
            u: file.url.clone(),
            m: file.mime_type.clone(),
            n: file.name.clone(),
            e: now + self.ttl.as_millis() as i64,
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signature = URL_SAFE_NO_PAD.encode(self.sign(&payload));
        let mut url = self.public_url.clone();
        url.path_segments_mut()
            .expect("the public URL is a base URL")
            .pop_if_empty()
            .extend(["media", &format!("{payload}.{signature}"), &file.name]);
        url.into()
    }

    /// The file a token names, if icbridge signed it for this name and it has not expired.
    pub fn verify(&self, token: &str, name: &str, now: i64) -> Option<ExpertFile> {
        let (payload, signature) = token.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.e > now && claims.n == name).then_some(ExpertFile {
            url: claims.u,
            mime_type: claims.m,
            name: claims.n,
        })
    }

    fn sign(&self, payload: &str) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length")
    }
}

/// The types a browser shows as they are without running anything of the file's: pictures
/// (not SVG, a document that may carry scripts), sound, video and PDF. A file of any other
/// type is served as a download.
const INLINE_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "audio/aac",
    "audio/mp4",
    "audio/mpeg",
    "audio/amr",
    "audio/ogg",
    "video/mp4",
    "video/3gpp",
    "video/webm",
    "application/pdf",
];

/// Whether a file of `mime_type` (parameters and case aside) may be shown in the browser;
/// if not, it is served as an attachment.
pub fn shown_inline(mime_type: &str) -> bool {
    MediaType::parse(mime_type).is_ok_and(|parsed| INLINE_TYPES.contains(&parsed.as_str()))
}

/// Serves the files the links name, from Webex.
#[derive(Clone)]
pub struct MediaFiles {
    pub links: MediaLinks,
    pub webex: WebexClient,
    pub clock: Clock,
}

impl MediaFiles {
    /// The file `token` names under `name`, opened for reading: `None` when the token is
    /// not one icbridge signed for that name, or it expired.
    pub async fn open(
        &self,
        token: &str,
        name: &str,
    ) -> Result<Option<(ExpertFile, reqwest::Response)>, UpstreamError> {
        let Some(file) = self.links.verify(token, name, self.clock.now_ms()) else {
            return Ok(None);
        };
        let response = self.webex.open_file(&file.url).await?;
        Ok(Some((file, response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> MediaLinks {
        MediaLinks::new(
            SecretString::from("a secret of the server"),
            Url::parse("https://bridge.example.com/").unwrap(),
            DEFAULT_TTL,
        )
    }

    fn file() -> ExpertFile {
        ExpertFile {
            url: "https://webexapis.com/v1/contents/abc".into(),
            mime_type: "application/pdf".into(),
            name: "plan.pdf".into(),
        }
    }

    fn token_of(link: &str) -> String {
        link.split('/').nth_back(1).unwrap().to_string()
    }

    #[test]
    fn a_link_names_its_file_until_it_expires() {
        let link = links().link(&file(), 0);
        assert!(
            link.starts_with("https://bridge.example.com/media/"),
            "{link}"
        );
        assert!(link.ends_with("/plan.pdf"), "{link}");
        let token = token_of(&link);
        assert_eq!(links().verify(&token, "plan.pdf", 1000), Some(file()));
        assert_eq!(
            links().verify(&token, "plan.pdf", DEFAULT_TTL.as_millis() as i64),
            None
        );
        assert_eq!(links().verify(&token, "other.pdf", 1000), None);
    }

    #[test]
    fn only_pictures_sound_video_and_pdf_are_shown_inline() {
        for shown in [
            "image/jpeg",
            "IMAGE/PNG",
            "audio/ogg; codecs=opus",
            "video/mp4",
            "application/pdf",
        ] {
            assert!(shown_inline(shown), "{shown}");
        }
        for downloaded in [
            "image/svg+xml",
            "Image/SVG+XML; charset=utf-8",
            "text/html",
            "text/html; charset=utf-8",
            "application/xhtml+xml",
            "text/xml",
            "application/xml",
            "text/plain",
            "text/javascript",
            "application/zip",
            "application/octet-stream",
            "",
            "not a type",
        ] {
            assert!(!shown_inline(downloaded), "{downloaded}");
        }
    }

    #[test]
    fn tampered_or_foreign_tokens_name_nothing() {
        let token = token_of(&links().link(&file(), 0));
        let (payload, signature) = token.split_once('.').unwrap();
        let mut other = file();
        other.url = "https://webexapis.com/v1/contents/other".into();
        let other_token = token_of(&links().link(&other, 0));
        let (other_payload, _) = other_token.split_once('.').unwrap();
        for forged in [
            format!("{other_payload}.{signature}"),
            format!("{payload}.AAAA"),
            payload.to_string(),
            "..".to_string(),
        ] {
            assert_eq!(links().verify(&forged, "plan.pdf", 1000), None, "{forged}");
        }
        let elsewhere = MediaLinks::new(
            SecretString::from("another server"),
            Url::parse("https://bridge.example.com").unwrap(),
            DEFAULT_TTL,
        );
        assert_eq!(elsewhere.verify(&token, "plan.pdf", 1000), None);
    }
}
