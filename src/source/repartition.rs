//! Stage 1, source — repartitioning (DESIGN §6, issue 16): the record format of the internal
//! topic that re-keys identified events by session when the access-log topic is not.
//!
//! Where it sits: a detector's first stage parses and identifies an access-log batch
//! (`Pipeline::identify_batch`), [`encode`]s each event and produces it keyed by fingerprint;
//! the detectors' group reads that topic back (`source/kafka.rs`, lines of source
//! `repartition`) and [`decode`]s each record into an event for enrichment and detection
//! (`Pipeline::detect_identified`). So one session's events meet on one instance, whatever
//! the producers' partitioning.
//!
//! Invariants: a record holds the fingerprint, event time, client address, method, path,
//! status, User-Agent and the verified claims detection and the denylist use — never the
//! token (the decoded event's one credential is the fingerprint itself); a record is at most
//! the source's line cap; a record that does not decode is a bounded reason, never a panic.
//!
//! It does NOT: enrich (the second stage does, with its own GeoIP databases) or verify
//! anything (the first stage did; the topic is tokenwatch's own).

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::event::{
    AccessEvent, Claims, Credential, Enrichment, EventTime, Fingerprint, IdentifiedEvent, Identity,
    TokenKind,
};

/// The record format's version; a record of another is refused.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Wire {
    v: u8,
    fp: String,
    kind: Kind,
    time_ms: i64,
    ip: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<WireClaims>,
}

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Jwt,
    Opaque,
    Upstream,
}

#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: Option<String>,
    sub: Option<String>,
    jti: Option<String>,
    sid: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
}

/// Why a repartition record was refused (bounded; the record is dead-lettered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not the JSON of a record.
    #[error("not a repartition record")]
    Malformed,
    /// Written by another format version.
    #[error("unknown repartition record version")]
    Version,
    /// The fingerprint is not 32 hex characters.
    #[error("bad fingerprint")]
    Fingerprint,
}

/// The record's key (the fingerprint: one session, one partition) and value.
pub fn encode(event: &IdentifiedEvent) -> (Vec<u8>, Vec<u8>) {
    let fp = event.identity.fingerprint.to_hex();
    let claims = event.identity.claims.as_deref().map(|c| WireClaims {
        iss: c.iss.clone(),
        sub: c.sub.clone(),
        jti: c.jti.clone(),
        sid: c.sid.clone(),
        exp: c.exp,
        iat: c.iat,
        nbf: c.nbf,
    });
    let wire = Wire {
        v: VERSION,
        fp: fp.clone(),
        kind: match event.identity.kind {
            TokenKind::Jwt => Kind::Jwt,
            TokenKind::Opaque => Kind::Opaque,
            TokenKind::Upstream => Kind::Upstream,
        },
        time_ms: event.event.time.0,
        ip: event.event.client_ip,
        method: event.event.method.clone(),
        path: event.event.path.clone(),
        status: event.event.status,
        user_agent: event.event.user_agent.clone(),
        claims,
    };
    // Serializing owned strings and numbers cannot fail.
    let value = serde_json::to_vec(&wire).unwrap_or_default();
    (fp.into_bytes(), value)
}

/// An event from a record (its enrichment empty, its one credential the fingerprint).
pub fn decode(bytes: &[u8]) -> Result<IdentifiedEvent, DecodeError> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|_| DecodeError::Malformed)?;
    if wire.v != VERSION {
        return Err(DecodeError::Version);
    }
    let fingerprint = Fingerprint::from_hex(&wire.fp).ok_or(DecodeError::Fingerprint)?;
    let claims = wire.claims.map(|c| {
        Arc::new(Claims {
            iss: c.iss,
            sub: c.sub,
            jti: c.jti,
            sid: c.sid,
            exp: c.exp,
            iat: c.iat,
            nbf: c.nbf,
        })
    });
    Ok(IdentifiedEvent {
        seq: 0,
        event: AccessEvent {
            time: EventTime(wire.time_ms),
            client_ip: wire.ip,
            method: wire.method,
            path: wire.path,
            status: wire.status,
            user_agent: wire.user_agent,
            credentials: vec![Credential::Fingerprint(fingerprint)],
        },
        identity: Identity {
            fingerprint,
            kind: match wire.kind {
                Kind::Jwt => TokenKind::Jwt,
                Kind::Opaque => TokenKind::Opaque,
                Kind::Upstream => TokenKind::Upstream,
            },
            claims,
        },
        enrichment: Enrichment::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_without_the_token_and_bad_ones_are_refused() {
        let fingerprint = Fingerprint::from_hex("9f86d081884c7d659a2feaa0c55ad015").expect("fp");
        let event = IdentifiedEvent {
            seq: 7,
            event: AccessEvent {
                time: EventTime(1_795_435_200_000),
                client_ip: "192.0.2.7".parse().expect("ip"),
                method: Some("GET".into()),
                path: Some("/inbox".into()),
                status: Some(200),
                user_agent: Some("Mozilla/5.0".into()),
                credentials: vec![Credential::Bearer(crate::event::RawToken::new(
                    "secret-token",
                ))],
            },
            identity: Identity {
                fingerprint,
                kind: TokenKind::Jwt,
                claims: Some(Arc::new(Claims {
                    iss: Some("https://id.example.com".into()),
                    sub: Some("alice".into()),
                    sid: Some("s-1".into()),
                    iat: Some(1),
                    exp: Some(2),
                    ..Claims::default()
                })),
            },
            enrichment: Enrichment::default(),
        };
        let (key, value) = encode(&event);
        assert_eq!(key, b"9f86d081884c7d659a2feaa0c55ad015");
        assert!(!String::from_utf8_lossy(&value).contains("secret-token"));
        let back = decode(&value).expect("decodes");
        assert_eq!(back.identity.fingerprint, fingerprint);
        assert_eq!(back.identity.kind, TokenKind::Jwt);
        assert_eq!(
            back.identity.claims.as_deref(),
            event.identity.claims.as_deref()
        );
        assert_eq!(back.event.time, event.event.time);
        assert_eq!(back.event.client_ip, event.event.client_ip);
        assert_eq!(back.event.user_agent, event.event.user_agent);
        assert!(matches!(
            back.event.credentials.as_slice(),
            [Credential::Fingerprint(fp)] if *fp == fingerprint
        ));
        for (bytes, want) in [
            (&b"not json"[..], DecodeError::Malformed),
            (br#"{"v":9,"fp":"9f86d081884c7d659a2feaa0c55ad015","kind":"jwt","time_ms":1,"ip":"192.0.2.1"}"#, DecodeError::Version),
            (br#"{"v":1,"fp":"zz","kind":"jwt","time_ms":1,"ip":"192.0.2.1"}"#, DecodeError::Fingerprint),
        ] {
            assert_eq!(decode(bytes).err(), Some(want));
        }
    }
}
