//! Compact requests → access-log lines in the default JSON input format (DESIGN §2):
//! `time` (RFC 3339, ms), `client_ip`, `method`, `path`, `status`, `user_agent`, and the
//! credential as `authorization` (`Bearer …`) or `cookie` (`…; sid=…`).
//!
//! This is the only place a raw token is written, and only into the simulated access log.

use std::fmt::Write as _;

use super::session::{Credential, Request};
use crate::event::EventTime;

/// What rendering needs of a session besides the request.
pub(super) struct SessionTexts<'a> {
    pub tokens: &'a [String],
    pub uas: &'a [String],
    pub credential: Credential,
}

/// Append one line (without newline) for `req` to `out`.
pub(super) fn render(out: &mut String, req: &Request, session: &SessionTexts<'_>) {
    out.push_str("{\"time\":\"");
    out.push_str(&EventTime(req.time).to_rfc3339());
    out.push_str("\",\"client_ip\":\"");
    let _ = write!(out, "{}", req.ip);
    out.push_str("\",\"method\":\"");
    out.push_str(req.method.as_str());
    out.push_str("\",\"path\":");
    if req.path.numbered {
        push_json_str(out, &format!("{}{}", req.path.prefix, req.arg));
    } else {
        push_json_str(out, req.path.prefix);
    }
    let _ = write!(out, ",\"status\":{},\"user_agent\":", req.status);
    push_json_str(out, &session.uas[usize::from(req.ua)]);
    let token = &session.tokens[req.token as usize];
    match session.credential {
        Credential::Jwt | Credential::ApiKey => {
            out.push_str(",\"authorization\":");
            push_json_str(out, &format!("Bearer {token}"));
        }
        Credential::Cookie => {
            out.push_str(",\"cookie\":");
            push_json_str(out, &format!("theme=dark; sid={token}"));
        }
    }
    out.push('}');
}

/// A JSON string literal; the fast path copies text that needs no escaping.
fn push_json_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json escapes exactly as JSON requires; serialising a &str cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::simulate::catalog::PathSpec;
    use crate::lab::simulate::session::Method;

    #[test]
    fn lines_are_json_in_the_default_input_format() {
        let req = Request {
            time: 1_795_435_200_123,
            ip: "11.0.0.1".parse().unwrap(),
            token: 0,
            ua: 0,
            method: Method::Get,
            path: PathSpec {
                prefix: "/api/v1/items?page=",
                numbered: true,
            },
            arg: 7,
            status: 200,
            attacker: false,
        };
        let tokens = ["tok".to_owned()];
        let uas = ["Mozilla/5.0 \"quoted\"".to_owned()];
        for (credential, field, value) in [
            (Credential::Jwt, "authorization", "Bearer tok"),
            (Credential::Cookie, "cookie", "theme=dark; sid=tok"),
        ] {
            let mut line = String::new();
            let texts = SessionTexts {
                tokens: &tokens,
                uas: &uas,
                credential,
            };
            render(&mut line, &req, &texts);
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["time"], "2026-11-23T12:00:00.123Z");
            assert_eq!(v["client_ip"], "11.0.0.1");
            assert_eq!(v["method"], "GET");
            assert_eq!(v["path"], "/api/v1/items?page=7");
            assert_eq!(v["status"], 200);
            assert_eq!(v["user_agent"], "Mozilla/5.0 \"quoted\"");
            assert_eq!(v[field], value);
        }
    }
}
