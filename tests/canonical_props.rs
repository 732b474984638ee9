//! Property tests of the canonical token form (DESIGN §4, `tokenwatch::credential`), on stable
//! Rust with proptest: every encoding of a token that a lenient verifier or framework reads as
//! the same token (PyJWT and jose for JWTs, Express's cookie parsing for cookie values) has the
//! token's fingerprint, and different tokens do not share one.
//!
//! Generated: JWTs (a JSON header with `alg` among other members in any order, a JSON claims
//! payload or arbitrary payload bytes, arbitrary signature bytes) and opaque tokens, then
//! re-encoded with any mix of `=` padding per segment, the standard base64 alphabet per
//! segment, another signature, percent-encoding of any characters (upper- or lowercase hex),
//! one pair of double quotes and surrounding whitespace. Also: a `Cookie` header hiding the
//! token among decoys (other cookies, other `sid` values, `;` and `,` separators, split over
//! two headers) still yields it.
//!
//! The case counts keep the file at a few seconds in the debug test profile; a failure prints
//! its minimal input and proptest records the seed in `tests/canonical_props.proptest-regressions`.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use proptest::test_runner::Config;
use tokenwatch::credential::{Canonical, Collector, MAX_CREDENTIALS, Source};
use tokenwatch::event::Fingerprint;
use tokenwatch::identify::Fingerprinter;

const PEPPER: &str = "proptest-pepper-0123456789";

fn fp(token: &str) -> Fingerprint {
    Fingerprinter::new(PEPPER).fingerprint(token.as_bytes())
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JSON string value or number, as a claim or header member.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<String>().prop_map(serde_json::Value::from),
        "[ -~]{0,24}".prop_map(serde_json::Value::from),
        any::<u32>().prop_map(serde_json::Value::from),
        any::<bool>().prop_map(serde_json::Value::from),
    ]
}

/// A JOSE header: a JSON object with `alg` at any position among other members.
fn header() -> impl Strategy<Value = Vec<u8>> {
    let alg = prop_oneof![
        Just("HS256".to_owned()),
        Just("RS256".to_owned()),
        Just("ES256".to_owned()),
        Just("EdDSA".to_owned()),
        Just("none".to_owned()),
        "[A-Za-z0-9]{0,8}",
    ];
    let members = proptest::collection::vec(("typ|kid|cty|x5t|[a-z]{1,6}", json_value()), 0..4);
    (alg, members, any::<prop::sample::Index>()).prop_map(|(alg, mut members, at)| {
        members.retain(|(key, _)| key != "alg");
        let at = at.index(members.len() + 1);
        members.insert(at, ("alg".to_owned(), alg.into()));
        let body: Vec<String> = members
            .iter()
            .map(|(key, value)| format!("{}:{value}", serde_json::Value::from(key.as_str())))
            .collect();
        format!("{{{}}}", body.join(",")).into_bytes()
    })
}

/// A payload: JSON claims, or arbitrary bytes (the canonical form only needs them to decode).
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let claims = (
        "[a-z0-9-]{1,16}",
        any::<u32>(),
        proptest::collection::vec(("[a-z_]{1,8}", json_value()), 0..3),
    )
        .prop_map(|(sub, exp, extra)| {
            let mut claims = serde_json::Map::new();
            claims.insert("iss".into(), "https://id.example.com".into());
            claims.insert("sub".into(), sub.into());
            claims.insert("exp".into(), exp.into());
            for (key, value) in extra {
                claims.insert(key, value);
            }
            serde_json::Value::Object(claims).to_string().into_bytes()
        });
    prop_oneof![claims, proptest::collection::vec(any::<u8>(), 0..48)]
}

fn signature() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..72)
}

/// How a token is re-encoded; each choice is one a lenient reader undoes.
#[derive(Debug, Clone)]
struct Reencoding {
    /// `=` appended to each of the three segments (JWTs only).
    padding: [usize; 3],
    /// Standard base64 alphabet (`+`, `/`) for each segment (JWTs only).
    standard: [bool; 3],
    /// Another signature (JWTs only).
    other_signature: Option<Vec<u8>>,
    /// Which characters are percent-encoded (cycled over the token), and in which hex case.
    percent: Vec<bool>,
    lowercase_hex: bool,
    /// One pair of double quotes around it.
    quotes: bool,
    /// Whitespace before and after (outside the quotes).
    before: String,
    after: String,
}

fn reencoding() -> impl Strategy<Value = Reencoding> {
    let whitespace = "[ \t\n\u{c}\r]{0,3}";
    (
        [0..4usize, 0..4usize, 0..4usize],
        any::<[bool; 3]>(),
        proptest::option::of(signature()),
        proptest::collection::vec(prop::bool::weighted(0.2), 1..16),
        any::<bool>(),
        any::<bool>(),
        whitespace,
        whitespace,
    )
        .prop_map(
            |(
                padding,
                standard,
                other_signature,
                percent,
                lowercase_hex,
                quotes,
                before,
                after,
            )| {
                Reencoding {
                    padding,
                    standard,
                    other_signature,
                    percent,
                    lowercase_hex,
                    quotes,
                    before,
                    after,
                }
            },
        )
}

impl Reencoding {
    /// Percent-encode, quote and pad `text`, in the order a framework undoes it backwards.
    /// Percent-encoding covers any picked character and every `%`, so decoding gives `text`.
    fn wrap(&self, text: &str) -> String {
        let mut encoded = String::new();
        for (i, c) in text.chars().enumerate() {
            if c == '%' || self.percent[i % self.percent.len()] {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    if self.lowercase_hex {
                        encoded.push_str(&format!("%{byte:02x}"));
                    } else {
                        encoded.push_str(&format!("%{byte:02X}"));
                    }
                }
            } else {
                encoded.push(c);
            }
        }
        if self.quotes {
            encoded = format!("\"{encoded}\"");
        }
        format!("{}{encoded}{}", self.before, self.after)
    }

    /// A JWT with these segment encodings, then wrapped.
    fn jwt(&self, header: &[u8], payload: &[u8], signature: &[u8]) -> String {
        let signature = self.other_signature.as_deref().unwrap_or(signature);
        let segments: Vec<String> = [header, payload, signature]
            .iter()
            .enumerate()
            .map(|(i, bytes)| {
                let mut segment = b64(bytes);
                if self.standard[i] {
                    segment = segment.replace('-', "+").replace('_', "/");
                }
                segment.push_str(&"=".repeat(self.padding[i]));
                segment
            })
            .collect();
        self.wrap(&segments.join("."))
    }

    /// Percent-encoding and quotes are what a cookie value may carry; whitespace around it
    /// would be trimmed by the cookie parser anyway, so it is kept too.
    fn cookie_value(&self, token: &str) -> String {
        self.wrap(token)
    }
}

fn jwt(header: &[u8], payload: &[u8], signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header), b64(payload), b64(signature))
}

/// Opaque session ids as servers issue them: cookie-value characters, no `%`, quotes or
/// whitespace (those belong to the encoding, not the token).
fn opaque() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~+/=:!*-]{1,64}"
}

fn config(cases: u32) -> Config {
    Config {
        cases,
        // Shrinking stays quick: the inputs are small.
        max_shrink_iters: 2048,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn every_lenient_encoding_of_a_jwt_has_its_fingerprint(
        header in header(),
        payload in payload(),
        signature in signature(),
        variant in reencoding(),
    ) {
        let original = jwt(&header, &payload, &signature);
        prop_assert!(Canonical::of(&original).is_jwt());
        let reencoded = variant.jwt(&header, &payload, &signature);
        let canonical = Canonical::of(&reencoded);
        prop_assert!(canonical.is_jwt(), "{reencoded:?} is no longer a JWT");
        prop_assert_eq!(canonical.jwt_payload(), Some(payload.as_slice()));
        prop_assert_eq!(fp(&reencoded), fp(&original), "{:?}", reencoded);
    }

    #[test]
    fn every_lenient_encoding_of_an_opaque_token_has_its_fingerprint(
        token in opaque(),
        variant in reencoding(),
    ) {
        let reencoded = variant.wrap(&token);
        let canonical = Canonical::of(&reencoded);
        prop_assert_eq!(canonical.token(), token.as_str());
        prop_assert_eq!(fp(&reencoded), fp(&token), "{:?}", reencoded);
    }

    #[test]
    fn any_text_reencoded_from_its_canonical_token_keeps_its_fingerprint(
        text in any::<String>(),
        variant in reencoding(),
    ) {
        let canonical = Canonical::of(&text);
        let reencoded = Reencoding { quotes: true, ..variant }.wrap(canonical.token());
        prop_assert_eq!(fp(&reencoded), fp(&text), "{:?} from {:?}", reencoded, text);
    }

    #[test]
    fn distinct_payloads_give_distinct_fingerprints(
        header in header(),
        payloads in (payload(), payload()),
        signature in signature(),
    ) {
        let (one, two) = payloads;
        prop_assume!(one != two);
        prop_assert_ne!(
            fp(&jwt(&header, &one, &signature)),
            fp(&jwt(&header, &two, &signature))
        );
    }

    #[test]
    fn distinct_headers_give_distinct_fingerprints(
        headers in (header(), header()),
        payload in payload(),
        signature in signature(),
    ) {
        let (one, two) = headers;
        prop_assume!(one != two);
        prop_assert_ne!(
            fp(&jwt(&one, &payload, &signature)),
            fp(&jwt(&two, &payload, &signature))
        );
    }

    #[test]
    fn distinct_opaque_tokens_give_distinct_fingerprints(one in opaque(), two in opaque()) {
        prop_assume!(one != two);
        prop_assert_ne!(fp(&one), fp(&two));
    }

    #[test]
    fn a_session_cookie_hidden_among_decoys_is_found(
        token in prop_oneof![
            opaque(),
            (header(), payload(), signature()).prop_map(|(h, p, s)| jwt(&h, &p, &s)),
        ],
        decoys in proptest::collection::vec(
            ("sid|theme|_ga|sidx|xsid|SID|session", "[A-Za-z0-9._-]{1,20}"),
            0..12,
        ),
        at in any::<prop::sample::Index>(),
        separators in proptest::collection::vec(
            prop_oneof![Just("; "), Just(";"), Just(", "), Just(","), Just(" ;  ")],
            1..4,
        ),
        spaced_name in any::<bool>(),
        variant in reencoding(),
        split in any::<prop::sample::Index>(),
    ) {
        // At most MAX_CREDENTIALS session cookies in all, the hidden one included.
        let mut sids = 0;
        let mut cookies: Vec<String> = Vec::new();
        for (name, value) in decoys {
            if name == "sid" {
                if sids + 1 == MAX_CREDENTIALS {
                    continue;
                }
                sids += 1;
            }
            cookies.push(format!("{name}={value}"));
        }
        let name = if spaced_name { " sid " } else { "sid" };
        let value = Reencoding { before: String::new(), after: String::new(), ..variant }
            .cookie_value(&token);
        cookies.insert(at.index(cookies.len() + 1), format!("{name}={value}"));
        let mut header = String::new();
        for (i, cookie) in cookies.iter().enumerate() {
            if i > 0 {
                header.push_str(separators[i % separators.len()]);
            }
            header.push_str(cookie);
        }

        let want = fp(&token);
        // One Cookie header, and the same cookies split over two headers at a separator.
        let cut = split.index(cookies.len() + 1);
        let (first, second) = (cookies[..cut].join("; "), cookies[cut..].join("; "));
        for headers in [vec![header.clone()], vec![first, second]] {
            let mut collector = Collector::new("sid");
            for value in &headers {
                collector.cookies(Cow::Borrowed(value.as_str()));
            }
            let found = collector.finish().expect("within the cap");
            prop_assert_eq!(found.len(), sids + 1, "{:?}", headers);
            prop_assert!(found.iter().all(|(source, _)| *source == Source::Cookie));
            prop_assert!(
                found.iter().any(|(_, value)| fp(value) == want),
                "token not found in {:?}",
                headers
            );
        }
    }
}
