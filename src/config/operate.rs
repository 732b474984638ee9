//! `[feed]` and `[audit]` (issue 17, day-2 operations): the change feed's reader key and caps,
//! and where decision and admin audit records go. Part of `config`'s parse → validate steps.
//!
//! Validation is pure, like the rest of `config`: the audit file's folder is not opened here
//! (the audit writer creates the file when `run` starts and reports a failure there).
//!
//! It does NOT: read the environment itself (the reader key comes through [`Env`] like every
//! secret), or know the record format (`audit.rs`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, Env, HumanDuration, Secrets, secret_from};

/// Largest `feed.retain`: changes kept in memory for cursors (each is a key and an entry,
/// a few hundred bytes).
const MAX_FEED_RETAIN: usize = 1_000_000;
/// Smallest `audit.max_bytes`: below it the file would rotate on nearly every record.
const MIN_AUDIT_BYTES: u64 = 4096;

/// `[feed]`: the change feed (`GET /v1/revocations?since=`, `GET /v1/revocations/stream`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedConfig {
    /// Environment variable with the read-only reader key: it reads the feed and the entries
    /// (`GET /v1/revocations…`), never changes anything. The admin key reads them too.
    pub reader_key_env: Option<String>,
    /// Inline reader key (tests only).
    pub reader_key: Option<String>,
    /// Changes kept in memory for clients resuming from a cursor; an older cursor is answered
    /// 410 `cursor_expired` (resync from a snapshot).
    pub retain: usize,
    /// Largest page a client may ask for (`limit`).
    pub max_limit: usize,
    /// Most `GET /v1/revocations/stream` clients at once (503 beyond). Each holds a
    /// connection, so at most half of the connections the two request budgets leave
    /// (`api.max_connections`) are given to streams, whatever this says: the rest stay for
    /// `GET /v1/check`.
    pub max_streams: usize,
    /// Keep-alive comment interval on streams (proxies close silent connections).
    pub keepalive: HumanDuration,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            reader_key_env: Some("TOKENWATCH_READER_KEY".into()),
            reader_key: None,
            retain: crate::denylist::DEFAULT_FEED_RETAIN,
            max_limit: 1000,
            max_streams: 256,
            keepalive: HumanDuration(Duration::from_secs(15)),
        }
    }
}

/// Where audit records go (`audit.output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutput {
    /// Nowhere (admin actions are still logged at INFO).
    #[default]
    Off,
    /// One JSON line per record on stdout (logs go to stderr).
    Stdout,
    /// A JSON-lines file (`audit.path`), rotated by size.
    File,
    /// Both.
    Both,
}

impl AuditOutput {
    /// Writes to stdout.
    pub fn stdout(self) -> bool {
        matches!(self, AuditOutput::Stdout | AuditOutput::Both)
    }

    /// Writes to the file.
    pub fn file(self) -> bool {
        matches!(self, AuditOutput::File | AuditOutput::Both)
    }
}

/// `[audit]`: every decision of `run` (the decision record `replay` writes) and every admin
/// action, as JSON lines.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// `off`, `stdout`, `file` or `both`.
    pub output: AuditOutput,
    /// The file (`file`, `both`); rotated to `<path>.1`, `<path>.2`, … .
    pub path: Option<PathBuf>,
    /// Rotate when the file would grow past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`<path>.1` … `<path>.<keep>`); 0 keeps none.
    pub keep: usize,
    /// Records waiting to be written; beyond it records are dropped and counted
    /// (`tokenwatch_audit_dropped_total`), never blocking detection or the API.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            output: AuditOutput::Off,
            path: None,
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
            queue: 65_536,
        }
    }
}

/// Check `[feed]` and `[audit]`; the reader key into `secrets`.
pub(super) fn validate(
    config: &Config,
    env: &dyn Env,
    secrets: &mut Secrets,
    errors: &mut Vec<String>,
) {
    let f = &config.feed;
    secrets.reader_key = secret_from(&f.reader_key, &f.reader_key_env, env);
    if let Some(key) = &secrets.reader_key {
        if key.len() < 16 {
            errors.push("feed.reader_key: must be at least 16 bytes".into());
        }
        if secrets.admin_key.as_ref() == Some(key) {
            errors.push(
                "feed.reader_key: must differ from the admin key (it is handed to readers)".into(),
            );
        }
    }
    if !(1..=MAX_FEED_RETAIN).contains(&f.retain) {
        errors.push(format!(
            "feed.retain: must be between 1 and {MAX_FEED_RETAIN}"
        ));
    }
    if f.max_limit == 0 {
        errors.push("feed.max_limit: must be positive".into());
    }
    if f.max_streams == 0 {
        errors.push("feed.max_streams: must be positive".into());
    }
    if f.keepalive.0 < Duration::from_secs(1) {
        errors.push("feed.keepalive: must be at least 1s".into());
    }

    let a = &config.audit;
    if a.output.file() && a.path.is_none() {
        errors.push(format!(
            "audit.path: required when audit.output = {:?}",
            if a.output == AuditOutput::Both {
                "both"
            } else {
                "file"
            }
        ));
    }
    if a.max_bytes < MIN_AUDIT_BYTES {
        errors.push(format!(
            "audit.max_bytes: must be at least {MIN_AUDIT_BYTES}"
        ));
    }
    if a.queue == 0 {
        errors.push("audit.queue: must be positive".into());
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    const BASE: &str = r#"
        [tokens]
        pepper = "pepper-0123456789abcdef"
        [api]
        admin_key = "admin-key-0123456789"
    "#;

    fn check(extra: &str, env: &[(&str, &str); 1]) -> Result<super::Secrets, Vec<String>> {
        let config = Config::parse(&format!("{BASE}\n{extra}"), Path::new("/etc/tokenwatch"))
            .map_err(|e| e.0)?;
        config.validate(env).map_err(|e| e.0)
    }

    #[test]
    fn defaults_are_valid_and_the_reader_key_comes_from_its_variable() {
        let secrets =
            check("", &[("TOKENWATCH_READER_KEY", "reader-key-0123456789")]).expect("valid");
        assert_eq!(secrets.reader_key.as_deref(), Some("reader-key-0123456789"));
        let none = check("", &[("OTHER", "x")]).expect("valid");
        assert_eq!(none.reader_key, None);
    }

    #[test]
    fn bad_settings_are_reported_by_key() {
        let errors = check(
            r#"
            [feed]
            reader_key = "admin-key-0123456789"
            retain = 0
            max_limit = 0
            keepalive = "10ms"
            [audit]
            output = "both"
            max_bytes = 10
            queue = 0
            "#,
            &[("X", "y")],
        )
        .expect_err("invalid");
        for key in [
            "feed.reader_key: must differ",
            "feed.retain",
            "feed.max_limit",
            "feed.keepalive",
            "audit.path: required",
            "audit.max_bytes",
            "audit.queue",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key} not in {errors:?}"
            );
        }
    }

    #[test]
    fn the_audit_path_resolves_against_the_config_folder() {
        let config = Config::parse(
            &format!("{BASE}\n[audit]\noutput = \"file\"\npath = \"audit/decisions.jsonl\""),
            Path::new("/etc/tokenwatch"),
        )
        .expect("parsed");
        assert_eq!(
            config.audit.path.as_deref(),
            Some(Path::new("/etc/tokenwatch/audit/decisions.jsonl"))
        );
    }
}
