//! Trusting an authenticating reverse proxy: it signs people in (single sign-on) and passes
//! on who they are in a header. Anyone who can send a request from the proxy's addresses
//! can claim any name, so the header is read only from the addresses serve.yaml lists, and
//! the proxy must set the header itself, dropping whatever a client sent under that name.

use super::{Identity, Role, Session};
use crate::serve::{ProxyRole, TrustProxyConfig};
use axum::http::{HeaderMap, HeaderName};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The address a request came from (the TCP peer), which the server records for each
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub SocketAddr);

pub struct TrustedProxy {
    header: HeaderName,
    role_header: Option<HeaderName>,
    default_role: Role,
    from: Vec<IpNet>,
    /// Signs the CSRF token of each name: a page served through the proxy carries it, a
    /// form posted from another site cannot know it. New at each start of serve.
    csrf_key: aws_lc_rs::hmac::Key,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("http.trust_proxy: {0:?} is not a header name")]
    Header(String),
    #[error("http.trust_proxy.from: {0:?} is not an address or a CIDR block (10.0.0.0/8)")]
    From(String),
    #[error("http.trust_proxy.from is empty: list the proxy's addresses")]
    NoAddress,
}

impl TrustedProxy {
    pub fn new(config: &TrustProxyConfig) -> Result<Self, ProxyError> {
        let header = |name: &str| {
            HeaderName::try_from(name.trim()).map_err(|_| ProxyError::Header(name.to_owned()))
        };
        let from = config
            .from
            .iter()
            .map(|block| {
                block
                    .parse::<IpNet>()
                    .or_else(|_| block.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| ProxyError::From(block.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if from.is_empty() {
            return Err(ProxyError::NoAddress);
        }
        let mut key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key).expect("the system's random source works");
        Ok(Self {
            header: header(&config.header)?,
            role_header: config.role_header.as_deref().map(header).transpose()?,
            default_role: match config.default_role {
                ProxyRole::Viewer => Role::Viewer,
                ProxyRole::Operator => Role::Operator,
                ProxyRole::Admin => Role::Admin,
            },
            from,
            csrf_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        })
    }

    /// Who the proxy says the request comes from, if it comes from the proxy and says so.
    /// A name or role that cannot be read signs nobody in (and is logged).
    pub fn identify(
        &self,
        peer: Option<PeerAddress>,
        headers: &HeaderMap,
    ) -> Option<(Identity, Session)> {
        let name = headers.get(&self.header)?;
        let trusted = peer.is_some_and(|PeerAddress(peer)| {
            let ip = peer.ip().to_canonical();
            self.from.iter().any(|block| block.contains(&ip))
        });
        if !trusted {
            tracing::warn!(
                peer = ?peer.map(|p| p.0),
                header = %self.header,
                "ignored the proxy's header: the request does not come from a trusted proxy address"
            );
            return None;
        }
        let Some(name) = name
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|name| super::users_edit::check_name(name).is_ok())
        else {
            tracing::warn!(header = %self.header, "ignored the proxy's header: not a user name");
            return None;
        };
        let role = match self.role_header.as_ref().and_then(|h| headers.get(h)) {
            None => self.default_role,
            Some(value) => match value
                .to_str()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
                .as_str()
            {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                "admin" => Role::Admin,
                _ => {
                    tracing::warn!(
                        name,
                        "ignored the proxy's headers: the role is not viewer, operator or admin"
                    );
                    return None;
                }
            },
        };
        let tag = aws_lc_rs::hmac::sign(&self.csrf_key, name.as_bytes());
        Some((
            Identity {
                name: name.to_owned(),
                role,
            },
            Session {
                csrf: URL_SAFE_NO_PAD.encode(tag.as_ref()),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(from: &[&str]) -> TrustedProxy {
        TrustedProxy::new(&TrustProxyConfig {
            header: "X-Forwarded-User".into(),
            role_header: Some("X-Forwarded-Role".into()),
            default_role: ProxyRole::Viewer,
            from: from.iter().map(|s| s.to_string()).collect(),
        })
        .expect("a proxy")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn peer(address: &str) -> Option<PeerAddress> {
        Some(PeerAddress(address.parse().unwrap()))
    }

    #[test]
    fn only_a_listed_peer_is_believed_an_ipv4_one_also_when_mapped_into_ipv6() {
        let proxy = proxy(&["10.1.0.0/16", "127.0.0.1"]);
        let user = headers(&[("x-forwarded-user", "pat")]);
        assert!(proxy.identify(peer("10.1.2.3:5000"), &user).is_some());
        assert!(
            proxy
                .identify(peer("[::ffff:127.0.0.1]:5000"), &user)
                .is_some()
        );
        assert!(proxy.identify(peer("10.2.0.1:5000"), &user).is_none());
        assert!(proxy.identify(None, &user).is_none());
        assert!(
            proxy
                .identify(peer("10.1.2.3:5000"), &HeaderMap::new())
                .is_none()
        );
    }

    #[test]
    fn the_role_header_sets_the_role_and_each_name_has_its_own_csrf_token() {
        let proxy = proxy(&["127.0.0.0/8"]);
        let at = peer("127.0.0.1:1");
        let (pat, pat_session) = proxy
            .identify(
                at,
                &headers(&[("x-forwarded-user", "pat"), ("x-forwarded-role", "admin")]),
            )
            .unwrap();
        assert_eq!(pat.role, Role::Admin);
        let (_, again) = proxy
            .identify(at, &headers(&[("x-forwarded-user", "pat")]))
            .unwrap();
        assert_eq!(again, pat_session, "the same name, the same token");
        let (sam, sam_session) = proxy
            .identify(at, &headers(&[("x-forwarded-user", "sam")]))
            .unwrap();
        assert_eq!(sam.role, Role::Viewer);
        assert_ne!(sam_session, pat_session);
    }

    #[test]
    fn a_bad_address_or_header_name_is_refused_at_start() {
        let config = |from: &str, header: &str| TrustProxyConfig {
            header: header.into(),
            role_header: None,
            default_role: ProxyRole::Viewer,
            from: vec![from.into()],
        };
        assert!(matches!(
            TrustedProxy::new(&config("localhost", "X-User")),
            Err(ProxyError::From(_))
        ));
        assert!(matches!(
            TrustedProxy::new(&config("::1", "X User")),
            Err(ProxyError::Header(_))
        ));
    }
}
