//! Stage 7, decide: policy maps an [`Assessment`] to a [`Decision`] (revoke, step up or flag),
//! or none (DESIGN §5).
//!
//! Data flow: `score` → **decide** → `publish`. The policy:
//! - Revoke only on evidence a person can verify from the decision record (DESIGN §5): a
//!   `hard_rule` (impossible travel across a border or over `hard_travel_km`, concurrent use,
//!   between located networks that are not anonymisers) always revokes — a step-up would let
//!   a thief who also holds the second factor's session simply pass it — and so does
//!   `score ≥ detect.threshold` when a scripted client replays a browser's token. Any other
//!   `score ≥ detect.threshold` (rates, device and network changes, the model's weighing of
//!   them) steps up: uncertain risk asks the user to prove themselves, which a thief cannot.
//!   `score ≥ detect.step_up_threshold` → step up; `score ≥ detect.flag_threshold` → flag; an
//!   assessment with no reason is never a decision. Unset, the step-up threshold is
//!   `threshold`, so there is no step-up band below it.
//! - A subject in `detect.allow_subjects` is never revoked or stepped up automatically:
//!   flagged instead.
//! - No duplicates and no downgrades: nothing unless the action is stronger than the one
//!   already taken on the session (flag < step up < revoke): a flagged session can still be
//!   stepped up or revoked, a stepped-up one revoked, when the evidence grows.
//! - `detect.mode = shadow` produces the same decisions marked `mode: shadow`; `publish` does
//!   not enforce them. The tracker records them all the same, so shadow mode also shows each
//!   session once.
//! - Key of a revocation: `fp:<fingerprint>`, or with `revoke_scope = session` and a JWT
//!   carrying `iss` and `sid`: `sid:<iss>:<sid>` (DESIGN §4). Key of a step-up, whatever the
//!   scope: `sid:<iss>:<sid>` when the JWT names both (`publish` gives the entry a
//!   `not_before`, so the session's tokens issued after the challenge pass), else `fp:` (the
//!   fresh token has another fingerprint).
//! - Times are event time (`decided_at` too; `publish` restamps it in live mode). Expiry: JWT
//!   `exp` + `tokens.jwt.leeway`, else event time + `tokens.opaque_ttl`.
//!
//! What it does NOT do: write the denylist, journal or webhooks (`publish`), read the wall
//! clock, or look at session state beyond the `prior` action it is handed.

use std::collections::HashSet;

use crate::config::{DetectConfig, RevokeScope, TokensConfig};
use crate::event::{
    Action, Assessment, Claims, Decision, DenyKey, EventTime, Evidence, IdentifiedEvent, Mode,
    Observation, Reason, ReturnsEvidence, TravelEvidence,
};

/// Threshold policy with `enforce` / `shadow` modes and subject allowlist.
#[derive(Debug, Clone)]
pub struct Policy {
    mode: Mode,
    threshold: f64,
    step_up_threshold: f64,
    flag_threshold: f64,
    allow_subjects: HashSet<String>,
    revoke_scope: RevokeScope,
    jwt_leeway_ms: i64,
    opaque_ttl_ms: i64,
    max_ttl_ms: i64,
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Whether the assessment rests on evidence a person can verify from the decision record
/// alone (DESIGN §5): the hard rules (impossible travel or use from two places at once,
/// between located networks that are not anonymisers) and a scripted client replaying a
/// browser's token. Rates, device and network changes are real signals but have honest
/// explanations (a new phone, a VPN, a page-load burst): on those, uncertain risk steps up.
fn verifiable(assessment: &Assessment) -> bool {
    assessment.hard_rule
        || assessment
            .contributions
            .iter()
            .any(|c| c.reason == Reason::ScriptedClient)
}

/// Round for a person reading the record; the decision was made on the exact values.
fn round_to(value: f64, step: f64) -> f64 {
    (value / step).round() * step
}

fn readable_leg(leg: &TravelEvidence) -> TravelEvidence {
    TravelEvidence {
        distance_km: round_to(leg.distance_km, 0.1),
        elapsed_s: round_to(leg.elapsed_s, 0.001),
        speed_kmh: leg.speed_kmh.round(),
        ..leg.clone()
    }
}

impl Policy {
    /// From `[detect]` and `[tokens]` (opaque TTL, JWT leeway).
    pub fn new(detect: &DetectConfig, tokens: &TokensConfig) -> Self {
        Policy {
            mode: detect.mode,
            threshold: detect.threshold,
            step_up_threshold: detect.step_up_threshold(),
            flag_threshold: detect.flag_threshold,
            allow_subjects: detect.allow_subjects.iter().cloned().collect(),
            revoke_scope: detect.revoke_scope,
            jwt_leeway_ms: millis(tokens.jwt.leeway.0),
            opaque_ttl_ms: millis(tokens.opaque_ttl.0),
            max_ttl_ms: millis(tokens.max_ttl.0),
        }
    }

    /// The action the policy takes on an assessment, before duplicates and allowlists.
    fn action_for(&self, assessment: &Assessment) -> Option<Action> {
        if assessment.contributions.is_empty() && !assessment.hard_rule {
            None
        } else if assessment.hard_rule {
            Some(Action::Revoke)
        } else if assessment.score >= self.threshold {
            // High risk, but only a person-checkable signal revokes; the rest steps up.
            Some(if verifiable(assessment) {
                Action::Revoke
            } else {
                Action::StepUp
            })
        } else if assessment.score >= self.step_up_threshold {
            Some(Action::StepUp)
        } else if assessment.score >= self.flag_threshold {
            Some(Action::Flag)
        } else {
            None
        }
    }

    /// `prior` is the action already taken on this session; no duplicate decision is made.
    pub fn decide(
        &self,
        event: &IdentifiedEvent,
        observation: &Observation,
        assessment: &Assessment,
        prior: Option<Action>,
    ) -> Option<Decision> {
        let claims = event.identity.claims.as_deref();
        let mut action = self.action_for(assessment)?;
        let protected = claims
            .and_then(|c| c.sub.as_deref())
            .is_some_and(|sub| self.allow_subjects.contains(sub));
        if protected {
            action = Action::Flag;
        }
        if prior.is_some_and(|prior| prior.strength() >= action.strength()) {
            return None;
        }

        let fingerprint = event.identity.fingerprint;
        let event_time = event.event.time;
        let session_key = match action {
            Action::StepUp => sid_key(claims),
            Action::Revoke | Action::Flag => self.session_key(claims),
        };
        let whole_session = session_key.is_some();
        let key = session_key.unwrap_or(DenyKey::Fingerprint(fingerprint));
        Some(Decision {
            action,
            mode: self.mode,
            key,
            fingerprint,
            iss: claims.and_then(|c| c.iss.clone()),
            sub: claims.and_then(|c| c.sub.clone()),
            jti: claims.and_then(|c| c.jti.clone()),
            score: assessment.score,
            reasons: assessment.reasons(),
            evidence: evidence(observation, assessment),
            event_time,
            decided_at: event_time,
            expires_at: self.expires_at(claims, event_time, whole_session),
            seq: event.seq,
        })
    }

    /// `sid:<iss>:<sid>` under session scope when the JWT names both; `None` means `fp:`.
    ///
    /// A claim the denylist cannot hold as a key (empty, a control character, longer than
    /// [`crate::denylist::MAX_KEY_BYTES`] written) also gives `None`: the token is then
    /// revoked by fingerprint rather than not at all, and the journal never holds a key it
    /// could not read back. The key's own parser is the judge, so this cannot drift from it.
    fn session_key(&self, claims: Option<&Claims>) -> Option<DenyKey> {
        if self.revoke_scope != RevokeScope::Session {
            return None;
        }
        sid_key(claims)
    }

    /// JWT `exp` + leeway, else event time + the opaque TTL. A `sid:` entry must outlive the
    /// token that triggered it (the session's next refreshed token carries the same `sid`), so
    /// it lasts at least the opaque TTL too.
    fn expires_at(
        &self,
        claims: Option<&Claims>,
        now: EventTime,
        whole_session: bool,
    ) -> EventTime {
        let ttl_end = now.0.saturating_add(self.opaque_ttl_ms);
        let end = match claims.and_then(|c| c.exp) {
            Some(exp) => {
                let token_end = exp.saturating_mul(1000).saturating_add(self.jwt_leeway_ms);
                if whole_session {
                    token_end.max(ttl_end)
                } else {
                    token_end
                }
            }
            None => ttl_end,
        };
        // Even an issuer's `exp` of 2^63 − 1 gives an entry that ends.
        EventTime(end.min(now.0.saturating_add(self.max_ttl_ms)))
    }
}

/// `sid:<iss>:<sid>` when the JWT names both and the denylist can hold the key, else `None`.
fn sid_key(claims: Option<&Claims>) -> Option<DenyKey> {
    let claims = claims?;
    DenyKey::sid(claims.iss.as_deref()?, claims.sid.as_deref()?).ok()
}

/// What the reasons rest on: the travel leg (the session's own when impossible travel fired,
/// else the user's other token's), the rate, before/after pairs, and every contribution.
fn evidence(observation: &Observation, assessment: &Assessment) -> Evidence {
    let reasons = assessment.reasons();
    let has = |reason: Reason| reasons.contains(&reason);
    let travel = if has(Reason::ImpossibleTravel) {
        observation.travel.as_ref()
    } else if has(Reason::ConcurrentUse) {
        observation.user_travel.as_ref()
    } else {
        None
    };
    Evidence {
        travel: travel.map(readable_leg),
        rate: observation
            .rate
            .filter(|_| has(Reason::RateAnomaly))
            .map(|mut rate| {
                rate.baseline_per_minute = round_to(rate.baseline_per_minute, 0.01);
                rate
            }),
        user_agent: observation
            .user_agent_change
            .clone()
            .filter(|_| has(Reason::UserAgentChange) || has(Reason::ScriptedClient)),
        os: observation
            .os_change
            .clone()
            .filter(|_| has(Reason::OsChange)),
        asn: observation.asn_change.filter(|_| has(Reason::AsnChange)),
        country: observation
            .country_change
            .clone()
            .filter(|_| has(Reason::CountryChange)),
        network: observation.network.clone(),
        network_returns: Some(ReturnsEvidence {
            returns: observation.network_returns,
            direct: observation.network_direct_returns,
        })
        .filter(|r| r.returns > 0 && has(Reason::ConcurrentUse)),
        contributions: assessment.contributions.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{Config, HumanDuration};
    use crate::event::{Contribution, Fingerprint};
    use crate::pipeline::detect_event;
    use crate::score::RuleScorer;
    use crate::track::SessionTracker;
    use crate::track::test_support::*;

    fn tokens() -> TokensConfig {
        Config::parse(
            "[tokens]\npepper = \"test-pepper-0123456789\"\n",
            Path::new("."),
        )
        .expect("config")
        .tokens
    }

    /// An assessment on verifiable evidence: a hard rule's impossible travel, or a scripted
    /// client replaying a browser's token (so `score ≥ threshold` revokes).
    fn assessment(score: f64, hard_rule: bool) -> Assessment {
        let reason = if hard_rule {
            Reason::ImpossibleTravel
        } else {
            Reason::ScriptedClient
        };
        assessment_of(score, hard_rule, reason)
    }

    fn assessment_of(score: f64, hard_rule: bool, reason: Reason) -> Assessment {
        Assessment {
            score,
            contributions: vec![Contribution {
                reason,
                weight: score,
            }],
            hard_rule,
        }
    }

    #[test]
    fn concurrent_use_without_a_leg_shows_the_returns_it_rests_on() {
        let observation = Observation {
            network_returns: 3,
            network_direct_returns: 2,
            ..Default::default()
        };
        let concurrent = evidence(
            &observation,
            &assessment_of(0.85, false, Reason::ConcurrentUse),
        );
        assert_eq!(
            concurrent.network_returns,
            Some(ReturnsEvidence {
                returns: 3,
                direct: 2
            })
        );
        let json = serde_json::to_value(&concurrent).expect("serializes");
        assert_eq!(json["network_returns"]["direct"], 2, "{json}");
        // Another reason: the returns are not what it rests on.
        let rate = evidence(
            &observation,
            &assessment_of(0.85, false, Reason::RateAnomaly),
        );
        assert_eq!(rate.network_returns, None);
    }

    #[test]
    fn only_verifiable_evidence_revokes_uncertain_risk_steps_up() {
        let policy = Policy::new(&DetectConfig::default(), &tokens());
        let event = ev(1, 0).build();
        let action = |a: &Assessment| {
            policy
                .decide(&event, &Observation::default(), a, None)
                .map(|d| d.action)
        };
        for reason in [
            Reason::RateAnomaly,
            Reason::UserAgentChange,
            Reason::OsChange,
            Reason::AsnChange,
            Reason::CountryChange,
            Reason::ImpossibleTravel, // a domestic hop, not a hard rule
            Reason::ConcurrentUse,
        ] {
            assert_eq!(
                action(&assessment_of(0.99, false, reason)),
                Some(Action::StepUp),
                "{reason:?}"
            );
        }
        assert_eq!(
            action(&assessment_of(0.8, false, Reason::ScriptedClient)),
            Some(Action::Revoke)
        );
        assert_eq!(
            action(&assessment_of(0.3, true, Reason::ConcurrentUse)),
            Some(Action::Revoke)
        );
        // Below the threshold a scripted client is no revocation either.
        assert_eq!(
            action(&assessment_of(0.79, false, Reason::ScriptedClient)),
            Some(Action::Flag)
        );
    }

    /// The pipeline's calling sequence (DESIGN §1): observe the batch, score it in one call,
    /// then decide and record event by event.
    struct Detector {
        tracker: SessionTracker,
        scorer: RuleScorer,
        policy: Policy,
    }

    impl Detector {
        fn new(detect: DetectConfig) -> Self {
            Detector {
                tracker: SessionTracker::new(&detect),
                scorer: RuleScorer::new(&detect),
                policy: Policy::new(&detect, &tokens()),
            }
        }

        fn run(&self, events: Vec<Ev>) -> Vec<Decision> {
            let events: Vec<_> = events
                .into_iter()
                .enumerate()
                .map(|(i, e)| e.seq(i as u64).build())
                .collect();
            let mut decisions = Vec::new();
            for event in &events {
                let (_, _, decision) =
                    detect_event(&self.tracker, &self.scorer, &self.policy, event);
                decisions.extend(decision);
            }
            decisions
        }
    }

    #[test]
    fn scenario_a_berlin_then_sao_paulo_is_revoked() {
        let detector = Detector::new(DetectConfig::default());
        let exp = T0 + 3600;
        let decisions = detector.run(vec![
            ev(1, 0).jwt("user-123", None, exp),
            ev(1, 600)
                .jwt("user-123", None, exp)
                .ip("198.51.100.7")
                .asn(Some(28573))
                .geo(Some(sao_paulo())),
        ]);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        let d = &decisions[0];
        assert_eq!(d.action, Action::Revoke);
        assert_eq!(d.mode, Mode::Enforce);
        assert_eq!(d.reasons[0], Reason::ImpossibleTravel);
        assert_eq!(d.seq, 1);
        assert_eq!(d.key, DenyKey::Fingerprint(fp(1)));
        let leg = d.evidence.travel.as_ref().expect("travel evidence");
        assert_eq!(leg.from.city.as_deref(), Some("Berlin"));
        assert_eq!(leg.to.city.as_deref(), Some("São Paulo"));
        assert_eq!(leg.elapsed_s, 600.0);
        assert!(
            (10_000.0..10_300.0).contains(&leg.distance_km),
            "{}",
            leg.distance_km
        );
        assert!(leg.speed_kmh > 50_000.0, "{}", leg.speed_kmh);
        assert!(d.score >= 0.99);
        assert_eq!(
            detector.tracker.snapshot(fp(1)).and_then(|s| s.action),
            Some(Action::Revoke)
        );
    }

    #[test]
    fn scenario_b_phone_between_wifi_and_carrier_is_not_revoked() {
        let detector = Detector::new(DetectConfig::default());
        let mut carrier = berlin();
        carrier.radius_km = 100.0;
        carrier.lat += 0.05; // the carrier's pool geolocates a few km off
        let events = (0..20)
            .map(|k| {
                // Same device all along; every other request from the carrier's NAT pool.
                let e = ev(1, k * 90).ua(ua("Chrome Mobile", "Android", false));
                if k % 2 == 0 {
                    e
                } else {
                    e.ip(&format!("192.0.2.{}", 10 + k))
                        .asn(Some(6805))
                        .geo(Some(carrier.clone()))
                }
            })
            .collect();
        let decisions = detector.run(events);
        assert!(decisions.is_empty(), "{decisions:?}");
        let snap = detector.tracker.snapshot(fp(1)).expect("session");
        assert!(
            snap.last_signal.is_some(),
            "the ASN changes were seen and scored low"
        );
    }

    #[test]
    fn scenario_c_rate_jump_from_a_new_user_agent_is_stepped_up() {
        let detector = Detector::new(DetectConfig::default());
        let mut events = Vec::new();
        // 12 minutes at ~5 requests a minute.
        for k in 0..60 {
            events.push(ev(1, k * 12));
        }
        // Then 60 a minute from another browser.
        for k in 0..60 {
            events.push(ev(1, 720 + k).ua(ua("Firefox", "Windows 10", false)));
        }
        let decisions = detector.run(events);
        // Real signals with honest explanations (a second browser, a burst): the user is
        // asked to prove themselves rather than logged out.
        assert!(decisions.iter().all(|d| d.action != Action::Revoke));
        let revoke = decisions
            .iter()
            .find(|d| d.action == Action::StepUp)
            .expect("stepped up");
        assert!(
            revoke.reasons.contains(&Reason::RateAnomaly),
            "{:?}",
            revoke.reasons
        );
        assert!(
            revoke.reasons.contains(&Reason::UserAgentChange),
            "{:?}",
            revoke.reasons
        );
        let rate = revoke.evidence.rate.expect("rate evidence");
        assert!(
            rate.per_minute >= 30.0 && rate.baseline_per_minute <= 6.0,
            "{rate:?}"
        );
        assert_eq!(
            revoke.evidence.user_agent,
            Some(("Chrome".into(), "Firefox".into()))
        );
        // Flagged at the first Firefox request, stepped up once the rate confirmed it, then quiet.
        let actions: Vec<_> = decisions.iter().map(|d| d.action).collect();
        assert_eq!(actions, vec![Action::Flag, Action::StepUp]);
        assert_eq!(decisions[0].seq, 60);
    }

    #[test]
    fn scenario_c_variant_steady_rate_from_the_same_browser_is_left_alone() {
        let detector = Detector::new(DetectConfig::default());
        let events = (0..120).map(|k| ev(1, k * 12)).collect();
        assert!(detector.run(events).is_empty());
    }

    #[test]
    fn scenario_d_browser_version_bump_is_nothing() {
        // The enricher reduces "Chrome/120" and "Chrome/121" to the same family and OS.
        let detector = Detector::new(DetectConfig::default());
        let decisions = detector.run(vec![
            ev(1, 0),
            ev(1, 60),
            ev(1, 3600).ua(ua("Chrome", "Windows 10", false)),
        ]);
        assert!(decisions.is_empty(), "{decisions:?}");
        let snap = detector.tracker.snapshot(fp(1)).expect("session");
        assert!(snap.last_signal.is_none());
    }

    #[test]
    fn scenario_e_plane_from_berlin_to_london_is_nothing() {
        let detector = Detector::new(DetectConfig::default());
        let exp = T0 + 6 * 3600;
        let decisions = detector.run(vec![
            ev(1, 0).jwt("traveller", None, exp),
            ev(1, 3 * 3600)
                .jwt("traveller", None, exp)
                .ip("192.0.2.50")
                .asn(Some(5089))
                .geo(Some(london())),
        ]);
        assert!(decisions.is_empty(), "{decisions:?}");
        let signal = detector
            .tracker
            .snapshot(fp(1))
            .and_then(|s| s.last_signal)
            .expect("seen, scored low");
        assert!(signal.observation.travel.is_some());
        assert!(signal.assessment.score < 0.5);
    }

    #[test]
    fn concurrent_use_end_to_end() {
        let detector = Detector::new(DetectConfig {
            revoke_scope: RevokeScope::Session,
            ..DetectConfig::default()
        });
        let exp = T0 + 3600;
        let decisions = detector.run(vec![
            ev(1, 0).jwt("alice", Some("s-1"), exp),
            ev(2, 300)
                .jwt("alice", Some("s-2"), exp)
                .ip("198.51.100.7")
                .geo(Some(sao_paulo())),
        ]);
        assert_eq!(decisions.len(), 1);
        let d = &decisions[0];
        assert_eq!(d.reasons, vec![Reason::ConcurrentUse]);
        assert_eq!(d.key.to_string(), "sid:https://id.example.com:s-2");
        assert_eq!(d.fingerprint, fp(2));
        assert_eq!(
            d.evidence
                .travel
                .as_ref()
                .and_then(|t| t.from.city.as_deref()),
            Some("Berlin")
        );
    }

    #[test]
    fn thresholds_modes_and_subject_allowlist() {
        // (mode, allow_subjects, score, hard, prior, expected action)
        let cases = [
            (
                Mode::Enforce,
                false,
                0.85,
                false,
                None,
                Some(Action::Revoke),
            ),
            (Mode::Enforce, false, 0.8, false, None, Some(Action::Revoke)),
            (Mode::Enforce, false, 0.79, false, None, Some(Action::Flag)),
            (Mode::Enforce, false, 0.5, false, None, Some(Action::Flag)),
            (Mode::Enforce, false, 0.49, false, None, None),
            (Mode::Enforce, false, 0.3, true, None, Some(Action::Revoke)),
            (Mode::Shadow, false, 0.9, false, None, Some(Action::Revoke)),
            (Mode::Enforce, true, 0.99, true, None, Some(Action::Flag)),
            (Mode::Enforce, true, 0.6, false, None, Some(Action::Flag)),
            (Mode::Enforce, false, 0.99, true, Some(Action::Revoke), None),
            (Mode::Enforce, false, 0.6, false, Some(Action::Flag), None),
            (
                Mode::Enforce,
                false,
                0.9,
                false,
                Some(Action::Flag),
                Some(Action::Revoke),
            ),
            (Mode::Enforce, true, 0.9, false, Some(Action::Flag), None),
        ];
        for (mode, allow, score, hard, prior, expected) in cases {
            let detect = DetectConfig {
                mode,
                allow_subjects: if allow { vec!["vip".into()] } else { vec![] },
                ..DetectConfig::default()
            };
            let policy = Policy::new(&detect, &tokens());
            let event = ev(1, 0).jwt("vip", None, T0 + 600).build();
            let got = policy.decide(
                &event,
                &Observation::default(),
                &assessment(score, hard),
                prior,
            );
            let case = format!("{mode:?} allow={allow} score={score} hard={hard} prior={prior:?}");
            assert_eq!(got.as_ref().map(|d| d.action), expected, "{case}");
            if let Some(d) = got {
                assert_eq!(d.mode, mode, "{case}");
            }
        }
        // No reason, no decision, whatever the thresholds say.
        let lax = Policy::new(
            &DetectConfig {
                threshold: 0.0,
                flag_threshold: 0.0,
                ..DetectConfig::default()
            },
            &tokens(),
        );
        let empty = Assessment {
            score: 0.0,
            contributions: vec![],
            hard_rule: false,
        };
        let event = ev(1, 0).build();
        assert!(
            lax.decide(&event, &Observation::default(), &empty, None)
                .is_none()
        );
    }

    #[test]
    fn step_up_band_between_flag_and_revoke() {
        // (mode, allow_subjects, score, hard, prior, expected action)
        let cases = [
            (Mode::Enforce, false, 0.8, false, None, Some(Action::Revoke)),
            (
                Mode::Enforce,
                false,
                0.79,
                false,
                None,
                Some(Action::StepUp),
            ),
            (Mode::Enforce, false, 0.6, false, None, Some(Action::StepUp)),
            (Mode::Enforce, false, 0.59, false, None, Some(Action::Flag)),
            (Mode::Enforce, false, 0.5, false, None, Some(Action::Flag)),
            (Mode::Enforce, false, 0.49, false, None, None),
            // Hard rules (impossible travel, concurrent use) revoke whatever the score.
            (Mode::Enforce, false, 0.65, true, None, Some(Action::Revoke)),
            (Mode::Enforce, false, 0.1, true, None, Some(Action::Revoke)),
            // Shadow: the same decision, marked shadow.
            (Mode::Shadow, false, 0.7, false, None, Some(Action::StepUp)),
            // An allowlisted subject is flagged instead, like a revocation.
            (Mode::Enforce, true, 0.7, false, None, Some(Action::Flag)),
            (Mode::Enforce, true, 0.7, false, Some(Action::Flag), None),
            // Only ever stronger: flag → step-up → revoke, never back.
            (
                Mode::Enforce,
                false,
                0.7,
                false,
                Some(Action::Flag),
                Some(Action::StepUp),
            ),
            (Mode::Enforce, false, 0.7, false, Some(Action::StepUp), None),
            (
                Mode::Enforce,
                false,
                0.55,
                false,
                Some(Action::StepUp),
                None,
            ),
            (
                Mode::Enforce,
                false,
                0.9,
                false,
                Some(Action::StepUp),
                Some(Action::Revoke),
            ),
            (Mode::Enforce, false, 0.7, false, Some(Action::Revoke), None),
        ];
        for (mode, allow, score, hard, prior, expected) in cases {
            let detect = DetectConfig {
                mode,
                step_up_threshold: Some(0.6),
                allow_subjects: if allow { vec!["vip".into()] } else { vec![] },
                ..DetectConfig::default()
            };
            let policy = Policy::new(&detect, &tokens());
            let event = ev(1, 0).jwt("vip", None, T0 + 600).build();
            let got = policy.decide(
                &event,
                &Observation::default(),
                &assessment(score, hard),
                prior,
            );
            let case = format!("{mode:?} allow={allow} score={score} hard={hard} prior={prior:?}");
            assert_eq!(got.as_ref().map(|d| d.action), expected, "{case}");
            if let Some(d) = got {
                assert_eq!(d.mode, mode, "{case}");
            }
        }
        // Unset, the step-up threshold is the revoke threshold: no step-up band at all.
        let policy = Policy::new(&DetectConfig::default(), &tokens());
        for score in [0.5, 0.7, 0.79] {
            let got = policy.decide(
                &ev(1, 0).build(),
                &Observation::default(),
                &assessment(score, false),
                None,
            );
            assert_eq!(got.map(|d| d.action), Some(Action::Flag), "{score}");
        }
    }

    #[test]
    fn step_up_keys_the_session_whatever_the_revoke_scope() {
        let exp = T0 + 900;
        // (scope, event, expected key of a step-up)
        let cases = [
            (
                RevokeScope::Token,
                ev(1, 0).jwt("u", Some("s-9"), exp),
                "sid:https://id.example.com:s-9".to_string(),
            ),
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", Some("s-9"), exp),
                "sid:https://id.example.com:s-9".to_string(),
            ),
            // No sid: the token itself (the fresh token has another fingerprint).
            (
                RevokeScope::Token,
                ev(1, 0).jwt("u", None, exp),
                format!("fp:{}", fp(1)),
            ),
            // Opaque token.
            (RevokeScope::Session, ev(1, 0), format!("fp:{}", fp(1))),
            // A sid the denylist cannot hold: the token, never nothing.
            (
                RevokeScope::Token,
                ev(1, 0).jwt("u", Some("s\n9"), exp),
                format!("fp:{}", fp(1)),
            ),
        ];
        for (scope, event, key) in cases {
            let policy = Policy::new(
                &DetectConfig {
                    revoke_scope: scope,
                    step_up_threshold: Some(0.6),
                    ..DetectConfig::default()
                },
                &tokens(),
            );
            let d = policy
                .decide(
                    &event.build(),
                    &Observation::default(),
                    &assessment(0.7, false),
                    None,
                )
                .expect("decision");
            assert_eq!(d.action, Action::StepUp);
            assert_eq!(d.key.to_string(), key, "{scope:?}");
        }
    }

    #[test]
    fn step_up_decision_record_says_step_up() {
        let policy = Policy::new(
            &DetectConfig {
                step_up_threshold: Some(0.6),
                ..DetectConfig::default()
            },
            &tokens(),
        );
        let d = policy
            .decide(
                &ev(1, 0).build(),
                &Observation::default(),
                &assessment(0.7, false),
                None,
            )
            .expect("decision");
        let json: serde_json::Value = serde_json::to_value(&d).expect("serializes");
        assert_eq!(json["action"], "step_up");
        assert_eq!(json["mode"], "enforce");
    }

    #[test]
    fn keys_and_expiry() {
        let mut tokens = tokens();
        tokens.jwt.leeway = HumanDuration(Duration::from_secs(30));
        tokens.opaque_ttl = HumanDuration(Duration::from_secs(24 * 3600));
        let exp = T0 + 900;
        let hit = assessment(0.9, false);
        // (scope, event, expected key, expected expiry in seconds)
        let cases = [
            (
                RevokeScope::Token,
                ev(1, 0),
                format!("fp:{}", fp(1)),
                T0 + 24 * 3600,
            ),
            (
                RevokeScope::Token,
                ev(1, 0).jwt("u", Some("s-9"), exp),
                format!("fp:{}", fp(1)),
                exp + 30,
            ),
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", Some("s-9"), exp),
                "sid:https://id.example.com:s-9".to_string(),
                T0 + 24 * 3600,
            ),
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", None, exp),
                format!("fp:{}", fp(1)),
                exp + 30,
            ),
            (
                RevokeScope::Session,
                ev(1, 0),
                format!("fp:{}", fp(1)),
                T0 + 24 * 3600,
            ),
            // A `:` in the id is escaped, so the key reads back as this issuer and session.
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", Some("s:9%"), exp),
                "sid:https://id.example.com:s%3A9%25".to_string(),
                T0 + 24 * 3600,
            ),
            // A session id the denylist cannot hold revokes the token itself, never nothing.
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", Some("s\n9"), exp),
                format!("fp:{}", fp(1)),
                exp + 30,
            ),
            (
                RevokeScope::Session,
                ev(1, 0).jwt("u", Some(""), exp),
                format!("fp:{}", fp(1)),
                exp + 30,
            ),
        ];
        for (scope, event, key, expires) in cases {
            let policy = Policy::new(
                &DetectConfig {
                    revoke_scope: scope,
                    ..DetectConfig::default()
                },
                &tokens,
            );
            let event = event.seq(42).build();
            let d = policy
                .decide(&event, &Observation::default(), &hit, None)
                .expect("decision");
            assert_eq!(d.key.to_string(), key, "{scope:?}");
            assert_eq!(
                d.expires_at,
                EventTime::from_secs(expires),
                "{scope:?} {key}"
            );
            assert_eq!(d.event_time, event.event.time);
            assert_eq!(d.decided_at, event.event.time);
            assert_eq!(d.seq, 42);
        }
    }

    #[test]
    fn evidence_only_for_reasons_that_fired() {
        let policy = Policy::new(&DetectConfig::default(), &tokens());
        let observation = Observation {
            travel: Some(crate::track::travel_leg(
                &berlin(),
                EventTime(0),
                &london(),
                EventTime(3_600_000),
            )),
            user_agent_change: Some(("Chrome".into(), "Firefox".into())),
            os_change: Some(("Windows 10".into(), "Linux".into())),
            asn_change: Some((3320, 5089)),
            ..Default::default()
        };
        let scored = RuleScorer::new(&DetectConfig::default()).assess(&observation);
        let d = policy
            .decide(&ev(1, 0).build(), &observation, &scored, None)
            .expect("UA + OS + ASN steps up");
        assert_eq!(d.action, Action::StepUp);
        assert!(d.evidence.travel.is_none(), "travel was not a reason");
        assert_eq!(d.evidence.user_agent, observation.user_agent_change);
        assert_eq!(d.evidence.os, observation.os_change);
        assert_eq!(d.evidence.asn, Some((3320, 5089)));
        assert!(d.evidence.country.is_none() && d.evidence.rate.is_none());
        assert_eq!(d.evidence.contributions, scored.contributions);
    }

    /// DESIGN §5, verbatim (with "…" placeholders).
    const DESIGN_EXAMPLE: &str = r#"{"action":"revoke","mode":"enforce","key":"fp:9f86d081884c7d659a2feaa0c55ad015",
 "fingerprint":"9f86d081884c7d659a2feaa0c55ad015","iss":"https://id.example.com",
 "sub":"user-123","jti":"…","score":0.97,
 "reasons":["impossible_travel","user_agent_change"],
 "evidence":{"from":{"city":"Berlin","country":"DE","lat":52.5,"lon":13.4,"radius_km":20},
             "to":{"city":"São Paulo","country":"BR","lat":-23.5,"lon":-46.6,"radius_km":50},
             "distance_km":10010,"elapsed_s":720,"speed_kmh":50050},
 "event_time":"2026-11-23T17:12:00Z","decided_at":"…","expires_at":"…"}"#;

    fn key_order(json: &str, keys: &[&str]) -> Vec<usize> {
        keys.iter()
            .map(|k| json.find(&format!("\"{k}\":")).unwrap_or(usize::MAX))
            .collect()
    }

    #[test]
    fn decision_serializes_like_the_design_example() {
        let example: serde_json::Value = serde_json::from_str(DESIGN_EXAMPLE).expect("example");
        let decision = Decision {
            action: Action::Revoke,
            mode: Mode::Enforce,
            key: "fp:9f86d081884c7d659a2feaa0c55ad015".parse().expect("key"),
            fingerprint: Fingerprint::from_hex("9f86d081884c7d659a2feaa0c55ad015").expect("hex"),
            iss: Some("https://id.example.com".into()),
            sub: Some("user-123".into()),
            jti: Some("jti-1".into()),
            score: 0.97,
            reasons: vec![Reason::ImpossibleTravel, Reason::UserAgentChange],
            evidence: Evidence {
                travel: Some(TravelEvidence {
                    from: place("Berlin", "DE", 52.5, 13.4, 20.0),
                    to: place("São Paulo", "BR", -23.5, -46.6, 50.0),
                    distance_km: 10010.0,
                    elapsed_s: 720.0,
                    speed_kmh: 50050.0,
                    phone: false,
                }),
                user_agent: Some(("Chrome".into(), "Firefox".into())),
                contributions: vec![Contribution {
                    reason: Reason::ImpossibleTravel,
                    weight: 0.99,
                }],
                ..Default::default()
            },
            event_time: EventTime::from_secs(T0 + 720),
            decided_at: EventTime::from_secs(T0 + 720),
            expires_at: EventTime::from_secs(T0 + 3600),
            seq: 9,
        };
        let text = serde_json::to_string(&decision).expect("serializes");
        assert!(!text.contains('\n'), "one line per record");
        let ours: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");

        // Same top-level fields, in the same order, nothing extra (`seq` is not serialized).
        let top = [
            "action",
            "mode",
            "key",
            "fingerprint",
            "iss",
            "sub",
            "jti",
            "score",
            "reasons",
            "evidence",
            "event_time",
            "decided_at",
            "expires_at",
        ];
        let names = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
            k.sort();
            k
        };
        let mut expected_top: Vec<String> = top.iter().map(|s| s.to_string()).collect();
        expected_top.sort();
        assert_eq!(
            names(&example),
            expected_top,
            "the test's list matches DESIGN"
        );
        assert_eq!(names(&ours), expected_top);
        let order = key_order(&text, &top);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");

        // Same values where the example is concrete.
        for field in [
            "action",
            "mode",
            "key",
            "fingerprint",
            "iss",
            "sub",
            "score",
            "reasons",
        ] {
            assert_eq!(ours[field], example[field], "{field}");
        }
        assert_eq!(ours["event_time"], "2026-11-23T17:12:00Z");
        for field in ["decided_at", "expires_at", "jti"] {
            assert!(ours[field].is_string(), "{field}");
        }
        // Evidence: the travel leg flattened at its top, with the example's fields and numbers;
        // then the before/after pairs and contributions the design asks for.
        for field in ["from", "to"] {
            assert_eq!(
                names(&ours["evidence"][field]),
                names(&example["evidence"][field])
            );
            for k in ["city", "country", "lat", "lon", "radius_km"] {
                let (a, b) = (&ours["evidence"][field][k], &example["evidence"][field][k]);
                // Numbers compare as numbers (20 and 20.0 are the same JSON number).
                assert_eq!(a.as_f64(), b.as_f64(), "{field}.{k}");
                assert_eq!(a.as_str(), b.as_str(), "{field}.{k}");
            }
        }
        for k in ["distance_km", "elapsed_s", "speed_kmh"] {
            assert_eq!(
                ours["evidence"][k].as_f64(),
                example["evidence"][k].as_f64(),
                "{k}"
            );
        }
        assert_eq!(
            ours["evidence"]["user_agent"],
            serde_json::json!(["Chrome", "Firefox"])
        );
        assert_eq!(
            ours["evidence"]["contributions"],
            serde_json::json!([{"reason": "impossible_travel", "weight": 0.99}])
        );
        let evidence_keys = names(&ours["evidence"]);
        for absent in ["rate", "os", "asn", "country", "travel"] {
            assert!(!evidence_keys.contains(&absent.to_string()), "{absent}");
        }
    }
}
