//! The simulator against its own per-request ground truth: labels, attack traits, tokens.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use super::*;
use crate::lab::world::{NetKind, locate};

fn start() -> EventTime {
    crate::event::EventTime::parse_rfc3339("2026-11-23T12:00:00Z").unwrap()
}

fn spec(users: usize, hours: u64, fraction: f64, seed: u64) -> SimSpec {
    SimSpec {
        attack_fraction: fraction,
        ..SimSpec::new(seed, start(), hours * 3600, users)
    }
}

/// A day of 500 users with many attacks, shared by the tests below.
fn day() -> &'static (SimSpec, Generated) {
    static DAY: OnceLock<(SimSpec, Generated)> = OnceLock::new();
    DAY.get_or_init(|| {
        let spec = spec(500, 24, 0.15, 11);
        let sim = generate(&spec, &SimKeys::from_seed(11));
        (spec, sim)
    })
}

/// Per session: indices of its lines.
fn lines_by_session(sim: &Generated) -> HashMap<usize, Vec<usize>> {
    let mut by: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..sim.len() {
        by.entry(sim.session_of(i)).or_default().push(i);
    }
    by
}

#[test]
fn labels_match_the_per_request_ground_truth() {
    let (_, sim) = day();
    let labels = sim.labels();
    let mut first_attack: HashMap<usize, i64> = HashMap::new();
    let mut attack_ips: HashMap<usize, HashSet<IpAddr>> = HashMap::new();
    for i in 0..sim.len() {
        let s = sim.session_of(i);
        let label = &labels[s];
        let (t, ip) = (sim.time(i), sim.client_ip(i));
        if sim.is_attacker(i) {
            assert!(label.is_attack(), "session {s}");
            assert!(label.attacker_ips.contains(&ip), "session {s} {ip}");
            assert!(t >= label.attack_start.unwrap(), "session {s}");
            let e = first_attack.entry(s).or_insert(t.0);
            *e = (*e).min(t.0);
            attack_ips.entry(s).or_default().insert(ip);
        } else if let Some(start) = label.attack_start {
            // The labels' rule never mistakes a victim's request for the attacker's.
            assert!(
                t < start || !label.attacker_ips.contains(&ip),
                "session {s}: victim request at an attacker address"
            );
        }
    }
    let attacked: Vec<&SessionLabel> = labels.iter().filter(|l| l.is_attack()).collect();
    assert!(attacked.len() >= 60, "{}", attacked.len());
    for l in attacked {
        let s = l.session as usize;
        assert_eq!(first_attack.get(&s), l.attack_start.map(|t| t.0).as_ref());
        let ips: HashSet<IpAddr> = l.attacker_ips.iter().copied().collect();
        assert_eq!(ips.len(), l.attacker_ips.len(), "no duplicates");
        assert_eq!(attack_ips.get(&s), Some(&ips));
        assert_eq!(l.label, "attack");
    }
    for l in labels.iter().filter(|l| !l.is_attack()) {
        assert_eq!(l.label, "benign");
        assert!(l.attacker_ips.is_empty() && l.attack_start.is_none());
    }
}

#[test]
fn plan_deals_attack_types_evenly_with_the_tokens_they_need() {
    let spec = spec(3000, 24, 0.03, 5);
    let plans = plan_sessions(&spec);
    let people = plans.iter().filter(|p| p.role == Role::Person).count();
    let automation = plans.iter().filter(|p| p.role == Role::Automation).count();
    assert_eq!(automation, 30);
    assert!(plans.len() > 3000, "second devices add sessions");
    let mut per_type = [0usize; ATTACK_TYPES.len()];
    for p in &plans {
        if let Some(a) = p.attack {
            per_type[a] += 1;
            assert_eq!(p.role, Role::Person);
            if a == attack::FOREIGN_REPLAY_IDLE || a == attack::LOW_AND_SLOW {
                assert_eq!(p.credential, Credential::Cookie);
            }
        }
        if p.second_device {
            let first = &plans[p.session as usize - 1];
            assert!(p.multi_device && !p.desktop && first.multi_device);
            assert_eq!(
                (&first.user, first.home, first.host),
                (&p.user, p.home, p.host)
            );
        }
    }
    let total: usize = per_type.iter().sum();
    assert_eq!(total, (people as f64 * 0.03).round() as usize);
    let (lo, hi) = (
        per_type.iter().min().unwrap(),
        per_type.iter().max().unwrap(),
    );
    assert!(hi - lo <= 1, "{per_type:?}");
    // Office workers live in office hubs; session numbers are positions.
    for (i, p) in plans.iter().enumerate() {
        assert_eq!(p.session as usize, i);
        if p.office {
            assert!(catalog::office_hubs().contains(&p.home));
        }
    }
}

fn ua_of(sim: &Generated, i: usize) -> &str {
    let (session, request) = sim.request(i);
    &session.uas[usize::from(request.ua)]
}

fn city_of(ip: IpAddr) -> (usize, NetKind) {
    locate(ip).unwrap_or_else(|| panic!("{ip} is outside the synthetic plan"))
}

#[test]
fn every_attack_shows_its_defining_traits() {
    let (spec, sim) = day();
    let plans = plan_sessions(spec);
    let by_session = lines_by_session(sim);
    let mut checked = [0usize; ATTACK_TYPES.len()];
    for label in sim.labels().iter().filter(|l| l.is_attack()) {
        let s = label.session as usize;
        let home = plans[s].home;
        let lines = &by_session[&s];
        let (attacker, victim): (Vec<usize>, Vec<usize>) =
            lines.iter().partition(|i| sim.is_attacker(**i));
        let start = label.attack_start.unwrap().0;
        let end_of_attack = attacker.iter().map(|i| sim.time(*i).0).max().unwrap();
        let victim_uas: HashSet<&str> = victim.iter().map(|i| ua_of(sim, *i)).collect();
        let victim_asns: HashSet<u32> = victim
            .iter()
            .map(|i| {
                let (c, k) = city_of(sim.client_ip(*i));
                world::asn(c, k)
            })
            .collect();
        let kind = ATTACK_TYPES
            .iter()
            .position(|t| Some(*t) == label.attack_type.as_deref())
            .unwrap();
        checked[kind] += 1;
        match kind {
            attack::FAR_REPLAY_ACTIVE => {
                for ip in &label.attacker_ips {
                    let (c, _) = city_of(*ip);
                    assert!(world::distance_km(&CITIES[home], &CITIES[c]) >= 3000.0);
                }
                // The victim is active: an own request within 5 minutes before the theft.
                assert!(
                    victim
                        .iter()
                        .any(|i| (start - 300_000..=start).contains(&sim.time(*i).0)),
                    "session {s}"
                );
            }
            attack::FOREIGN_REPLAY_IDLE => {
                let (c, k) = city_of(label.attacker_ips[0]);
                assert_ne!(CITIES[c].country, CITIES[home].country, "session {s}");
                assert!(!victim_asns.contains(&world::asn(c, k)), "session {s}");
                for i in &attacker {
                    assert!(!victim_uas.contains(ua_of(sim, *i)), "session {s}");
                }
                // Idle long enough to have flown there at airliner speed.
                let last = victim
                    .iter()
                    .map(|i| sim.time(*i).0)
                    .filter(|t| *t < start)
                    .max()
                    .unwrap();
                let hours = (start - last) as f64 / 3.6e6;
                let km = world::distance_km(&CITIES[home], &CITIES[c]);
                assert!(
                    km / hours < 800.0,
                    "session {s}: {km:.0} km in {hours:.1} h"
                );
                assert!(
                    !victim
                        .iter()
                        .any(|i| (start..=end_of_attack).contains(&sim.time(*i).0)),
                    "victim idle during the attack"
                );
            }
            attack::SCRIPTED_SAME_COUNTRY => {
                for i in &attacker {
                    let ua = ua_of(sim, *i);
                    assert!(
                        ["python-requests/", "curl/", "Go-http-client/"]
                            .iter()
                            .any(|p| ua.starts_with(p)),
                        "{ua}"
                    );
                }
                let (c, k) = city_of(label.attacker_ips[0]);
                assert_eq!(CITIES[c].country, CITIES[home].country);
                assert!(matches!(k, NetKind::Hosting | NetKind::AltResidential));
                assert_ne!(world::asn(c, k), world::asn(home, NetKind::Residential));
            }
            attack::RESIDENTIAL_PROXY_SCRAPE => {
                for ip in &label.attacker_ips {
                    assert_eq!(city_of(*ip), (home, NetKind::AltResidential));
                }
                let copied = sim.sessions[s].uas[usize::from(
                    sim.sessions[s]
                        .requests
                        .iter()
                        .rev()
                        .find(|r| !r.attacker && r.time <= start)
                        .unwrap()
                        .ua,
                )]
                .clone();
                for i in &attacker {
                    assert_eq!(ua_of(sim, *i), copied);
                    let (_, r) = sim.request(*i);
                    assert!(
                        catalog::SCRAPE_PATHS
                            .iter()
                            .any(|p| p.prefix == r.path.prefix)
                    );
                }
                // 50+ requests in the first minute.
                let first_minute = attacker
                    .iter()
                    .filter(|i| sim.time(**i).0 < start + 60_000)
                    .count();
                assert!(first_minute >= 50, "session {s}: {first_minute}");
            }
            attack::CONCURRENT_INTERLEAVED => {
                let interleaved = victim
                    .iter()
                    .filter(|i| (start..end_of_attack).contains(&sim.time(**i).0))
                    .count();
                assert!(interleaved >= 1, "session {s}");
                let (c, _) = city_of(label.attacker_ips[0]);
                assert!(world::distance_km(&CITIES[home], &CITIES[c]) <= 800.0);
            }
            attack::LOW_AND_SLOW => {
                assert!(attacker.len() >= 3);
                let hours = (end_of_attack - start) as f64 / 3.6e6;
                assert!(hours >= 1.0, "session {s}: {hours:.1} h");
                assert!(attacker.len() as f64 / hours <= 12.0, "a few an hour");
                assert_eq!(label.attacker_ips.len(), 1);
            }
            attack::CLOUD_SAME_COUNTRY => {
                for ip in &label.attacker_ips {
                    let (c, k) = city_of(*ip);
                    assert_eq!(k, NetKind::Hosting, "session {s}");
                    assert_eq!(CITIES[c].country, CITIES[home].country, "session {s}");
                }
                // The victim's own User-Agent, at a human pace.
                for i in &attacker {
                    assert!(victim_uas.contains(ua_of(sim, *i)), "session {s}");
                }
                let minutes = ((end_of_attack - start) as f64 / 60_000.0).max(1.0);
                assert!(
                    attacker.len() as f64 / minutes <= 30.0,
                    "session {s}: {} requests in {minutes:.1} min",
                    attacker.len()
                );
            }
            _ => unreachable!(),
        }
    }
    assert!(checked.iter().all(|n| *n >= 5), "{checked:?}");
}

#[test]
fn attackers_replay_a_token_the_victim_held_while_it_is_valid() {
    let (_, sim) = day();
    let by_session = lines_by_session(sim);
    for label in sim.labels().iter().filter(|l| l.is_attack()) {
        let s = label.session as usize;
        let session = &sim.sessions[s];
        let start = label.attack_start.unwrap().0;
        let stolen: HashSet<u32> = session
            .requests
            .iter()
            .filter(|r| r.attacker)
            .map(|r| r.token)
            .collect();
        assert_eq!(stolen.len(), 1, "one stolen token, session {s}");
        let token = *stolen.iter().next().unwrap();
        // The victim used it before the theft.
        assert!(
            session
                .requests
                .iter()
                .any(|r| !r.attacker && r.token == token && r.time <= start)
        );
        if session.credential == Credential::Jwt {
            let claims =
                crate::identify::unverified_claims(&session.tokens[token as usize], 8192).unwrap();
            let exp_ms = claims.exp.unwrap() * 1000;
            for i in &by_session[&s] {
                if sim.is_attacker(*i) {
                    assert!(sim.time(*i).0 < exp_ms, "session {s}: expired token");
                }
            }
            // It was the token current at the theft: none newer was issued before it.
            assert!(
                !session
                    .requests
                    .iter()
                    .any(|r| !r.attacker && r.token > token && r.time <= start)
            );
        }
    }
}

#[test]
fn jwt_sessions_refresh_with_the_same_sid() {
    let (spec, sim) = day();
    let mut refreshed = 0;
    for (label, session) in sim.labels().iter().zip(&sim.sessions) {
        if session.credential != Credential::Jwt {
            assert!(label.sid.is_none());
            assert_eq!(session.tokens.len(), 1);
            continue;
        }
        let sid = label.sid.as_deref().unwrap();
        let mut jtis = HashSet::new();
        for raw in &session.tokens {
            let c = crate::identify::unverified_claims(raw, 8192).unwrap();
            assert_eq!(c.sid.as_deref(), Some(sid));
            assert_eq!(c.sub.as_deref(), Some(label.user.as_str()));
            assert_eq!(
                c.exp.unwrap() - c.iat.unwrap(),
                spec.token_lifetime_s() as i64
            );
            assert!(jtis.insert(c.jti.unwrap()));
        }
        assert_eq!(label.tokens.len(), session.tokens.len());
        refreshed += usize::from(session.tokens.len() > 1);
    }
    assert!(refreshed > 100, "{refreshed}");
}

#[test]
fn same_seed_same_lines_other_seed_other_lines() {
    let keys = SimKeys::from_seed(3);
    let a = simulate(&spec(80, 3, 0.1, 3), &keys);
    let b = simulate(&spec(80, 3, 0.1, 3), &keys);
    assert!(a.lines.len() > 1000);
    assert_eq!(a.lines, b.lines);
    assert_eq!(
        serde_json::to_string(&a.labels).unwrap(),
        serde_json::to_string(&b.labels).unwrap()
    );
    let c = simulate(&spec(80, 3, 0.1, 4), &keys);
    assert_ne!(a.lines, c.lines);
    // Lines are in event-time order.
    let times: Vec<i64> = a
        .lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            crate::event::EventTime::parse_rfc3339(v["time"].as_str().unwrap())
                .unwrap()
                .0
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn a_ten_minute_demo_run_still_has_attacks_and_tokens() {
    let spec = SimSpec {
        attack_fraction: 0.04,
        ..SimSpec::new(7, start(), 600, 120)
    };
    let sim = simulate(&spec, &SimKeys::from_seed(7));
    let attacked: Vec<&SessionLabel> = sim.labels.iter().filter(|l| l.is_attack()).collect();
    assert!(attacked.len() >= 4, "{}", attacked.len());
    assert_eq!(attacked[0].attack_type.as_deref(), Some(ATTACK_TYPES[0]));
    assert!(sim.tokens.iter().any(|t| t.attacked));
    assert!(sim.tokens.iter().any(|t| !t.attacked));
    let per_minute = sim.lines.len() as f64 / 10.0;
    assert!(per_minute > 200.0, "{per_minute}");
    let end = start().0 + 600_000;
    assert!(sim.lines.iter().all(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        crate::event::EventTime::parse_rfc3339(v["time"].as_str().unwrap())
            .unwrap()
            .0
            < end
    }));
}

#[test]
fn event_estimate_is_close() {
    let spec = spec(100, 6, 0.03, 9);
    let users = spec.users_for_events(100_000);
    let sim = generate(
        &SimSpec {
            users,
            ..spec.clone()
        },
        &SimKeys::from_seed(9),
    );
    let ratio = sim.len() as f64 / 100_000.0;
    assert!(
        (0.7..1.3).contains(&ratio),
        "{users} users → {} events",
        sim.len()
    );
}

#[test]
fn chunks_equal_lines() {
    let sim = generate(&spec(40, 2, 0.1, 2), &SimKeys::from_seed(2));
    let mut text = String::new();
    sim.for_each_chunk(|c| {
        text.push_str(c);
        Ok::<(), ()>(())
    })
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), sim.len());
    for (i, l) in lines.iter().enumerate().step_by(97) {
        assert_eq!(*l, sim.line(i));
    }
}

#[test]
fn config_allowlists_the_corporate_vpn() {
    let keys = SimKeys::from_seed(1);
    let text = config_toml(&keys, "c.mmdb", "a.mmdb", None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, text).unwrap();
    let (config, _) = crate::config::Config::load(&path, &crate::config::ProcessEnv).unwrap();
    assert_eq!(config.detect.allow_cidrs, world::corporate_vpn_networks());
    assert_eq!(config.tokens.jwt.audiences, vec![keys.audience.clone()]);
}

#[test]
fn world_draws_are_deterministic_in_range_and_differ_between_seeds() {
    let a = WorldParams::draw(1);
    assert_eq!(a, WorldParams::draw(1));
    assert_ne!(a, WorldParams::draw(2));
    for seed in 0..200 {
        let w = WorldParams::draw(seed);
        assert!(
            w.out_of_range().is_empty(),
            "seed {seed}: {:?}",
            w.out_of_range()
        );
    }
    // The nominal world switches the newer behaviours off, below their ranges.
    let off: Vec<&str> = WorldParams::nominal()
        .out_of_range()
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    assert_eq!(
        off,
        [
            "home_renumber_share",
            "cgn_hold_median_min",
            "roaming_home_routed_share",
            "consumer_vpn_share",
        ]
    );
    // Every parameter varies between worlds.
    let worlds: Vec<WorldParams> = (0..20).map(WorldParams::draw).collect();
    for (k, p) in PARAMS.iter().enumerate() {
        let values: Vec<f64> = worlds.iter().map(|w| w.values()[k].1).collect();
        let spread = values.iter().cloned().fold(f64::MIN, f64::max)
            - values.iter().cloned().fold(f64::MAX, f64::min);
        assert!(spread > (p.hi - p.lo) * 0.2, "{}: {values:?}", p.name);
    }
    // Round trip through JSON (what `world.json` holds).
    let text = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<WorldParams>(&text).unwrap(), a);
}

#[test]
fn worlds_doc_lists_every_parameter_with_its_range() {
    let doc = include_str!("../../../docs/worlds.md");
    let module = include_str!("params.rs");
    let range = |x: f64| format!("{x}");
    for p in PARAMS {
        let row = format!(
            "| `{}` | {} | {}–{} |",
            p.name,
            range(p.nominal),
            range(p.lo),
            range(p.hi)
        );
        assert!(doc.contains(&row), "docs/worlds.md lacks {row}");
        assert!(
            module.contains(&row.replace("| `", "//! | `")),
            "params.rs docs lack {row}"
        );
    }
}

#[test]
fn a_drawn_world_keeps_the_same_spec_same_bytes_rule() {
    let keys = SimKeys::from_seed(4);
    let spec = spec(60, 3, 0.1, 4).with_params(WorldParams::draw(9));
    let (a, b) = (simulate(&spec, &keys), simulate(&spec, &keys));
    assert!(a.lines.len() > 300);
    assert_eq!(a.lines, b.lines);
    let other = simulate(&spec.clone().with_params(WorldParams::draw(10)), &keys);
    assert_ne!(a.lines, other.lines);
    assert_eq!(
        spec.refresh_s,
        WorldParams::draw(9).refresh_s.round() as u64
    );
}

/// A world where every new behaviour is common, shared by the tests below.
fn busy_world() -> &'static (SimSpec, Generated) {
    static BUSY: OnceLock<(SimSpec, Generated)> = OnceLock::new();
    BUSY.get_or_init(|| {
        let params = WorldParams {
            home_renumber_share: 0.5,
            home_renumber_period_h: 12.0,
            cgn_hold_median_min: 2.0,
            cgn_cross_block_share: 0.6,
            multi_device_share: 0.35,
            third_device_share: 0.4,
            travel_share: 0.1,
            roaming_home_routed_share: 0.95,
            roaming_cellular_visit_share: 0.6,
            consumer_vpn_share: 0.15,
            corporate_vpn_share: 0.2,
            split_tunnel_share: 0.8,
            ..WorldParams::nominal()
        };
        let spec = spec(600, 24, 0.2, 21).with_params(params);
        let sim = generate(&spec, &SimKeys::from_seed(21));
        (spec, sim)
    })
}

/// Per session: its own (owner's) requests as (time, address).
fn owner_requests(sim: &Generated) -> HashMap<usize, Vec<(i64, IpAddr)>> {
    let mut by: HashMap<usize, Vec<(i64, IpAddr)>> = HashMap::new();
    for i in 0..sim.len() {
        if !sim.is_attacker(i) {
            by.entry(sim.session_of(i))
                .or_default()
                .push((sim.time(i).0, sim.client_ip(i)));
        }
    }
    by
}

fn sessions_with(sim: &Generated, behaviour: &str) -> Vec<usize> {
    sim.labels()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.behaviours.iter().any(|b| b == behaviour))
        .map(|(s, _)| s)
        .collect()
}

#[test]
fn new_behaviours_appear_and_their_requests_show_them() {
    let (spec, sim) = busy_world();
    let plans = plan_sessions(spec);
    let own = owner_requests(sim);
    for b in BEHAVIOURS {
        assert!(
            sessions_with(sim, b).len() >= 5,
            "{b}: {}",
            sessions_with(sim, b).len()
        );
    }
    // Home churn: two home-line addresses, same city and ASN (the same ISP).
    for s in sessions_with(sim, "home_address_churn") {
        let home = plans[s].home;
        let homes: HashSet<IpAddr> = own[&s]
            .iter()
            .map(|(_, ip)| *ip)
            .filter(|ip| city_of(*ip) == (home, NetKind::Residential))
            .collect();
        assert!(homes.len() >= 2, "session {s}");
        let asns: HashSet<u32> = homes
            .iter()
            .map(|ip| {
                let (c, k) = city_of(*ip);
                world::asn(c, k)
            })
            .collect();
        assert_eq!(asns.len(), 1, "session {s}");
    }
    // Carrier NAT churn: the carrier's addresses change within minutes, across its blocks.
    let mut cross_block = 0;
    for s in sessions_with(sim, "carrier_nat_churn") {
        let carrier: Vec<(i64, IpAddr, NetKind)> = own[&s]
            .iter()
            .filter_map(|(t, ip)| {
                let (_, k) = city_of(*ip);
                matches!(k, NetKind::Mobile | NetKind::CarrierGateway).then_some((*t, *ip, k))
            })
            .collect();
        let quick = carrier
            .windows(2)
            .any(|w| w[0].1 != w[1].1 && w[1].0 - w[0].0 <= 30 * 60_000);
        assert!(quick, "session {s}");
        let kinds: HashSet<NetKind> = carrier.iter().map(|c| c.2).collect();
        cross_block += usize::from(kinds.len() == 2);
        let asns: HashSet<u32> = carrier
            .iter()
            .map(|(_, ip, _)| {
                let (c, k) = city_of(*ip);
                world::asn(c, k)
            })
            .collect();
        assert_eq!(asns.len(), 1, "one carrier, session {s}");
    }
    assert!(cross_block >= 3, "{cross_block}");
    // Consumer VPN: the VPN kind's addresses in another country, and the person's own
    // network too (toggled).
    for s in sessions_with(sim, "consumer_vpn") {
        let home = plans[s].home;
        let vpn: Vec<usize> = own[&s]
            .iter()
            .filter_map(|(_, ip)| {
                let (c, k) = city_of(*ip);
                (k == NetKind::Vpn).then_some(c)
            })
            .collect();
        assert!(!vpn.is_empty(), "session {s}");
        assert!(
            vpn.iter()
                .all(|c| CITIES[*c].country != CITIES[home].country)
        );
    }
    // Split tunnelling: within a minute, requests via the corporate VPN and direct from home.
    for s in sessions_with(sim, "corporate_vpn_split_tunnel") {
        let kinds: Vec<(i64, NetKind)> =
            own[&s].iter().map(|(t, ip)| (*t, city_of(*ip).1)).collect();
        let interleaved = kinds.windows(3).any(|w| {
            w[2].0 - w[0].0 <= 60_000
                && w.iter().any(|x| x.1 == NetKind::CorporateVpn)
                && w.iter().any(|x| x.1 == NetKind::Residential)
        });
        assert!(interleaved, "session {s}");
    }
}

#[test]
fn a_roaming_phone_and_its_owner_abroad_are_far_apart_within_minutes() {
    let (spec, sim) = busy_world();
    let plans = plan_sessions(spec);
    let own = owner_requests(sim);
    let mut concurrent = 0;
    for s in sessions_with(sim, "roaming_home_routed") {
        let plan = &plans[s];
        let trip = plan.trip.expect("a roaming session travels");
        // The phone egresses from its home carrier after landing abroad.
        let roamed: Vec<i64> = own[&s]
            .iter()
            .filter(|(t, ip)| {
                *t >= trip.arrive
                    && matches!(
                        city_of(*ip),
                        (c, NetKind::CarrierGateway | NetKind::Mobile) if c == plan.home
                    )
            })
            .map(|(t, _)| *t)
            .collect();
        assert!(!roamed.is_empty(), "session {s}");
        // Another session of the same user at the destination within ten minutes.
        let others = (0..plans.len()).filter(|o| *o != s && plans[*o].user == plan.user);
        for o in others {
            let near_in_time = own.get(&o).into_iter().flatten().any(|(t, ip)| {
                city_of(*ip).0 == trip.dest && roamed.iter().any(|r| (r - t).abs() <= 10 * 60_000)
            });
            if near_in_time {
                concurrent += 1;
                let km = world::distance_km(&CITIES[plan.home], &CITIES[trip.dest]);
                assert!(km >= 400.0);
            }
        }
    }
    assert!(concurrent >= 1, "no user seen in two far places at once");
}

#[test]
fn cloud_attackers_never_share_an_address_with_their_victim() {
    let (_, sim) = busy_world();
    let own = owner_requests(sim);
    let mut n = 0;
    for label in sim.labels() {
        if label.attack_type.as_deref() != Some("cloud_same_country") {
            continue;
        }
        n += 1;
        let s = label.session as usize;
        let victim: HashSet<IpAddr> = own[&s].iter().map(|(_, ip)| *ip).collect();
        for ip in &label.attacker_ips {
            assert!(!victim.contains(ip), "session {s}");
            assert_eq!(city_of(*ip).1, NetKind::Hosting);
        }
    }
    assert!(n >= 5, "{n}");
}
