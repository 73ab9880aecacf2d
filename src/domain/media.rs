//! Pictures, documents, videos, voice notes and locations a customer sends with a message,
//! as icbridge keeps them: links and types, never the bytes.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

/// Most items one message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
const MAX_CAPTION_CHARS: usize = 1024;
const MAX_URL_CHARS: usize = 2048;
const MAX_PLACE_CHARS: usize = 256;

/// What kind of media a type is: WhatsApp's message types, which Webex shows alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaKind {
    /// How the experts are told what arrived.
    pub fn noun(self) -> &'static str {
        match self {
            MediaKind::Image => "photo",
            MediaKind::Video => "video",
            MediaKind::Audio => "voice message",
            MediaKind::Document => "document",
        }
    }

    /// WhatsApp's `type` for a media message of this kind.
    pub fn whatsapp_type(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document => "document",
        }
    }
}

/// The types WhatsApp carries (and so the only ones icbridge relays), with their kind and
/// the file extension WhatsApp expects at the end of a link.
const ALLOWED: &[(&str, MediaKind, &str)] = &[
    ("image/jpeg", MediaKind::Image, "jpg"),
    ("image/png", MediaKind::Image, "png"),
    ("image/webp", MediaKind::Image, "webp"),
    ("video/mp4", MediaKind::Video, "mp4"),
    ("video/3gpp", MediaKind::Video, "3gp"),
    ("audio/aac", MediaKind::Audio, "aac"),
    ("audio/mp4", MediaKind::Audio, "m4a"),
    ("audio/mpeg", MediaKind::Audio, "mp3"),
    ("audio/amr", MediaKind::Audio, "amr"),
    ("audio/ogg", MediaKind::Audio, "ogg"),
    ("application/pdf", MediaKind::Document, "pdf"),
    ("text/plain", MediaKind::Document, "txt"),
    ("application/msword", MediaKind::Document, "doc"),
    ("application/vnd.ms-excel", MediaKind::Document, "xls"),
    ("application/vnd.ms-powerpoint", MediaKind::Document, "ppt"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        MediaKind::Document,
        "docx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        MediaKind::Document,
        "xlsx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        MediaKind::Document,
        "pptx",
    ),
];

/// A MIME type from the allow-list, without its parameters (`audio/ogg; codecs=opus` is
/// `audio/ogg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType(&'static str);

impl MediaType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let essence = raw.split(';').next().unwrap_or_default().trim();
        ALLOWED
            .iter()
            .find(|(name, _, _)| name.eq_ignore_ascii_case(essence))
            .map(|(name, _, _)| MediaType(name))
            .ok_or_else(|| format!("type {essence:?} is not one WhatsApp carries"))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn kind(&self) -> MediaKind {
        self.entry().1
    }

    /// The usual file extension of the type.
    pub fn extension(&self) -> &'static str {
        self.entry().2
    }

    fn entry(&self) -> &'static (&'static str, MediaKind, &'static str) {
        ALLOWED
            .iter()
            .find(|(name, _, _)| *name == self.0)
            .expect("a parsed type is in the allow-list")
    }
}

impl Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        MediaType::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An `https` link to a customer's file. Never logged: it may carry access tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MediaUrl(Url);

impl MediaUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(format!("is longer than {MAX_URL_CHARS} characters"));
        }
        let url = Url::parse(raw).map_err(|_| "is not a URL".to_string())?;
        if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
            return Err("must be an https link".into());
        }
        Ok(MediaUrl(url))
    }

    pub fn as_url(&self) -> &Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for MediaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaUrl(..)")
    }
}

impl TryFrom<String> for MediaUrl {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        MediaUrl::parse(&raw)
    }
}

impl From<MediaUrl> for String {
    fn from(url: MediaUrl) -> String {
        url.0.into()
    }
}

/// One file a customer sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub url: MediaUrl,
    pub mime_type: MediaType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub caption: Option<String>,
}

impl Attachment {
    /// Checks a caption's length and cleans it like a text; a blank one is none.
    pub fn caption(raw: Option<&str>) -> Result<Option<String>, String> {
        let Some(raw) = raw else { return Ok(None) };
        let caption = super::clean_text(raw).trim().to_string();
        if caption.chars().count() > MAX_CAPTION_CHARS {
            return Err(format!("is longer than {MAX_CAPTION_CHARS} characters"));
        }
        Ok(Some(caption).filter(|c| !c.is_empty()))
    }
}

/// A place a customer shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
}

impl Location {
    pub fn new(
        latitude: f64,
        longitude: f64,
        name: Option<&str>,
        address: Option<&str>,
    ) -> Result<Self, (&'static str, String)> {
        if !(-90.0..=90.0).contains(&latitude) {
            return Err(("latitude", "must be between -90 and 90".into()));
        }
        if !(-180.0..=180.0).contains(&longitude) {
            return Err(("longitude", "must be between -180 and 180".into()));
        }
        let place = |raw: Option<&str>| {
            raw.map(|r| {
                super::one_line(r)
                    .chars()
                    .take(MAX_PLACE_CHARS)
                    .collect::<String>()
            })
            .filter(|r| !r.is_empty())
        };
        Ok(Location {
            latitude,
            longitude,
            name: place(name),
            address: place(address),
        })
    }

    /// A map centred on the place (OpenStreetMap: no account, no tracking parameters).
    pub fn map_url(&self) -> String {
        let (lat, lon) = (self.latitude, self.longitude);
        format!("https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}")
    }

    /// The place in words: its name and address, or its coordinates.
    pub fn describe(&self) -> String {
        match (&self.name, &self.address) {
            (Some(name), Some(address)) => format!("{name}, {address}"),
            (Some(one), None) | (None, Some(one)) => one.clone(),
            (None, None) => format!("{}, {}", self.latitude, self.longitude),
        }
    }
}

/// A file an expert attached to a reply in Webex, to be relayed to the customer: its Webex
/// link (fetching it needs the bot token), type and name, as Webex gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpertFile {
    pub url: String,
    pub mime_type: String,
    pub name: String,
}

impl ExpertFile {
    /// The WhatsApp media type it can be sent as, if WhatsApp carries its type.
    pub fn media_type(&self) -> Option<MediaType> {
        MediaType::parse(&self.mime_type).ok()
    }
}

/// What a customer's message carries beside its text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Media {
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attachments: Vec<Attachment>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<Location>,
}

impl Media {
    pub fn is_empty(&self) -> bool {
        self.attachments.is_empty() && self.location.is_none()
    }

    /// As stored with the message: JSON, or `None` for a message with text only.
    pub fn to_stored(&self) -> Option<String> {
        (!self.is_empty()).then(|| serde_json::to_string(self).expect("media serialises"))
    }

    /// What [`to_stored`](Self::to_stored) wrote.
    pub fn from_stored(stored: Option<&str>) -> Self {
        stored
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default()
    }

    /// A few words for a message without text: "photo", "2 photos and a document",
    /// "location".
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for kind in [
            MediaKind::Image,
            MediaKind::Video,
            MediaKind::Audio,
            MediaKind::Document,
        ] {
            let count = self
                .attachments
                .iter()
                .filter(|a| a.mime_type.kind() == kind)
                .count();
            match count {
                0 => {}
                1 => parts.push(kind.noun().to_string()),
                n => parts.push(format!("{n} {}s", kind.noun())),
            }
        }
        if self.location.is_some() {
            parts.push("location".into());
        }
        match parts.len() {
            0 => String::new(),
            1 => parts.remove(0),
            _ => {
                let last = parts.pop().unwrap_or_default();
                format!("{} and {last}", parts.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_allow_list_without_parameters() {
        let ogg = MediaType::parse("audio/ogg; codecs=opus").unwrap();
        assert_eq!(ogg.as_str(), "audio/ogg");
        assert_eq!(ogg.kind(), MediaKind::Audio);
        assert_eq!(
            MediaType::parse("IMAGE/JPEG").unwrap().as_str(),
            "image/jpeg"
        );
        assert_eq!(
            MediaType::parse("application/x-msdownload").unwrap_err(),
            "type \"application/x-msdownload\" is not one WhatsApp carries"
        );
    }

    #[test]
    fn only_https_links() {
        assert!(MediaUrl::parse("https://media.example/p/1.jpg").is_ok());
        for bad in [
            "http://media.example/1.jpg",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "media.example/1.jpg",
        ] {
            assert!(MediaUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            format!("{:?}", MediaUrl::parse("https://x.example/secret").unwrap()),
            "MediaUrl(..)"
        );
    }

    #[test]
    fn summaries_name_what_arrived() {
        let photo = |n: &str| Attachment {
            url: MediaUrl::parse(&format!("https://x.example/{n}.jpg")).unwrap(),
            mime_type: MediaType::parse("image/jpeg").unwrap(),
            caption: None,
        };
        let mut media = Media {
            attachments: vec![photo("1")],
            location: None,
        };
        assert_eq!(media.summary(), "photo");
        media.attachments.push(photo("2"));
        media.location = Some(Location::new(52.5, 13.4, None, None).unwrap());
        assert_eq!(media.summary(), "2 photos and location");
    }

    #[test]
    fn locations_are_checked_and_mapped() {
        let place = Location::new(52.52, 13.405, Some("Clinic\nMain"), None).unwrap();
        assert_eq!(place.name.as_deref(), Some("Clinic Main"));
        assert_eq!(
            place.map_url(),
            "https://www.openstreetmap.org/?mlat=52.52&mlon=13.405#map=17/52.52/13.405"
        );
        assert_eq!(
            Location::new(91.0, 0.0, None, None).unwrap_err().0,
            "latitude"
        );
    }

    #[test]
    fn stored_media_reads_back() {
        let media = Media {
            attachments: vec![Attachment {
                url: MediaUrl::parse("https://x.example/a.pdf").unwrap(),
                mime_type: MediaType::parse("application/pdf").unwrap(),
                caption: Some("form".into()),
            }],
            location: None,
        };
        let stored = media.to_stored().unwrap();
        assert_eq!(
            stored,
            r#"{"attachments":[{"url":"https://x.example/a.pdf","mimeType":"application/pdf","caption":"form"}]}"#
        );
        assert_eq!(Media::from_stored(Some(&stored)), media);
        assert_eq!(Media::default().to_stored(), None);
    }
}
