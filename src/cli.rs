//! The on-call CLI (issue 17): `tokenwatch revocations list|show|add|rm` and
//! `tokenwatch sessions show`, a client of the admin API and the change feed (DESIGN §7), as
//! `cscli decisions` is for CrowdSec.
//!
//! Where it sits: outside the daemon's flow — `main` parses these subcommands and calls
//! [`run_revocations`] / [`run_sessions`], which talk HTTP to a running tokenwatch.
//!
//! Invariants:
//! - Secrets never come from the command line (they would show in `ps` and shell history):
//!   the admin key from `TOKENWATCH_ADMIN_KEY` (reads fall back to `TOKENWATCH_READER_KEY`),
//!   a raw token from the variable named by `--token-env` or from stdin (`--token-stdin`).
//!   Neither is ever printed.
//! - Readable aligned tables by default; `--json` prints the API's JSON as it came.
//! - Every failure is an error naming what to do (unreachable server, a refused key, a key
//!   that is not on the list), and the command exits non-zero.
//!
//! It does NOT: speak TLS (the API is plain HTTP behind the operator's network; use a port
//! forward or a local shell), or read the config file (the server's address is `--url` or
//! `TOKENWATCH_URL`).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

/// Where the CLI finds tokenwatch when neither `--url` nor `TOKENWATCH_URL` says:
/// `api.listen`'s default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Environment variable holding the admin key.
pub const ADMIN_KEY_ENV: &str = "TOKENWATCH_ADMIN_KEY";
/// Environment variable holding the read-only reader key (reads only).
pub const READER_KEY_ENV: &str = "TOKENWATCH_READER_KEY";
/// Largest token read from stdin, bytes.
const MAX_STDIN_TOKEN_BYTES: u64 = 64 * 1024;

/// Characters escaped in a denylist key placed in a URL path (`/` and `:` are kept: the route
/// takes the rest of the path as the key).
const KEY_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// tokenwatch's API, e.g. http://127.0.0.1:8080 (default: api.listen's default).
    #[arg(long, env = "TOKENWATCH_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
}

/// `tokenwatch revocations …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RevocationsCommand {
    /// The entries in force (a snapshot), or with --since the changes after a cursor.
    List {
        /// A cursor from an earlier `list` (`next cursor:`): show only the changes after it.
        #[arg(long)]
        since: Option<String>,
        /// Most changes to show with --since (the server caps it).
        #[arg(long)]
        limit: Option<usize>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One entry (`fp:…`, `jti:…`, `sid:…`, `sub:…`).
    Show {
        /// The denylist key.
        key: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke (or with --step-up challenge) a token, a fingerprint or a key.
    Add {
        /// What to revoke.
        #[command(flatten)]
        target: AddTarget,
        /// Why (shown in the entry and the audit trail).
        #[arg(long)]
        reason: Option<String>,
        /// How long the entry lasts, e.g. 12h (default: the server's denylist.default_ttl).
        #[arg(long)]
        ttl: Option<String>,
        /// Step up (RFC 9470) instead of revoking: the app asks for a fresh MFA.
        #[arg(long)]
        step_up: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Un-revoke a key (a false positive).
    Rm {
        /// The denylist key.
        key: String,
        /// Also allowlist the token (fp: keys) so the detector leaves it alone.
        #[arg(long)]
        allowlist: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `revocations add` revokes: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct AddTarget {
    /// Name of an environment variable holding the raw token (never the token itself).
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Read the raw token from stdin.
    #[arg(long)]
    pub token_stdin: bool,
    /// A token fingerprint (32 hex characters).
    #[arg(long, value_name = "FP")]
    pub fingerprint: Option<String>,
    /// A denylist key (`fp:…`, `jti:<iss>:<jti>`, `sid:<iss>:<sid>`, `sub:<iss>:<sub>`).
    #[arg(long)]
    pub key: Option<String>,
}

/// `tokenwatch sessions …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SessionsCommand {
    /// A session's state, last score and denylist status.
    Show {
        /// The token's fingerprint (32 hex characters).
        fingerprint: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

/// An HTTP client bound to one server and key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// The key for a request: the admin key, or (reads only) the reader key.
fn key_from_env(read_only: bool) -> anyhow::Result<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(key) = var(ADMIN_KEY_ENV) {
        return Ok(key);
    }
    if read_only && let Some(key) = var(READER_KEY_ENV) {
        return Ok(key);
    }
    if read_only {
        bail!("set {ADMIN_KEY_ENV} (or {READER_KEY_ENV} for reads) to the API key");
    }
    bail!("set {ADMIN_KEY_ENV} to the admin key (keys are never taken on the command line)")
}

impl Client {
    fn new(server: &ServerArgs, read_only: bool) -> anyhow::Result<Self> {
        let key = key_from_env(read_only)?;
        let base = server.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url {base:?}: expected http://host:port");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(15))
            .build()
            .context("HTTP client")?;
        Ok(Client { http, base, key })
    }

    /// Send, and turn every failure into an error a person can act on.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request.bearer_auth(&self.key).send().await.map_err(|e| {
            let what = if e.is_connect() {
                "cannot connect"
            } else if e.is_timeout() {
                "no answer in time"
            } else {
                "request failed"
            };
            anyhow::anyhow!(
                "{what} to tokenwatch at {} ({}); is it running? set --url or TOKENWATCH_URL",
                self.base,
                root_cause(&e)
            )
        })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let code = body["error"].as_str().unwrap_or("");
        let description = body["error_description"].as_str().unwrap_or("");
        match status.as_u16() {
            401 => bail!(
                "the API key was refused (401): check {ADMIN_KEY_ENV}{}",
                if code.is_empty() {
                    String::new()
                } else {
                    format!(" ({code})")
                }
            ),
            403 => bail!("forbidden (403): {code}: {description}"),
            404 => bail!("not found (404): {description}"),
            410 => bail!(
                "the cursor has expired (410 {code}): run `tokenwatch revocations list` without \
                 --since for the current entries and a new cursor"
            ),
            _ => bail!("tokenwatch answered {status}: {code}: {description}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

fn key_path(key: &str) -> String {
    utf8_percent_encode(key.trim(), KEY_IN_PATH).to_string()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}

/// `tokenwatch revocations …`: prints to stdout; errors for `main` to report.
pub fn run_revocations(server: &ServerArgs, command: RevocationsCommand) -> anyhow::Result<()> {
    let read_only = matches!(
        command,
        RevocationsCommand::List { .. } | RevocationsCommand::Show { .. }
    );
    let client = Client::new(server, read_only)?;
    let out = runtime()?.block_on(revocations(&client, command))?;
    print!("{out}");
    Ok(())
}

/// `tokenwatch sessions …`.
pub fn run_sessions(server: &ServerArgs, command: SessionsCommand) -> anyhow::Result<()> {
    let client = Client::new(server, false)?;
    let SessionsCommand::Show { fingerprint, json } = command;
    let fingerprint = fingerprint.trim();
    let fingerprint = fingerprint.strip_prefix("fp:").unwrap_or(fingerprint);
    let path = format!("/v1/sessions/{}", key_path(fingerprint));
    let body = runtime()?.block_on(client.send(client.http.get(client.url(&path))))?;
    print!(
        "{}",
        if json {
            pretty(&body)
        } else {
            key_values(&flatten(&body))
        }
    );
    Ok(())
}

async fn revocations(client: &Client, command: RevocationsCommand) -> anyhow::Result<String> {
    Ok(match command {
        RevocationsCommand::List { since, limit, json } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(since) = since {
                query.push(("since", since));
            }
            if let Some(limit) = limit {
                query.push(("limit", limit.to_string()));
            }
            let request = client.http.get(client.url("/v1/revocations")).query(&query);
            let body = client.send(request).await?;
            if json {
                pretty(&body)
            } else {
                changes_table(&body)
            }
        }
        RevocationsCommand::Show { key, json } => {
            let path = format!("/v1/revocations/{}", key_path(&key));
            let body = client.send(client.http.get(client.url(&path))).await?;
            if json {
                pretty(&body)
            } else {
                key_values(&flatten(&body))
            }
        }
        RevocationsCommand::Add {
            target,
            reason,
            ttl,
            step_up,
            json,
        } => {
            let request = add_request(client, target, reason, ttl, step_up)?;
            let body = client.send(request).await?;
            if json {
                pretty(&body)
            } else {
                key_values(&flatten(&body))
            }
        }
        RevocationsCommand::Rm {
            key,
            allowlist,
            json,
        } => {
            let path = format!("/v1/revocations/{}", key_path(&key));
            let mut request = client.http.delete(client.url(&path));
            if allowlist {
                request = request.query(&[("allowlist", "true")]);
            }
            let body = client.send(request).await?;
            if json {
                pretty(&body)
            } else {
                let removed = body["removed"].as_bool().unwrap_or(false);
                let mut line = if removed {
                    format!("removed {}", key.trim())
                } else {
                    format!("{} was not on the denylist", key.trim())
                };
                if body["allowlisted"].as_bool().unwrap_or(false) {
                    line.push_str("; allowlisted: the detector will leave it alone");
                }
                line + "\n"
            }
        }
    })
}

fn add_request(
    client: &Client,
    target: AddTarget,
    reason: Option<String>,
    ttl: Option<String>,
    step_up: bool,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let token = match (&target.token_env, target.token_stdin) {
        (Some(var), _) => Some(
            std::env::var(var)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .with_context(|| format!("--token-env {var}: the variable is not set"))?,
        ),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .take(MAX_STDIN_TOKEN_BYTES)
                .read_to_string(&mut text)
                .context("--token-stdin: reading stdin")?;
            let token = text.trim().to_string();
            if token.is_empty() {
                bail!("--token-stdin: stdin held no token");
            }
            Some(token)
        }
        (None, false) => None,
    };
    if let Some(token) = token {
        // RFC 7009: the server fingerprints it; the entry lasts until the token's verified
        // expiry, so there is nothing else to say.
        if reason.is_some() || ttl.is_some() || step_up {
            bail!(
                "--reason, --ttl and --step-up need --fingerprint or --key: a raw token is \
                 revoked as RFC 7009 says, until its own expiry"
            );
        }
        let token = token.strip_prefix("Bearer ").unwrap_or(&token).trim();
        return Ok(client
            .http
            .post(client.url("/v1/revoke"))
            .form(&[("token", token)]));
    }
    let key = match (target.fingerprint, target.key) {
        (Some(fp), _) => {
            let fp = fp.trim();
            format!("fp:{}", fp.strip_prefix("fp:").unwrap_or(fp))
        }
        (None, Some(key)) => key.trim().to_string(),
        (None, None) => {
            bail!("name what to revoke: --token-env, --token-stdin, --fingerprint or --key")
        }
    };
    let mut body = serde_json::json!({"key": key});
    if let Some(reason) = reason {
        body["reason"] = reason.into();
    }
    if let Some(ttl) = ttl {
        body["ttl"] = ttl.into();
    }
    if step_up {
        body["action"] = "step_up".into();
    }
    Ok(client.http.post(client.url("/v1/revoke")).json(&body))
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// A scalar as a cell.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns aligned to their widest cell, the header first.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, value) in widths.iter_mut().zip(row) {
            *width = (*width).max(value.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (value, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(value);
            } else {
                text.push_str(&format!("{value:<width$}  "));
            }
        }
        text.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// A feed page as a table: a snapshot lists the entries, a page after a cursor the changes.
fn changes_table(page: &Value) -> String {
    let snapshot = page["snapshot"].as_bool().unwrap_or(false);
    let changes = page["changes"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            let mut row = Vec::new();
            if !snapshot {
                row.push(cell(&c["op"]));
            }
            for field in ["key", "action", "origin", "expires_at", "reasons"] {
                row.push(cell(&c[field]));
            }
            row
        })
        .collect();
    let mut header = vec!["KEY", "ACTION", "ORIGIN", "EXPIRES", "REASONS"];
    if !snapshot {
        header.insert(0, "OP");
    }
    let mut out = if rows.is_empty() {
        if snapshot {
            "no entries in force\n".to_string()
        } else {
            "no changes\n".to_string()
        }
    } else {
        table(&header, &rows)
    };
    out.push_str(&format!(
        "\n{} {}, next cursor: {}{}\n",
        rows.len(),
        if snapshot { "entries" } else { "changes" },
        cell(&page["next_cursor"]),
        if page["more"].as_bool().unwrap_or(false) {
            " (more follow: run again with --since)"
        } else {
            ""
        }
    ));
    out
}

/// Nested JSON as `dotted.key value` pairs, in the order the API wrote them.
fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (name, inner) in map {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    walk(&path, inner, out);
                }
            }
            Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), inner, out);
                }
            }
            other => out.push((prefix.to_string(), cell(other))),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_slashes_and_colons_in_the_path_but_escape_the_rest() {
        assert_eq!(
            key_path("sub:https://id.example.com:user 1"),
            "sub:https://id.example.com:user%201"
        );
        assert_eq!(key_path("jti:iss:a%3Ab?c#d"), "jti:iss:a%253Ab%3Fc%23d");
    }

    #[test]
    fn tables_align_columns_and_flatten_nested_values() {
        let page = serde_json::json!({
            "snapshot": false,
            "changes": [
                {"op":"add","key":"fp:aa","action":"revoke","origin":"admin",
                 "expires_at":"2026-01-01T00:00:00Z","reasons":["a","b"]},
                {"op":"remove","key":"fp:bbbbbb"}
            ],
            "next_cursor": "0a-2",
            "more": true
        });
        let text = changes_table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("OP      KEY        ACTION"), "{text}");
        assert!(lines[1].starts_with("add     fp:aa      revoke"), "{text}");
        assert!(lines[2].starts_with("remove  fp:bbbbbb  -"), "{text}");
        assert!(
            text.contains("2 changes, next cursor: 0a-2 (more follow"),
            "{text}"
        );
        let pairs = flatten(&serde_json::json!({"a": {"b": 1, "c": [1, 2]}, "d": null}));
        assert_eq!(
            pairs,
            [
                ("a.b".to_string(), "1".to_string()),
                ("a.c".to_string(), "1,2".to_string()),
                ("d".to_string(), "-".to_string())
            ]
        );
    }
}
