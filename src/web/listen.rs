//! The address serve listens on, from `listen:` or `--listen`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`, or `:8080` / `8080` for 127.0.0.1:
/// the loopback address unless another is written, so that nothing is reachable from
/// another machine by mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenAddress(pub SocketAddr);

impl std::str::FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let port_only = text.strip_prefix(':').unwrap_or(text);
        if let Ok(port) = port_only.parse::<u16>() {
            return Ok(Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
        }
        text.parse::<SocketAddr>().map(Self).map_err(|_| {
            format!(
                "`{text}` is not an address to listen on: expected HOST:PORT (`127.0.0.1:8080`, `[::1]:8080`) or :PORT"
            )
        })
    }
}

impl std::fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_listens_on_the_loopback_address() {
        for text in [":8080", "8080"] {
            let address: ListenAddress = text.parse().unwrap();
            assert_eq!(address.to_string(), "127.0.0.1:8080");
        }
        let any: ListenAddress = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(any.to_string(), "0.0.0.0:9000");
        let error = "localhost:http".parse::<ListenAddress>().unwrap_err();
        assert!(error.contains("HOST:PORT"), "{error}");
    }
}
