//! The transport-security rule for WebSocket reader addresses (`wss://`, or `ws://` on
//! loopback only), checked before any socket opens.

use crate::error::PosError;

/// The transport-security rule for WebSocket reader addresses: `wss://` anywhere, `ws://`
/// only to this device (loopback: `127.0.0.0/8`, `[::1]`, `localhost`). A plain `ws://` to
/// another host would carry the pairing credential and card ciphertext in the clear.
pub fn check_reader_url(url: &str) -> Result<(), PosError> {
    let insecure = |why: &str| {
        Err(PosError::InsecureReaderUrl(format!(
            "reader url {:?} {why}",
            url.chars().take(200).collect::<String>()
        )))
    };
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => return insecure("must start with wss:// (or ws:// on this device)"),
    };
    let host = url_host(rest);
    if host.is_empty() {
        return insecure("has no host");
    }
    match scheme.as_str() {
        "wss" => Ok(()),
        "ws" if is_loopback_host(host) => Ok(()),
        "ws" => insecure(
            "uses ws:// to another device; use wss:// (ws:// is allowed only on loopback: \
             127.0.0.0/8, [::1], localhost)",
        ),
        _ => insecure("must start with wss:// (or ws:// on this device)"),
    }
}

/// The host of the part of a URL after `scheme://`: without path, query, fragment, user
/// info and port; an IPv6 literal keeps its brackets.
pub fn url_host(rest: &str) -> &str {
    let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.starts_with('[') {
        return match host_port.find(']') {
            Some(end) => &host_port[..=end],
            None => "",
        };
    }
    host_port.split(':').next().unwrap_or("")
}

/// `localhost`, an IPv4 address in `127.0.0.0/8` (dotted quad) or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|a| a.is_loopback());
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_urls_need_wss_except_on_loopback() {
        for ok in [
            "wss://reader-1.local/",
            "wss://10.0.0.7:8443/readers/1",
            "WSS://Reader.example",
            "ws://127.0.0.1:8787/readers/rdr_sim_1",
            "ws://127.4.5.6/",
            "ws://localhost:8787/x",
            "ws://LOCALHOST./",
            "ws://[::1]:8787/readers/a",
            "ws://user@127.0.0.1:1/",
            "wss://[2001:db8::1]/",
        ] {
            assert!(check_reader_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ws://reader-1.local/",
            "ws://10.0.0.7:8787/",
            "ws://128.0.0.1/",
            "ws://[::2]/",
            "ws://[::ffff:127.0.0.1]/",
            "ws://localhost.evil.example/",
            "ws://127.0.0.1.evil.example/",
            "ws://127.0.0.1@evil.example/",
            "ws://evil.example/?127.0.0.1",
            "ws://evil.example#@127.0.0.1",
            "http://127.0.0.1/",
            "https://reader.example/",
            "reader.example",
            "ws://",
            "wss:///path",
            "ws://[::1/",
        ] {
            let err = check_reader_url(bad).unwrap_err();
            assert_eq!(err.code(), "insecure_reader_url", "{bad}");
        }
        assert!(check_reader_url("ws://10.0.0.7/")
            .unwrap_err()
            .to_string()
            .contains("wss://"));
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1"));
        assert!(is_loopback_host("127.255.255.254"));
        assert!(is_loopback_host("[::1]"));
        assert!(is_loopback_host("localhost"));
        assert!(
            !is_loopback_host("::1"),
            "an IPv6 host keeps its brackets in a URL"
        );
        assert!(!is_loopback_host("0.0.0.0"));
        assert!(!is_loopback_host("127.1"), "only dotted quads");
        assert!(!is_loopback_host("sub.localhost"));
    }
}
