//! Value conversions: a captured value into an event time (RFC 3339, epoch seconds or
//! milliseconds), a client IP (with port, zone or comma list), an HTTP status, and a path
//! without its query.
//!
//! Data flow: **parse**, per line, after `walk`: `Parser::parse` turns the captured fields
//! into an [`AccessEvent`](crate::event::AccessEvent) with these.
//!
//! Invariants: times are never guessed (text without an offset is rejected) and lie within
//! 1970..=9999; sub-millisecond fractions are truncated; IPv4-mapped IPv6 becomes IPv4; every
//! function is total (`None` for anything malformed, no panic).
//!
//! What it does NOT do: choose which candidate field is used (`Parser`), or look at
//! credentials (`crate::credential`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::EventTime;

use super::walk::Captured;

/// 9999-12-31T23:59:59.999Z: later times are absurd (and overflow RFC 3339's year).
pub(super) const MAX_EVENT_MS: i64 = 253_402_300_799_999;

/// Numbers at or above this are epoch milliseconds (10^11 s would be the year 5138).
const MILLIS_THRESHOLD: u64 = 100_000_000_000;

pub(super) fn event_time(value: &Captured<'_>) -> Option<EventTime> {
    let ms = match value {
        Captured::U64(n) => epoch_integer(*n, 0)?,
        Captured::F64(x) => epoch_float(*x)?,
        Captured::Str(text) => {
            let text = text.trim();
            if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                epoch_text(text)?
            } else {
                EventTime::parse_rfc3339(text)?.0
            }
        }
        _ => return None,
    };
    (0..=MAX_EVENT_MS).contains(&ms).then_some(EventTime(ms))
}

/// Integer epoch: milliseconds at or above [`MILLIS_THRESHOLD`], else seconds + `frac_ms`.
fn epoch_integer(n: u64, frac_ms: i64) -> Option<i64> {
    if n >= MILLIS_THRESHOLD {
        i64::try_from(n).ok()
    } else {
        // n < 10^11, so this cannot overflow.
        Some(n as i64 * 1000 + frac_ms)
    }
}

fn epoch_float(x: f64) -> Option<i64> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let ms = if x >= MILLIS_THRESHOLD as f64 {
        x
    } else {
        x * 1000.0
    };
    // The binary float for 1700000000.123 s is a hair below …123 ms; 1 µs of slack recovers
    // the written digits before truncating to the millisecond.
    let ms = (ms + 1e-3).floor();
    if ms > MAX_EVENT_MS as f64 {
        return None;
    }
    Some(ms as i64)
}

/// `1700000000`, `1700000000.123`, `1700000000123`: digits with an optional fraction.
fn epoch_text(text: &str) -> Option<i64> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || whole.len() > 19 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut frac_ms = 0i64;
    if let Some(fraction) = fraction {
        if fraction.is_empty() || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        for (i, digit) in fraction.bytes().take(3).enumerate() {
            frac_ms += i64::from(digit - b'0') * [100, 10, 1][i];
        }
    }
    epoch_integer(whole.parse().ok()?, frac_ms)
}

/// Longest address text considered (a full IPv6 with zone and port fits easily).
const MAX_IP_TEXT: usize = 64;

/// IPv4/IPv6 text with optional port (`1.2.3.4:80`, `[::1]:80`) or zone (`fe80::1%eth0`); a
/// comma list takes its first entry. IPv4-mapped IPv6 becomes IPv4 so one client is one address.
pub(super) fn parse_client_ip(text: &str) -> Option<IpAddr> {
    let first = text.split(',').next()?.trim();
    if first.is_empty() || first.len() > MAX_IP_TEXT {
        return None;
    }
    let ip = if let Some(rest) = first.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        IpAddr::V6(parse_ipv6(inner)?)
    } else if let Ok(ip) = first.parse::<IpAddr>() {
        ip
    } else {
        match first.split_once(':') {
            // Exactly one colon: IPv4 with a port.
            Some((host, port)) if !port.contains(':') => {
                if !is_port(port) {
                    return None;
                }
                IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
            }
            // Several colons: IPv6, perhaps with a zone.
            Some(_) => IpAddr::V6(parse_ipv6(first)?),
            None => return None,
        }
    };
    Some(ip.to_canonical())
}

fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    let address = match text.split_once('%') {
        Some((address, zone)) if !zone.is_empty() => address,
        Some(_) => return None,
        None => text,
    };
    address.parse().ok()
}

fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(path, _)| path)
}

pub(super) fn status(value: &Captured<'_>) -> Option<u16> {
    let code = match value {
        Captured::U64(n) => *n,
        Captured::F64(x) if x.fract() == 0.0 && *x >= 0.0 && *x < 1000.0 => *x as u64,
        Captured::Str(text) => {
            let text = text.trim();
            if text.len() != 3 {
                return None;
            }
            text.parse().ok()?
        }
        _ => return None,
    };
    if (100..=999).contains(&code) {
        u16::try_from(code).ok()
    } else {
        None
    }
}
