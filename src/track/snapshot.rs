//! The session view on-call reads (`GET /v1/sessions/{fingerprint}`): owned, serialisable
//! copies of one session's state, its rate, device and last explained signal.
//!
//! Data flow: **track** state → this snapshot → `api` (serves it as JSON). Built on demand
//! from [`super::SessionTracker::snapshot`], never on the hot path.
//!
//! Invariants: a snapshot is a copy (no guard or reference into the maps outlives the call)
//! and never holds a raw token: only the fingerprint and verified claims.
//!
//! What it does NOT do: change tracker state or decide anything about the session.

use std::net::IpAddr;

use serde::Serialize;

use crate::event::{Action, Assessment, EventTime, Fingerprint, GeoPoint, Observation, TokenKind};

use super::session::SessionState;

/// The most recent assessment with a non-zero score, with what it rested on.
#[derive(Debug, Clone, Serialize)]
pub struct SignalSnapshot {
    /// Input position of the event.
    pub seq: u64,
    /// Its event time.
    pub event_time: EventTime,
    /// The scorer's verdict (score, contributions strongest first, hard rule).
    pub assessment: Assessment,
    /// The features it was computed from.
    pub observation: Observation,
}

/// What `GET /v1/sessions/{fingerprint}` shows on-call: the session as it is now, its last
/// score and the latest explained signal. Never a raw token.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSnapshot {
    /// The token's fingerprint.
    pub fingerprint: Fingerprint,
    /// JWT, opaque or upstream fingerprint.
    pub kind: TokenKind,
    /// JWT `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// JWT `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// JWT `sid`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// JWT `exp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<EventTime>,
    /// First use (event time).
    pub first_seen: EventTime,
    /// Latest use (event time).
    pub last_seen: EventTime,
    /// Seconds from first to latest use.
    pub age_s: f64,
    /// Requests seen.
    pub requests: u64,
    /// Client address of the latest use.
    pub last_ip: IpAddr,
    /// Recently seen addresses, most recent last (at most 8).
    pub recent_ips: Vec<IpAddr>,
    /// Distinct addresses seen (approximate beyond the 8 remembered).
    pub distinct_ips: u32,
    /// Recently seen countries, most recent last (at most 8).
    pub countries: Vec<String>,
    /// The latest located, non-allowlisted use: the reference for the next travel leg.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_location: Option<LocationSnapshot>,
    /// Latest non-allowlisted ASN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The device the session was established on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceSnapshot>,
    /// A scripted client was seen at least once.
    pub scripted_seen: bool,
    /// Request rate at the latest use.
    pub rate: RateSnapshot,
    /// Score of the latest event.
    pub last_score: f64,
    /// Action already taken on this session.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The latest event that scored above zero, with its explanation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_signal: Option<SignalSnapshot>,
}

/// A located use in the session view.
#[derive(Debug, Clone, Serialize)]
pub struct LocationSnapshot {
    /// When.
    pub at: EventTime,
    /// From which address.
    pub ip: IpAddr,
    /// Where (with accuracy radius).
    #[serde(flatten)]
    pub point: GeoPoint,
}

/// The session's reference device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSnapshot {
    /// User-Agent family.
    pub family: String,
    /// OS family.
    pub os: String,
    /// Established by a scripted client (no browser use yet).
    pub scripted: bool,
}

/// Rate state in the session view.
#[derive(Debug, Clone, Serialize)]
pub struct RateSnapshot {
    /// Requests in the minute up to the latest use.
    pub per_minute: u32,
    /// EWMA baseline, once the session has enough full active minutes.
    pub baseline_per_minute: Option<f64>,
    /// Full active minutes in the baseline.
    pub baseline_minutes: u32,
}

impl SessionState {
    /// The owned view of this session, for the API.
    pub(super) fn snapshot(&self, fingerprint: Fingerprint) -> SessionSnapshot {
        let claims = self.claims.as_deref();
        SessionSnapshot {
            fingerprint,
            kind: self.kind,
            iss: claims.and_then(|c| c.iss.clone()),
            sub: claims.and_then(|c| c.sub.clone()),
            sid: claims.and_then(|c| c.sid.clone()),
            token_expires_at: self.expires_ms.map(EventTime),
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            age_s: self.last_seen.seconds_since(self.first_seen).max(0.0),
            requests: self.requests,
            last_ip: self.last_ip,
            recent_ips: self.recent_ips.items.clone(),
            distinct_ips: self.distinct_ips,
            countries: self.countries.items.iter().map(|c| c.to_string()).collect(),
            last_location: self.last_located.as_ref().map(|l| LocationSnapshot {
                at: l.at,
                ip: l.ip,
                point: l.point.clone(),
            }),
            asn: self.asn,
            device: self.device.as_ref().map(|d| DeviceSnapshot {
                family: d.family.to_string(),
                os: d.os.to_string(),
                scripted: d.scripted,
            }),
            scripted_seen: self.scripted_seen,
            rate: RateSnapshot {
                per_minute: self.rate.per_minute(),
                baseline_per_minute: self.rate.baseline(),
                baseline_minutes: self.rate.baseline_minutes,
            },
            last_score: self.last_score,
            action: self.last_action,
            last_signal: self.last_signal.as_deref().cloned(),
        }
    }
}
