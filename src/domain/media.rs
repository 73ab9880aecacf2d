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

/// What kind of media a type is: WhatsApp's message types, which Webex shows alike, and
/// anything else a customer may send (a file of a type WhatsApp does not list, a sticker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    /// A WhatsApp sticker (a WebP image, sent as a sticker).
    Sticker,
    /// A file of a type WhatsApp does not list.
    File,
}

impl MediaKind {
    /// How the experts are told what arrived.
    pub fn noun(self) -> &'static str {
        match self {
            MediaKind::Image => "photo",
            MediaKind::Video => "video",
            MediaKind::Audio => "voice message",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
            MediaKind::File => "file",
        }
    }

    /// WhatsApp's `type` for a media message of this kind (what icbridge sends is of the
    /// four kinds WhatsApp carries; anything else goes as a link).
    pub fn whatsapp_type(self) -> &'static str {
        match self {
            MediaKind::Image | MediaKind::Sticker => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
            MediaKind::Document | MediaKind::File => "document",
        }
    }
}

/// The types WhatsApp carries (and so the only ones icbridge sends as media), with their
/// kind and the file extension WhatsApp expects at the end of a link.
const WHATSAPP_TYPES: &[(&str, MediaKind, &str)] = &[
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

/// Longest MIME type kept (RFC 6838 allows 127 characters on each side).
const MAX_TYPE_CHARS: usize = 255;

/// A MIME type (`type/subtype`, lower-case), without its parameters (`audio/ogg;
/// codecs=opus` is `audio/ogg`). Any well-formed type is one: a customer's file of a type
/// WhatsApp does not list still arrives, and is shown to the experts; only what icbridge
/// sends on WhatsApp is held to [`MediaType::whatsapp_carries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType(String);

impl MediaType {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let essence = raw
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        // RFC 6838's restricted names: letters, digits and `!#$&-^_.+` on either side.
        let name = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
        };
        match essence.split_once('/') {
            Some((kind, sub))
                if name(kind) && name(sub) && essence.chars().count() <= MAX_TYPE_CHARS =>
            {
                Ok(MediaType(essence))
            }
            _ => Err(format!(
                "{:?} is not a media type (`type/subtype`)",
                raw.chars().take(40).collect::<String>()
            )),
        }
    }

    /// `application/octet-stream`: a file whose type nobody gave.
    pub fn unknown() -> Self {
        MediaType("application/octet-stream".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether WhatsApp carries the type as a media message.
    pub fn whatsapp_carries(&self) -> bool {
        self.listed().is_some()
    }

    pub fn kind(&self) -> MediaKind {
        if let Some((_, kind, _)) = self.listed() {
            return *kind;
        }
        match self.0.split('/').next() {
            Some("image") => MediaKind::Image,
            Some("video") => MediaKind::Video,
            Some("audio") => MediaKind::Audio,
            _ => MediaKind::File,
        }
    }

    /// The usual file extension of the type (`bin` when there is none to tell).
    pub fn extension(&self) -> &str {
        if let Some((_, _, extension)) = self.listed() {
            return extension;
        }
        let sub = self.0.split('/').nth(1).unwrap_or_default();
        let sub = sub.strip_prefix("x-").unwrap_or(sub);
        if (1..=5).contains(&sub.len()) && sub.chars().all(|c| c.is_ascii_alphanumeric()) {
            sub
        } else {
            "bin"
        }
    }

    fn listed(&self) -> Option<&'static (&'static str, MediaKind, &'static str)> {
        WHATSAPP_TYPES.iter().find(|(name, _, _)| *name == self.0)
    }
}

impl Serialize for MediaType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
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
    /// Sent as a WhatsApp sticker (its type is given inside `sticker`).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub sticker: bool,
}

impl Attachment {
    /// What kind of media it is, as the experts are told.
    pub fn kind(&self) -> MediaKind {
        if self.sticker {
            MediaKind::Sticker
        } else {
            self.mime_type.kind()
        }
    }

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
        MediaType::parse(&self.mime_type)
            .ok()
            .filter(MediaType::whatsapp_carries)
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
            MediaKind::Sticker,
            MediaKind::File,
        ] {
            let count = self.attachments.iter().filter(|a| a.kind() == kind).count();
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
    fn types_lose_their_parameters_and_any_well_formed_type_is_one() {
        let ogg = MediaType::parse("audio/ogg; codecs=opus").unwrap();
        assert_eq!(ogg.as_str(), "audio/ogg");
        assert_eq!(ogg.kind(), MediaKind::Audio);
        assert!(ogg.whatsapp_carries());
        assert_eq!(
            MediaType::parse("IMAGE/JPEG").unwrap().as_str(),
            "image/jpeg"
        );
        let zip = MediaType::parse("application/zip").unwrap();
        assert_eq!((zip.kind(), zip.extension()), (MediaKind::File, "zip"));
        assert!(!zip.whatsapp_carries());
        let heic = MediaType::parse("image/heic").unwrap();
        assert_eq!((heic.kind(), heic.extension()), (MediaKind::Image, "heic"));
        assert!(!heic.whatsapp_carries());
        assert_eq!(
            MediaType::parse("application/vnd.apple.pkpass")
                .unwrap()
                .extension(),
            "bin"
        );
        for bad in ["", "zip", "image/", "/png", "text/html<script>", "a/b/c"] {
            assert!(MediaType::parse(bad).is_err(), "{bad}");
        }
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
            sticker: false,
        };
        let mut media = Media {
            attachments: vec![photo("1")],
            location: None,
        };
        assert_eq!(media.summary(), "photo");
        media.attachments.push(photo("2"));
        media.location = Some(Location::new(52.5, 13.4, None, None).unwrap());
        assert_eq!(media.summary(), "2 photos and location");
        let sticker = Attachment {
            sticker: true,
            ..photo("3")
        };
        let zip = Attachment {
            mime_type: MediaType::parse("application/zip").unwrap(),
            ..photo("4")
        };
        media.attachments = vec![sticker, zip];
        media.location = None;
        assert_eq!(media.summary(), "sticker and file");
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
                sticker: false,
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
