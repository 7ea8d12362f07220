//! Node addresses: `ws://host:port`, in one canonical spelling.

use std::borrow::Borrow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;

/// Longest address text we look at; real ones are a few dozen bytes.
pub const MAX_ADDRESS_LEN: usize = 256;

/// The address of a node's WebSocket server, in canonical form.
///
/// Every loopback spelling (`localhost`, `127.0.0.1`, `[::1]`, the unspecified
/// `0.0.0.0`) becomes `localhost`, hosts are lower-cased and a trailing `/` is dropped,
/// so two spellings of one server compare equal. Loopback is written `localhost`
/// because that is how the JavaScript nodes spell their own address and they compare
/// addresses as plain strings.
///
/// The canonical text is kept (shared), so printing, cloning and comparing an address
/// costs no formatting, and a map keyed by addresses can be searched with the text a
/// peer sent (`Borrow<str>`): equality and order are those of the text.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Address {
    text: Arc<str>,
    /// Where the host ends in `text` (it starts after `ws://`).
    host_end: usize,
    port: u16,
}

// Hashes as its text does, as `Borrow<str>` requires (the other fields follow from it).
impl std::hash::Hash for Address {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl Borrow<str> for Address {
    fn borrow(&self) -> &str {
        &self.text
    }
}

/// Why a text is not a node address we would dial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Longer than [`MAX_ADDRESS_LEN`].
    #[error("address is longer than {MAX_ADDRESS_LEN} bytes")]
    TooLong,
    /// Not a `ws://` URL (`wss://`, `http://` and bare hosts are refused).
    #[error("address does not start with ws://")]
    NotWs,
    /// No host between `ws://` and the port.
    #[error("address has no host")]
    NoHost,
    /// The host has characters no host name or IP address has.
    #[error("address has an invalid host")]
    BadHost,
    /// No `:port` after the host.
    #[error("address has no port")]
    NoPort,
    /// The port is not a number in 1..=65535.
    #[error("address has an invalid port")]
    BadPort,
    /// Something other than an optional `/` follows the port.
    #[error("address has a path, query or user part")]
    Trailing,
}

impl Address {
    /// The loopback address of a server on `port`: `ws://localhost:<port>`.
    pub fn localhost(port: u16) -> Address {
        Address::from_parts("localhost", port)
    }

    fn from_parts(host: &str, port: u16) -> Address {
        Address {
            text: Arc::from(format!("ws://{host}:{port}")),
            host_end: 5 + host.len(),
            port,
        }
    }

    /// The canonical text, `ws://host:port`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host part, canonical (`localhost`, a lower-case name, an IPv4 or `[IPv6]`).
    pub fn host(&self) -> &str {
        &self.text[5..self.host_end]
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the host is this machine's loopback.
    pub fn is_loopback(&self) -> bool {
        self.host() == "localhost"
    }
}

fn canonical_host(host: &str) -> Result<String, AddressError> {
    if host.is_empty() {
        return Err(AddressError::NoHost);
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ip: Ipv6Addr = inner.parse().map_err(|_| AddressError::BadHost)?;
        if ip.is_loopback() || ip.is_unspecified() {
            return Ok("localhost".to_owned());
        }
        if let Some(v4) = ip.to_ipv4_mapped() {
            return canonical_v4(v4);
        }
        return Ok(format!("[{ip}]"));
    }
    if let Ok(v4) = host.parse::<Ipv4Addr>() {
        return canonical_v4(v4);
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['.', '-'])
        && !host.contains("..");
    if !valid {
        return Err(AddressError::BadHost);
    }
    let mut host = host.to_ascii_lowercase();
    if host.ends_with('.') {
        host.pop();
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Ok("localhost".to_owned());
    }
    Ok(host)
}

fn canonical_v4(ip: Ipv4Addr) -> Result<String, AddressError> {
    if ip.is_loopback() || ip.is_unspecified() {
        Ok("localhost".to_owned())
    } else {
        Ok(ip.to_string())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        if text.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        let scheme_end = text.find("://").ok_or(AddressError::NotWs)?;
        if !text[..scheme_end].eq_ignore_ascii_case("ws") {
            return Err(AddressError::NotWs);
        }
        let rest = &text[scheme_end + 3..];
        let authority = match rest.find('/') {
            Some(slash) if &rest[slash..] == "/" => &rest[..slash],
            Some(_) => return Err(AddressError::Trailing),
            None => rest,
        };
        if authority.contains(['@', '?', '#']) {
            return Err(AddressError::Trailing);
        }
        let colon = authority.rfind(':').ok_or(AddressError::NoPort)?;
        let (host, port) = (&authority[..colon], &authority[colon + 1..]);
        if host.contains(':') && !host.starts_with('[') {
            return Err(AddressError::BadHost);
        }
        if port.is_empty() {
            return Err(AddressError::NoPort);
        }
        if !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(AddressError::BadPort);
        }
        let port: u16 = port.parse().map_err(|_| AddressError::BadPort)?;
        if port == 0 {
            return Err(AddressError::BadPort);
        }
        Ok(Address::from_parts(&canonical_host(host)?, port))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Address, AddressError> {
        text.parse()
    }

    #[test]
    fn every_loopback_spelling_is_localhost() {
        for text in [
            "ws://localhost:4001",
            "ws://127.0.0.1:4001",
            "ws://localhost:4001/",
            "ws://[::1]:4001",
            "WS://LOCALHOST:4001",
            "ws://127.1.2.3:4001",
            "ws://0.0.0.0:4001",
            "ws://[::ffff:127.0.0.1]:4001",
            "ws://localhost.:4001",
        ] {
            assert_eq!(parse(text), Ok(Address::localhost(4001)), "{text}");
        }
    }

    #[test]
    fn canonical_form_prints_as_the_javascript_nodes_spell_it() {
        assert_eq!(
            parse("ws://127.0.0.1:4002/").unwrap().to_string(),
            "ws://localhost:4002"
        );
        assert_eq!(
            parse("ws://Example.ORG:80").unwrap().to_string(),
            "ws://example.org:80"
        );
        assert_eq!(
            parse("ws://[2001:db8::1]:9").unwrap().to_string(),
            "ws://[2001:db8::1]:9"
        );
    }

    #[test]
    fn addresses_that_are_not_dialable_ws_urls_are_refused() {
        let cases = [
            ("wss://localhost:4001", AddressError::NotWs),
            ("http://localhost:4001", AddressError::NotWs),
            ("localhost:4001", AddressError::NotWs),
            ("ws://:4001", AddressError::NoHost),
            ("ws://localhost", AddressError::NoPort),
            ("ws://localhost:", AddressError::NoPort),
            ("ws://localhost:0", AddressError::BadPort),
            ("ws://localhost:65536", AddressError::BadPort),
            ("ws://localhost:+1", AddressError::BadPort),
            ("ws://localhost:4001/path", AddressError::Trailing),
            ("ws://user@localhost:4001", AddressError::Trailing),
            ("ws://loc alhost:4001", AddressError::BadHost),
            ("ws://::1:4001", AddressError::BadHost),
            ("ws://[zz]:4001", AddressError::BadHost),
        ];
        for (text, error) in cases {
            assert_eq!(parse(text), Err(error), "{text}");
        }
        assert_eq!(
            parse(&format!("ws://{}:1", "a".repeat(300))),
            Err(AddressError::TooLong)
        );
    }
}
