//! Fuzzes `credential::Collector::cookies` on arbitrary `Cookie` header bytes.
//!
//! Input: one byte choosing the session cookie's name (`sid`, `session`, `__Host-sid`, `a`),
//! then header bytes, read as lossy UTF-8 exactly as the check API and the parser do; each
//! line is one `Cookie` header. Seeds: `fuzz/corpus/cookies/`.
//!
//! Asserts, besides "no panic":
//! - every value returned borrows from the header (a substring, never a copy) and is a whole
//!   cookie value: preceded by `name=` where the trimmed name is the session cookie's, up to
//!   the previous `;` or `,`, and followed by a separator or the end; it is not blank;
//! - every such cookie is returned, in order, or `TooManyCredentials` when there are more
//!   than `MAX_CREDENTIALS`.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use tokenwatch::credential::{Collector, MAX_CREDENTIALS, Source, lossy};

const NAMES: [&str; 4] = ["sid", "session", "__Host-sid", "a"];

/// The session cookies' values in one header, found by a second, independent reading: every
/// `;`/`,`-separated piece whose text before its first `=` trims to `name`.
fn expected<'h>(header: &'h str, name: &str) -> Vec<&'h str> {
    header
        .split([';', ','])
        .filter_map(|piece| {
            let eq = piece.find('=')?;
            let value = &piece[eq + 1..];
            (piece[..eq].trim_ascii() == name && !value.trim_ascii().is_empty()).then_some(value)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(selector) % NAMES.len()];
    let text = lossy(rest);
    let headers: Vec<&str> = text.split('\n').collect();

    let mut collector = Collector::new(name);
    for header in &headers {
        collector.cookies(Cow::Borrowed(header));
    }
    let want: Vec<(usize, &str)> = headers
        .iter()
        .enumerate()
        .flat_map(|(i, header)| expected(header, name).into_iter().map(move |v| (i, v)))
        .collect();

    let found = match collector.finish() {
        Ok(found) => found,
        Err(_) => {
            assert!(
                want.len() > MAX_CREDENTIALS,
                "capped at only {}",
                want.len()
            );
            return;
        }
    };
    assert!(found.len() <= MAX_CREDENTIALS);
    assert_eq!(found.len(), want.len(), "cookies lost or invented");

    for ((source, value), (index, wanted)) in found.iter().zip(&want) {
        assert_eq!(*source, Source::Cookie);
        let Cow::Borrowed(value) = value else {
            panic!("a borrowed header was copied");
        };
        let header = headers[*index];
        let (start, base) = (value.as_ptr() as usize, header.as_ptr() as usize);
        assert!(
            start >= base && start + value.len() <= base + header.len(),
            "value is not a substring of its header"
        );
        let at = start - base;
        assert_eq!(&header[at..at + value.len()], *value);
        assert!(
            std::ptr::eq(*value, *wanted),
            "not the cookie expected here"
        );

        let before = &header[..at];
        let before = before.strip_suffix('=').expect("a value follows '='");
        let piece_start = before.rfind([';', ',']).map_or(0, |i| i + 1);
        let cookie_name = &before[piece_start..];
        assert_eq!(cookie_name.trim_ascii(), name, "cookie name does not match");
        assert!(
            !cookie_name.contains('='),
            "value starts after the first '='"
        );
        let after = &header[at + value.len()..];
        assert!(
            after.is_empty() || after.starts_with([';', ',']),
            "value does not run to a separator"
        );
        assert!(!value.contains([';', ',']));
        assert!(!value.trim_ascii().is_empty(), "blank value");
    }
});
