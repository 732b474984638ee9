//! Denylist keys: [`DenyKey`] (`fp:`, `jti:`, `sid:`, `sub:`), its text form with the
//! escaping of ids, [`KeyParseError`] and the named kinds the maps are keyed by.
//!
//! Data flow: keys are built by `decide` (detector revocations) and parsed from the admin
//! API and the journal; **denylist** stores entries under them; the check looks them up.
//!
//! Invariants: every key round-trips through its text form (`%` and `:` in an id are written
//! `%25` and `%3A`, and only those escapes are read back); the issuer is everything up to the
//! last `:`; no part is empty or holds control characters; a key's written form is at most
//! [`MAX_KEY_BYTES`].
//!
//! What it does NOT do: store entries, decide what a key covers (`sub:` against `iat` is the
//! check's rule in `denylist.rs`) or compute fingerprints (`identify`).

use std::fmt;
use std::str::FromStr;

use crate::event::Fingerprint;

/// Longest accepted text form of a key, bytes. Longer keys are rejected by [`DenyKey::from_str`]
/// (a key is an issuer plus an id; real ones are well under 300 bytes).
pub const MAX_KEY_BYTES: usize = 2048;

/// A denylist key (DESIGN §4).
///
/// Text form, as in the API, the journal and decision records:
///
/// | key | text |
/// |---|---|
/// | one token | `fp:<32 hex>` (either case accepted, lowercase written) |
/// | one token id | `jti:<iss>:<jti>` |
/// | one session across refreshes | `sid:<iss>:<sid>` |
/// | every token of a user issued before the entry's `not_before` | `sub:<iss>:<sub>` |
///
/// **Parsing rule.** Issuers are usually URLs and contain `:` (`https://id.example.com`), so
/// the issuer is everything between the prefix and the **last** `:`, and the id is what
/// follows it. Ids therefore never contain a raw `:` in text form: when the text is written
/// ([`Display`](fmt::Display)), `%` in the id becomes `%25` and `:` becomes `%3A`; when it is
/// read, exactly those two escapes are decoded (`%3a` too) and any other `%` is kept as is.
/// Every key round-trips, and ids without `:` or `%` — nearly all of them — read the same as
/// the raw `jti:<iss>:<jti>` of DESIGN §4. Producers should build key text with this type's
/// `Display` rather than by hand. Neither part may be empty or contain control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DenyKey {
    /// `fp:<fingerprint>`.
    Fingerprint(Fingerprint),
    /// `jti:<iss>:<jti>`.
    Jti {
        /// Issuer.
        iss: String,
        /// Token id.
        jti: String,
    },
    /// `sid:<iss>:<sid>`.
    Sid {
        /// Issuer.
        iss: String,
        /// Session id.
        sid: String,
    },
    /// `sub:<iss>:<sub>` (with `not_before` on the entry).
    Sub {
        /// Issuer.
        iss: String,
        /// Subject.
        sub: String,
    },
}

/// Why a key's text was rejected. `code()` is a bounded label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// Longer than [`MAX_KEY_BYTES`].
    #[error("denylist key longer than {MAX_KEY_BYTES} bytes")]
    TooLong,
    /// Not one of the four prefixes.
    #[error("unknown denylist key kind (expected fp:, jti:, sid: or sub:)")]
    UnknownKind,
    /// `fp:` not followed by exactly 32 hex characters.
    #[error("fp: keys take exactly 32 hex characters")]
    BadFingerprint,
    /// No `:` between issuer and id, or one of them is empty.
    #[error("jti:, sid: and sub: keys take <iss>:<id>, neither empty")]
    MissingPart,
    /// A control character (newline, NUL, …) in the key.
    #[error("denylist keys must not contain control characters")]
    ControlCharacter,
}

impl KeyParseError {
    /// Bounded reason code.
    pub fn code(self) -> &'static str {
        match self {
            KeyParseError::TooLong => "too_long",
            KeyParseError::UnknownKind => "unknown_kind",
            KeyParseError::BadFingerprint => "bad_fingerprint",
            KeyParseError::MissingPart => "missing_part",
            KeyParseError::ControlCharacter => "control_character",
        }
    }
}

/// The three kinds of key that name an issuer and an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum NamedKind {
    Jti,
    Sid,
    Sub,
}

impl NamedKind {
    fn prefix(self) -> &'static str {
        match self {
            NamedKind::Jti => "jti",
            NamedKind::Sid => "sid",
            NamedKind::Sub => "sub",
        }
    }
}

impl DenyKey {
    /// Which kind of key: `fp`, `jti`, `sid` or `sub` (a bounded label).
    pub fn kind(&self) -> &'static str {
        match self {
            DenyKey::Fingerprint(_) => "fp",
            DenyKey::Jti { .. } => "jti",
            DenyKey::Sid { .. } => "sid",
            DenyKey::Sub { .. } => "sub",
        }
    }

    pub(super) fn named_parts(&self) -> Option<(NamedKind, &str, &str)> {
        match self {
            DenyKey::Fingerprint(_) => None,
            DenyKey::Jti { iss, jti } => Some((NamedKind::Jti, iss, jti)),
            DenyKey::Sid { iss, sid } => Some((NamedKind::Sid, iss, sid)),
            DenyKey::Sub { iss, sub } => Some((NamedKind::Sub, iss, sub)),
        }
    }

    /// `sid:<iss>:<sid>`, if the denylist can hold it: the rules of parsing its text, so the
    /// key reads back as itself from the journal.
    pub fn sid(iss: &str, sid: &str) -> Result<DenyKey, KeyParseError> {
        DenyKey::named(NamedKind::Sid, iss, sid)
    }

    /// A named key from its parts (the id unescaped), checked as its written form will be read.
    fn named(kind: NamedKind, iss: &str, id: &str) -> Result<DenyKey, KeyParseError> {
        if iss.is_empty() || id.is_empty() {
            return Err(KeyParseError::MissingPart);
        }
        if iss.chars().chain(id.chars()).any(char::is_control) {
            return Err(KeyParseError::ControlCharacter);
        }
        // The written form escapes every `%` and `:` of the id, so a lone `%` read literally
        // comes back three bytes long: a key under the limit as read could be over it as
        // written, and the journal could then not read its own record back.
        let escaped = id.bytes().filter(|b| matches!(b, b'%' | b':')).count();
        if kind.prefix().len() + 1 + iss.len() + 1 + id.len() + 2 * escaped > MAX_KEY_BYTES {
            return Err(KeyParseError::TooLong);
        }
        Ok(DenyKey::from_named(kind, iss, id))
    }

    pub(super) fn from_named(kind: NamedKind, iss: &str, id: &str) -> DenyKey {
        let (iss, id) = (iss.to_owned(), id.to_owned());
        match kind {
            NamedKind::Jti => DenyKey::Jti { iss, jti: id },
            NamedKind::Sid => DenyKey::Sid { iss, sid: id },
            NamedKind::Sub => DenyKey::Sub { iss, sub: id },
        }
    }
}

fn write_escaped_id(f: &mut fmt::Formatter<'_>, id: &str) -> fmt::Result {
    let mut rest = id;
    while let Some(at) = rest.find([':', '%']) {
        f.write_str(&rest[..at])?;
        f.write_str(if rest.as_bytes()[at] == b':' {
            "%3A"
        } else {
            "%25"
        })?;
        rest = &rest[at + 1..];
    }
    f.write_str(rest)
}

fn unescape_id(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3);
        match escape {
            Some("%25") => out.push('%'),
            Some("%3A" | "%3a") => out.push(':'),
            _ => {
                out.push('%');
                rest = &rest[at + 1..];
                continue;
            }
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    out
}

impl fmt::Display for DenyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.named_parts() {
            None => match self {
                DenyKey::Fingerprint(fp) => write!(f, "fp:{fp}"),
                _ => Ok(()),
            },
            Some((kind, iss, id)) => {
                write!(f, "{}:{iss}:", kind.prefix())?;
                write_escaped_id(f, id)
            }
        }
    }
}

impl FromStr for DenyKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_KEY_BYTES {
            return Err(KeyParseError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(KeyParseError::ControlCharacter);
        }
        let (prefix, rest) = text.split_once(':').ok_or(KeyParseError::UnknownKind)?;
        let kind = match prefix {
            "fp" => {
                return Fingerprint::from_hex(rest)
                    .map(DenyKey::Fingerprint)
                    .ok_or(KeyParseError::BadFingerprint);
            }
            "jti" => NamedKind::Jti,
            "sid" => NamedKind::Sid,
            "sub" => NamedKind::Sub,
            _ => return Err(KeyParseError::UnknownKind),
        };
        let (iss, id) = rest.rsplit_once(':').ok_or(KeyParseError::MissingPart)?;
        DenyKey::named(kind, iss, &unescape_id(id))
    }
}

impl serde::Serialize for DenyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DenyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
