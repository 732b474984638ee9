//! Config step 1, parse, reporting every schema error (unknown keys, wrong types, bad values)
//! with its dotted key path, not just the first one the TOML deserializer stops at.
//!
//! The text is parsed into a `toml::Value` (a syntax error stops here: nothing after it can be
//! read), then deserialized with `serde_path_to_error`, which knows the path of the failing
//! key. That key is removed and the rest deserialized again, until it goes through: every
//! schema error is reported, and what remains (with defaults where keys were removed) can
//! still be validated, so `check-config` lists the semantic problems too.
//!
//! This module does no I/O and knows nothing about what the keys mean.

use serde::de::DeserializeOwned;

/// At most this many schema errors are collected (each costs one more deserialization).
const MAX_SCHEMA_ERRORS: usize = 100;

/// Deserialize `text`, collecting every schema error with its key path. Returns what could
/// be read (the offending keys removed) and the errors; `None` when nothing could be read
/// (a TOML syntax error, a missing required table).
pub(super) fn parse_collecting<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<String>) {
    let mut value: toml::Value = match toml::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return (None, vec![e.to_string().trim_end().replace('\n', "\n    ")]);
        }
    };
    let mut errors = Vec::new();
    while errors.len() < MAX_SCHEMA_ERRORS {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) => return (Some(parsed), errors),
            Err(error) => error,
        };
        let mut path: Vec<Segment> = error
            .path()
            .iter()
            .filter_map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => Some(Segment::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => Some(Segment::Index(*index)),
                _ => None,
            })
            .collect();
        let message = error.into_inner().to_string();
        // The path ends at the unknown key itself, or (depending on the deserializer) at its
        // table with the key named only in the message.
        if let Some(unknown) = unknown_field(&message)
            && path.last() != Some(&Segment::Key(unknown.clone()))
        {
            path.push(Segment::Key(unknown));
        }
        errors.push(format!("{}: {}", dotted(&path), first_line(&message)));
        // A bad array element: the whole array goes, so later elements keep their indexes.
        if matches!(path.last(), Some(Segment::Index(_))) {
            path.pop();
        }
        if !remove(&mut value, &path) {
            return (None, errors);
        }
    }
    (None, errors)
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

/// `tokens.jwt.keys[1].kid`.
fn dotted(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(top level)");
    }
    out
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message).trim_end()
}

/// The name in serde's "unknown field `name`, expected …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Remove the value at `path`; false when there is nothing to remove (a missing key: the
/// error is about an absence, so removing cannot get past it).
fn remove(value: &mut toml::Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for segment in parents {
        node = match (segment, node) {
            (Segment::Key(key), toml::Value::Table(table)) => match table.get_mut(key) {
                Some(next) => next,
                None => return false,
            },
            (Segment::Index(i), toml::Value::Array(items)) => match items.get_mut(*i) {
                Some(next) => next,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, node) {
        (Segment::Key(key), toml::Value::Table(table)) => table.remove(key).is_some(),
        _ => false,
    }
}
