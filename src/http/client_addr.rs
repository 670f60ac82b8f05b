//! The client address of a request, for limits per address (`REST_RATE_LIMIT_BY=ip`).
//!
//! The TCP peer is the client unless it is one of `TRUSTED_PROXIES`. Then the forwarding header
//! that proxies write (`FORWARDED_HEADER`) is read from the right, the end a trusted proxy
//! appended to: the first address that is not itself a trusted proxy is the client. Addresses
//! further left were written by the client or by hops nobody vouches for, so they could be
//! anything; an entry that is not an address (`unknown`, an obfuscated name, garbage) ends the
//! walk at the last trusted hop, which is then the client as far as anyone can tell.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use axum::http::header::{FORWARDED, HeaderName};

use crate::config::{ForwardedHeader, IpRange};

/// `X-Forwarded-For`, which `http` has no constant for.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address the request came from, as far as the trusted proxies say.
pub fn client_address(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpRange],
    header: ForwardedHeader,
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(client) {
        return client;
    }
    let hops = match header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded_for(headers),
    };
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop else {
            return client;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            return client;
        }
    }
    client
}

/// Every hop of every `X-Forwarded-For` line, left to right; `None` for an entry that is not
/// an address.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(X_FORWARDED_FOR) {
        match line.to_str() {
            Ok(text) => hops.extend(text.split(',').map(|entry| node(entry.trim()))),
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// The `for=` of every element of every RFC 7239 `Forwarded` line, left to right; `None` for an
/// element without `for=` or whose `for=` is not an address.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for line in headers.get_all(FORWARDED) {
        let Ok(text) = line.to_str() else {
            hops.push(None);
            continue;
        };
        for element in split_outside_quotes(text, ',') {
            let for_value = split_outside_quotes(element, ';')
                .into_iter()
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
                .map(|(_, value)| unquote(value.trim()));
            hops.push(for_value.and_then(|value| node(&value)));
        }
    }
    hops
}

/// A node as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`
/// or `[2001:db8::1]:4711`. `unknown` and obfuscated names (`_hidden`) are not addresses.
fn node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Splits on `delimiter` where it is not inside a quoted string (RFC 7230 `quoted-string`,
/// with `\` escapes).
fn split_outside_quotes(text: &str, delimiter: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == delimiter && !quoted {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The value of a token or a quoted string.
fn unquote(value: &str) -> String {
    let Some(inner) = value
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or(c)
        } else {
            c
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter()
            .map(|r| r.parse().expect("a valid range in the test"))
            .collect()
    }

    fn headers(name: HeaderName, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(
                name.clone(),
                HeaderValue::from_str(line).expect("a valid header in the test"),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a valid address in the test")
    }

    fn xff(peer: &str, trusted: &[&str], lines: &[&str]) -> IpAddr {
        client_address(
            ip(peer),
            &headers(X_FORWARDED_FOR, lines),
            &ranges(trusted),
            ForwardedHeader::XForwardedFor,
        )
    }

    fn fwd(peer: &str, trusted: &[&str], lines: &[&str]) -> IpAddr {
        client_address(
            ip(peer),
            &headers(FORWARDED, lines),
            &ranges(trusted),
            ForwardedHeader::Forwarded,
        )
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            xff("203.0.113.9", &[], &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("203.0.113.9", &["10.0.0.0/8"], &["198.51.100.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            fwd("203.0.113.9", &["10.0.0.0/8"], &["for=198.51.100.1"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_peer_is_believed_about_the_hop_it_saw() {
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.2"], &["198.51.100.1"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_wins_over_what_the_client_wrote() {
        // The client sent `X-Forwarded-For: 1.2.3.4`; the edge proxy appended the address it
        // saw, the inner proxy the edge's.
        assert_eq!(
            xff(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["1.2.3.4, 198.51.100.1, 10.0.0.1"]
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn header_lines_are_one_list_in_order() {
        assert_eq!(
            xff(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["1.2.3.4", "198.51.100.1, 10.0.0.1"]
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_chain_of_only_trusted_hops_gives_the_left_most() {
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["10.9.9.9, 10.0.0.1"]),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn without_the_header_the_trusted_peer_is_the_client() {
        assert_eq!(xff("10.0.0.2", &["10.0.0.0/8"], &[]), ip("10.0.0.2"));
    }

    #[test]
    fn garbage_ends_the_walk_at_the_last_trusted_hop() {
        assert_eq!(
            xff(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["198.51.100.1, bogus, 10.0.0.1"]
            ),
            ip("10.0.0.1")
        );
        assert_eq!(xff("10.0.0.2", &["10.0.0.0/8"], &[""]), ip("10.0.0.2"));
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["unknown"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn x_forwarded_for_entries_may_carry_ports_and_brackets() {
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["198.51.100.1:5555"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["[2001:db8::7]:443"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["[2001:db8::7]"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            xff("10.0.0.2", &["10.0.0.0/8"], &["2001:db8::7"]),
            ip("2001:db8::7")
        );
    }

    #[test]
    fn forwarded_elements_give_their_for_parameter() {
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["for=1.2.3.4, For=\"198.51.100.1:4711\";proto=https;by=10.0.0.2"]
            ),
            ip("198.51.100.1")
        );
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["proto=http;for=\"[2001:db8:cafe::17]:4711\""]
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["for=198.51.100.1", "for=10.0.0.1"]
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn forwarded_quoted_commas_do_not_split_elements() {
        assert_eq!(
            fwd(
                "10.0.0.2",
                &["10.0.0.0/8"],
                &["for=198.51.100.1;host=\"a,b\\\"c;d\""]
            ),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn forwarded_unknown_obfuscated_or_missing_for_ends_the_walk() {
        for line in ["for=unknown", "for=_hidden", "proto=https", "for=\"[::1\""] {
            assert_eq!(
                fwd(
                    "10.0.0.2",
                    &["10.0.0.0/8"],
                    &[&format!("for=1.2.3.4, {line}")]
                ),
                ip("10.0.0.2"),
                "{line}"
            );
        }
    }

    #[test]
    fn the_other_header_is_ignored() {
        let mut map = headers(FORWARDED, &["for=1.2.3.4"]);
        map.append(X_FORWARDED_FOR, HeaderValue::from_static("198.51.100.1"));
        let trusted = ranges(&["10.0.0.0/8"]);
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &map,
                &trusted,
                ForwardedHeader::XForwardedFor
            ),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &map, &trusted, ForwardedHeader::Forwarded),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_is_matched_as_ipv4() {
        assert_eq!(
            xff("::ffff:10.0.0.2", &["10.0.0.0/8"], &["198.51.100.1"]),
            ip("198.51.100.1")
        );
    }
}
