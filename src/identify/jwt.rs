//! The JWS compact form, read strictly before any cryptography runs.
//!
//! jsonwebtoken cannot even parse `alg: none`, silently ignores `crit`, accepts claims of the
//! wrong type unless told to validate them, and puts no bound on sizes. So `identify` checks the
//! three base64url parts, the header and the claims JSON here, and hands jsonwebtoken only the
//! signature check ([`signature_valid`]) with an algorithm our key permits.
//!
//! Invariants:
//! - Parts are decoded as lenient verifiers decode them ([`crate::credential::decode_segment`]:
//!   base64url or standard base64, `=` padding optional): a stolen token re-encoded that way
//!   still works at PyJWT-style applications, so the detector must still see it. This grants
//!   nothing: the signature is checked over the token's own first two parts, byte for byte.
//! - Header and claims must be JSON *objects*; a repeated `alg`, `kid`, `crit` or registered
//!   claim is `malformed` (no parser-differential games over which copy wins).
//! - Numeric claims must be JSON numbers (CVE-2026-25537: a string `exp` must never mean "no
//!   exp"); string claims must be strings; `aud` a string or an array of strings.
//! - The header's `jku`, `x5u`, `jwk` and `x5c` are never read.
//!
//! Not done here: key selection, the signature's trust decision, `iss`/`aud` policy and time
//! checks (all in `identify`).

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::RejectReason;
use crate::event::Claims;

/// Longest `kid` we look up. Config keys are capped at the same length, so anything longer
/// cannot match and is treated as hostile input.
pub(super) const MAX_KID_BYTES: usize = 256;

/// Longest encoded header. Headers are tiny (`alg`, `typ`, `kid`); this only stops a token
/// from spending its whole size budget on a header we would decode and parse.
pub(super) const MAX_HEADER_B64_BYTES: usize = 2048;

/// A JWT whose structure checked out; nothing about it is trusted yet.
pub(super) struct ParsedJwt<'a> {
    /// The header's algorithm: known, supported and in the configured list.
    pub alg: Algorithm,
    /// The header's `kid`, at most [`MAX_KID_BYTES`].
    pub kid: Option<String>,
    /// `base64url(header) . base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
    /// The third part, re-encoded as canonical base64url (jsonwebtoken decodes it strictly).
    pub signature_b64: String,
    /// The decoded payload (a JSON object).
    pub payload: Vec<u8>,
}

/// `deserialize_with` that keeps an explicit `null` as `Some(Value::Null)`, so `"exp": null`
/// is a malformed claim rather than a missing one.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
struct HeaderWire {
    #[serde(default, deserialize_with = "present")]
    alg: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    kid: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    crit: Option<Value>,
}

#[derive(Deserialize)]
struct ClaimsWire {
    #[serde(default, deserialize_with = "present")]
    iss: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    sub: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    aud: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    jti: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    sid: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    exp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    nbf: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    iat: Option<Value>,
}

/// Claims after type checks, plus the audiences (which [`Claims`] does not carry).
pub(super) struct CheckedClaims {
    pub claims: Claims,
    pub audiences: Vec<String>,
}

/// Split and check the compact form; `allowed` is `tokens.jwt.algorithms`.
pub(super) fn parse<'a>(
    token: &'a str,
    allowed: &[Algorithm],
) -> Result<ParsedJwt<'a>, RejectReason> {
    let (header_b64, payload_b64, signature_b64) = split(token)?;
    if header_b64.len() > MAX_HEADER_B64_BYTES {
        return Err(RejectReason::TooLarge);
    }
    let header: HeaderWire = json_object(&decode_part(header_b64)?)?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: a recipient that does not understand a listed extension MUST
        // reject the token. We understand none.
        return Err(RejectReason::Malformed);
    }
    let alg = match header.alg {
        Some(Value::String(name)) => {
            // `none`, ES512, Ed448 and anything unknown fail here.
            Algorithm::from_str(&name).map_err(|_| RejectReason::AlgNotAllowed)?
        }
        _ => return Err(RejectReason::Malformed),
    };
    if !allowed.contains(&alg) {
        return Err(RejectReason::AlgNotAllowed);
    }
    let kid = match header.kid {
        None => None,
        Some(Value::String(kid)) if kid.len() <= MAX_KID_BYTES => Some(kid),
        Some(_) => return Err(RejectReason::Malformed),
    };
    let payload = decode_part(payload_b64)?;
    if !is_json_object(&payload) {
        return Err(RejectReason::Malformed);
    }
    // Decoded to classify garbage as `malformed`, and re-encoded because jsonwebtoken decodes
    // strictly (a padded signature is still the same signature).
    let signature_b64 = if signature_b64.is_empty() {
        String::new()
    } else {
        URL_SAFE_NO_PAD.encode(decode_part(signature_b64)?)
    };
    Ok(ParsedJwt {
        alg,
        kid,
        signing_input: &token[..header_b64.len() + 1 + payload_b64.len()],
        signature_b64,
        payload,
    })
}

/// Does `key` verify the token's signature under the header's algorithm? The caller has
/// already checked that the key permits that algorithm; jsonwebtoken re-checks the family.
pub(super) fn signature_valid(parsed: &ParsedJwt<'_>, key: &DecodingKey) -> bool {
    matches!(
        jsonwebtoken::crypto::verify(
            &parsed.signature_b64,
            parsed.signing_input.as_bytes(),
            key,
            parsed.alg,
        ),
        Ok(true)
    )
}

/// Strictly typed claims of a verified token.
pub(super) fn checked_claims(payload: &[u8]) -> Result<CheckedClaims, RejectReason> {
    let wire: ClaimsWire = json_object(payload)?;
    let audiences = match wire.aud {
        None => Vec::new(),
        Some(Value::String(aud)) => vec![aud],
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(aud) => Ok(aud),
                _ => Err(RejectReason::Malformed),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(RejectReason::Malformed),
    };
    let claims = Claims {
        iss: strict_string(wire.iss)?,
        sub: strict_string(wire.sub)?,
        jti: strict_string(wire.jti)?,
        sid: strict_string(wire.sid)?,
        // Fractional seconds round towards "less valid": exp down, nbf up.
        exp: strict_time(wire.exp, f64::floor)?,
        iat: strict_time(wire.iat, f64::floor)?,
        nbf: strict_time(wire.nbf, f64::ceil)?,
    };
    Ok(CheckedClaims { claims, audiences })
}

/// Claims of an unverified token, leaving out any of the wrong type (see
/// [`super::unverified_claims`] for why this is only ever used to deny).
pub(super) fn unverified_claims(payload: &[u8]) -> Option<Claims> {
    let wire: ClaimsWire = json_object(payload).ok()?;
    let string = |value: Option<Value>| strict_string(value).ok().flatten();
    let time = |value: Option<Value>| strict_time(value, f64::floor).ok().flatten();
    Some(Claims {
        iss: string(wire.iss),
        sub: string(wire.sub),
        jti: string(wire.jti),
        sid: string(wire.sid),
        exp: time(wire.exp),
        iat: time(wire.iat),
        nbf: strict_time(wire.nbf, f64::ceil).ok().flatten(),
    })
}

/// Exactly three parts, header and payload non-empty. The signature may be empty (`alg: none`
/// tokens have none); the caller decides what that means.
fn split(token: &str) -> Result<(&str, &str, &str), RejectReason> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None)
            if !header.is_empty() && !payload.is_empty() =>
        {
            Ok((header, payload, signature))
        }
        _ => Err(RejectReason::Malformed),
    }
}

fn decode_part(part: &str) -> Result<Vec<u8>, RejectReason> {
    crate::credential::decode_segment(part).ok_or(RejectReason::Malformed)
}

/// serde's derived structs also accept JSON arrays (fields by position), so the object shape
/// is checked first.
fn is_json_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

fn json_object<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, RejectReason> {
    if !is_json_object(bytes) {
        return Err(RejectReason::Malformed);
    }
    serde_json::from_slice(bytes).map_err(|_| RejectReason::Malformed)
}

fn strict_string(value: Option<Value>) -> Result<Option<String>, RejectReason> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(RejectReason::Malformed),
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional. Anything else —
/// a string, `null`, a number outside `i64` — is malformed, never "absent".
fn strict_time(value: Option<Value>, round: fn(f64) -> f64) -> Result<Option<i64>, RejectReason> {
    // i64::MAX as f64 rounds up to 2^63, which no longer fits: compare against 2^63 exclusive.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match value {
        None => Ok(None),
        Some(Value::Number(number)) => {
            if let Some(whole) = number.as_i64() {
                return Ok(Some(whole));
            }
            match number.as_f64().map(round) {
                Some(seconds) if seconds.is_finite() && seconds.abs() < LIMIT => {
                    // In range and integral, so the cast is exact.
                    Ok(Some(seconds as i64))
                }
                _ => Err(RejectReason::Malformed),
            }
        }
        Some(_) => Err(RejectReason::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(text)
    }

    fn token(header: &str, payload: &str, signature: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(payload), signature)
    }

    const ALL: [Algorithm; 2] = [Algorithm::HS256, Algorithm::RS256];

    #[test]
    fn structure_errors_are_classified() {
        let ok_payload = r#"{"exp":1}"#;
        let long_kid = format!(
            r#"{{"alg":"HS256","kid":"{}"}}"#,
            "k".repeat(MAX_KID_BYTES + 1)
        );
        let huge_header = format!(r#"{{"alg":"HS256","x":"{}"}}"#, "a".repeat(4000));
        let cases: Vec<(&str, String, RejectReason)> = vec![
            (
                "two parts",
                format!("{}.{}", b64("{}"), b64("{}")),
                RejectReason::Malformed,
            ),
            (
                "four parts",
                format!("{}.x", token(r#"{"alg":"HS256"}"#, ok_payload, "AA")),
                RejectReason::Malformed,
            ),
            (
                "empty header",
                format!(".{}.AA", b64(ok_payload)),
                RejectReason::Malformed,
            ),
            (
                "padding inside a part",
                format!("{}=x.{}.AA", b64(r#"{"alg":"HS256"}"#), b64(ok_payload)),
                RejectReason::Malformed,
            ),
            (
                "a character of neither alphabet",
                token(r#"{"alg":"HS256"}"#, ok_payload, "a!b"),
                RejectReason::Malformed,
            ),
            (
                "impossible length",
                token(r#"{"alg":"HS256"}"#, ok_payload, "AAAAA"),
                RejectReason::Malformed,
            ),
            (
                "header not json",
                token("alg=HS256", ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "header array",
                token(r#"["HS256"]"#, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "alg missing",
                token(r#"{"typ":"JWT"}"#, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "alg number",
                token(r#"{"alg":256}"#, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "duplicate alg",
                token(r#"{"alg":"HS256","alg":"none"}"#, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "crit",
                token(
                    r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
                    ok_payload,
                    "AA",
                ),
                RejectReason::Malformed,
            ),
            (
                "alg none",
                token(r#"{"alg":"none"}"#, ok_payload, ""),
                RejectReason::AlgNotAllowed,
            ),
            (
                "alg None",
                token(r#"{"alg":"None"}"#, ok_payload, ""),
                RejectReason::AlgNotAllowed,
            ),
            (
                "lowercase alg",
                token(r#"{"alg":"hs256"}"#, ok_payload, "AA"),
                RejectReason::AlgNotAllowed,
            ),
            (
                "ES512",
                token(r#"{"alg":"ES512"}"#, ok_payload, "AA"),
                RejectReason::AlgNotAllowed,
            ),
            (
                "Ed448",
                token(r#"{"alg":"Ed448"}"#, ok_payload, "AA"),
                RejectReason::AlgNotAllowed,
            ),
            (
                "not configured",
                token(r#"{"alg":"ES256"}"#, ok_payload, "AA"),
                RejectReason::AlgNotAllowed,
            ),
            (
                "kid too long",
                token(&long_kid, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "kid number",
                token(r#"{"alg":"HS256","kid":7}"#, ok_payload, "AA"),
                RejectReason::Malformed,
            ),
            (
                "header too large",
                token(&huge_header, ok_payload, "AA"),
                RejectReason::TooLarge,
            ),
            (
                "payload not json",
                token(r#"{"alg":"HS256"}"#, "exp=1", "AA"),
                RejectReason::Malformed,
            ),
            (
                "payload array",
                token(r#"{"alg":"HS256"}"#, "[1,2]", "AA"),
                RejectReason::Malformed,
            ),
            (
                "signature not base64url",
                token(r#"{"alg":"HS256"}"#, ok_payload, "%%"),
                RejectReason::Malformed,
            ),
        ];
        for (name, token, expected) in cases {
            match parse(&token, &ALL) {
                Ok(_) => panic!("{name}: parsed"),
                Err(reason) => assert_eq!(reason, expected, "{name}"),
            }
        }
    }

    #[test]
    fn lenient_encodings_parse_and_the_signature_is_handed_over_canonical() {
        let header = b64(r#"{"alg":"HS256"}"#);
        let payload = b64(r#"{"sub":"u"}"#);
        for (token, signing_input) in [
            (
                format!("{header}.{payload}.-_8=="),
                format!("{header}.{payload}"),
            ),
            (
                format!("{header}.{payload}.+/8"),
                format!("{header}.{payload}"),
            ),
            (
                format!("{header}==.{payload}.-_8"),
                format!("{header}==.{payload}"),
            ),
        ] {
            let parsed = parse(&token, &ALL).expect(&token);
            assert_eq!(parsed.signature_b64, "-_8", "{token}");
            // What the signature covers stays the token's own bytes.
            assert_eq!(parsed.signing_input, signing_input, "{token}");
        }
    }

    #[test]
    fn a_good_header_yields_alg_kid_and_signing_input() {
        let header = b64(r#"{"alg":"RS256","kid":"k1","jku":"https://evil.example/jwks"}"#);
        let payload = b64(r#"{"sub":"u"}"#);
        let token = format!("{header}.{payload}.AAAA");
        let parsed = parse(&token, &ALL).expect("parses");
        assert_eq!(parsed.alg, Algorithm::RS256);
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.signing_input, format!("{header}.{payload}"));
        assert_eq!(parsed.signature_b64, "AAAA");
    }

    #[test]
    fn claim_types_are_strict() {
        type Expected = Result<(Option<i64>, Vec<&'static str>), RejectReason>;
        let cases: &[(&str, Expected)] = &[
            (r#"{"exp":100}"#, Ok((Some(100), vec![]))),
            (r#"{"exp":100.9}"#, Ok((Some(100), vec![]))),
            (r#"{"exp":1e3}"#, Ok((Some(1000), vec![]))),
            (r#"{"aud":"api"}"#, Ok((None, vec!["api"]))),
            (r#"{"aud":["a","b"]}"#, Ok((None, vec!["a", "b"]))),
            (r#"{"exp":"100"}"#, Err(RejectReason::Malformed)),
            (r#"{"exp":null}"#, Err(RejectReason::Malformed)),
            (r#"{"exp":true}"#, Err(RejectReason::Malformed)),
            (r#"{"exp":1e300}"#, Err(RejectReason::Malformed)),
            (
                r#"{"exp":18446744073709551615}"#,
                Err(RejectReason::Malformed),
            ),
            (r#"{"nbf":"0"}"#, Err(RejectReason::Malformed)),
            (r#"{"iat":[1]}"#, Err(RejectReason::Malformed)),
            (r#"{"iss":7}"#, Err(RejectReason::Malformed)),
            (r#"{"sub":{"id":1}}"#, Err(RejectReason::Malformed)),
            (r#"{"aud":["a",1]}"#, Err(RejectReason::Malformed)),
            (r#"{"aud":7}"#, Err(RejectReason::Malformed)),
            (r#"{"exp":100,"exp":200}"#, Err(RejectReason::Malformed)),
        ];
        for (payload, expected) in cases {
            let got = checked_claims(payload.as_bytes()).map(|c| (c.claims.exp, c.audiences));
            let expected = expected
                .clone()
                .map(|(exp, aud)| (exp, aud.into_iter().map(String::from).collect::<Vec<_>>()));
            assert_eq!(got.as_ref().ok(), expected.as_ref().ok(), "{payload}");
            assert_eq!(got.err(), expected.err(), "{payload}");
        }
    }

    #[test]
    fn nbf_rounds_up_and_exp_rounds_down() {
        let claims = checked_claims(br#"{"exp":10.5,"nbf":5.5}"#).expect("valid");
        assert_eq!(claims.claims.exp, Some(10));
        assert_eq!(claims.claims.nbf, Some(6));
    }

    #[test]
    fn unverified_claims_skip_wrong_types_but_keep_the_rest() {
        let token = token(
            r#"{"alg":"none"}"#,
            r#"{"iss":"https://id","jti":"j1","sid":"s1","sub":"u","exp":"soon","iat":5}"#,
            "",
        );
        let claims = super::super::unverified_claims(&token, 8192).expect("claims");
        assert_eq!(claims.jti.as_deref(), Some("j1"));
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert_eq!(claims.exp, None);
        assert_eq!(claims.iat, Some(5));
        assert!(unverified_claims(b"opaque-session-id").is_none());
        assert!(unverified_claims(b"[1]").is_none());
    }
}
