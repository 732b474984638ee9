//! `tokenwatch simulate` end to end: the same seed gives the same bytes; the labels agree with
//! the log as the pipeline's own stages read it (parse, identify with the generated key,
//! enrich on the generated databases); a 2,000-user run holds every attack type and every
//! benign behaviour, each on the networks it should be; `--geoip` draws addresses from a
//! City database (the synthetic one, and DB-IP Lite when it can be had).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tokenwatch::app::build_stages;
use tokenwatch::config::{Config, GeoIpConfig, ProcessEnv};
use tokenwatch::enrich::Enricher;
use tokenwatch::event::EventTime;
use tokenwatch::event::TokenKind;
use tokenwatch::lab::labels::{ATTACK_TYPES, Labels};
use tokenwatch::lab::simulate::{BEHAVIOURS, Generated, SimKeys, SimSpec, WorldParams, generate};
use tokenwatch::lab::world::{self, CITIES, NetKind};

/// Run `tokenwatch simulate --out DIR/access.jsonl ARGS`; returns stderr.
fn simulate(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .arg("simulate")
        .arg("--out")
        .arg(dir.join("access.jsonl"))
        .args(args)
        .output()
        .expect("run tokenwatch simulate");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "simulate failed: {stderr}");
    stderr
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let root = tempfile::tempdir().unwrap();
    let args = |seed: &'static str| {
        [
            "--users",
            "120",
            "--duration",
            "6h",
            "--attack-fraction",
            "0.1",
            "--seed",
            seed,
        ]
    };
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    simulate(&a, &args("5"));
    simulate(&b, &args("5"));
    simulate(&c, &args("6"));
    for file in ["access.jsonl", "labels.jsonl", "tokenwatch.toml"] {
        assert_eq!(read(a.join(file)), read(b.join(file)), "{file}");
        assert_ne!(read(a.join(file)), read(c.join(file)), "{file}");
    }
    assert!(read(a.join("access.jsonl")).len() > 1_000_000);
}

#[test]
fn labels_agree_with_what_the_pipeline_reads() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = simulate(
        dir.path(),
        &[
            "--users",
            "300",
            "--duration",
            "24h",
            "--attack-fraction",
            "0.2",
            "--refresh",
            "10m",
            "--seed",
            "8",
        ],
    );
    assert!(stderr.contains("events/s"), "{stderr}");
    let (config, secrets) = Config::load(&dir.path().join("tokenwatch.toml"), &ProcessEnv).unwrap();
    let stages = build_stages(&config, &secrets).unwrap();
    let labels = Labels::load(&dir.path().join("labels.jsonl")).unwrap();
    let text = String::from_utf8(read(dir.path().join("access.jsonl"))).unwrap();

    let mut seen_tokens = HashSet::new();
    let mut jtis: HashMap<String, HashSet<String>> = HashMap::new();
    let mut first_attacker: HashMap<u64, i64> = HashMap::new();
    let mut last_time = i64::MIN;
    for line in text.lines() {
        let event = stages.parser.parse(line.as_bytes()).unwrap().unwrap();
        assert!(event.time.0 >= last_time, "lines are in event-time order");
        last_time = event.time.0;
        // Every token verifies (JWTs with the generated key, at the event's time: attackers
        // only use a stolen JWT while it is valid).
        let id = stages
            .identifier
            .identify(&event.credentials[0], event.time)
            .unwrap_or_else(|e| panic!("{e:?}: {line}"));
        let label = labels.session_of(id.fingerprint).expect("token in labels");
        seen_tokens.insert(id.fingerprint.to_hex());
        match (&id.claims, &label.sid) {
            (Some(claims), Some(sid)) => {
                assert_eq!(id.kind, TokenKind::Jwt);
                assert_eq!(claims.sid.as_ref(), Some(sid), "refresh keeps the sid");
                assert_eq!(claims.sub.as_deref(), Some(label.user.as_str()));
                // --refresh 10m: a 15-minute lifetime.
                assert_eq!(claims.exp.unwrap() - claims.iat.unwrap(), 900);
                jtis.entry(sid.clone())
                    .or_default()
                    .insert(claims.jti.clone().unwrap());
            }
            (None, None) => assert_eq!(id.kind, TokenKind::Opaque),
            other => panic!("claims and sid disagree: {other:?}"),
        }
        if let Some(start) = label.attack_start
            && label.attacker_ips.contains(&event.client_ip)
        {
            // Attacker addresses are the attacker's alone: nothing there before the start.
            assert!(event.time >= start, "{line}");
            let first = first_attacker.entry(label.session).or_insert(event.time.0);
            *first = (*first).min(event.time.0);
            if label.attack_type.as_deref() == Some("scripted_same_country") {
                let e = stages
                    .enricher
                    .enrich(event.client_ip, event.user_agent.as_deref());
                assert!(e.user_agent.unwrap().scripted, "{line}");
            }
        }
    }
    let mut refreshed = 0;
    for label in &labels.sessions {
        for token in &label.tokens {
            assert!(seen_tokens.contains(token), "label token never used");
        }
        if let Some(sid) = &label.sid {
            // One jti per token: every refresh is a new token of the same session.
            assert_eq!(jtis[sid].len(), label.tokens.len());
            refreshed += usize::from(label.tokens.len() > 1);
        }
        if let Some(start) = label.attack_start {
            assert_eq!(first_attacker.get(&label.session), Some(&start.0));
        }
    }
    assert!(refreshed > 50, "{refreshed}");
    assert_eq!(
        labels.sessions.iter().filter(|l| l.is_attack()).count(),
        first_attacker.len()
    );
}

/// A default day of 2,000 users (generated once, shared).
fn two_thousand() -> &'static Generated {
    static SIM: OnceLock<Generated> = OnceLock::new();
    SIM.get_or_init(|| {
        let start = EventTime::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
        // The nominal world with the behaviours it leaves off switched on, mid-range.
        let params = WorldParams {
            third_device_share: 0.2,
            home_renumber_share: 0.15,
            cgn_hold_median_min: 10.0,
            cgn_cross_block_share: 0.3,
            roaming_home_routed_share: 0.9,
            consumer_vpn_share: 0.03,
            split_tunnel_share: 0.3,
            ..WorldParams::nominal()
        };
        generate(
            &SimSpec::new(21, start, 24 * 3600, 2000).with_params(params),
            &SimKeys::from_seed(21),
        )
    })
}

#[test]
fn two_thousand_users_show_every_attack_type_and_behaviour() {
    let sim = two_thousand();
    assert!(sim.len() > 500_000, "{}", sim.len());
    let mut types: BTreeMap<&str, usize> = BTreeMap::new();
    let mut behaviours: BTreeMap<&str, usize> = BTreeMap::new();
    for l in sim.labels() {
        if let Some(t) = &l.attack_type {
            *types.entry(t.as_str()).or_default() += 1;
        }
        for b in &l.behaviours {
            *behaviours.entry(b.as_str()).or_default() += 1;
        }
    }
    for t in ATTACK_TYPES {
        assert!(types.get(t).copied().unwrap_or(0) >= 8, "{t}: {types:?}");
    }
    // Evenly spread: the types are dealt in turn.
    let counts: Vec<usize> = types.values().copied().collect();
    assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    for b in BEHAVIOURS {
        assert!(
            behaviours.get(b).copied().unwrap_or(0) >= 10,
            "{b}: {behaviours:?}"
        );
    }
    // A small attack fraction by default (3 % of people's sessions).
    let attacked = types.values().sum::<usize>() as f64 / sim.labels().len() as f64;
    assert!((0.02..0.04).contains(&attacked), "{attacked}");
}

/// Type 5 is concurrent use, interleaved: in every such session the owner makes a request
/// between the attacker's first and last one. (Half the sessions attacked, so ~80 of type
/// 5 among seven types; before the simulator made sure of it, 3 of them on this seed had
/// none.)
#[test]
fn concurrent_attacks_interleave_with_the_owner() {
    let start = EventTime::parse_rfc3339("2026-11-23T12:00:00Z").unwrap();
    let mut spec = SimSpec::new(17, start, 24 * 3600, 1000);
    spec.attack_fraction = 0.5;
    let sim = generate(&spec, &SimKeys::from_seed(17));
    // Per session: the attacker's first and last time, and the owner's request times.
    let mut attacker: HashMap<usize, (i64, i64)> = HashMap::new();
    let mut owner: HashMap<usize, Vec<i64>> = HashMap::new();
    for i in 0..sim.len() {
        let (s, t) = (sim.session_of(i), sim.time(i).0);
        if sim.is_attacker(i) {
            let span = attacker.entry(s).or_insert((t, t));
            *span = (span.0.min(t), span.1.max(t));
        } else {
            owner.entry(s).or_default().push(t);
        }
    }
    let mut concurrent = 0;
    for (s, label) in sim.labels().iter().enumerate() {
        if label.attack_type.as_deref() != Some("concurrent_interleaved") {
            continue;
        }
        concurrent += 1;
        let (first, last) = attacker[&s];
        assert_eq!(Some(first), label.attack_start.map(|t| t.0));
        assert!(
            owner[&s].iter().any(|t| first < *t && *t < last),
            "session {s}: no owner request in the attack [{first}, {last}]"
        );
    }
    assert!(concurrent >= 70, "{concurrent}");
}

#[test]
fn behaviours_use_the_networks_they_are_named_for() {
    let sim = two_thousand();
    let dir = tempfile::tempdir().unwrap();
    let (city_db, asn_db) = (dir.path().join("c.mmdb"), dir.path().join("a.mmdb"));
    world::write_databases(&city_db, &asn_db).unwrap();
    let enricher = Enricher::from_config(&GeoIpConfig {
        city_db: Some(city_db),
        asn_db: Some(asn_db),
        ..GeoIpConfig::default()
    })
    .unwrap();
    // Per session, its own (non-attacker) lines.
    let mut lines: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..sim.len() {
        if !sim.is_attacker(i) {
            lines.entry(sim.session_of(i)).or_default().push(i);
        }
    }
    let located = |ip: IpAddr| world::locate(ip).expect("synthetic address");
    let vpn_nets = world::corporate_vpn_networks();
    let satellite_homes: HashSet<&str> =
        ["San Diego", "Chicago", "London", "Los Angeles", "Seattle"].into();
    let mut office_users: HashMap<IpAddr, HashSet<&str>> = HashMap::new();
    let mut sessions_per_user: HashMap<&str, usize> = HashMap::new();
    for l in sim.labels() {
        *sessions_per_user.entry(&l.user).or_default() += 1;
    }
    let mut travelled = 0;
    for (s, label) in sim.labels().iter().enumerate() {
        let own = &lines[&s];
        let ips: Vec<IpAddr> = own.iter().map(|i| sim.client_ip(*i)).collect();
        let kinds: HashSet<NetKind> = ips.iter().map(|ip| located(*ip).1).collect();
        let home_country = ips
            .iter()
            .map(|ip| located(*ip))
            .find(|(_, k)| *k == NetKind::Residential)
            .map(|(c, _)| CITIES[c].country);
        for b in &label.behaviours {
            match b.as_str() {
                "wifi_mobile_switch" => {
                    let gateway = ips
                        .iter()
                        .find(|ip| located(**ip).1 == NetKind::CarrierGateway)
                        .expect("a carrier address");
                    let e = enricher.enrich(*gateway, None);
                    let geo = e.geo.unwrap();
                    assert!(geo.city.is_none() && geo.radius_km >= 200.0, "{gateway}");
                    let served = located(*gateway).0;
                    let km = tokenwatch::track::great_circle_km(
                        (CITIES[served].lat, CITIES[served].lon),
                        (geo.lat, geo.lon),
                    );
                    assert!((150.0..=800.0).contains(&km), "{km}");
                    assert_eq!(e.asn, Some(world::asn(served, NetKind::Mobile)));
                    assert!(kinds.len() >= 2, "switches between networks");
                }
                "corporate_vpn" => {
                    let vpn = ips
                        .iter()
                        .find(|ip| vpn_nets.iter().any(|n| n.contains(*ip)))
                        .expect("a VPN egress address");
                    let e = enricher.enrich(*vpn, None);
                    assert_eq!(e.asn, Some(world::CORPORATE_VPN_ASN));
                    if let Some(home) = home_country {
                        assert_ne!(e.geo.unwrap().country.as_deref(), Some(home));
                    }
                }
                "inflight_satellite" => {
                    let sat = ips
                        .iter()
                        .find(|ip| located(**ip).1 == NetKind::Satellite)
                        .expect("a satellite address");
                    let e = enricher.enrich(*sat, None);
                    assert_eq!(e.asn, Some(world::SATELLITE_ASN));
                    let geo = e.geo.unwrap();
                    assert!(satellite_homes.contains(geo.city.as_deref().unwrap()));
                    assert_eq!(geo.radius_km, 500.0);
                }
                "privacy_relay" => {
                    let relay = ips
                        .iter()
                        .find(|ip| located(**ip).1 == NetKind::Relay)
                        .expect("a relay address");
                    assert_eq!(enricher.enrich(*relay, None).asn, Some(world::RELAY_ASN));
                }
                "real_travel" => {
                    // Home and destination (hotel) are residential addresses in two cities
                    // ≥ 400 km apart, reached at airliner speed. (A traveller who never used
                    // home broadband in the run shows only the destination.)
                    let residential: Vec<(i64, usize)> = own
                        .iter()
                        .map(|i| (sim.time(*i).0, located(sim.client_ip(*i))))
                        .filter(|(_, (_, k))| *k == NetKind::Residential)
                        .map(|(t, (c, _))| (t, c))
                        .collect();
                    let (first, dest) = (residential[0].1, residential.last().unwrap().1);
                    if first != dest {
                        let km = world::distance_km(&CITIES[first], &CITIES[dest]);
                        assert!(km >= 400.0, "{km}");
                        let left = residential.iter().rfind(|(_, c)| *c == first).unwrap();
                        let arrived = residential.iter().find(|(_, c)| *c == dest).unwrap();
                        let hours = (arrived.0 - left.0) as f64 / 3.6e6;
                        assert!(km / hours < 900.0, "{km:.0} km in {hours:.2} h");
                        travelled += 1;
                    }
                }
                "shared_office_nat" => {
                    for ip in &ips {
                        if located(*ip).1 == NetKind::AltResidential {
                            office_users.entry(*ip).or_default().insert(&label.user);
                        }
                    }
                }
                "browser_update" => {
                    let uas: HashSet<String> = own
                        .iter()
                        .map(|i| {
                            let v: serde_json::Value = serde_json::from_str(&sim.line(*i)).unwrap();
                            v["user_agent"].as_str().unwrap().to_owned()
                        })
                        .collect();
                    assert_eq!(uas.len(), 2, "{uas:?}");
                    let parsed: HashSet<(String, String)> = uas
                        .iter()
                        .map(|ua| {
                            let u = enricher.enrich(ips[0], Some(ua)).user_agent.unwrap();
                            (u.family.to_string(), u.os.to_string())
                        })
                        .collect();
                    assert_eq!(parsed.len(), 1, "same browser, newer version: {uas:?}");
                }
                "multi_device" => {
                    assert!((2..=3).contains(&sessions_per_user[label.user.as_str()]))
                }
                "home_address_churn" => {
                    // Renumbered by the same ISP: two home-line addresses, one ASN.
                    let homes: HashSet<&IpAddr> = ips
                        .iter()
                        .filter(|ip| located(**ip).1 == NetKind::Residential)
                        .collect();
                    assert!(homes.len() >= 2, "{homes:?}");
                    let asns: HashSet<Option<u32>> = homes
                        .iter()
                        .map(|ip| enricher.enrich(**ip, None).asn)
                        .collect();
                    assert_eq!(asns.len(), 1, "{asns:?}");
                }
                "carrier_nat_churn" | "roaming_home_routed" => {
                    // The home carrier's addresses (its gateway or mobile block), one ASN.
                    let carrier: HashSet<&IpAddr> = ips
                        .iter()
                        .filter(|ip| {
                            matches!(located(**ip).1, NetKind::CarrierGateway | NetKind::Mobile)
                        })
                        .collect();
                    let asns: HashSet<Option<u32>> = carrier
                        .iter()
                        .map(|ip| enricher.enrich(**ip, None).asn)
                        .collect();
                    assert_eq!(asns.len(), 1, "{b}: {asns:?}");
                    if b == "carrier_nat_churn" {
                        assert!(carrier.len() >= 2, "{carrier:?}");
                    }
                }
                "consumer_vpn" => {
                    let vpn = ips
                        .iter()
                        .find(|ip| located(**ip).1 == NetKind::Vpn)
                        .expect("a consumer VPN address");
                    let e = enricher.enrich(*vpn, None);
                    assert_eq!(e.asn, Some(world::VPN_ASN));
                    if let Some(home) = home_country {
                        assert_ne!(e.geo.unwrap().country.as_deref(), Some(home));
                    }
                }
                "corporate_vpn_split_tunnel" => {
                    assert!(kinds.contains(&NetKind::CorporateVpn));
                    assert!(kinds.contains(&NetKind::Residential));
                }
                "api_automation" => {
                    assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 1);
                    assert_eq!(kinds, HashSet::from([NetKind::Hosting]));
                }
                other => panic!("unknown behaviour {other}"),
            }
        }
    }
    assert!(travelled >= 10, "{travelled}");
    // The office NAT is shared: most office addresses serve several users.
    let shared = office_users.values().filter(|u| u.len() >= 2).count();
    assert!(
        shared * 2 >= office_users.len(),
        "{shared} of {}",
        office_users.len()
    );
    assert!(office_users.values().map(HashSet::len).max().unwrap() >= 5);
}

/// `--geoip FILE`: addresses come from the database's own networks, indexed by city, and
/// the pipeline (with the ASN overlay written beside the log) locates every one of them.
fn check_geoip_run(city_db: &Path, users: &str) {
    let dir = tempfile::tempdir().unwrap();
    let stderr = simulate(
        dir.path(),
        &[
            "--geoip",
            city_db.to_str().unwrap(),
            "--users",
            users,
            "--duration",
            "6h",
            "--attack-fraction",
            "0.2",
        ],
    );
    assert!(stderr.contains("cities found"), "{stderr}");
    let (config, secrets) = Config::load(&dir.path().join("tokenwatch.toml"), &ProcessEnv).unwrap();
    assert_eq!(
        config.geoip.city_db.as_deref(),
        Some(std::fs::canonicalize(city_db).unwrap().as_path())
    );
    assert!(!config.detect.allow_cidrs.is_empty());
    let stages = build_stages(&config, &secrets).unwrap();
    let labels = Labels::load(&dir.path().join("labels.jsonl")).unwrap();
    let text = String::from_utf8(read(dir.path().join("access.jsonl"))).unwrap();
    let (mut total, mut located, mut with_asn) = (0usize, 0usize, 0usize);
    for line in text.lines() {
        let event = stages.parser.parse(line.as_bytes()).unwrap().unwrap();
        let id = stages
            .identifier
            .identify(&event.credentials[0], event.time)
            .unwrap();
        assert!(labels.session_of(id.fingerprint).is_some());
        let e = stages.enricher.enrich(event.client_ip, None);
        total += 1;
        located += usize::from(e.geo.is_some_and(|g| g.city.is_some()));
        with_asn += usize::from(e.asn.is_some());
    }
    assert!(total > 10_000, "{total}");
    assert_eq!(located, total, "every address is in a city of the database");
    assert_eq!(with_asn, total, "the overlay gives every address an ASN");
}

#[test]
fn geoip_option_indexes_a_city_database() {
    let world = tempfile::tempdir().unwrap();
    let (city_db, asn_db) = (
        world.path().join("city.mmdb"),
        world.path().join("asn.mmdb"),
    );
    world::write_databases(&city_db, &asn_db).unwrap();
    check_geoip_run(&city_db, "150");
}

/// DB-IP Lite City, when available (`TOKENWATCH_DBIP_CITY`, or the cache that
/// `scripts/fetch-dbip.sh` fills); otherwise the test prints SKIP and passes.
#[test]
fn geoip_option_on_real_dbip_data() {
    let path = std::env::var_os("TOKENWATCH_DBIP_CITY")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fetch-dbip.sh");
            let out = Command::new("bash").arg(script).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        });
    match path {
        Some(path) if path.exists() => check_geoip_run(&path, "100"),
        _ => eprintln!("SKIP geoip_option_on_real_dbip_data: no DB-IP City database"),
    }
}
