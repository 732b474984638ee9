//! Unit tests of the tracker: geometry, rate windows, session and user features, eviction
//! by count, bytes and idleness, the byte accounting and the session view.

use std::sync::Arc;
use std::time::Duration;

use super::test_support::*;
use super::*;
use crate::config::HumanDuration;
use crate::event::{Claims, Contribution, EventTime, GeoPoint, NetworkKind};

fn tracker() -> SessionTracker {
    SessionTracker::new(&DetectConfig::default())
}

fn observe_all(tracker: &SessionTracker, events: Vec<Ev>) -> Vec<Observation> {
    events
        .into_iter()
        .map(|e| tracker.observe(&e.build()))
        .collect()
}

#[test]
fn haversine_matches_known_distances() {
    // Reference figures: published great-circle distances (Berlin–São Paulo is 10,250 km,
    // not the "about 10,000" of rough summaries; the haversine sphere is within 0.5 % of
    // the ellipsoid everywhere).
    let cases = [
        (berlin(), sao_paulo(), 10_250.0, 0.01),
        (london(), paris(), 344.0, 0.01),
        (berlin(), berlin(), 0.0, 0.0),
    ];
    for (from, to, expected, tolerance) in cases {
        let d = haversine_km(&from, &to);
        assert!(
            (d - expected).abs() <= expected * tolerance + 1e-9,
            "{:?} → {:?}: {d} km, expected {expected}",
            from.city,
            to.city
        );
        assert!((haversine_km(&to, &from) - d).abs() < 1e-6, "symmetric");
    }
    let nowhere = place("x", "XX", f64::NAN, 0.0, 1.0);
    assert_eq!(
        haversine_km(&nowhere, &berlin()),
        0.0,
        "non-finite gives 0, not NaN"
    );
}

#[test]
fn travel_leg_subtracts_radii_and_floors() {
    let t = |s: i64| EventTime::from_secs(T0 + s);
    let mut tight_london = london();
    tight_london.radius_km = 10.0;
    let mut wide_paris = paris();
    wide_paris.radius_km = 500.0;
    let gc = haversine_km(&london(), &paris());
    // (from, to, elapsed, expected lower-bound distance, expected elapsed)
    let cases = [
        (london(), paris(), 3600, gc - 40.0, 3600.0),
        (tight_london.clone(), wide_paris, 60, 0.0, 60.0),
        (london(), paris(), 0, gc - 40.0, 1.0),
        (london(), paris(), -120, gc - 40.0, 120.0),
    ];
    for (from, to, elapsed, distance, expected_elapsed) in cases {
        let leg = travel_leg(&from, t(0), &to, t(elapsed));
        assert!((leg.distance_km - distance).abs() < 1e-6, "{leg:?}");
        assert_eq!(leg.elapsed_s, expected_elapsed);
        assert!((leg.speed_kmh - distance / expected_elapsed * 3600.0).abs() < 1e-6);
        assert!(leg.speed_kmh >= 0.0);
    }
}

#[test]
fn travel_is_reported_between_located_uses_only() {
    let tracker = tracker();
    let obs = observe_all(
        &tracker,
        vec![
            ev(1, 0),
            ev(1, 60).ip("198.51.100.7").geo(Some(sao_paulo())),
            ev(1, 120).private("10.0.0.5"),
            ev(1, 180).ip("203.0.113.99").geo(Some(sao_paulo())),
            ev(1, 240).ip("203.0.113.99").geo(Some(berlin())),
        ],
    );
    assert!(obs[0].travel.is_none(), "first use has nothing to compare");
    let leg = obs[1].travel.as_ref().expect("Berlin → São Paulo");
    assert_eq!(leg.from.city.as_deref(), Some("Berlin"));
    assert_eq!(leg.elapsed_s, 60.0);
    assert!(obs[2].travel.is_none(), "private address: no travel");
    assert!(
        obs[2].country_change.is_none(),
        "private address: no country change"
    );
    assert!(
        obs[3].travel.is_none(),
        "same place as the last located use"
    );
    assert!(obs[4].travel.is_none(), "same IP twice is the same place");
}

#[test]
fn rate_window_and_ewma_baseline() {
    let tracker = tracker();
    // Start on a minute boundary: minute 0 is the partial first minute (never in the
    // baseline); then 5 requests a minute.
    let mut last = Observation::default();
    for minute in 0..4 {
        for k in 0..5 {
            last = tracker.observe(&ev(1, minute * 60 + k * 12).build());
        }
    }
    // Closed full minutes: 1, 2 → no baseline yet (needs 3).
    assert!(last.rate.is_none(), "{:?}", last.rate);
    let obs = tracker.observe(&ev(1, 4 * 60).build());
    let rate = obs.rate.expect("baseline after three full minutes");
    assert_eq!(rate.baseline_per_minute, 5.0);
    // Window: the last 55–60 s (events at 192..=240 s) → 5 requests.
    assert_eq!(rate.per_minute, 5.0);

    // A burst of 40 in the next 20 s: the window counts them, the baseline (previous
    // minutes only) does not move until the minute closes.
    let mut burst = obs;
    for k in 0..40 {
        burst = tracker.observe(&ev(1, 4 * 60 + 1 + k / 2).build());
    }
    let rate = burst.rate.expect("rate");
    assert_eq!(rate.baseline_per_minute, 5.0);
    // Window at 260 s: slots 205–264 s → 216, 228, 240 and the 40 of the burst.
    assert_eq!(rate.per_minute, 43.0);
    // Next minute closes minute 4 (41 requests): winsorized at 3 × 5 = 15 →
    // 0.25·15 + 0.75·5 = 7.5.
    let after = tracker.observe(&ev(1, 5 * 60 + 30).build());
    assert_eq!(after.rate.expect("rate").baseline_per_minute, 7.5);
    // The 60-s window has moved past the burst.
    assert_eq!(after.rate.expect("rate").per_minute, 1.0);

    // Idle minutes are skipped, not folded in as zeros.
    let back = tracker.observe(&ev(1, 60 * 60).build());
    assert_eq!(
        back.rate.expect("rate").baseline_per_minute,
        0.25 * 1.0 + 0.75 * 7.5
    );
}

#[test]
fn out_of_order_events_never_go_negative() {
    let tracker = tracker();
    let obs = observe_all(
        &tracker,
        vec![
            ev(1, 100),
            ev(1, 90).ip("198.51.100.7").geo(Some(paris())),
            ev(1, 95).ip("198.51.100.8").geo(Some(london())),
            ev(1, -100_000),
        ],
    );
    for o in &obs {
        assert!(o.session_age_s >= 0.0);
        for leg in [&o.travel, &o.user_travel].into_iter().flatten() {
            assert!(leg.elapsed_s >= 1.0 && leg.speed_kmh >= 0.0, "{leg:?}");
        }
    }
    let leg = obs[1].travel.as_ref().expect("compared despite lateness");
    assert_eq!(leg.elapsed_s, 10.0);
    // The late Paris use did not replace the newer Berlin one as the reference.
    let snap = tracker.snapshot(fp(1)).expect("session");
    assert_eq!(
        snap.last_location.expect("located").point.city.as_deref(),
        Some("Berlin")
    );
    assert_eq!(snap.last_seen, EventTime::from_secs(T0 + 100));
    assert_eq!(snap.requests, 4);
}

#[test]
fn context_changes_against_the_established_device() {
    // (UA of the second request, expected UA change, OS change, scripted)
    let cases = [
        (ua("Chrome", "Windows 10", false), false, false, false),
        (ua("Firefox", "Windows 10", false), true, false, false),
        (ua("Chrome", "Mac OSX", false), false, true, false),
        (ua("Safari", "iPhone", false), true, true, false),
        (ua("python-requests", "unknown", true), true, false, true),
        (ua("unknown", "unknown", false), false, false, false),
    ];
    for (second, ua_change, os_change, scripted) in cases {
        let tracker = tracker();
        let obs = observe_all(&tracker, vec![ev(1, 0), ev(1, 10).ua(second.clone())]);
        let o = &obs[1];
        assert_eq!(o.user_agent_change.is_some(), ua_change, "{second:?}");
        assert_eq!(o.os_change.is_some(), os_change, "{second:?}");
        assert_eq!(o.scripted_client, scripted, "{second:?}");
    }
    // A script-only session is not a "scripted client on a browser session".
    let tracker = super::tests::tracker();
    let curl = ua("curl", "unknown", true);
    let obs = observe_all(
        &tracker,
        vec![ev(2, 0).ua(curl.clone()), ev(2, 10).ua(curl)],
    );
    assert!(!obs[1].scripted_client && obs[1].user_agent_change.is_none());
    // The reference stays the first browser: the owner coming back is not a change, the
    // attacker's browser is, every time.
    let tracker = super::tests::tracker();
    let obs = observe_all(
        &tracker,
        vec![
            ev(3, 0),
            ev(3, 10).ua(ua("Firefox", "Linux", false)),
            ev(3, 20),
            ev(3, 30).ua(ua("Firefox", "Linux", false)),
        ],
    );
    assert!(obs[2].user_agent_change.is_none());
    assert_eq!(
        obs[3].user_agent_change,
        Some(("Chrome".to_string(), "Firefox".to_string()))
    );
}

#[test]
fn network_changes_and_distinct_counts() {
    let tracker = tracker();
    let obs = observe_all(
        &tracker,
        vec![
            ev(1, 0),
            ev(1, 10).ip("198.51.100.20").asn(Some(6805)),
            ev(1, 20).ip("203.0.113.10").asn(Some(3320)),
            ev(1, 30)
                .ip("192.0.2.1")
                .asn(Some(5089))
                .geo(Some(london())),
        ],
    );
    assert!(!obs[0].new_ip);
    assert_eq!(obs[1].asn_change, Some((3320, 6805)));
    assert!(obs[1].new_ip);
    assert!(!obs[2].new_ip, "seen before");
    assert_eq!(obs[3].country_change, Some(("DE".into(), "GB".into())));
    assert_eq!(obs[3].distinct_ips, 3);
    assert_eq!(obs[3].distinct_countries, 2);
    assert_eq!(obs[3].session_requests, 4);
    assert_eq!(obs[3].session_age_s, 30.0);
}

#[test]
fn new_networks_gaps_and_recent_network_changes() {
    let tracker = tracker();
    let obs = observe_all(
        &tracker,
        vec![
            ev(1, 0),
            ev(1, 10).ip("198.51.100.20").asn(Some(6805)),
            ev(1, 20),
            ev(1, 25).ip("198.51.100.20").asn(Some(6805)),
            ev(1, 15), // late: compared, no gap
            ev(1, 1000),
            ev(1, 1010).ip("192.0.2.1").asn(Some(5089)),
        ],
    );
    // Session-wide: (new_asn, distinct_asns, recent_network_changes, since_previous_s);
    // per network (the session started on 3320): (network_returns,
    // network_rate_per_minute, network_age_s). The late event is compared but moves
    // nothing; the switch back at 1000 s is no return (3320 was idle for 980 s).
    let expected = [
        ((false, 1, 0, 0.0), (0, 0, 0.0)),
        ((true, 2, 1, 10.0), (0, 1, 0.0)),
        ((false, 2, 2, 10.0), (1, 0, 20.0)),
        ((false, 2, 3, 5.0), (2, 2, 15.0)),
        ((false, 2, 4, 0.0), (2, 0, 15.0)), // a late event is still compared (3320 vs 6805)
        ((false, 2, 1, 975.0), (0, 0, 1000.0)),
        ((true, 3, 2, 10.0), (0, 1, 0.0)),
    ];
    for (i, (o, e)) in obs.iter().zip(expected).enumerate() {
        let got = (
            (
                o.new_asn,
                o.distinct_asns,
                o.recent_network_changes,
                o.since_previous_s,
            ),
            (
                o.network_returns,
                o.network_rate_per_minute,
                o.network_age_s,
            ),
        );
        assert_eq!(got, e, "event {i}");
    }
}

#[test]
fn allowlisted_networks_neither_trigger_nor_poison() {
    let config = DetectConfig {
        allow_cidrs: vec!["198.51.100.0/24".parse().expect("cidr")],
        allow_asns: vec![64500],
        ..DetectConfig::default()
    };
    for (name, hop) in [
        (
            "cidr",
            ev(1, 60)
                .ip("198.51.100.9")
                .asn(Some(1))
                .geo(Some(sao_paulo())),
        ),
        (
            "asn",
            ev(1, 60)
                .ip("192.0.2.9")
                .asn(Some(64500))
                .geo(Some(sao_paulo())),
        ),
    ] {
        let tracker = SessionTracker::new(&config);
        let obs = observe_all(&tracker, vec![ev(1, 0), hop, ev(1, 120)]);
        let vpn = &obs[1];
        assert!(vpn.allowlisted_network, "{name}");
        assert_eq!((vpn.network_returns, vpn.network_age_s), (0, 0.0), "{name}");
        // Per network it is still a network: home, VPN and home again within two
        // minutes is what a second party on the VPN looks like.
        assert_eq!(obs[2].network_returns, 1, "{name}");
        assert!(vpn.travel.is_none() && vpn.asn_change.is_none(), "{name}");
        assert!(vpn.country_change.is_none(), "{name}");
        // Back home: compared with Berlin (not the VPN exit), so nothing changed.
        let back = &obs[2];
        assert!(back.travel.is_none(), "{name}: {:?}", back.travel);
        assert!(
            back.asn_change.is_none() && back.country_change.is_none(),
            "{name}"
        );
    }
}

#[test]
fn a_satellite_network_is_no_place_and_no_network_change() {
    // Catalogued networks need no setting: the defaults list nothing.
    let tracker = SessionTracker::new(&DetectConfig::default());
    // Home in Berlin, then in-flight Wi-Fi over Starlink geolocated in São Paulo ten minutes
    // later, then (landed) home again.
    let sky = ev(1, 600)
        .ip("98.97.1.2")
        .asn(Some(14_593))
        .geo(Some(sao_paulo()))
        .network(NetworkKind::Satellite, "SPACEX-STARLINK");
    let obs = observe_all(&tracker, vec![ev(1, 0), sky, ev(1, 1200)]);
    let plane = &obs[1];
    assert!(plane.travel.is_none(), "{:?}", plane.travel);
    assert!(plane.asn_change.is_none() && plane.country_change.is_none());
    assert!(!plane.new_asn && plane.recent_network_changes == 0);
    assert!(
        plane.allowlisted_network,
        "handled like an allowlisted network"
    );
    let network = plane.network.as_ref().expect("catalogued");
    assert_eq!(network.kind, NetworkKind::Satellite);
    assert_eq!(network.asn, Some(14_593));
    assert_eq!(network.org.as_deref(), Some("SPACEX-STARLINK"));
    assert!(!network.anonymiser);
    // Home again: compared with Berlin, not the ground station.
    let back = &obs[2];
    assert!(
        back.travel.is_none() && back.asn_change.is_none(),
        "{back:?}"
    );
    assert!(back.network.is_none());
}

#[test]
fn a_hosting_network_is_an_anonymiser_not_a_place() {
    let tracker = SessionTracker::new(&DetectConfig {
        allow_cidrs: vec!["198.51.100.0/24".parse().expect("cidr")],
        ..DetectConfig::default()
    });
    let vpn = |s| {
        ev(1, s)
            .ip("3.4.5.6")
            .asn(Some(16_509))
            .geo(Some(sao_paulo()))
            .network(NetworkKind::Hosting, "Amazon.com, Inc. (AWS)")
    };
    // Home (Berlin), a consumer VPN "in São Paulo" a minute later, home again, then the
    // operator's own allowlisted VPN.
    let corporate = ev(1, 240).ip("198.51.100.9").geo(Some(sao_paulo()));
    let obs = observe_all(&tracker, vec![ev(1, 0), vpn(60), ev(1, 120), corporate]);
    let o = &obs[1];
    let network = o.network.as_ref().expect("catalogued");
    assert_eq!(network.kind, NetworkKind::Hosting);
    assert!(network.anonymiser, "hosting/VPN egress is an anonymiser");
    // No place: no travel leg and no country from the egress, but a network change.
    assert!(o.travel.is_none(), "{:?}", o.travel);
    assert!(o.country_change.is_none());
    assert_eq!(o.asn_change, Some((3320, 16_509)));
    assert!(!o.allowlisted_network && !o.vouched_network);
    // Back home: no travel either, as the egress never became the last place.
    assert!(obs[2].travel.is_none(), "{:?}", obs[2].travel);
    // Only the operator's list is vouched for.
    assert!(obs[3].vouched_network && obs[3].allowlisted_network);
    let anonymiser = crate::features::FEATURES
        .iter()
        .position(|f| f.name == "anonymiser_network")
        .expect("a feature");
    assert!(crate::features::extract(o)[anonymiser] > 0.0);
    // The decision record's evidence shows it.
    let json = serde_json::to_value(o).expect("json");
    assert_eq!(json["network"]["kind"], "hosting");
    assert_eq!(json["network"]["anonymiser"], true);
    // An uncatalogued network adds nothing to the record.
    assert!(
        serde_json::to_value(&obs[0])
            .expect("json")
            .get("network")
            .is_none()
    );
}

#[test]
fn a_mobile_carrier_is_placed_as_a_region_and_crosses_no_border() {
    let tracker = SessionTracker::new(&DetectConfig::default());
    let phone = |s| {
        ev(1, s)
            .ip("11.0.1.2")
            .asn(Some(65_002))
            .geo(Some(london()))
            .network(NetworkKind::Mobile, "T-Mobile")
    };
    // Berlin at home, "London" on the phone a minute later, home again.
    let obs = observe_all(&tracker, vec![ev(1, 0), phone(60), ev(1, 120)]);
    let scorer = crate::score::RuleScorer::new(&DetectConfig::default());
    for o in &obs[1..] {
        let leg = o.travel.as_ref().expect("a leg");
        let expected = haversine_km(&berlin(), &london()) - MOBILE_RADIUS_KM - berlin().radius_km;
        assert!((leg.distance_km - expected).abs() < 1.0, "{leg:?}");
        assert!(
            leg.from.country.is_none() || leg.to.country.is_none(),
            "{leg:?}"
        );
        assert!(
            !scorer.is_certain(leg),
            "a carrier's place revokes nothing alone"
        );
        assert!(!scorer.assess(o).hard_rule);
    }
    // The phone is one network wherever its blocks are placed; not an anonymiser.
    let network = obs[1].network.as_ref().expect("classified");
    assert!(!network.anonymiser);
}

#[test]
fn a_catalogued_relay_is_a_relay_and_operator_lists_come_first() {
    let relay = |s| {
        ev(1, s)
            .ip("172.224.226.5")
            .asn(Some(64_501))
            .geo(Some(paris()))
            .network(NetworkKind::Relay, "iCloud Private Relay")
    };
    let far = |s| ev(1, s).ip("198.51.100.7").geo(Some(sao_paulo()));
    let obs = observe_all(
        &SessionTracker::new(&DetectConfig::default()),
        vec![relay(0), relay(1), far(60)],
    );
    assert!(obs[0].allowlisted_network && obs[0].network.as_ref().unwrap().anonymiser);
    let leg = obs[2].travel.as_ref().expect("relay region to São Paulo");
    let expected = haversine_km(&paris(), &sao_paulo()) - RELAY_RADIUS_KM - 50.0;
    assert!((leg.distance_km - expected).abs() < 1e-6, "{leg:?}");

    // The operator's allowlist wins over the catalog: no place at all.
    let config = DetectConfig {
        allow_asns: vec![64_501],
        ..DetectConfig::default()
    };
    let obs = observe_all(
        &SessionTracker::new(&config),
        vec![relay(0), relay(1), far(60)],
    );
    assert!(obs[2].travel.is_none(), "{:?}", obs[2].travel);
}

#[test]
fn a_session_begun_on_a_relay_sees_a_second_network() {
    let config = DetectConfig {
        allow_asns: vec![64500],
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    // The owner browses through a privacy relay (location unknown); a thief polls from
    // its own network every ten minutes.
    let relay = |s| ev(1, s).ip("192.0.2.9").asn(Some(64500));
    let mut events = vec![relay(0), relay(1), relay(2)];
    events.extend((1..=4).map(|i| ev(1, i * 600).asn(Some(3320))));
    let obs = observe_all(&tracker, events);
    let thief: Vec<u32> = obs[3..].iter().map(|o| o.network_lone_requests).collect();
    assert_eq!(thief, [0, 1, 2, 3], "the relay was the first network");
    // No place or ASN to compare with: the relay says nothing about where the owner is.
    assert!(obs[3].travel.is_none() && obs[3].asn_change.is_none());
}

#[test]
fn a_relay_keeps_its_users_region() {
    let config = DetectConfig {
        relay_asns: vec![64501],
        ..DetectConfig::default()
    };
    let relay = |s, geo| ev(1, s).ip("192.0.2.9").asn(Some(64501)).geo(Some(geo));
    let far = |s| ev(1, s).ip("198.51.100.7").geo(Some(sao_paulo()));

    // A session seen only through a relay (egress in Paris), then São Paulo a minute
    // later: the relay's region is enough to show the replay.
    let obs = observe_all(
        &SessionTracker::new(&config),
        vec![relay(0, paris()), relay(1, paris()), far(60)],
    );
    assert!(obs[0].allowlisted_network && obs[1].travel.is_none());
    let leg = obs[2].travel.as_ref().expect("relay region to São Paulo");
    let expected = haversine_km(&paris(), &sao_paulo()) - RELAY_RADIUS_KM - 50.0;
    assert!((leg.distance_km - expected).abs() < 1e-6, "{leg:?}");
    assert_eq!(
        leg.from.country, None,
        "no border to cross from a relay egress"
    );
    assert!(obs[2].asn_change.is_none() && obs[2].country_change.is_none());

    // Within the region it is no signal: London direct, Paris relay, London direct.
    let london_direct = |s| ev(1, s).ip("198.51.100.8").geo(Some(london()));
    let obs = observe_all(
        &SessionTracker::new(&config),
        vec![london_direct(0), relay(30, paris()), london_direct(60)],
    );
    assert!(obs.iter().all(|o| o.travel.is_none()), "{obs:?}");

    // A relay hop never blurs a precise place: Berlin direct, a relay exiting in
    // Berlin, then Paris; the tighter bound is the one from the precise Berlin.
    let obs = observe_all(
        &SessionTracker::new(&config),
        vec![
            ev(1, 0),
            relay(30, berlin()),
            ev(1, 60).ip("198.51.100.9").geo(Some(paris())),
        ],
    );
    let leg = obs[2].travel.as_ref().expect("Berlin to Paris in a minute");
    let precise = haversine_km(&berlin(), &paris()) - 20.0 - 20.0;
    assert!((leg.distance_km - precise).abs() < 1e-6, "{leg:?}");
    assert_eq!(leg.from.radius_km, 20.0);
}

#[test]
fn concurrent_use_by_two_tokens_of_one_user() {
    let tracker = tracker();
    let exp = T0 + 3600;
    let obs = observe_all(
        &tracker,
        vec![
            ev(1, 0).jwt("alice", None, exp),
            ev(1, 30).jwt("alice", None, exp),
            ev(2, 60)
                .jwt("alice", None, exp)
                .ip("198.51.100.7")
                .geo(Some(sao_paulo())),
            ev(3, 90)
                .jwt("bob", None, exp)
                .ip("198.51.100.8")
                .geo(Some(sao_paulo())),
            ev(1, 120).jwt("alice", None, exp),
            ev(2, 7 * 3600)
                .jwt("alice", None, exp)
                .ip("198.51.100.7")
                .geo(Some(sao_paulo())),
        ],
    );
    assert!(
        obs[1].user_travel.is_none(),
        "same token: session travel, not concurrency"
    );
    let leg = obs[2]
        .user_travel
        .as_ref()
        .expect("alice's second token far away");
    assert_eq!(leg.from.city.as_deref(), Some("Berlin"));
    assert_eq!(leg.elapsed_s, 30.0);
    assert!(obs[2].travel.is_none(), "token 2's own first use");
    assert!(obs[3].user_travel.is_none(), "bob is another user");
    let back = obs[4]
        .user_travel
        .as_ref()
        .expect("token 1 vs token 2's latest use");
    assert_eq!(back.from.city.as_deref(), Some("São Paulo"));
    assert!(obs[5].user_travel.is_none(), "outside the 6-h window");
    assert_eq!(tracker.users_len(), 2);
}

#[test]
fn a_stopped_token_makes_no_concurrent_use_of_the_owners_other_token() {
    let tracker = tracker();
    let exp = T0 + 3600;
    let thief = |s| {
        ev(2, s)
            .jwt("alice", None, exp)
            .ip("198.51.100.7")
            .geo(Some(sao_paulo()))
    };
    let owner = |s| ev(1, s).jwt("alice", None, exp);
    let before = observe_all(&tracker, vec![owner(0), thief(30), owner(60)]);
    assert!(before[2].user_travel.is_some(), "the thief's token is live");
    // Token 2 is revoked; the thief keeps sending it and is refused at the check.
    let assessment = Assessment {
        score: 1.0,
        ..Default::default()
    };
    tracker.record(fp(2), &assessment, Some(Action::Revoke));
    let after = observe_all(&tracker, vec![thief(90), owner(120), owner(150)]);
    assert!(
        after[0].user_travel.is_none(),
        "a dead token is compared with nothing"
    );
    // The owner's token is compared with the thief's last use before the revocation (90 s
    // ago), never with the ones after it.
    let leg = after[1].user_travel.as_ref().expect("the last live use");
    assert_eq!(leg.elapsed_s, 90.0);
}

#[test]
fn a_leg_with_a_phone_at_either_end_says_so() {
    let exp = T0 + 3600;
    let iphone = || ua("Mobile Safari", "iPhone", false);
    let far = |n, s| {
        ev(n, s)
            .jwt("alice", None, exp)
            .ip("198.51.100.7")
            .geo(Some(sao_paulo()))
    };
    // One token: a laptop's leg is not a phone's; the phone's is, whichever end it sent.
    let obs = observe_all(
        &tracker(),
        vec![
            ev(1, 0),
            far(1, 60),
            ev(2, 0).ua(iphone()),
            far(2, 60),
            ev(3, 0),
            far(3, 60).ua(iphone()),
        ],
    );
    let phone = |o: &Observation| o.travel.as_ref().expect("a leg").phone;
    assert_eq!(
        [phone(&obs[1]), phone(&obs[3]), phone(&obs[5])],
        [false, true, true]
    );
    // Two tokens of one user: the owner's phone at home, the laptop abroad.
    let obs = observe_all(
        &tracker(),
        vec![
            ev(4, 0).jwt("bob", None, exp).ua(iphone()),
            far(5, 30).jwt("bob", None, exp),
        ],
    );
    assert!(obs[1].user_travel.as_ref().expect("concurrent").phone);
}

#[test]
fn a_login_session_interleaving_on_two_tokens_shows_returns() {
    // Token 1 is used from its own network in the same city, token 2 from home; owner and
    // thief alternate every 20 s.
    let interleaved = |sid_1: &str, sid_2: &str| {
        let exp = T0 + 3600;
        let far = |s| {
            ev(1, s)
                .jwt("alice", Some(sid_1), exp)
                .ip("198.51.100.7")
                .asn(Some(64500))
        };
        let home = |s| ev(2, s).jwt("alice", Some(sid_2), exp);
        let obs = observe_all(&tracker(), vec![home(0), far(20), home(40), far(60)]);
        obs.iter().map(|o| o.network_returns).collect::<Vec<u32>>()
    };
    // Token 1 was stolen; the owner has refreshed to token 2 (one sid). Each token alone
    // never switches networks; the login session does.
    assert_eq!(interleaved("s-1", "s-1"), [0, 0, 1, 2]);
    // Two devices of one user (two sids) on two networks are two parties by design.
    assert_eq!(interleaved("phone", "laptop"), [0, 0, 0, 0]);
}

#[test]
fn returns_tell_places_of_one_asn_apart_on_direct_networks() {
    // Owner in Berlin and thief on the same ISP (AS 3320), alternating every 20 s; the
    // thief's address placed `thief_at`.
    let hamburg = || Some(place("Hamburg", "DE", 53.551, 9.993, 20.0));
    let potsdam = || Some(place("Potsdam", "DE", 52.39, 13.065, 20.0));
    let returns = |config: &DetectConfig, thief_at: Option<GeoPoint>, sids: Option<&str>| {
        let exp = T0 + 3600;
        // With a sid, owner and thief hold two tokens of one login session; else one.
        let token = |n, s| match sids {
            Some(sid) => ev(n, s).jwt("alice", Some(sid), exp),
            None => ev(1, s),
        };
        let owner = |s| token(2, s);
        let thief = |s| token(1, s).ip("198.51.100.7").geo(thief_at.clone());
        let tracker = SessionTracker::new(config);
        let events = vec![owner(0), thief(20), owner(40), thief(60)];
        observe_all(&tracker, events)
            .iter()
            .map(|o| o.network_returns)
            .collect::<Vec<u32>>()
    };
    let direct = DetectConfig::default();
    let allowlisted = DetectConfig {
        allow_asns: vec![3320],
        ..DetectConfig::default()
    };
    let cases = [
        ("one token, Hamburg", &direct, hamburg(), None, [0, 0, 1, 2]),
        (
            "one login session on two tokens",
            &direct,
            hamburg(),
            Some("s-1"),
            [0, 0, 1, 2],
        ),
        ("a block within 100 km", &direct, potsdam(), None, [0; 4]),
        (
            "one city, another address",
            &direct,
            Some(berlin()),
            None,
            [0; 4],
        ),
        ("unlocated", &direct, None, None, [0; 4]),
        // An allowlisted egress's place says nothing about who is there.
        ("allowlisted ASN", &allowlisted, hamburg(), None, [0; 4]),
    ];
    for (what, config, thief_at, sids, want) in cases {
        assert_eq!(returns(config, thief_at, sids), want, "{what}");
    }
}

#[test]
fn eviction_by_count_keeps_the_most_recent() {
    let config = DetectConfig {
        max_sessions: 3,
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    for n in 1..=3 {
        tracker.observe(&ev(n, i64::from(n)).build());
    }
    tracker.observe(&ev(1, 10).build()); // 1 is now the most recent
    tracker.observe(&ev(4, 11).build());
    assert_eq!(tracker.len(), 3);
    assert!(
        tracker.snapshot(fp(2)).is_none(),
        "least recently seen goes first"
    );
    for n in [1, 3, 4] {
        assert!(tracker.snapshot(fp(n)).is_some(), "session {n}");
    }
    // A new session is never its own victim, even with an older event time.
    tracker.observe(&ev(5, -1000).build());
    assert!(tracker.snapshot(fp(5)).is_some());
    assert_eq!(tracker.len(), 3);
    assert_eq!(tracker.capacity_evictions(), 2, "sessions 2 and one more");
}

#[test]
fn eviction_by_bytes() {
    // The shard arrays of both maps, there before any session.
    let empty = tracker().approx_bytes();
    let one = {
        let t = tracker();
        t.observe(&ev(1, 0).build());
        t.approx_bytes() - empty
    };
    assert!(one > 100, "{one}");
    let config = DetectConfig {
        max_session_bytes: empty + one * 5 + one / 2,
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    for n in 0..20 {
        tracker.observe(&ev(n, i64::from(n)).build());
    }
    assert!(
        tracker.len() <= 5 && tracker.len() >= 4,
        "{}",
        tracker.len()
    );
    assert!(tracker.approx_bytes() <= config.max_session_bytes);
    assert!(tracker.snapshot(fp(19)).is_some());
    assert!(tracker.snapshot(fp(0)).is_none());
}

#[test]
fn users_count_against_the_byte_budget() {
    let token = |n: u8| {
        ev(n, i64::from(n))
            .jwt(&format!("user-{n}"), Some(&format!("sid-{n}")), T0 + 3600)
            .build()
    };
    let empty = tracker().approx_bytes();
    let (session_and_user, user) = {
        let t = tracker();
        t.observe(&token(0));
        (
            t.approx_bytes() - empty,
            t.user_bytes.load(Ordering::Relaxed),
        )
    };
    assert!(user > 300, "a user with a login session: {user}");
    let config = DetectConfig {
        max_session_bytes: empty + 10 * session_and_user,
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    for n in 0..100 {
        tracker.observe(&token(n));
        assert!(tracker.approx_bytes() <= config.max_session_bytes);
    }
    // Users go with their sessions, least recently seen first, not at max_sessions.
    assert!(
        (7..=10).contains(&tracker.users_len()),
        "{}",
        tracker.users_len()
    );
    assert!((7..=10).contains(&tracker.len()), "{}", tracker.len());
    assert!(tracker.snapshot(fp(99)).is_some());
    assert!(tracker.snapshot(fp(0)).is_none());
    let first = user_key(&Claims {
        iss: Some("https://id.example.com".into()),
        sub: Some("user-0".into()),
        ..Claims::default()
    });
    assert!(first.is_some_and(|user| !tracker.users.contains_key(&user.key)));
}

#[test]
fn eviction_by_idle_timeout_and_token_expiry() {
    let config = DetectConfig {
        session_idle_timeout: HumanDuration(Duration::from_secs(600)),
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    tracker.observe(&ev(1, 0).build());
    tracker.observe(&ev(2, 0).build());
    tracker.observe(&ev(3, 0).jwt("carol", None, T0 + 300).build());
    tracker.observe(&ev(2, 500).build()); // still active
    tracker.observe(&ev(3, 500).jwt("carol", None, T0 + 300).build());
    let at = |s: i64| EventTime::from_secs(T0 + s);

    assert_eq!(
        tracker.evict_idle(at(300)),
        0,
        "nothing idle, exp grace not over"
    );
    // exp + 5 min grace passed for 3; 1 idle for 601 s.
    assert_eq!(tracker.evict_idle(at(601)), 2);
    assert!(tracker.snapshot(fp(1)).is_none() && tracker.snapshot(fp(3)).is_none());
    assert!(tracker.snapshot(fp(2)).is_some(), "re-queued, not evicted");
    assert_eq!(tracker.evict_idle(at(1101)), 1);
    assert!(tracker.is_empty());
    assert_eq!(
        tracker.capacity_evictions(),
        0,
        "idle expiry is not memory pressure"
    );
    assert_eq!(
        tracker.session_bytes.load(Ordering::Relaxed),
        0,
        "bytes returned with the sessions"
    );
    // Users older than the concurrent-use window go too.
    tracker.evict_idle(at(USER_TRAVEL_WINDOW_S + 1000));
    assert_eq!(tracker.users_len(), 0);
    assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn users_are_bounded_like_sessions() {
    let config = DetectConfig {
        max_sessions: 4,
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    for n in 0..10u8 {
        let sub = format!("user-{n}");
        tracker.observe(&ev(n, i64::from(n)).jwt(&sub, None, T0 + 3600).build());
    }
    assert_eq!(tracker.users_len(), 4);
    assert_eq!(tracker.users.len(), 4);
    assert_eq!(tracker.len(), 4);
}

#[test]
fn counters_match_the_maps_under_churn() {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    let config = DetectConfig {
        max_sessions: 50,
        session_idle_timeout: HumanDuration(Duration::from_secs(300)),
        ..DetectConfig::default()
    };
    let tracker = SessionTracker::new(&config);
    let mut rng = SmallRng::seed_from_u64(11);
    let mut now = 0i64;
    for step in 0..5_000 {
        now += rng.random_range(0..5);
        let n: u8 = rng.random_range(0..120);
        // Jitter: some events arrive a little late.
        let at = now - rng.random_range(0..3);
        let mut e = ev(n, at).ip(&format!("192.0.2.{}", rng.random_range(1..20u8)));
        if n.is_multiple_of(3) {
            e = e.jwt(
                &format!("u{}", n % 7),
                None,
                T0 + rng.random_range(100..4000),
            );
        }
        if rng.random_bool(0.2) {
            e = e.geo(Some(sao_paulo()));
        }
        let obs = tracker.observe(&e.build());
        let score = if obs.travel.is_some() { 0.99 } else { 0.0 };
        let a = Assessment {
            score,
            contributions: vec![],
            hard_rule: false,
        };
        tracker.record(fp(n), &a, None);
        if step % 97 == 0 {
            tracker.evict_idle(EventTime::from_secs(T0 + now));
        }
        assert!(tracker.len() <= 50);
    }
    assert_eq!(tracker.len(), tracker.sessions.len());
    assert_eq!(tracker.users_len(), tracker.users.len());
    let charged: usize = tracker.sessions.iter().map(|s| s.charged_bytes).sum();
    assert_eq!(tracker.session_bytes.load(Ordering::Relaxed), charged);
    let charged: usize = tracker.users.iter().map(|u| u.charged_bytes).sum();
    assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), charged);
    // The tables as read back after each insert are the tables as they are.
    assert_eq!(
        tracker.session_tables.bytes(),
        memory::MapTables::new(&tracker.sessions).bytes()
    );
    assert_eq!(
        tracker.user_tables.bytes(),
        memory::MapTables::new(&tracker.users).bytes()
    );
    assert!(tracker.session_queue.lock().len() <= 2 * tracker.len() + 1024);
    // Every live session still has a queue entry, so it can be evicted.
    tracker.evict_idle(EventTime::from_secs(T0 + now + 100_000));
    assert!(tracker.is_empty(), "{} left", tracker.len());
    assert_eq!(tracker.session_bytes.load(Ordering::Relaxed), 0);
    assert_eq!(tracker.users_len(), 0);
    assert_eq!(tracker.user_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn record_keeps_the_strongest_action_and_explains() {
    let tracker = tracker();
    let quiet = Assessment {
        score: 0.0,
        contributions: vec![],
        hard_rule: false,
    };
    tracker.observe(&ev(1, 0).build());
    tracker.record(fp(1), &quiet, None);
    let obs = tracker.observe(
        &ev(1, 60)
            .seq(7)
            .ua(ua("Firefox", "Windows 10", false))
            .build(),
    );
    assert!(obs.user_agent_change.is_some());
    let assessment = Assessment {
        score: 0.65,
        contributions: vec![Contribution {
            reason: crate::event::Reason::UserAgentChange,
            weight: 0.65,
        }],
        hard_rule: false,
    };
    assert_eq!(tracker.prior_action(fp(1)), None);
    tracker.record(fp(1), &assessment, Some(Action::Flag));
    assert_eq!(tracker.prior_action(fp(1)), Some(Action::Flag));
    // (action recorded, action remembered afterwards)
    for (action, remembered) in [
        (None, Action::Flag),
        (Some(Action::Revoke), Action::Revoke),
        (Some(Action::Flag), Action::Revoke),
        (None, Action::Revoke),
    ] {
        tracker.observe(&ev(1, 61).build());
        tracker.record(fp(1), &quiet, action);
        assert_eq!(tracker.prior_action(fp(1)), Some(remembered), "{action:?}");
    }
    tracker.record(fp(9), &assessment, Some(Action::Revoke)); // unknown: ignored
    assert_eq!(tracker.prior_action(fp(9)), None);

    let snap = tracker.snapshot(fp(1)).expect("session");
    assert_eq!(snap.last_score, 0.0, "the latest event was quiet");
    let signal = snap
        .last_signal
        .as_ref()
        .expect("the latest signal is kept");
    assert_eq!(signal.seq, 7);
    assert_eq!(signal.observation.user_agent_change, obs.user_agent_change);
    let json = serde_json::to_value(&snap).expect("serializes");
    assert_eq!(json["fingerprint"], fp(1).to_hex());
    assert_eq!(json["action"], "revoke");
    assert_eq!(
        json["last_signal"]["assessment"]["contributions"][0]["reason"],
        "user_agent_change"
    );
    assert_eq!(json["last_location"]["city"], "Berlin");
    assert_eq!(json["device"]["family"], "Chrome");
}

#[test]
fn explanations_pair_with_their_event_when_a_batch_is_observed_first() {
    let tracker = tracker();
    let batch = [
        ev(1, 0).seq(0).build(),
        ev(1, 10)
            .seq(1)
            .ua(ua("Firefox", "Windows 10", false))
            .build(),
        ev(1, 20).seq(2).build(),
        ev(1, 30).seq(3).ip("192.0.2.77").asn(Some(6805)).build(),
    ];
    let observations: Vec<_> = batch.iter().map(|e| tracker.observe(e)).collect();
    let score = |o: &Observation| Assessment {
        score: if o.user_agent_change.is_some() {
            0.65
        } else {
            0.0
        },
        contributions: vec![],
        hard_rule: false,
    };
    let mut explained = Vec::new();
    for o in &observations {
        tracker.record(fp(1), &score(o), None);
        explained.push(
            tracker
                .snapshot(fp(1))
                .and_then(|s| s.last_signal)
                .map(|s| s.seq),
        );
    }
    assert_eq!(explained, vec![None, Some(1), Some(1), Some(1)]);
    let signal = tracker
        .snapshot(fp(1))
        .and_then(|s| s.last_signal)
        .expect("signal");
    assert!(signal.observation.user_agent_change.is_some());
    assert!(
        signal.observation.asn_change.is_none(),
        "not the later event's features"
    );
}

#[test]
fn snapshot_shows_claims_but_never_a_token() {
    let tracker = tracker();
    tracker.observe(&ev(1, 0).jwt("dave", Some("s-1"), T0 + 3600).build());
    let json =
        serde_json::to_string(&tracker.snapshot(fp(1)).expect("session")).expect("serializes");
    for needle in ["\"sub\":\"dave\"", "\"sid\":\"s-1\"", "\"kind\":\"jwt\""] {
        assert!(json.contains(needle), "{needle} in {json}");
    }
    assert!(
        !json.contains("Bearer") && !json.contains("token\":"),
        "{json}"
    );
}

#[test]
fn concurrent_observers_agree_on_counts() {
    let tracker = Arc::new(tracker());
    std::thread::scope(|scope| {
        for worker in 0..4u8 {
            let tracker = tracker.clone();
            scope.spawn(move || {
                for k in 0..200 {
                    // Each worker owns its sessions, as the pipeline routes them.
                    let n = worker * 50 + (k % 50) as u8;
                    tracker.observe(&ev(n, i64::from(k)).build());
                    let _ = tracker.snapshot(fp(n));
                }
            });
        }
    });
    assert_eq!(tracker.len(), 200);
    let total: u64 = (0..200u8)
        .map(|n| tracker.snapshot(fp(n)).expect("session").requests)
        .sum();
    assert_eq!(total, 800);
}
