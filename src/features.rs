//! The model's feature schema — name, order, unit and transform of every feature, in one
//! place — and the extraction of a feature vector from an [`Observation`].
//!
//! Data flow: `track` → [`Observation`] → **features** → `model` (scoring) and `train`
//! (fitting). Both sides call [`extract`], so the model is always fed exactly what it was
//! trained on; the artifact records the schema and its fingerprint ([`schema_hash`]), and
//! `model` refuses an artifact whose schema differs from [`FEATURES`].
//!
//! Invariants:
//! - [`FEATURES`] is the only definition of the schema; [`extract`] fills the vector in that
//!   order (a test checks every name is produced at its index).
//! - Every value is finite: absent evidence (no travel leg, no rate baseline yet) is 0, and
//!   unbounded quantities go through `log1p` so one extreme value cannot dominate a linear
//!   model or a split.
//! - Only what tokenwatch itself knows: the features derive from the observation, never from
//!   simulator-only knowledge (the simulator knows which networks are "hosting"; tokenwatch
//!   has no such database, so there is no such feature).
//!
//! What it does NOT do: scale or standardise (the logistic model stores its own scaling), or
//! judge what is suspicious (that is the model's job).

use crate::event::{Observation, Reason};

/// How a raw value becomes a feature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `ln(1 + max(x, 0))`: counts, distances, speeds and durations (heavy-tailed, ≥ 0).
    Log1p,
    /// 1 when the condition holds, else 0.
    Indicator,
}

impl Transform {
    /// The name recorded in the artifact and the model card.
    pub fn name(self) -> &'static str {
        match self {
            Transform::Log1p => "log1p",
            Transform::Indicator => "indicator",
        }
    }

    fn apply(self, raw: f64) -> f64 {
        match self {
            Transform::Log1p if raw.is_finite() => raw.max(0.0).ln_1p(),
            // An infinite speed or count is "as large as it gets", NaN is "no evidence".
            Transform::Log1p if raw == f64::INFINITY => f64::MAX.ln_1p(),
            Transform::Log1p => 0.0,
            Transform::Indicator => {
                if raw != 0.0 && !raw.is_nan() {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// One feature of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeatureSpec {
    /// Stable name.
    pub name: &'static str,
    /// Unit before the transform.
    pub unit: &'static str,
    /// Transform applied.
    pub transform: Transform,
    /// The signal this feature's contribution is reported under; `None` for context that is
    /// not itself a signal (the session's age, counts, an anonymising network): the model
    /// explains its share through the signals present (`model`).
    pub reason: Option<Reason>,
    /// What it means, for the model card.
    pub doc: &'static str,
}

const fn f(
    name: &'static str,
    unit: &'static str,
    transform: Transform,
    reason: Option<Reason>,
    doc: &'static str,
) -> FeatureSpec {
    FeatureSpec {
        name,
        unit,
        transform,
        reason,
        doc,
    }
}

use Reason as R;
use Transform::{Indicator as IND, Log1p as LOG};

/// The schema, in vector order. Changing names, units, transforms or order changes
/// [`schema_hash`], and every artifact trained before must be retrained.
pub const FEATURES: &[FeatureSpec] = &[
    f(
        "travel_speed_kmh",
        "km/h",
        LOG,
        Some(R::ImpossibleTravel),
        "Lower-bound speed from the session's previous located use (great-circle distance minus both GeoIP accuracy radii, over the elapsed time); 0 without a leg.",
    ),
    f(
        "travel_distance_km",
        "km",
        LOG,
        Some(R::ImpossibleTravel),
        "Lower-bound distance of that leg; 0 without a leg.",
    ),
    f(
        "user_travel_speed_kmh",
        "km/h",
        LOG,
        Some(R::ConcurrentUse),
        "Lower-bound speed from the same user's other token's latest use (concurrent tokens); 0 without one.",
    ),
    f(
        "user_travel_distance_km",
        "km",
        LOG,
        Some(R::ConcurrentUse),
        "Lower-bound distance of that leg; 0 without one.",
    ),
    f(
        "rate_per_minute",
        "requests/min",
        LOG,
        Some(R::RateAnomaly),
        "Requests of the session in the last 60 s of event time; 0 until the session has a baseline.",
    ),
    f(
        "rate_ratio",
        "ratio",
        LOG,
        Some(R::RateAnomaly),
        "That rate over the session's own EWMA baseline (floored at 1/min); 0 until the session has a baseline.",
    ),
    f(
        "rate_known",
        "flag",
        IND,
        None,
        "The session has a rate baseline (3 full active minutes).",
    ),
    f(
        "user_agent_change",
        "flag",
        IND,
        Some(R::UserAgentChange),
        "User-Agent family differs from the device the session was established on.",
    ),
    f(
        "os_change",
        "flag",
        IND,
        Some(R::OsChange),
        "OS differs from the session's device.",
    ),
    f(
        "scripted_client",
        "flag",
        IND,
        Some(R::ScriptedClient),
        "A scripted client (curl, python-requests, Go-http-client …) on a session that began in a browser.",
    ),
    f(
        "asn_change",
        "flag",
        IND,
        Some(R::AsnChange),
        "The network (ASN) differs from the session's previous one.",
    ),
    f(
        "new_asn",
        "flag",
        IND,
        Some(R::AsnChange),
        "The ASN is not among the networks this session used recently.",
    ),
    f(
        "recent_network_changes",
        "changes",
        LOG,
        Some(R::AsnChange),
        "ASN changes of the session in the last 10 minutes, this one included.",
    ),
    f(
        "distinct_asns",
        "count",
        LOG,
        Some(R::AsnChange),
        "Distinct ASNs the session has used.",
    ),
    f(
        "country_change",
        "flag",
        IND,
        Some(R::CountryChange),
        "The country differs from the session's previous one.",
    ),
    f(
        "distinct_countries",
        "count",
        LOG,
        Some(R::CountryChange),
        "Distinct countries the session has been used from.",
    ),
    f(
        "new_ip",
        "flag",
        IND,
        None,
        "The client IP was not seen before in this session.",
    ),
    f(
        "distinct_ips",
        "count",
        LOG,
        None,
        "Distinct client IPs the session has used.",
    ),
    f(
        "session_age_s",
        "s",
        LOG,
        None,
        "Seconds since the session's first request (event time).",
    ),
    f(
        "session_requests",
        "requests",
        LOG,
        None,
        "Requests of the session so far, this one included.",
    ),
    f(
        "since_previous_s",
        "s",
        LOG,
        None,
        "Seconds since the session's previous request; 0 for its first.",
    ),
    f(
        "allowlisted_network",
        "flag",
        IND,
        None,
        "The address or its ASN is allowlisted or a privacy relay (detect.allow_* / relay_*): no network or country change was computed, and travel only for a relay, at its region's accuracy.",
    ),
    f(
        "network_returns",
        "returns",
        LOG,
        Some(R::ConcurrentUse),
        "Switches back to the network the session had just left and used within the last 2 minutes (A → B → A), counted over the last 10 minutes, this one included: two parties interleaving on one token. A network is an ASN and, inside it, a GeoIP place more than 100 km from its others of the same address family (a carrier's gateway region and a city block, two cities): one device behind one address does not alternate between them, while an office's or a carrier's NAT pool in one city stays one network. For a JWT with a `sid`, the larger of the token's count and its login session's across refreshed tokens (owner on the new token, thief on the old).",
    ),
    f(
        "network_rate_per_minute",
        "requests/min",
        LOG,
        Some(R::RateAnomaly),
        "Requests of the session from this network in the last 60 s when it is not the network the session started on (0 there): a second party's rate, undiluted by the owner's.",
    ),
    f(
        "network_age_s",
        "s",
        LOG,
        None,
        "Seconds since the session first used this network.",
    ),
    f(
        "network_lone_requests",
        "requests",
        LOG,
        Some(R::AsnChange),
        "Earlier requests of the session from this network that stood alone (no other from it within 10 s either side), where people's page loads burst into API calls; 0 on the network the session started on (an API client's steady polling).",
    ),
    f(
        "anonymiser_network",
        "flag",
        IND,
        None,
        "The request comes from a catalogued hosting/VPN network or privacy relay (`config/networks.toml`): it hides who and where the user is. Context, not evidence: many honest people use a VPN.",
    ),
    f(
        "network_direct_returns",
        "returns",
        LOG,
        Some(R::ConcurrentUse),
        "Of `network_returns`, those where neither network is a shared egress (privacy relay, satellite link, allowlisted network), or one is and the other a hosting/VPN network: two parties' connections (a home line, a carrier, a relay, a hosting host) interleaving within minutes. One honest device alternates between a relay or a split tunnel and its own line; it does not alternate between two lines of its own, nor between a relay and a VPN (the VPN carries the relay's traffic too).",
    ),
];

/// Number of features.
pub const FEATURE_COUNT: usize = FEATURES.len();

/// Raw values in [`FEATURES`] order, before the transform.
fn raw_values(o: &Observation) -> [f64; FEATURE_COUNT] {
    let leg_speed =
        |t: &Option<crate::event::TravelEvidence>| t.as_ref().map_or(0.0, |t| t.speed_kmh);
    let leg_distance =
        |t: &Option<crate::event::TravelEvidence>| t.as_ref().map_or(0.0, |t| t.distance_km);
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    [
        leg_speed(&o.travel),
        leg_distance(&o.travel),
        leg_speed(&o.user_travel),
        leg_distance(&o.user_travel),
        o.rate.map_or(0.0, |r| r.per_minute),
        o.rate
            .map_or(0.0, |r| r.per_minute / r.baseline_per_minute.max(1.0)),
        flag(o.rate.is_some()),
        flag(o.user_agent_change.is_some()),
        flag(o.os_change.is_some()),
        flag(o.scripted_client),
        flag(o.asn_change.is_some()),
        flag(o.new_asn),
        f64::from(o.recent_network_changes),
        f64::from(o.distinct_asns),
        flag(o.country_change.is_some()),
        f64::from(o.distinct_countries),
        flag(o.new_ip),
        f64::from(o.distinct_ips),
        o.session_age_s,
        o.session_requests as f64,
        o.since_previous_s,
        flag(o.allowlisted_network),
        f64::from(o.network_returns),
        f64::from(o.network_rate_per_minute),
        o.network_age_s,
        f64::from(o.network_lone_requests),
        flag(o.network.as_ref().is_some_and(|n| n.anonymiser)),
        f64::from(o.network_direct_returns),
    ]
}

/// Feature vector of one observation, in [`FEATURES`] order, transforms applied.
pub fn extract(observation: &Observation) -> [f64; FEATURE_COUNT] {
    let mut values = raw_values(observation);
    for (value, spec) in values.iter_mut().zip(FEATURES) {
        *value = spec.transform.apply(*value);
    }
    values
}

/// Requests a minute from a network other than the session's first that are evidence on
/// their own: beyond what a person browsing makes (a page load bursts into a handful of API
/// calls, a page every half minute or so).
pub const NETWORK_RATE_EVIDENCE_PER_MINUTE: u32 = 30;

/// Lone requests from a network other than the session's first that are evidence on their
/// own: people's page loads burst into API calls, so a second network that keeps sending
/// single requests is a client polling with the token (a low-and-slow thief).
pub const LONE_REQUESTS_EVIDENCE: u32 = 2;

/// Features that are evidence on their own, with the value they must exceed: a travel leg,
/// a rate above the session's own baseline, a device or network change. The rest is
/// context (age, counts, gaps) that modulates evidence but never is any.
const EVIDENCE: [(usize, f64); 13] = [
    (0, 0.0),                     // travel_speed_kmh
    (2, 0.0),                     // user_travel_speed_kmh
    (5, std::f64::consts::LN_2),  // rate_ratio > 1
    (7, 0.0),                     // user_agent_change
    (8, 0.0),                     // os_change
    (9, 0.0),                     // scripted_client
    (10, 0.0),                    // asn_change
    (11, 0.0),                    // new_asn
    (14, 0.0),                    // country_change
    (22, 0.0),                    // network_returns
    (23, 3.433_987_204_485_146),  // network_rate_per_minute > NETWORK_RATE_EVIDENCE_PER_MINUTE
    (25, std::f64::consts::LN_2), // network_lone_requests >= LONE_REQUESTS_EVIDENCE (> 1)
    (27, 0.0),                    // network_direct_returns
];

/// Whether `x` carries evidence for `reason`: one of the `EVIDENCE` features reported under
/// it is over its bound. A model's contribution through a feature whose reason has no
/// evidence here (a travel feature at 0) is context, explained through the signals that do
/// have evidence, so every named reason is backed by what the request showed.
pub fn evidence_for(reason: Reason, x: &[f64; FEATURE_COUNT]) -> bool {
    EVIDENCE
        .iter()
        .any(|(i, above)| FEATURES[*i].reason == Some(reason) && x[*i] > *above)
}

/// Whether a feature vector carries any evidence (see `EVIDENCE`). The model scores a row
/// without evidence 0: context alone never makes a session risky, and every score above 0
/// can name a concrete reason.
pub fn carries_evidence(x: &[f64; FEATURE_COUNT]) -> bool {
    EVIDENCE.iter().any(|(i, above)| x[*i] > *above)
}

/// The schema as recorded in an artifact: what must match for a model to be usable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureRecord {
    /// Feature name.
    pub name: String,
    /// Unit before the transform.
    pub unit: String,
    /// Transform name.
    pub transform: String,
}

impl FeatureRecord {
    fn describe(&self) -> String {
        format!("`{}` ({}, {})", self.name, self.unit, self.transform)
    }
}

/// The code's schema as records.
pub fn schema_records() -> Vec<FeatureRecord> {
    FEATURES
        .iter()
        .map(|f| FeatureRecord {
            name: f.name.into(),
            unit: f.unit.into(),
            transform: f.transform.name().into(),
        })
        .collect()
}

/// Fingerprint of a schema: SHA-256 over `index:name:unit:transform` lines, first 16 bytes
/// as hex. Docs and reason mappings are deliberately not part of it: rewording a doc line
/// does not invalidate trained models; renaming, reordering or re-transforming does.
pub fn schema_hash_of(records: &[FeatureRecord]) -> String {
    let mut text = String::new();
    for (i, r) in records.iter().enumerate() {
        text += &format!("{i}:{}:{}:{}\n", r.name, r.unit, r.transform);
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    hex::encode(&digest.as_ref()[..16])
}

/// Fingerprint of the code's schema.
pub fn schema_hash() -> String {
    schema_hash_of(&schema_records())
}

/// How `artifact` differs from the code's schema, for the load error; `None` if identical.
pub fn schema_difference(artifact: &[FeatureRecord]) -> Option<String> {
    let code = schema_records();
    if artifact == code.as_slice() {
        return None;
    }
    let mut problems = Vec::new();
    for (i, (a, c)) in artifact.iter().zip(&code).enumerate() {
        if a != c {
            problems.push(format!(
                "feature {i}: artifact has {}, code has {}",
                a.describe(),
                c.describe()
            ));
        }
    }
    if artifact.len() != code.len() {
        problems.push(format!(
            "artifact has {} features, code has {}",
            artifact.len(),
            code.len()
        ));
        for (i, c) in code.iter().enumerate().skip(artifact.len()) {
            problems.push(format!(
                "feature {i} missing from the artifact: {}",
                c.describe()
            ));
        }
        for (i, a) in artifact.iter().enumerate().skip(code.len()) {
            problems.push(format!("feature {i} unknown to the code: {}", a.describe()));
        }
    }
    // Only the first few: a wholly different schema would otherwise print dozens of lines.
    let shown = problems.len().min(4);
    let mut text = problems[..shown].join("; ");
    if problems.len() > shown {
        text += &format!("; and {} more", problems.len() - shown);
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventTime, RateEvidence};
    use crate::track::test_support::{berlin, sao_paulo};
    use crate::track::travel_leg;

    fn index(name: &str) -> usize {
        FEATURES
            .iter()
            .position(|f| f.name == name)
            .unwrap_or_else(|| panic!("no feature {name}"))
    }

    #[test]
    fn names_are_unique_and_documented() {
        for (i, a) in FEATURES.iter().enumerate() {
            assert!(!a.doc.is_empty() && !a.unit.is_empty(), "{}", a.name);
            for b in &FEATURES[i + 1..] {
                assert_ne!(a.name, b.name);
            }
        }
    }

    #[test]
    fn quiet_observation_is_all_zero_but_context() {
        let x = extract(&Observation::default());
        assert!(x.iter().all(|v| *v == 0.0), "{x:?}");
        let x = extract(&Observation {
            session_requests: 1,
            ..Default::default()
        });
        assert_eq!(x[index("session_requests")], 2f64.ln());
    }

    #[test]
    fn extraction_table() {
        let leg = travel_leg(&berlin(), EventTime(0), &sao_paulo(), EventTime(600_000));
        let speed = leg.speed_kmh;
        let distance = leg.distance_km;
        // (what, observation, feature, expected value)
        let cases: Vec<(&str, Observation, &str, f64)> = vec![
            (
                "travel speed",
                Observation {
                    travel: Some(leg.clone()),
                    ..Default::default()
                },
                "travel_speed_kmh",
                speed.ln_1p(),
            ),
            (
                "travel distance",
                Observation {
                    travel: Some(leg.clone()),
                    ..Default::default()
                },
                "travel_distance_km",
                distance.ln_1p(),
            ),
            (
                "user travel is its own feature",
                Observation {
                    user_travel: Some(leg.clone()),
                    ..Default::default()
                },
                "user_travel_speed_kmh",
                speed.ln_1p(),
            ),
            (
                "no leg, no speed",
                Observation {
                    user_travel: Some(leg),
                    ..Default::default()
                },
                "travel_speed_kmh",
                0.0,
            ),
            (
                "rate",
                Observation {
                    rate: Some(RateEvidence {
                        per_minute: 60.0,
                        baseline_per_minute: 5.0,
                    }),
                    ..Default::default()
                },
                "rate_ratio",
                13f64.ln(),
            ),
            (
                "baseline floored at 1/min",
                Observation {
                    rate: Some(RateEvidence {
                        per_minute: 9.0,
                        baseline_per_minute: 0.2,
                    }),
                    ..Default::default()
                },
                "rate_ratio",
                10f64.ln(),
            ),
            (
                "rate known",
                Observation {
                    rate: Some(RateEvidence {
                        per_minute: 0.0,
                        baseline_per_minute: 0.0,
                    }),
                    ..Default::default()
                },
                "rate_known",
                1.0,
            ),
            (
                "UA change",
                Observation {
                    user_agent_change: Some(("Chrome".into(), "curl".into())),
                    scripted_client: true,
                    ..Default::default()
                },
                "user_agent_change",
                1.0,
            ),
            (
                "scripted",
                Observation {
                    scripted_client: true,
                    ..Default::default()
                },
                "scripted_client",
                1.0,
            ),
            (
                "OS change",
                Observation {
                    os_change: Some(("iOS".into(), "Linux".into())),
                    ..Default::default()
                },
                "os_change",
                1.0,
            ),
            (
                "ASN change",
                Observation {
                    asn_change: Some((1, 2)),
                    ..Default::default()
                },
                "asn_change",
                1.0,
            ),
            (
                "country change",
                Observation {
                    country_change: Some(("DE".into(), "RU".into())),
                    ..Default::default()
                },
                "country_change",
                1.0,
            ),
            (
                "new ASN",
                Observation {
                    new_asn: true,
                    ..Default::default()
                },
                "new_asn",
                1.0,
            ),
            (
                "network changes",
                Observation {
                    recent_network_changes: 3,
                    ..Default::default()
                },
                "recent_network_changes",
                4f64.ln(),
            ),
            (
                "distinct IPs",
                Observation {
                    distinct_ips: 7,
                    ..Default::default()
                },
                "distinct_ips",
                8f64.ln(),
            ),
            (
                "session age",
                Observation {
                    session_age_s: 599.0,
                    ..Default::default()
                },
                "session_age_s",
                600f64.ln(),
            ),
            (
                "gap",
                Observation {
                    since_previous_s: 1.5,
                    ..Default::default()
                },
                "since_previous_s",
                2.5f64.ln(),
            ),
            (
                "allowlisted",
                Observation {
                    allowlisted_network: true,
                    ..Default::default()
                },
                "allowlisted_network",
                1.0,
            ),
            (
                "negative age clamps",
                Observation {
                    session_age_s: -5.0,
                    ..Default::default()
                },
                "session_age_s",
                0.0,
            ),
            (
                "NaN is no evidence",
                Observation {
                    since_previous_s: f64::NAN,
                    ..Default::default()
                },
                "since_previous_s",
                0.0,
            ),
        ];
        for (what, obs, feature, expected) in cases {
            let x = extract(&obs);
            let got = x[index(feature)];
            assert!(
                (got - expected).abs() < 1e-12,
                "{what}: {feature} = {got}, want {expected}"
            );
            assert!(x.iter().all(|v| v.is_finite()), "{what}: {x:?}");
        }
    }

    #[test]
    fn evidence_features_are_the_named_ones() {
        let names: Vec<&str> = EVIDENCE.iter().map(|(i, _)| FEATURES[*i].name).collect();
        assert_eq!(
            names,
            [
                "travel_speed_kmh",
                "user_travel_speed_kmh",
                "rate_ratio",
                "user_agent_change",
                "os_change",
                "scripted_client",
                "asn_change",
                "new_asn",
                "country_change",
                "network_returns",
                "network_rate_per_minute",
                "network_lone_requests",
                "network_direct_returns"
            ]
        );
        // The bounds are the documented ones, after the features' transform.
        let rate_bound = f64::from(NETWORK_RATE_EVIDENCE_PER_MINUTE).ln_1p();
        assert!((EVIDENCE[10].1 - rate_bound).abs() < 1e-12);
        let lone_bound = f64::from(LONE_REQUESTS_EVIDENCE - 1).ln_1p();
        assert!((EVIDENCE[11].1 - lone_bound).abs() < 1e-12);
        let context = Observation {
            session_requests: 500,
            session_age_s: 3600.0,
            since_previous_s: 900.0,
            distinct_ips: 4,
            new_ip: true,
            rate: Some(RateEvidence {
                per_minute: 5.0,
                baseline_per_minute: 6.0,
            }),
            ..Default::default()
        };
        assert!(!carries_evidence(&extract(&context)));
        for evidence in [
            Observation {
                new_asn: true,
                ..context.clone()
            },
            Observation {
                rate: Some(RateEvidence {
                    per_minute: 13.0,
                    baseline_per_minute: 6.0,
                }),
                ..context.clone()
            },
            Observation {
                os_change: Some(("a".into(), "b".into())),
                ..context.clone()
            },
            Observation {
                network_lone_requests: LONE_REQUESTS_EVIDENCE,
                ..context.clone()
            },
        ] {
            assert!(carries_evidence(&extract(&evidence)), "{evidence:?}");
        }
        let one_lone = Observation {
            network_lone_requests: LONE_REQUESTS_EVIDENCE - 1,
            ..context.clone()
        };
        assert!(!carries_evidence(&extract(&one_lone)));
    }

    #[test]
    fn evidence_is_named_by_its_own_reason_only() {
        for (i, above) in EVIDENCE {
            let mut x = [0.0; FEATURE_COUNT];
            x[i] = above + 0.01;
            let own = FEATURES[i].reason.expect("evidence features name a signal");
            assert!(evidence_for(own, &x), "{}", FEATURES[i].name);
            for other in FEATURES.iter().filter_map(|f| f.reason) {
                if other != own {
                    assert!(
                        !evidence_for(other, &x),
                        "{} as {other:?}",
                        FEATURES[i].name
                    );
                }
            }
            // At the bound is not over it.
            x[i] = above;
            assert!(!evidence_for(own, &x), "{} at its bound", FEATURES[i].name);
        }
    }

    #[test]
    fn infinite_speed_stays_finite() {
        let mut leg = travel_leg(&berlin(), EventTime(0), &sao_paulo(), EventTime(1000));
        leg.speed_kmh = f64::INFINITY;
        let x = extract(&Observation {
            travel: Some(leg),
            ..Default::default()
        });
        assert!(x[index("travel_speed_kmh")].is_finite() && x[index("travel_speed_kmh")] > 700.0);
    }

    #[test]
    fn schema_hash_is_stable_and_sensitive() {
        let records = schema_records();
        assert_eq!(schema_hash_of(&records), schema_hash());
        assert_eq!(schema_hash().len(), 32);
        let mut renamed = records.clone();
        renamed[3].name = "other".into();
        assert_ne!(schema_hash_of(&renamed), schema_hash());
        let mut swapped = records.clone();
        swapped.swap(0, 1);
        assert_ne!(schema_hash_of(&swapped), schema_hash());
        let mut retransformed = records.clone();
        retransformed[0].transform = "identity".into();
        assert_ne!(schema_hash_of(&retransformed), schema_hash());
    }

    #[test]
    fn schema_difference_names_what_changed() {
        assert_eq!(schema_difference(&schema_records()), None);
        let mut changed = schema_records();
        changed[5].name = "rate_zscore".into();
        let text = schema_difference(&changed).expect("differs");
        assert!(
            text.contains("feature 5")
                && text.contains("rate_zscore")
                && text.contains("rate_ratio"),
            "{text}"
        );
        let mut shorter = schema_records();
        shorter.pop();
        let text = schema_difference(&shorter).expect("differs");
        assert!(
            text.contains("missing") && text.contains(FEATURES[FEATURE_COUNT - 1].name),
            "{text}"
        );
    }
}
