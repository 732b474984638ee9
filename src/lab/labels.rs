//! Ground truth for simulated traffic: what `simulate` writes beside its access log, and what
//! `train` and `evaluate` read to know which sessions were attacked and which requests were
//! the attacker's.
//!
//! One JSON object per line, one per session (`labels.jsonl`):
//!
//! ```json
//! {"session":17,"user":"user-17","sid":"s-…","tokens":["<fp>","<fp>"],"label":"attack",
//!  "attack_type":"far_replay_active","attack_start":"2026-11-23T12:31:07Z",
//!  "attacker_ips":["…"],"behaviours":["wifi_mobile_switch"]}
//! ```
//!
//! `tokens` are the fingerprints (under the simulation's pepper) of every token the session
//! used, in issue order (a refreshed JWT session has several). A request is the attacker's
//! when its token belongs to an attacked session, its time is at or after `attack_start`, and
//! its client IP is one of `attacker_ips`. This module is pure apart from [`Labels::load`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::event::{EventTime, Fingerprint};

/// The attack types the simulator produces (issue 3's list, in its order, then issue 15's).
pub const ATTACK_TYPES: [&str; 7] = [
    "far_replay_active",        // 1. replay from far away while the victim is active
    "foreign_replay_idle",      // 2. another country while the victim is idle; new UA and ASN
    "scripted_same_country",    // 3. same country, different ISP, scripted client
    "residential_proxy_scrape", // 4. residential proxy in the victim's city, copied UA, scraping
    "concurrent_interleaved",   // 5. concurrent use from two networks, interleaved
    "low_and_slow",             // 6. low-and-slow use from a new network over hours
    "cloud_same_country",       // 7. a cloud host in the victim's country, copied UA, human pace
];

/// Ground truth for one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLabel {
    /// Session number.
    pub session: u64,
    /// The user (`sub` for JWT sessions).
    pub user: String,
    /// `sid` shared by the session's tokens (JWT sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Fingerprints of the session's tokens, in issue order.
    pub tokens: Vec<String>,
    /// `benign` or `attack`.
    pub label: String,
    /// One of [`ATTACK_TYPES`], for attacked sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_type: Option<String>,
    /// First attacker request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack_start: Option<EventTime>,
    /// Addresses the attacker used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attacker_ips: Vec<IpAddr>,
    /// Benign behaviours the session shows (`wifi_mobile_switch`, `corporate_vpn`, …).
    #[serde(default)]
    pub behaviours: Vec<String>,
}

impl SessionLabel {
    /// Whether the session was attacked.
    pub fn is_attack(&self) -> bool {
        self.attack_type.is_some()
    }
}

impl<'de> Deserialize<'de> for EventTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        EventTime::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// All sessions' labels, indexed by token fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Sessions in file order.
    pub sessions: Vec<SessionLabel>,
    by_token: HashMap<Fingerprint, usize>,
    /// Users with an attacked session: the earliest attack start.
    attacked_users: HashMap<String, EventTime>,
}

/// A labels file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A line is not a label.
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Users with an attacked session, with the earliest attack start among their sessions.
pub fn attack_starts_by_user(sessions: &[SessionLabel]) -> HashMap<String, EventTime> {
    let mut starts: HashMap<String, EventTime> = HashMap::new();
    for s in sessions {
        if let (true, Some(start)) = (s.is_attack(), s.attack_start) {
            let earliest = starts.entry(s.user.clone()).or_insert(start);
            *earliest = (*earliest).min(start);
        }
    }
    starts
}

impl Labels {
    /// Index sessions by their tokens.
    pub fn new(sessions: Vec<SessionLabel>) -> Result<Labels, LabelsError> {
        let mut by_token = HashMap::new();
        for (i, s) in sessions.iter().enumerate() {
            for t in &s.tokens {
                let fp = Fingerprint::from_hex(t).ok_or_else(|| LabelsError::Invalid {
                    line: i + 1,
                    message: format!("token {t:?} is not a 32-hex fingerprint"),
                })?;
                by_token.insert(fp, i);
            }
        }
        let attacked_users = attack_starts_by_user(&sessions);
        Ok(Labels {
            sessions,
            by_token,
            attacked_users,
        })
    }

    /// Read a `labels.jsonl` file.
    pub fn load(path: &Path) -> Result<Labels, LabelsError> {
        let text = std::fs::read_to_string(path)?;
        let mut sessions = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            sessions.push(
                serde_json::from_str(line).map_err(|e| LabelsError::Invalid {
                    line: i + 1,
                    message: e.to_string(),
                })?,
            );
        }
        Labels::new(sessions)
    }

    /// Index in `sessions` of the session a token belongs to.
    pub fn index_of(&self, fingerprint: Fingerprint) -> Option<usize> {
        self.by_token.get(&fingerprint).copied()
    }

    /// The session a token belongs to.
    pub fn session_of(&self, fingerprint: Fingerprint) -> Option<&SessionLabel> {
        self.index_of(fingerprint).map(|i| &self.sessions[i])
    }

    /// For a benign session: the earliest attack start among its user's other sessions.
    /// Revoking the session from then on is collateral of a real attack (the user's account
    /// is in use by a thief), not a false alarm about benign traffic.
    pub fn user_attack_start(&self, session: &SessionLabel) -> Option<EventTime> {
        if session.is_attack() {
            return None;
        }
        self.attacked_users.get(&session.user).copied()
    }

    /// Whether a request was made by the attacker of an attacked session.
    pub fn is_attacker_request(
        &self,
        fingerprint: Fingerprint,
        ip: IpAddr,
        time: EventTime,
    ) -> bool {
        self.session_of(fingerprint).is_some_and(|s| {
            s.attack_start.is_some_and(|start| time >= start) && s.attacker_ips.contains(&ip)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_attacker_requests() {
        let fp = "0123456789abcdef0123456789abcdef";
        let line = format!(
            r#"{{"session":1,"user":"u","tokens":["{fp}"],"label":"attack","attack_type":"low_and_slow","attack_start":"2026-11-23T12:00:00Z","attacker_ips":["203.0.113.9"],"behaviours":[]}}"#
        );
        let label: SessionLabel = serde_json::from_str(&line).unwrap();
        let labels = Labels::new(vec![label.clone()]).unwrap();
        let fp = Fingerprint::from_hex(fp).unwrap();
        let start = label.attack_start.unwrap();
        let attacker: IpAddr = "203.0.113.9".parse().unwrap();
        let victim: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(labels.is_attacker_request(fp, attacker, start));
        assert!(!labels.is_attacker_request(fp, attacker, EventTime(start.0 - 1)));
        assert!(!labels.is_attacker_request(fp, victim, start));
        assert!(
            serde_json::to_string(&label)
                .unwrap()
                .contains("2026-11-23T12:00:00Z")
        );
    }
}
