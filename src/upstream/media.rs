//! Customers' files, downloaded for Webex when it cannot fetch their links itself. The
//! links point at Webex Connect's media storage (which wants the service key) or at a
//! flow author's own host.

use std::time::Duration;

use std::net::{IpAddr, SocketAddr};

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

/// Redirects followed at most for one file.
const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct MediaClient {
    http: HttpClient,
    max_bytes: u64,
    /// Whether links to loopback, link-local and private addresses are fetched
    /// (`ICB_MEDIA_PRIVATE_ADDRESSES`): a customer's link must not reach icbridge's own
    /// network.
    private_addresses: bool,
    /// Webex Connect's API origins and service key: the key goes with links to exactly
    /// those origins (scheme, host and port), never elsewhere.
    connect: Option<(Vec<url::Origin>, SecretString)>,
}

impl MediaClient {
    /// `http` should come from [`HttpClient::for_links`], with the same
    /// `private_addresses`.
    pub fn new(
        http: HttpClient,
        max_bytes: u64,
        private_addresses: bool,
        connect: Option<(Vec<url::Origin>, SecretString)>,
    ) -> Self {
        Self {
            http,
            max_bytes,
            private_addresses,
            connect,
        }
    }

    /// Why icbridge does not fetch `url` (nor hand it to Webex), if it does not: a link to
    /// an address of a private network, written as such. (Names are checked when they are
    /// resolved, see [`PublicAddresses`].)
    pub fn refusal(&self, url: &url::Url) -> Option<String> {
        let private = match url.host() {
            Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
            _ => false,
        };
        (private && !self.private_addresses)
            .then(|| "the link points at a private network address".to_string())
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
        // Redirects are followed here, one at a time: the service key goes only to Webex
        // Connect's own origins, never on to where they redirect.
        let mut target = url.as_url().clone();
        let mut redirects = 0;
        let response = loop {
            if let Some(refusal) = self.refusal(&target) {
                return Err(FetchError::Refused(refusal));
            }
            let mut request = self.http.get(target.clone()).timeout(DOWNLOAD_TIMEOUT);
            if let Some((origins, key)) = &self.connect {
                if origins.contains(&target.origin()) {
                    request = request.header("key", key.expose_secret());
                }
            }
            let response = self.http.send(Upstream::Connect, request).await?;
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| target.join(location).ok());
            match location {
                Some(next) if response.status().is_redirection() => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS || next.scheme() != "https" {
                        return Err(FetchError::Refused(
                            "the link redirects too often, or away from https".into(),
                        ));
                    }
                    target = next;
                }
                _ => break response,
            }
        };
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

/// Resolves names to their public addresses only: a customer's link whose name resolves to
/// a loopback, link-local or private address (a cloud's metadata service, icbridge's own
/// database) reaches nothing.
pub struct PublicAddresses;

impl reqwest::dns::Resolve for PublicAddresses {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, link-local, private,
/// shared (CGNAT), unspecified, multicast, documentation or unique-local.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }
}
