//! Whose word icbridge takes for a client's address (`ICB_TRUSTED_PROXIES`). A request's
//! address is its peer's, unless the peer is one of the proxies configured: then it is the
//! address the proxies forwarded in `X-Forwarded-For`, read from the right (the entries the
//! trusted proxies added) to the first one that is not a trusted proxy. Anything a client
//! writes into the header itself stands further left and is never reached.
//!
//! `Forwarded` (RFC 7239) is not read: a proxy that sets `X-Forwarded-For`, as Caddy,
//! nginx, HAProxy and cloud load balancers do, passes a client's `Forwarded` on untouched.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of IP addresses and CIDR ranges (`10.0.0.5, 172.28.0.0/16,
    /// ::1`); empty: no proxy is trusted.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        format!("{entry:?} is not an IP address or a CIDR range (e.g. 10.0.0.0/8)")
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The address of the client of a request from `peer` with these `headers`.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect();
        for entry in forwarded.into_iter().rev() {
            // What a trusted proxy wrote that is no address (`unknown`): the last trusted
            // hop is the client as far as icbridge can tell.
            let Some(address) = parse_address(entry) else {
                break;
            };
            client = address;
            if !self.contains(address) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: `192.0.2.7`, `2001:db8::1`, with a port or not
/// (`192.0.2.7:4711`, `[2001:db8::1]:4711`).
fn parse_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let address = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|socket| socket.ip()))
        .or_else(|_| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .unwrap_or_default()
                .parse::<IpAddr>()
        })
        .ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn forwarded_for(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn addresses_and_ranges_are_parsed_and_mistakes_refused() {
        let proxies =
            TrustedProxies::parse(" 10.0.0.5, 172.28.0.0/16 ,::1,, 2001:db8::/32").unwrap();
        for trusted in [
            "10.0.0.5",
            "172.28.200.1",
            "::1",
            "2001:db8::7",
            "::ffff:10.0.0.5",
        ] {
            assert!(proxies.contains(ip(trusted)), "{trusted}");
        }
        for other in ["10.0.0.6", "172.29.0.1", "::2", "2001:db9::1", "127.0.0.1"] {
            assert!(!proxies.contains(ip(other)), "{other}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse(" , ").unwrap().is_empty());
        for wrong in [
            "10.0.0",
            "10.0.0.0/33",
            "proxy.internal",
            "10.0.0.1 10.0.0.2",
        ] {
            let error = TrustedProxies::parse(wrong).unwrap_err();
            assert!(error.contains("not an IP address"), "{wrong}: {error}");
        }
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_for_what_trusted_proxies_added() {
        let proxies = TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
        let client = |peer: &str, values: &[&str]| {
            proxies
                .client_address(ip(peer), &forwarded_for(values))
                .to_string()
        };
        // An untrusted peer is the client, whatever it says.
        assert_eq!(client("203.0.113.9", &["198.51.100.1"]), "203.0.113.9");
        assert_eq!(
            TrustedProxies::default()
                .client_address(ip("127.0.0.1"), &forwarded_for(&["198.51.100.1"]))
                .to_string(),
            "127.0.0.1"
        );
        // A trusted one: the address it (and the trusted proxies before it) forwarded.
        assert_eq!(client("127.0.0.1", &["198.51.100.1"]), "198.51.100.1");
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1, 10.1.2.3"]),
            "198.51.100.1"
        );
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1", "10.1.2.3:443"]),
            "198.51.100.1"
        );
        // What the client wrote itself is left of what the proxies added.
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6, 198.51.100.1"]),
            "198.51.100.1"
        );
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6", "198.51.100.1"]),
            "198.51.100.1"
        );
        assert_eq!(client("127.0.0.1", &["[2001:db8::5]:4711"]), "2001:db8::5");
        // Nothing forwarded, or nothing usable: the last trusted hop.
        assert_eq!(client("127.0.0.1", &[]), "127.0.0.1");
        assert_eq!(client("127.0.0.1", &["6.6.6.6, unknown"]), "127.0.0.1");
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6, unknown, 10.0.0.7"]),
            "10.0.0.7"
        );
        // Only trusted proxies all along: the first of them.
        assert_eq!(client("127.0.0.1", &["10.0.0.9, 10.0.0.7"]), "10.0.0.9");
        // A peer on an IPv6 socket that is an IPv4 address.
        assert_eq!(
            client("::ffff:127.0.0.1", &["198.51.100.1"]),
            "198.51.100.1"
        );
    }
}
