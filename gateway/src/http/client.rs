//! Where a request came from: the client address (believing forwarding headers only from
//! trusted proxies, SPEC §11) and the request id, both settled once by the `front_door`
//! middleware, and what sign-in events record of the client.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use ipnet::IpNet;
use tenure_domain::events::Client;
use uuid::Uuid;

/// The peers believed for `Forwarded` and `X-Forwarded-For`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `CIDR[,CIDR…]`; a bare address is a network of one.
    pub fn parse(list: &str) -> Result<TrustedProxies, String> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or a CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies(nets))
    }

    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// IPv4 peers of a dual-stack socket arrive as `::ffff:a.b.c.d`.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a request from `peer`: the right-most address of the forwarding chain
/// that is not a trusted proxy. Headers are read only when the peer itself is trusted; an entry
/// that is not an address (`unknown`, an obfuscated name) ends the walk at the proxy that added it.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let mut client = canonical(peer);
    if !trusted.trusts(client) {
        return client;
    }
    for hop in forwarded_chain(headers).iter().rev() {
        match hop {
            Some(address) => {
                client = canonical(*address);
                if !trusted.trusts(client) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The addresses of `X-Forwarded-For`, or, only where no proxy wrote that, the `for=` of
/// `Forwarded` (RFC 7239), left to right. One header is read, never both: a proxy appends to the
/// one it writes and passes the other through as the client sent it, so believing the other
/// would let a client choose its address. Every common proxy (nginx, HAProxy, Traefik, Caddy,
/// cloud load balancers) writes `X-Forwarded-For`; one that writes only `Forwarded` must drop a
/// client's `X-Forwarded-For` (docs/operations.md).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let x_forwarded_for: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    if !x_forwarded_for.is_empty() {
        return x_forwarded_for.iter().flat_map(|value| value.split(',')).map(|hop| node_address(hop.trim())).collect();
    }
    headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (name, value) = pair.trim().split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then(|| node_address(value.trim().trim_matches('"')))
            })
        })
        .collect()
}

/// An address as forwarding headers write it: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`,
/// `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(address) = node.parse::<IpAddr>() {
        return Some(address);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(address, _)| address.parse().ok());
    }
    node.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The id of one request: from a trusted proxy when it sent a UUID (nginx's `$request_id` is
/// one, in 32 hex digits), else made here (UUIDv7). Logs, the `X-Request-Id` answer and the
/// events' correlation id all carry it; logs and the answer write it as the proxy did, so that
/// it matches the proxy's own log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    pub uuid: Uuid,
    /// Written as 32 hex digits, as the proxy sent it.
    simple: bool,
}

impl RequestId {
    pub fn of(headers: &HeaderMap, peer_trusted: bool) -> RequestId {
        let given = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|_| peer_trusted).map(str::trim);
        // Only the two plain spellings, and never the nil UUID, which every client could send.
        let parsed = given
            .filter(|id| id.len() == 32 || id.len() == 36)
            .and_then(|id| Some((Uuid::try_parse(id).ok()?, id.len() == 32)))
            .filter(|(uuid, _)| !uuid.is_nil());
        match parsed {
            Some((uuid, simple)) => RequestId { uuid, simple },
            None => RequestId { uuid: Uuid::now_v7(), simple: false },
        }
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.simple { write!(f, "{}", self.uuid.simple()) } else { write!(f, "{}", self.uuid.hyphenated()) }
    }
}

tokio::task_local! {
    /// The request being answered, for what records it without seeing the HTTP request.
    pub static CURRENT_REQUEST: RequestId;
}

/// Marks a request that arrived over TLS at this gateway (set by the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverTls;

/// Whether the browser reached the service over HTTPS: TLS here, or `X-Forwarded-Proto: https`
/// from a trusted proxy that ended TLS.
pub fn over_https(request: &axum::extract::Request, peer_trusted: bool) -> bool {
    request.extensions().get::<OverTls>().is_some()
        || (peer_trusted
            && request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|proto| proto.split(',').next().is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))))
}

/// The client address the `front_door` settled for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The address in `parts`: the one settled by `front_door`, else the peer's.
    pub fn of(parts: &Parts) -> Option<IpAddr> {
        parts
            .extensions
            .get::<ClientAddress>()
            .map(|c| c.0)
            .or_else(|| parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| canonical(info.0.ip())))
    }
}

/// What a sign-in event records of the client.
pub struct ClientInfo(pub Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = ClientAddress::of(parts).map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(512)
            .collect();
        Ok(ClientInfo(Client { address, user_agent }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let forged = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=198.51.100.1")]);
        assert_eq!(client_address(ip("192.0.2.7"), &forged, &trusted), ip("192.0.2.7"));
        assert_eq!(client_address(ip("10.1.1.1"), &forged, &TrustedProxies::default()), ip("10.1.1.1"));
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 127.0.0.1").unwrap();
        // The client put a forged address first; the proxies appended what they saw.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        assert_eq!(client_address(ip("127.0.0.1"), &chain, &trusted), ip("203.0.113.9"));
        // Two headers are one list.
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_address(ip("10.0.0.5"), &split, &trusted), ip("203.0.113.9"));
        // A chain of only trusted hops ends at its left-most.
        let inner = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.2")]);
        assert_eq!(client_address(ip("10.0.0.5"), &inner, &trusted), ip("10.9.9.9"));
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it_only_where_no_x_forwarded_for_is() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let rfc = headers(&[("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.3"#)]);
        assert_eq!(client_address(ip("10.0.0.1"), &rfc, &trusted), ip("2001:db8:cafe::17"));
        // nginx appends to X-Forwarded-For and passes a client's Forwarded through untouched.
        let passed_through = headers(&[("forwarded", "for=9.9.9.9"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_address(ip("10.0.0.1"), &passed_through, &trusted), ip("198.51.100.1"));
        let with_port = headers(&[("forwarded", r#"For="192.0.2.43:47011""#)]);
        assert_eq!(client_address(ip("10.0.0.1"), &with_port, &trusted), ip("192.0.2.43"));
        // An obfuscated or unknown hop: the client is the trusted proxy that reported it.
        let unknown = headers(&[("forwarded", "for=unknown, for=10.0.0.3")]);
        assert_eq!(client_address(ip("10.0.0.1"), &unknown, &trusted), ip("10.0.0.3"));
    }

    #[test]
    fn mapped_ipv4_peers_match_ipv4_networks() {
        let trusted = TrustedProxies::parse("127.0.0.1/32").unwrap();
        let chain = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_address(ip("::ffff:127.0.0.1"), &chain, &trusted), ip("203.0.113.9"));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
    }

    #[test]
    fn request_ids_are_believed_only_from_trusted_peers_and_only_as_uuids() {
        let nginx = headers(&[("x-request-id", "0f8fad5bd9cb469fa16570867728950e")]);
        let id = RequestId::of(&nginx, true);
        assert_eq!(id.uuid, Uuid::parse_str("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap());
        assert_eq!(id.to_string(), "0f8fad5bd9cb469fa16570867728950e", "written back as the proxy wrote it");
        assert_ne!(RequestId::of(&nginx, false).uuid, id.uuid);
        for junk in
            ["<script>", "00000000-0000-0000-0000-000000000000", "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e"]
        {
            let made = RequestId::of(&headers(&[("x-request-id", junk)]), true);
            assert_eq!(made.uuid.get_version_num(), 7, "{junk}");
        }
    }
}
