//! Unit tests of the per-network history: places within one ASN, returns, per-network rate
//! and age, lone requests, late events and bounds.

use super::*;

const HOME: u32 = 3320;
const THIEF: u32 = 64500;
const CARRIER: u32 = 6805;

fn at(secs: i64) -> EventTime {
    EventTime::from_secs(1_800_000_000 + secs)
}

/// An unlocated spot of `asn`: returns compare ASNs alone.
fn net(asn: u32) -> Spot {
    Spot {
        asn,
        ipv6: false,
        place: None,
        shared: false,
        anonymiser: false,
    }
}

/// Feed `(second, asn)` requests in order; the signals of each.
fn run(requests: &[(i64, u32)]) -> Vec<NetworkSignals> {
    run_spots(
        &requests
            .iter()
            .map(|(s, asn)| (*s, net(*asn)))
            .collect::<Vec<_>>(),
    )
}

fn run_spots(requests: &[(i64, Spot)]) -> Vec<NetworkSignals> {
    let mut h = NetworkHistory::default();
    requests
        .iter()
        .map(|(s, spot)| h.observe(*spot, at(*s), true))
        .collect()
}

#[test]
fn places_inside_one_asn_are_networks_when_geoip_tells_them_apart() {
    const ISP: u32 = 3320;
    let v4 = |lat: f64, lon: f64| Spot {
        asn: ISP,
        ipv6: false,
        place: Some((lat, lon)),
        shared: false,
        anonymiser: false,
    };
    let berlin = v4(52.52, 13.405);
    let hamburg = v4(53.551, 9.993);
    let potsdam = v4(52.39, 13.065);
    // A carrier gateway's record 250 km from the user's city (its radius may cover it:
    // still two blocks GeoIP tells apart).
    let gateway = v4(51.34, 12.37);
    let hamburg_v6 = Spot {
        ipv6: true,
        ..hamburg
    };
    let alternate = |a: Spot, b: Spot| {
        run_spots(&[(0, a), (20, b), (40, a), (60, b), (80, a)])
            .iter()
            .map(|s| s.returns)
            .collect::<Vec<u32>>()
    };
    let cases = [
        (
            "two cities 255 km apart on one ISP",
            berlin,
            hamburg,
            [0, 0, 1, 2, 3],
        ),
        (
            "a carrier gateway and a city",
            berlin,
            gateway,
            [0, 0, 1, 2, 3],
        ),
        (
            "two blocks of one city (a NAT pool)",
            berlin,
            berlin,
            [0; 5],
        ),
        ("a suburb's block", berlin, potsdam, [0; 5]),
        (
            "IPv4 and IPv6 of a dual-stack client",
            berlin,
            hamburg_v6,
            [0; 5],
        ),
        ("an unlocated address", berlin, net(ISP), [0; 5]),
    ];
    for (what, a, b, want) in cases {
        assert_eq!(alternate(a, b), want, "{what}");
    }
}

#[test]
fn one_switch_is_not_a_return_but_interleaving_is() {
    // A phone leaving home Wi-Fi: one switch, never back within the window.
    let phone = run(&[(0, HOME), (30, HOME), (60, CARRIER), (90, CARRIER)]);
    assert!(phone.iter().all(|s| s.returns == 0), "{phone:?}");
    // Owner and thief alternating: every switch after the first returns.
    let shared = run(&[(0, HOME), (20, THIEF), (40, HOME), (60, THIEF), (80, HOME)]);
    let returns: Vec<u32> = shared.iter().map(|s| s.returns).collect();
    assert_eq!(returns, [0, 0, 1, 2, 3]);
    // Returns older than the window no longer count.
    let spread = run(&[(0, HOME), (20, THIEF), (40, HOME), (40 + 601, HOME)]);
    assert_eq!(spread[2].returns, 1);
    assert_eq!(spread[3].returns, 0);
    // Going back to a network last used more than two minutes ago is no return: the
    // phone left Wi-Fi mid-visit, and is home again for the next visit.
    let later = run(&[(0, HOME), (20, CARRIER), (100, CARRIER), (141, HOME)]);
    assert_eq!(later[3].returns, 0);
    let sooner = run(&[(0, HOME), (20, CARRIER), (100, CARRIER), (120, HOME)]);
    assert_eq!(sooner[3].returns, 1);
}

#[test]
fn rate_and_age_are_per_network() {
    let mut requests: Vec<(i64, u32)> = (0..10).map(|i| (i * 6, HOME)).collect();
    // A scraper on another network: 30 requests in 30 s, starting at 60 s.
    requests.extend((0..30).map(|i| (60 + i, THIEF)));
    requests.push((95, HOME));
    let s = run(&requests);
    assert_eq!(s[9].rate_per_minute, 0, "home is where the session started");
    assert_eq!(s[39].rate_per_minute, 30, "thief: its own 30 only");
    assert_eq!(s[39].age_s, 29.0);
    assert_eq!(s[40].age_s, 95.0, "home was first used at 0 s");
}

#[test]
fn lone_requests_are_counted_once_confirmed() {
    // A page load: a burst within seconds, never alone.
    let burst = run(&[(0, HOME), (1, HOME), (2, HOME), (40, HOME), (41, HOME)]);
    assert!(burst.iter().all(|s| s.lone_requests == 0), "{burst:?}");
    // A lone request every few minutes from a second network: each one confirms the
    // previous stood alone.
    let slow = run(&[
        (0, HOME),
        (60, THIEF),
        (600, THIEF),
        (1500, THIEF),
        (1505, THIEF),
    ]);
    let lone: Vec<u32> = slow.iter().map(|s| s.lone_requests).collect();
    assert_eq!(
        lone,
        [0, 0, 1, 2, 2],
        "the request at 1500 s has a companion"
    );
    // On the network the session started on, polling is how the session is used (an API
    // client), not a second party.
    let poller = run(&[(0, HOME), (600, HOME), (1200, HOME), (1800, HOME)]);
    assert!(poller.iter().all(|s| s.lone_requests == 0), "{poller:?}");
    // A late companion makes the latest request not alone.
    let mut h = NetworkHistory::default();
    h.observe(net(HOME), at(-60), true);
    h.observe(net(THIEF), at(0), true);
    h.observe(net(THIEF), at(600), true);
    h.observe(net(THIEF), at(595), false);
    assert_eq!(h.observe(net(THIEF), at(1200), true).lone_requests, 1);
}

#[test]
fn late_events_do_not_move_current_and_state_stays_bounded() {
    let mut h = NetworkHistory::default();
    h.observe(net(HOME), at(100), true);
    h.observe(net(THIEF), at(50), false);
    // Still on HOME: going to CARRIER is a plain switch, not a return.
    assert_eq!(h.observe(net(CARRIER), at(110), true).returns, 0);
    for i in 0..100u32 {
        let place = Some((f64::from(i % 5) * 10.0, 0.0));
        h.observe(
            Spot {
                asn: i % 7,
                ipv6: false,
                place,
                shared: i % 3 == 0,
                anonymiser: i % 5 == 0,
            },
            at(200 + i64::from(i)),
            true,
        );
    }
    assert!(h.networks.len() <= NETWORKS_CAP);
    assert!(h.spots.len() <= SPOTS_CAP);
    assert!(h.returns.len() <= RETURNS_CAP);
    assert!(h.direct_returns.len() <= RETURNS_CAP);
}

#[test]
fn returns_through_a_shared_egress_are_not_direct_ones() {
    const RELAY: u32 = 13335;
    let relay = Spot {
        shared: true,
        ..net(RELAY)
    };
    // Safari through the relay, apps on the home line: returns, none of them direct.
    let honest = run_spots(&[
        (0, net(HOME)),
        (20, relay),
        (40, net(HOME)),
        (60, relay),
        (80, net(HOME)),
    ]);
    assert_eq!(honest.last().map(|s| s.returns), Some(3));
    assert!(honest.iter().all(|s| s.direct_returns == 0), "{honest:?}");
    // The owner's line and a thief's host interleaving: every return is direct.
    let thief = run(&[(0, HOME), (20, THIEF), (40, HOME), (60, THIEF), (80, HOME)]);
    let direct: Vec<u32> = thief.iter().map(|s| s.direct_returns).collect();
    assert_eq!(direct, [0, 0, 1, 2, 3]);
    assert!(thief.iter().all(|s| s.direct_returns == s.returns));
    // The owner on the relay and a thief on a hosting host interleaving: no device splits
    // its traffic between a relay and a VPN, so these are direct too.
    let host = Spot {
        anonymiser: true,
        ..net(THIEF)
    };
    let relayed = run_spots(&[(0, relay), (20, host), (40, relay), (60, host), (80, relay)]);
    let direct: Vec<u32> = relayed.iter().map(|s| s.direct_returns).collect();
    assert_eq!(direct, [0, 0, 1, 2, 3]);
}
