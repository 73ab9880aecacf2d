//! Authentication of the webhooks, always over the raw body bytes: Webex Connect's
//! (`X-Hub-Signature` HMAC or a bearer token, [`ConnectAuth`]) and Webex's
//! (`X-Spark-Signature`, [`WebexAuth`]).

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

const SIGNATURE_HEADER: &str = "x-hub-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint is not configured: set ICB_CONNECT_WEBHOOK_SECRET or ICB_CONNECT_WEBHOOK_TOKEN")]
    NotConfigured,
    #[error("missing X-Hub-Signature or Authorization: Bearer header")]
    Missing,
    #[error("X-Hub-Signature does not match the body")]
    BadSignature,
    #[error("X-Hub-Signature is not a hex SHA-256 or SHA-512 HMAC")]
    MalformedSignature,
    #[error("bearer token is not valid")]
    BadToken,
    #[error("this endpoint is not configured: set ICB_WEBEX_WEBHOOK_SECRET (the secret of the Webex webhooks)")]
    WebexNotConfigured,
    #[error("missing X-Spark-Signature header")]
    MissingSparkSignature,
    #[error("X-Spark-Signature is not a hex SHA-1 HMAC of the body")]
    BadSparkSignature,
}

const SPARK_SIGNATURE_HEADER: &str = "x-spark-signature";

/// The secret of icbridge's Webex webhooks: Webex signs each event with it
/// (`X-Spark-Signature`, hex HMAC-SHA1 of the raw body).
#[derive(Clone, Default)]
pub struct WebexAuth {
    secret: Option<SecretString>,
}

impl WebexAuth {
    pub fn new(secret: Option<SecretString>) -> Self {
        Self { secret }
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        let secret = self.secret.as_ref().ok_or(AuthError::WebexNotConfigured)?;
        let header = headers
            .get(SPARK_SIGNATURE_HEADER)
            .ok_or(AuthError::MissingSparkSignature)?;
        let digest = header
            .to_str()
            .ok()
            .and_then(|value| hex::decode(value.trim()).ok())
            .ok_or(AuthError::BadSparkSignature)?;
        Hmac::<Sha1>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes keys of any length")
            .chain_update(body)
            .verify_slice(&digest)
            .map_err(|_| AuthError::BadSparkSignature)
    }
}

/// The credentials a Webex Connect request may prove: an HMAC secret (Outbound Webhooks)
/// and/or a static bearer token (a flow's HTTP Request node cannot compute an HMAC).
#[derive(Clone, Default)]
pub struct ConnectAuth {
    secret: Option<SecretString>,
    token: Option<SecretString>,
}

impl ConnectAuth {
    pub fn new(secret: Option<SecretString>, token: Option<SecretString>) -> Self {
        Self { secret, token }
    }

    pub fn is_configured(&self) -> bool {
        self.secret.is_some() || self.token.is_some()
    }

    /// Accepts the request when the signature header matches the body, or else when the
    /// bearer token matches. A present but wrong signature is never rescued by a token.
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
        if !self.is_configured() {
            return Err(AuthError::NotConfigured);
        }
        if let Some(signature) = headers.get(SIGNATURE_HEADER) {
            let secret = self.secret.as_ref().ok_or(AuthError::BadSignature)?;
            let signature = signature
                .to_str()
                .map_err(|_| AuthError::MalformedSignature)?;
            return verify_hub_signature(secret.expose_secret().as_bytes(), signature, body);
        }
        if let Some(given) = bearer_token(headers) {
            let expected = self.token.as_ref().ok_or(AuthError::BadToken)?;
            // Hashing first makes the comparison constant-time regardless of the lengths.
            let given = Sha256::digest(given.as_bytes());
            let expected = Sha256::digest(expected.expose_secret().as_bytes());
            return if bool::from(given.ct_eq(&expected)) {
                Ok(())
            } else {
                Err(AuthError::BadToken)
            };
        }
        Err(AuthError::Missing)
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// `X-Hub-Signature`: hex HMAC-SHA256 (64 chars) or HMAC-SHA512 (128 chars) of the body,
/// optionally prefixed `sha256=` / `sha512=`.
fn verify_hub_signature(secret: &[u8], header: &str, body: &[u8]) -> Result<(), AuthError> {
    let header = header.trim();
    let (declared, hex_digest) = match header.split_once('=') {
        Some((algorithm, digest)) => (Some(algorithm.to_ascii_lowercase()), digest),
        None => (None, header),
    };
    let digest = hex::decode(hex_digest).map_err(|_| AuthError::MalformedSignature)?;
    let verified = match (declared.as_deref(), digest.len()) {
        (None | Some("sha256"), 32) => Hmac::<Sha256>::new_from_slice(secret)
            .expect("HMAC takes keys of any length")
            .chain_update(body)
            .verify_slice(&digest)
            .is_ok(),
        (None | Some("sha512"), 64) => Hmac::<Sha512>::new_from_slice(secret)
            .expect("HMAC takes keys of any length")
            .chain_update(body)
            .verify_slice(&digest)
            .is_ok(),
        _ => return Err(AuthError::MalformedSignature),
    };
    if verified {
        Ok(())
    } else {
        Err(AuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn sign256(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn auth() -> ConnectAuth {
        ConnectAuth::new(
            Some("s3cret".to_string().into()),
            Some("tok".to_string().into()),
        )
    }

    #[test]
    fn accepts_sha256_with_and_without_prefix() {
        let body = br#"{"a":1}"#;
        let digest = sign256("s3cret", body);
        assert_eq!(
            auth().verify(&headers(&[("x-hub-signature", &digest)]), body),
            Ok(())
        );
        let prefixed = format!("sha256={}", digest.to_uppercase());
        assert_eq!(
            auth().verify(&headers(&[("x-hub-signature", &prefixed)]), body),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_signature_is_not_rescued_by_a_good_token() {
        let body = br#"{"a":1}"#;
        let wrong = sign256("other", body);
        let h = headers(&[("x-hub-signature", &wrong), ("authorization", "Bearer tok")]);
        assert_eq!(auth().verify(&h, body), Err(AuthError::BadSignature));
    }

    #[test]
    fn prefix_must_match_the_digest_length() {
        let body = b"x";
        let digest = format!("sha512={}", sign256("s3cret", body));
        assert_eq!(
            auth().verify(&headers(&[("x-hub-signature", &digest)]), body),
            Err(AuthError::MalformedSignature)
        );
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            auth().verify(&headers(&[("authorization", "Bearer tok")]), b""),
            Ok(())
        );
        assert_eq!(
            auth().verify(&headers(&[("authorization", "bearer  tok ")]), b""),
            Ok(())
        );
        assert_eq!(
            auth().verify(&headers(&[("authorization", "Bearer tok2")]), b""),
            Err(AuthError::BadToken)
        );
        assert_eq!(auth().verify(&headers(&[]), b""), Err(AuthError::Missing));
        assert_eq!(
            ConnectAuth::default().verify(&headers(&[("authorization", "Bearer tok")]), b""),
            Err(AuthError::NotConfigured)
        );
    }
}
