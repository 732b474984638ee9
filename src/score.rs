//! Stage 6, score: an [`Observation`] → an [`Assessment`] (risk in [0, 1], reasons, hard rules).
//!
//! Data flow: `track` → **score** → `decide`. [`Scorer`] is the seam: [`RuleScorer`] (here) is
//! a transparent rule set; the trained model (`model::ModelScorer`) is another implementation
//! over the same [`Observation`] features with the same output shape.
//!
//! Output shape (both scorers): each reason that fires contributes a weight `wᵢ` in [0, 1]; the
//! score is the noisy-OR `1 − Π(1 − wᵢ)` (independent pieces of evidence, none of which can
//! push the score past 1); contributions are sorted strongest first; `hard_rule` marks reasons
//! that revoke whatever the threshold (physically impossible travel, concurrent use).
//!
//! How the weights were chosen (default threshold 0.8, flag threshold 0.5):
//! - Only the travel rules revoke alone. Everything else needs corroboration: a device change
//!   plus a network change, or a device change plus a rate anomaly.
//! - Real travel (new country + new ASN, plausible speed) must stay below the flag threshold:
//!   `1 − (1 − 0.35)(1 − 0.15) = 0.45`.
//! - A stolen cookie replayed from another browser in another network must revoke:
//!   UA change + country + ASN = `1 − 0.35 · 0.65 · 0.85 = 0.81`; UA + OS + ASN = 0.82;
//!   UA + rate anomaly ≥ 0.86.
//! - A device change alone (0.65), a script on a browser session (0.6, or 0.755 with the UA
//!   change it implies) or a rate burst alone (≤ 0.75) is flagged for a human, not revoked.
//!
//! What it does NOT do: keep state (everything comes from the observation), look at the
//! session's history itself, or decide (thresholds, modes and allowlisted subjects are
//! `decide`'s).

use crate::config::DetectConfig;
use crate::event::{
    Assessment, Contribution, NetworkKind, Observation, RateEvidence, Reason, TravelEvidence,
    os_family,
};

/// Anything that scores observations: the rule-based scorer now, the trained model later.
pub trait Scorer: Send + Sync {
    /// Score one observation. One at a time, never a batch: the pipeline decides each event
    /// before it tracks the next, so a decision never depends on where a batch was cut.
    fn score(&self, observation: &Observation) -> Assessment;

    /// Version label for `model_info{version}`.
    fn version(&self) -> &str {
        "rules-v1"
    }
}

/// The rule weights, each with why it has that value.
pub mod weights {
    /// Lower-bound speed (both accuracy radii already subtracted) above `max_speed_kmh` over at
    /// least `min_travel_km`: no traveller connects the two uses, so two parties hold the
    /// token. Hard rule (between two places with a country, and no phone at either end:
    /// [`RuleScorer::leg_weight`](super::RuleScorer)).
    pub const IMPOSSIBLE_TRAVEL: f64 = 0.99;
    /// The same user's other token used where this one could not have travelled from: two
    /// parties act as the user at once. Slightly below travel: the two tokens may sit on two
    /// devices behind differently geolocated networks (a phone on a carrier whose egress is
    /// far away). Hard rule.
    pub const CONCURRENT_USE: f64 = 0.95;
    /// An impossible leg longer than `hard_travel_km` between a located place (a home line,
    /// an office: with a country) and a region-placed end (a mobile carrier or a privacy
    /// relay): no GeoIP error explains the distance, but a roaming phone routed home does (a
    /// traveller's hotel Wi-Fi beside the phone's home carrier). Not verifiable alone, so
    /// never a hard rule; above the default threshold (0.8), so it steps up whatever the
    /// model says — the user proves themselves, a thief cannot. A leg between two
    /// region-placed ends names no place of the user at all (two relay egresses, a relay and
    /// a carrier's gateway, each wherever GeoIP puts its range): weighed as a
    /// [`DOMESTIC_HOP`]. A phone's end counts as region-placed whatever its network (a
    /// roaming phone on a carrier the catalog does not know): such a leg steps up, for one
    /// token or two.
    pub const FAR_FROM_A_REGION: f64 = 0.85;
    /// An "impossible" leg inside one country shorter than `hard_travel_km`: mobile carrier
    /// gateways and second devices make these too, so alone it is only worth a flag; with a
    /// device or rate signal it revokes (0.5 + UA change 0.65 → 0.83).
    pub const DOMESTIC_HOP: f64 = 0.5;
    /// An "impossible" leg between two tokens of one user that is not certain (shorter than
    /// `hard_travel_km`, or with a region-placed end): a desktop left open at home and a
    /// phone whose carrier GeoIP places hundreds of km away, or anywhere in the country, are
    /// one person on two devices, hour after hour. Weaker than a one-token hop, so that a
    /// page-load burst beside it (rate 0.6) stays a flag (0.74), not a step-up.
    pub const TWO_DEVICES_UNCERTAIN: f64 = 0.35;
    /// Rate anomaly at the trigger ratio (5× the session's own baseline, ≥ 30/min).
    pub const RATE_ANOMALY_MIN: f64 = 0.6;
    /// Rate anomaly at 20× the baseline or more. Kept below 0.8 on purpose: volume alone is
    /// also what an owner's bulk export or a new browser tab storm looks like.
    pub const RATE_ANOMALY_MAX: f64 = 0.75;
    /// The browser family changed mid-session. A cookie does not move between browsers on its
    /// own; a bearer token rarely moves between clients. 0.65 (slightly above the 0.6 first
    /// suggested) so that a browser change from a new country and network revokes while the
    /// change alone is only flagged.
    pub const USER_AGENT_CHANGE: f64 = 0.65;
    /// The OS changed: a different device. Weaker than the family (OS strings shift with
    /// updates and UA reduction), stronger together with it.
    pub const OS_CHANGE: f64 = 0.4;
    /// The OS changed between families no browser mode switches between (Windows and macOS,
    /// a phone and Windows): the token moved to another device. As strong as a browser
    /// change. Android → Linux (Chrome's "desktop site") and iPhone/iPad → macOS (Safari's)
    /// stay [`OS_CHANGE`].
    pub const DEVICE_CHANGE: f64 = 0.65;
    /// curl / python-requests / Go-http-client on a session that started in a browser: the
    /// Okta-log pattern of a replayed cookie. Alone it is also a developer debugging their own
    /// session, hence below the threshold.
    pub const SCRIPTED_CLIENT: f64 = 0.6;
    /// The extra weight of a scripted client when the UA change it implies already counted,
    /// so the same fact is not counted twice at full weight.
    pub const SCRIPTED_CLIENT_WITH_UA_CHANGE: f64 = 0.3;
    /// The country changed. Travel, roaming and VPNs do this legitimately; it corroborates.
    pub const COUNTRY_CHANGE: f64 = 0.35;
    /// The ASN changed: phones move between Wi-Fi and carrier all day. Faint alone.
    pub const ASN_CHANGE: f64 = 0.15;
    /// The ASN changed onto a catalogued hosting/VPN network (the decision's evidence names
    /// it): a consumer VPN switched on, or a thief's rented host. Alone a flag; with the
    /// token in another browser or on another device (0.65) it steps up (0.81) — a VPN
    /// does not move a cookie between browsers, and an idle token replayed from a cloud host
    /// in a new browser is the classic theft (three of five missed idle replays on worlds
    /// 9401–9406).
    pub const ASN_CHANGE_TO_HOSTING: f64 = 0.45;

    /// Requests per minute at or above which a rate can be anomalous at all.
    pub const RATE_MIN_PER_MINUTE: f64 = 30.0;
    /// Multiple of the session's own baseline at which a rate becomes anomalous.
    pub const RATE_MIN_RATIO: f64 = 5.0;
}

/// `1 − Π(1 − wᵢ)`, clamped to [0, 1] (weights outside [0, 1] are clamped first).
pub fn combine(contributions: &[Contribution]) -> f64 {
    let keep: f64 = contributions
        .iter()
        .map(|c| 1.0 - clamp_unit(c.weight))
        .product();
    clamp_unit(1.0 - keep)
}

fn clamp_unit(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Rate-anomaly weight, if the rate is anomalous: per-minute ≥ 30 and ≥ 5× the session's own
/// baseline (floored at 1/min); grows with the ratio on a log scale from 0.6 at 5× to 0.75 at
/// 20× and beyond.
pub fn rate_anomaly_weight(rate: &RateEvidence) -> Option<f64> {
    let ratio = rate.per_minute / rate.baseline_per_minute.max(1.0);
    if rate.per_minute < weights::RATE_MIN_PER_MINUTE || ratio < weights::RATE_MIN_RATIO {
        return None;
    }
    let growth = ((ratio / weights::RATE_MIN_RATIO).log2() / 2.0).clamp(0.0, 1.0);
    Some(
        weights::RATE_ANOMALY_MIN
            + (weights::RATE_ANOMALY_MAX - weights::RATE_ANOMALY_MIN) * growth,
    )
}

/// Transparent rule-based scorer.
#[derive(Debug, Clone)]
pub struct RuleScorer {
    max_speed_kmh: f64,
    min_travel_km: f64,
    hard_travel_km: f64,
}

impl RuleScorer {
    /// From `[detect]` (`max_speed_kmh`, `min_travel_km`).
    pub fn new(config: &DetectConfig) -> Self {
        RuleScorer {
            max_speed_kmh: config.max_speed_kmh,
            min_travel_km: config.min_travel_km,
            hard_travel_km: config.hard_travel_km,
        }
    }

    /// No traveller covers this leg: faster than `max_speed_kmh` over at least
    /// `min_travel_km` (both on the radius-aware lower bound).
    pub fn is_impossible(&self, leg: &TravelEvidence) -> bool {
        leg.speed_kmh > self.max_speed_kmh && leg.distance_km >= self.min_travel_km
    }

    /// An impossible leg that revokes on its own: between two places of the user's own
    /// connections (both with a country), it crosses a border, or it is long enough that no
    /// GeoIP error explains it. Shorter domestic legs also come from mobile carrier gateways
    /// that geolocate hundreds of km from the user, and from a user's second device. A leg
    /// with a region-placed end (a mobile carrier or a privacy relay: no country) is never
    /// certain: roaming phones are routed home (GSMA's default), so a carrier's address says
    /// nothing about the continent the phone is on, and a relay's egress only names a region.
    pub fn is_certain(&self, leg: &TravelEvidence) -> bool {
        let (Some(from), Some(to)) = (&leg.from.country, &leg.to.country) else {
            return false;
        };
        self.is_impossible(leg) && (from != to || leg.distance_km >= self.hard_travel_km)
    }

    /// The weight of an impossible leg and whether it is certain (a hard rule):
    /// `certain_weight` when certain; between two tokens, else
    /// [`weights::TWO_DEVICES_UNCERTAIN`]; for one token, [`weights::FAR_FROM_A_REGION`]
    /// when only its one region-placed end keeps it from being certain, else
    /// [`weights::DOMESTIC_HOP`].
    /// `two_devices`: the leg joins two tokens of one user, which may sit on two devices in
    /// two places (a desktop left open at home, a phone at work across a border city, each
    /// geolocated with its own error), so only the distance makes it certain, not a border.
    /// `roaming_phone`: a phone at one end may explain the leg (see [`Self::travel`]). Such a
    /// leg that would be certain is not: the phone may be roaming on a carrier the catalog
    /// does not know as one, its address in its home country (home routing) while its owner's
    /// laptop is on a hotel's Wi-Fi abroad, or the phone itself is there. It is weighed as if
    /// that end were region-placed: over `hard_travel_km` [`weights::FAR_FROM_A_REGION`] (a
    /// step-up, for two tokens too), shorter a [`weights::DOMESTIC_HOP`].
    fn leg_weight(
        &self,
        leg: &TravelEvidence,
        certain_weight: f64,
        two_devices: bool,
        roaming_phone: bool,
    ) -> (f64, bool) {
        let long = leg.distance_km >= self.hard_travel_km;
        let certain = self.is_certain(leg) && (!two_devices || long);
        let one_end_located = leg.from.country.is_some() || leg.to.country.is_some();
        if certain && !roaming_phone {
            (certain_weight, true)
        } else if two_devices && !certain {
            (weights::TWO_DEVICES_UNCERTAIN, false)
        } else if long && one_end_located {
            (weights::FAR_FROM_A_REGION, false)
        } else {
            (weights::DOMESTIC_HOP, false)
        }
    }

    /// The travel reasons an observation shows: its impossible legs, each with its weight
    /// ([`Self::leg_weight`]), and whether one is a hard rule. A phone at one end of a leg
    /// explains it between two tokens (a traveller's laptop and phone), and for one token
    /// only when the token stayed on its device: a phone's token now sent by another browser
    /// or device is not the phone roaming.
    fn travel(&self, obs: &Observation) -> (Vec<Contribution>, bool) {
        let same_device = obs.user_agent_change.is_none()
            && obs
                .os_change
                .as_ref()
                .is_none_or(|(before, after)| !another_device(before, after));
        let legs = [
            (
                &obs.travel,
                Reason::ImpossibleTravel,
                weights::IMPOSSIBLE_TRAVEL,
                false,
            ),
            (
                &obs.user_travel,
                Reason::ConcurrentUse,
                weights::CONCURRENT_USE,
                true,
            ),
        ];
        let mut hard_rule = false;
        let contributions = legs
            .into_iter()
            .filter_map(|(leg, reason, certain_weight, two_devices)| {
                let leg = leg.as_ref().filter(|t| self.is_impossible(t))?;
                let roaming_phone = leg.phone && (two_devices || same_device);
                let (weight, certain) =
                    self.leg_weight(leg, certain_weight, two_devices, roaming_phone);
                hard_rule |= certain;
                Some(Contribution { reason, weight })
            })
            .collect();
        (contributions, hard_rule)
    }

    /// Score one observation.
    pub fn assess(&self, obs: &Observation) -> Assessment {
        if obs.vouched_network {
            return Assessment::default();
        }
        let (mut contributions, hard_rule) = self.travel(obs);
        let mut fire =
            |reason: Reason, weight: f64| contributions.push(Contribution { reason, weight });

        // The tracker gives travel only where a place means something (direct networks, and a
        // privacy relay's region), and no network change on allowlisted or relay networks;
        // the latter is checked again so a hand-built observation cannot bypass it.
        let network_counts = !obs.allowlisted_network;
        if let Some(weight) = obs.rate.as_ref().and_then(rate_anomaly_weight) {
            fire(Reason::RateAnomaly, weight);
        }
        if obs.user_agent_change.is_some() {
            fire(Reason::UserAgentChange, weights::USER_AGENT_CHANGE);
        }
        if obs.scripted_client {
            let weight = if obs.user_agent_change.is_some() {
                weights::SCRIPTED_CLIENT_WITH_UA_CHANGE
            } else {
                weights::SCRIPTED_CLIENT
            };
            fire(Reason::ScriptedClient, weight);
        }
        if let Some((before, after)) = &obs.os_change {
            let weight = if another_device(before, after) {
                weights::DEVICE_CHANGE
            } else {
                weights::OS_CHANGE
            };
            fire(Reason::OsChange, weight);
        }
        if network_counts && obs.country_change.is_some() {
            fire(Reason::CountryChange, weights::COUNTRY_CHANGE);
        }
        if network_counts && obs.asn_change.is_some() {
            let onto_hosting = obs
                .network
                .as_ref()
                .is_some_and(|n| n.kind == NetworkKind::Hosting);
            let weight = if onto_hosting {
                weights::ASN_CHANGE_TO_HOSTING
            } else {
                weights::ASN_CHANGE
            };
            fire(Reason::AsnChange, weight);
        }

        // Strongest first; equal weights in the fixed reason order, so output is stable.
        contributions.sort_by(|a, b| {
            b.weight
                .total_cmp(&a.weight)
                .then_with(|| a.reason.cmp(&b.reason))
        });
        Assessment {
            score: combine(&contributions),
            contributions,
            hard_rule,
        }
    }
}

/// Whether an OS change moves the token to another device: two known families that no
/// browser's "desktop site" mode switches between (Android shows as Linux, iOS as macOS).
fn another_device(before: &str, after: &str) -> bool {
    let (a, b) = (os_family(before), os_family(after));
    let desktop_mode =
        |phone: &str, desktop: &str| (a == phone && b == desktop) || (a == desktop && b == phone);
    a != b
        && a != "other"
        && b != "other"
        && !desktop_mode("android", "linux")
        && !desktop_mode("ios", "macos")
}

impl Scorer for RuleScorer {
    fn score(&self, observation: &Observation) -> Assessment {
        self.assess(observation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventTime;
    use crate::track::test_support::{berlin, london, sao_paulo};
    use crate::track::travel_leg;

    fn scorer() -> RuleScorer {
        RuleScorer::new(&DetectConfig::default())
    }

    fn leg(
        from: crate::event::GeoPoint,
        to: crate::event::GeoPoint,
        elapsed_s: i64,
    ) -> TravelEvidence {
        travel_leg(&from, EventTime(0), &to, EventTime(elapsed_s * 1000))
    }

    fn hosting() -> crate::event::NetworkEvidence {
        crate::event::NetworkEvidence {
            kind: NetworkKind::Hosting,
            asn: Some(16276),
            org: Some("OVH SAS".into()),
            anonymiser: true,
        }
    }

    /// Poznań (PL), 240 km from Berlin across a border.
    fn poznan() -> crate::event::GeoPoint {
        crate::event::GeoPoint {
            city: Some("Poznań".into()),
            country: Some("PL".into()),
            lat: 52.41,
            lon: 16.93,
            radius_km: 10.0,
        }
    }

    fn pair(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.into(), b.into()))
    }

    #[test]
    fn combine_is_noisy_or() {
        let c = |w: f64| Contribution {
            reason: Reason::AsnChange,
            weight: w,
        };
        let cases: [(&[f64], f64); 5] = [
            (&[], 0.0),
            (&[0.6], 0.6),
            (&[0.5, 0.5], 0.75),
            (&[0.65, 0.35, 0.15], 1.0 - 0.35 * 0.65 * 0.85),
            (&[1.5, f64::NAN, -1.0], 1.0),
        ];
        for (weights, expected) in cases {
            let contributions: Vec<_> = weights.iter().map(|w| c(*w)).collect();
            assert!(
                (combine(&contributions) - expected).abs() < 1e-12,
                "{weights:?}"
            );
        }
    }

    #[test]
    fn rate_weight_grows_with_the_ratio() {
        let rate = |per_minute: f64, baseline_per_minute: f64| RateEvidence {
            per_minute,
            baseline_per_minute,
        };
        // (rate, expected weight)
        let cases = [
            (rate(29.0, 1.0), None),
            (rate(60.0, 13.0), None),
            (rate(30.0, 6.0), Some(0.6)),
            (rate(60.0, 6.0), Some(0.675)),
            (rate(120.0, 6.0), Some(0.75)),
            (rate(5000.0, 6.0), Some(0.75)),
            (
                rate(40.0, 0.0),
                Some(0.6 + 0.15 * ((40.0f64 / 5.0).log2() / 2.0).min(1.0)),
            ),
        ];
        for (r, expected) in cases {
            let got = rate_anomaly_weight(&r);
            match (got, expected) {
                (None, None) => {}
                (Some(g), Some(e)) => assert!((g - e).abs() < 1e-9, "{r:?}: {g} vs {e}"),
                _ => panic!("{r:?}: {got:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn a_region_placed_end_is_never_certain() {
        let s = scorer();
        let region = |mut p: crate::event::GeoPoint| {
            p.country = None;
            p.radius_km = 500.0;
            p
        };
        // Berlin to São Paulo in ten minutes, 9,000 km past both radii.
        let direct = leg(berlin(), sao_paulo(), 600);
        assert!(s.is_impossible(&direct) && s.is_certain(&direct));
        for (what, leg) in [
            ("from a carrier", leg(region(berlin()), sao_paulo(), 600)),
            ("to a relay", leg(berlin(), region(sao_paulo()), 600)),
        ] {
            assert!(s.is_impossible(&leg), "{what}: still impossible");
            assert!(!s.is_certain(&leg), "{what}: not certain");
            let assessment = s.assess(&Observation {
                travel: Some(leg),
                ..Default::default()
            });
            assert!(!assessment.hard_rule, "{what}");
            assert_eq!(assessment.contributions.len(), 1, "{what}: still a signal");
            assert_eq!(
                assessment.score,
                weights::FAR_FROM_A_REGION,
                "{what}: steps up"
            );
        }
        // Two region-placed ends (two relay egresses, a relay and a carrier) name no place of
        // the user: a flag, not a step-up.
        let nowhere = leg(region(berlin()), region(sao_paulo()), 600);
        assert!(s.is_impossible(&nowhere) && !s.is_certain(&nowhere));
        let assessment = s.assess(&Observation {
            travel: Some(nowhere),
            ..Default::default()
        });
        assert_eq!(assessment.score, weights::DOMESTIC_HOP);
    }

    #[test]
    fn a_phone_at_either_end_makes_no_leg_certain() {
        let s = scorer();
        let phone = |leg: TravelEvidence| TravelEvidence { phone: true, ..leg };
        // Berlin to São Paulo in ten minutes: a thief, or a traveller's hotel Wi-Fi beside
        // the phone's home carrier the catalog does not know as one (home routing).
        let far = phone(leg(berlin(), sao_paulo(), 600));
        assert!(s.is_certain(&far), "both ends have a country");
        for (what, observation) in [
            (
                "one token",
                Observation {
                    travel: Some(far.clone()),
                    ..Default::default()
                },
            ),
            (
                "two tokens",
                Observation {
                    user_travel: Some(far.clone()),
                    ..Default::default()
                },
            ),
        ] {
            let assessment = s.assess(&observation);
            assert!(
                !assessment.hard_rule,
                "{what}: never revoked on the leg alone"
            );
            assert_eq!(
                assessment.score,
                weights::FAR_FROM_A_REGION,
                "{what}: steps up"
            );
        }
        // Across a border, 240 km: a hop, not a step-up.
        let near = s.assess(&Observation {
            travel: Some(phone(leg(berlin(), poznan(), 1))),
            ..Default::default()
        });
        assert!(!near.hard_rule);
        assert_eq!(near.score, weights::DOMESTIC_HOP);
        // A phone's token sent by another browser is not the phone roaming.
        let moved = s.assess(&Observation {
            travel: Some(far.clone()),
            user_agent_change: pair("Mobile Safari", "Chrome"),
            ..Default::default()
        });
        assert!(moved.hard_rule);
        // Without a phone the same legs stay hard rules.
        let laptop = s.assess(&Observation {
            user_travel: Some(TravelEvidence {
                phone: false,
                ..far
            }),
            ..Default::default()
        });
        assert!(laptop.hard_rule);
    }

    #[test]
    fn two_devices_across_a_border_city_are_not_certain() {
        let s = scorer();
        // Two tokens of one user, Berlin and Poznań (PL), 240 km apart, a second apart.
        let near = leg(berlin(), poznan(), 1);
        assert!(s.is_certain(&near), "one token across the border: certain");
        let two_devices = s.assess(&Observation {
            user_travel: Some(near.clone()),
            ..Default::default()
        });
        assert!(!two_devices.hard_rule);
        assert_eq!(two_devices.reasons(), [Reason::ConcurrentUse]);
        // With a page-load burst beside it: still a flag (the one-token hop would step up).
        let with_burst = s.assess(&Observation {
            user_travel: Some(near.clone()),
            rate: Some(RateEvidence {
                per_minute: 57.0,
                baseline_per_minute: 11.25,
            }),
            ..Default::default()
        });
        assert!(with_burst.score < 0.8, "{}", with_burst.score);
        let one_token = s.assess(&Observation {
            travel: Some(near),
            ..Default::default()
        });
        assert!(one_token.hard_rule);
    }

    #[test]
    fn an_os_change_between_devices_weighs_like_a_browser_change() {
        let cases = [
            ("Windows 10", "Mac OSX", true),
            ("Android", "Windows 10", true),
            ("iPhone", "Linux", true),
            ("Android", "Linux", false),
            ("Linux", "Android", false),
            ("iPad", "Mac OSX", false),
            ("Windows 10", "Windows 8.1", false),
            ("Windows 10", "BlackBerry", false),
        ];
        for (before, after, device) in cases {
            assert_eq!(another_device(before, after), device, "{before} → {after}");
        }
        // With a new country and network it reaches the threshold, as a browser change does.
        let a = scorer().assess(&Observation {
            os_change: pair("Windows 10", "Mac OSX"),
            country_change: pair("PG", "AU"),
            asn_change: Some((1, 2)),
            ..Default::default()
        });
        assert!(a.score >= 0.8 && !a.hard_rule, "{}", a.score);
    }

    #[test]
    fn rules_table() {
        let s = scorer();
        let impossible = Some(leg(berlin(), sao_paulo(), 600));
        let plane = Some(leg(berlin(), london(), 3 * 3600));
        // Fast but short: 150 km lower bound needed, radii eat most of this.
        let mut near = berlin();
        near.lat += 1.0;
        let short = Some(leg(berlin(), near, 60));
        let burst = Some(RateEvidence {
            per_minute: 60.0,
            baseline_per_minute: 5.0,
        });
        // (name, observation, expected reasons in order, hard, revoke at 0.8, flag at 0.5)
        type Case = (&'static str, Observation, Vec<Reason>, bool, bool, bool);
        let cases: Vec<Case> = vec![
            ("quiet", Observation::default(), vec![], false, false, false),
            (
                "impossible travel",
                Observation {
                    travel: impossible.clone(),
                    ..Default::default()
                },
                vec![Reason::ImpossibleTravel],
                true,
                true,
                true,
            ),
            (
                "plane",
                Observation {
                    travel: plane,
                    country_change: pair("DE", "GB"),
                    asn_change: Some((3320, 5089)),
                    ..Default::default()
                },
                vec![Reason::CountryChange, Reason::AsnChange],
                false,
                false,
                false,
            ),
            (
                "fast but short",
                Observation {
                    travel: short,
                    ..Default::default()
                },
                vec![],
                false,
                false,
                false,
            ),
            (
                "concurrent use",
                Observation {
                    user_travel: impossible.clone(),
                    ..Default::default()
                },
                vec![Reason::ConcurrentUse],
                true,
                true,
                true,
            ),
            (
                "a VPN switched on: onto a hosting network",
                Observation {
                    asn_change: Some((3320, 16276)),
                    network: Some(hosting()),
                    ..Default::default()
                },
                vec![Reason::AsnChange],
                false,
                false,
                false,
            ),
            (
                "an idle token from a cloud host in another browser",
                Observation {
                    asn_change: Some((3320, 16276)),
                    network: Some(hosting()),
                    user_agent_change: pair("Chrome", "Firefox"),
                    ..Default::default()
                },
                vec![Reason::UserAgentChange, Reason::AsnChange],
                false,
                true,
                true,
            ),
            (
                "allowlisted network: no network change",
                Observation {
                    asn_change: Some((1, 2)),
                    country_change: pair("DE", "FR"),
                    allowlisted_network: true,
                    ..Default::default()
                },
                vec![],
                false,
                false,
                false,
            ),
            (
                // The tracker gives travel on a relay (its region); it counts.
                "privacy relay far from the last place",
                Observation {
                    travel: impossible,
                    asn_change: Some((1, 2)),
                    allowlisted_network: true,
                    ..Default::default()
                },
                vec![Reason::ImpossibleTravel],
                true,
                true,
                true,
            ),
            (
                "rate + UA",
                Observation {
                    rate: burst,
                    user_agent_change: pair("Chrome", "Firefox"),
                    ..Default::default()
                },
                vec![Reason::RateAnomaly, Reason::UserAgentChange],
                false,
                true,
                true,
            ),
            (
                "rate alone",
                Observation {
                    rate: burst,
                    ..Default::default()
                },
                vec![Reason::RateAnomaly],
                false,
                false,
                true,
            ),
            (
                "UA + country + ASN",
                Observation {
                    user_agent_change: pair("Chrome", "Firefox"),
                    country_change: pair("DE", "RU"),
                    asn_change: Some((3320, 12389)),
                    ..Default::default()
                },
                vec![
                    Reason::UserAgentChange,
                    Reason::CountryChange,
                    Reason::AsnChange,
                ],
                false,
                true,
                true,
            ),
            (
                "curl on a browser session",
                Observation {
                    user_agent_change: pair("Chrome", "curl"),
                    scripted_client: true,
                    ..Default::default()
                },
                vec![Reason::UserAgentChange, Reason::ScriptedClient],
                false,
                false,
                true,
            ),
            (
                "phone: Wi-Fi to carrier",
                Observation {
                    asn_change: Some((3320, 6805)),
                    new_ip: true,
                    ..Default::default()
                },
                vec![Reason::AsnChange],
                false,
                false,
                false,
            ),
        ];
        for (name, obs, reasons, hard, revoke, flag) in cases {
            let a = s.assess(&obs);
            assert_eq!(a.reasons(), reasons, "{name}");
            assert_eq!(a.hard_rule, hard, "{name}");
            assert_eq!(a.hard_rule || a.score >= 0.8, revoke, "{name}: {}", a.score);
            assert_eq!(a.score >= 0.5, flag, "{name}: {}", a.score);
            assert!((0.0..=1.0).contains(&a.score), "{name}");
            assert!(
                a.contributions
                    .windows(2)
                    .all(|w| w[0].weight >= w[1].weight),
                "{name}: strongest first"
            );
        }
    }

    #[test]
    fn speed_threshold_follows_config() {
        let leg = leg(berlin(), london(), 3600); // ~890 km lower bound in 1 h
        let strict = RuleScorer::new(&DetectConfig {
            max_speed_kmh: 500.0,
            ..DetectConfig::default()
        });
        assert!(strict.is_impossible(&leg));
        assert!(!scorer().is_impossible(&leg));
        let far_only = RuleScorer::new(&DetectConfig {
            max_speed_kmh: 500.0,
            min_travel_km: 1000.0,
            ..DetectConfig::default()
        });
        assert!(!far_only.is_impossible(&leg));
    }
}
