//! The lab's synthetic world: a made-up world of real city coordinates, for tests and the
//! simulator. Real cities with their real coordinates, but made-up address blocks per city and
//! network kind and made-up ASNs, written as GeoIP2-schema City and ASN mmdb files so no
//! download is needed. It is not a GeoIP reader (the run-time one is `crate::enrich`) and not
//! real data.
//!
//! Where it sits: outside the pipeline, in the lab. `simulate` draws client addresses from
//! [`address`]; `demo`, `simulate::write_files` and tests call [`write_databases`] and point
//! `geoip.city_db`/`geoip.asn_db` at the result, so the real `enrich` stage resolves those
//! addresses back to the right city. For real data, [`AddressIndex`] and [`find_addresses`]
//! walk a real City database (through the run-time enricher) to find addresses by city.
//!
//! # The address plan (synthetic, documented, deterministic)
//!
//! Every network kind owns one IPv4 `/8` from the blocks assigned to the US Department of
//! Defense (6, 11, 21, 22, 26, 28, 29, 30, 33). They are globally routable space
//! ([`crate::enrich::classify`] says `Public`) that ordinary client traffic practically never
//! comes from, so synthetic addresses cannot be confused with real users. City number `i` owns
//! the `/18` at offset `i × 2^14` inside each kind's `/8` (room for 1024 cities), and
//! [`address`] hands out its hosts, wrapping. IPv6 uses `2e00::/16`, which IANA has not
//! allocated: city `i` of kind `k` owns `2e00:k:i::/48`.
//!
//! Host numbers below [`ATTACKER_HOSTS`] are for benign users, the rest for simulated
//! attackers, so an attacker never shares an address with a benign user.
//!
//! What the City database says about a block ([`place`]): the blocks of [`NetKind::ALL`] are
//! located at their own city, with an accuracy radius typical of the kind. A city's
//! [`NetKind::CarrierGateway`] block is different, as mobile carrier ranges are in real GeoIP
//! data: it is located where the carrier's gateway is, 150–800 km away ([`carrier_gateway`]),
//! with no city name and a 200–500 km radius.
//!
//! ASNs come from the private-use ranges (RFC 6996), so they are obviously not real: per
//! country one residential ISP, a second broadband ISP (32-bit range), one mobile carrier
//! (which also owns the carrier gateways) and one hosting provider; one ASN each for the
//! world-wide VPN, satellite, private-relay operators and the corporate VPN
//! ([`corporate_vpn_networks`] is what an operator would allowlist).
//!
//! With a real City database instead, [`AddressIndex`] walks its networks once and indexes
//! them by the cities of [`CITIES`], so the simulator draws real addresses that the real
//! database places in the intended city ([`AddressPlan`] hides which of the two is used).
//! With ip-location-db's ASN table as well ([`AsnTable`], `world/asn.rs`), every network
//! carries its real ASN and organisation and its real kind ([`Classifier`], `world/kinds.rs`)
//! decides which [`NetKind`] draws from it: the real-data world of `docs/real-world.md`.
//!
//! Invariants: the plan depends only on [`CITIES`] (its order and country set); the same
//! binary always writes the same networks and answers [`address`]/[`asn`] the same way.
//! Database files are written to a temporary name and renamed into place, never rewritten,
//! because readers memory-map them.
//!
//! What it does NOT do: model real ISPs, real address allocation or real GeoIP errors beyond
//! the carrier gateways. It is a fixture, not data.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mmdb_writer::{IpVersion, Value, Writer};

/// A real city.
#[derive(Debug, Clone, Copy)]
pub struct City {
    /// English name.
    pub name: &'static str,
    /// ISO country code.
    pub country: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Kinds of network a synthetic address can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetKind {
    /// Home broadband (the country's first residential ISP).
    Residential,
    /// Mobile carrier, located at the city itself (the plan's historical mobile block).
    Mobile,
    /// Hosting / datacenter.
    Hosting,
    /// A commercial VPN's egress in that city (one world-wide ASN).
    Vpn,
    /// A satellite ISP's ground station (one world-wide ASN, coarse location).
    Satellite,
    /// A private relay's egress (iCloud Private Relay style; one world-wide ASN).
    Relay,
    /// The country's second broadband ISP: offices, and "another ISP in the same city".
    AltResidential,
    /// The corporate VPN's egress in that city (one ASN, [`corporate_vpn_networks`]).
    CorporateVpn,
    /// The mobile carrier's gateway serving users of that city: located 150–800 km away,
    /// with no city name and a 200–500 km radius ([`carrier_gateway`]).
    CarrierGateway,
}

impl NetKind {
    /// The kinds whose blocks the City database locates at their own city.
    pub const ALL: [NetKind; 8] = [
        NetKind::Residential,
        NetKind::Mobile,
        NetKind::Hosting,
        NetKind::Vpn,
        NetKind::Satellite,
        NetKind::Relay,
        NetKind::AltResidential,
        NetKind::CorporateVpn,
    ];

    /// Every kind, in plan order: [`NetKind::ALL`] and the carrier gateways.
    pub const EVERY: [NetKind; 9] = [
        NetKind::Residential,
        NetKind::Mobile,
        NetKind::Hosting,
        NetKind::Vpn,
        NetKind::Satellite,
        NetKind::Relay,
        NetKind::AltResidential,
        NetKind::CorporateVpn,
        NetKind::CarrierGateway,
    ];

    /// Bounded label (for logs and simulator output).
    pub fn label(self) -> &'static str {
        match self {
            NetKind::Residential => "residential",
            NetKind::Mobile => "mobile",
            NetKind::Hosting => "hosting",
            NetKind::Vpn => "vpn",
            NetKind::Satellite => "satellite",
            NetKind::Relay => "relay",
            NetKind::AltResidential => "alt_residential",
            NetKind::CorporateVpn => "corporate_vpn",
            NetKind::CarrierGateway => "carrier_gateway",
        }
    }

    /// The IPv4 `/8` this kind's blocks live in.
    fn first_octet(self) -> u8 {
        match self {
            NetKind::Residential => 11,
            NetKind::Mobile => 21,
            NetKind::Hosting => 22,
            NetKind::Vpn => 26,
            NetKind::Satellite => 28,
            NetKind::Relay => 29,
            NetKind::AltResidential => 6,
            NetKind::CorporateVpn => 30,
            NetKind::CarrierGateway => 33,
        }
    }

    /// The second group of this kind's IPv6 prefixes (`2e00:<code>:<city>::/48`).
    fn v6_code(self) -> u16 {
        match self {
            NetKind::Residential => 1,
            NetKind::Mobile => 2,
            NetKind::Hosting => 3,
            NetKind::Vpn => 4,
            NetKind::Satellite => 5,
            NetKind::Relay => 6,
            NetKind::AltResidential => 7,
            NetKind::CorporateVpn => 8,
            NetKind::CarrierGateway => 9,
        }
    }

    fn from_first_octet(octet: u8) -> Option<NetKind> {
        NetKind::EVERY
            .into_iter()
            .find(|k| k.first_octet() == octet)
    }

    fn from_v6_code(code: u16) -> Option<NetKind> {
        NetKind::EVERY.into_iter().find(|k| k.v6_code() == code)
    }
}

/// Accuracy radius (km) the synthetic City database records for a kind located at its own
/// city, roughly what commercial GeoIP databases state for such networks. Carrier gateways
/// have their own, per gateway ([`carrier_gateway`]).
fn own_city_accuracy_km(kind: NetKind) -> u16 {
    match kind {
        NetKind::Residential | NetKind::AltResidential => 20,
        NetKind::Mobile => 100,
        NetKind::Hosting | NetKind::Vpn | NetKind::CorporateVpn => 10,
        NetKind::Satellite => 500,
        NetKind::Relay => 50,
        NetKind::CarrierGateway => 500,
    }
}

/// What the synthetic City database records for a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Place {
    /// City name, when the record has one (carrier gateways have none).
    pub city: Option<&'static str>,
    /// ISO country code.
    pub country: &'static str,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Accuracy radius, km.
    pub radius_km: u16,
}

/// Where the City database places city `city`'s block of `kind`.
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn place(city: usize, kind: NetKind) -> Place {
    if kind == NetKind::CarrierGateway {
        return carrier_gateway(city).place;
    }
    let c = CITIES[city];
    Place {
        city: Some(c.name),
        country: c.country,
        lat: c.lat,
        lon: c.lon,
        radius_km: own_city_accuracy_km(kind),
    }
}

/// The mobile carrier gateway that serves a city's phones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CarrierGateway {
    /// Where GeoIP places the gateway's addresses.
    pub place: Place,
    /// The city the gateway sits in, when it is one of [`CITIES`] (else a point
    /// 150–400 km from the served city).
    pub city: Option<usize>,
}

/// Nearest gateway distance: closer than this, the switch would not fool anyone.
const GATEWAY_MIN_KM: f64 = 150.0;
/// Farthest gateway: real carriers aggregate regionally, not across a continent.
const GATEWAY_MAX_KM: f64 = 800.0;

/// The carrier gateway serving `city`: the nearest other city of the same country 150–800 km
/// away; failing one, a point 150–400 km away in a direction derived from the city number.
/// Its radius is 200, 300, 400 or 500 km (by city number), as real GeoIP states for carrier
/// ranges it can only place regionally.
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn carrier_gateway(city: usize) -> CarrierGateway {
    static TABLE: OnceLock<Vec<CarrierGateway>> = OnceLock::new();
    TABLE.get_or_init(|| (0..CITIES.len()).map(compute_gateway).collect())[city]
}

fn compute_gateway(i: usize) -> CarrierGateway {
    let home = CITIES[i];
    let radius_km = 200 + 100 * (i % 4) as u16;
    let nearest = CITIES
        .iter()
        .enumerate()
        .filter(|(j, c)| *j != i && c.country == home.country)
        .map(|(j, c)| (j, distance_km(&home, c)))
        .filter(|(_, d)| (GATEWAY_MIN_KM..=GATEWAY_MAX_KM).contains(d))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let (lat, lon, city) = match nearest {
        Some((j, _)) => (CITIES[j].lat, CITIES[j].lon, Some(j)),
        None => {
            let bearing = ((i * 137) % 360) as f64;
            let km = 150.0 + ((i * 53) % 250) as f64;
            let (lat, lon) = destination((home.lat, home.lon), bearing, km);
            (lat, lon, None)
        }
    };
    CarrierGateway {
        place: Place {
            city: None,
            country: home.country,
            lat,
            lon,
            radius_km,
        },
        city,
    }
}

/// Great-circle distance between two cities, km.
pub fn distance_km(a: &City, b: &City) -> f64 {
    crate::track::great_circle_km((a.lat, a.lon), (b.lat, b.lon))
}

/// The point `km` away from `from` on initial bearing `bearing_deg` (spherical Earth).
fn destination(from: (f64, f64), bearing_deg: f64, km: f64) -> (f64, f64) {
    let delta = km / crate::track::EARTH_RADIUS_KM;
    let (lat1, lon1, theta) = (
        from.0.to_radians(),
        from.1.to_radians(),
        bearing_deg.to_radians(),
    );
    let lat2 = (lat1.sin() * delta.cos() + lat1.cos() * delta.sin() * theta.cos()).asin();
    let lon2 = lon1
        + (theta.sin() * delta.sin() * lat1.cos()).atan2(delta.cos() - lat1.sin() * lat2.sin());
    let lon2 = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    (lat2.to_degrees(), lon2)
}

mod asn;
mod cities;
mod kinds;
mod real;

pub use asn::*;
pub use cities::CITIES;
pub use kinds::*;
pub use real::*;

/// Index of a city by name (exact, case-sensitive, diacritics included: `"São Paulo"`).
pub fn city_index(name: &str) -> Option<usize> {
    CITIES.iter().position(|c| c.name == name)
}

/// Hosts per city block: a `/18` (2^14 addresses) minus its first and last address.
const V4_HOSTS_PER_BLOCK: u32 = (1 << 14) - 2;

/// Host numbers `n` below this are benign users' ([`address`] and [`AddressPlan::address`]),
/// at or above it (up to `2 × ATTACKER_HOSTS − 3`) attackers': the two never share an address.
pub const ATTACKER_HOSTS: u32 = 1 << 13;

/// A benign host number from any `x`.
pub fn benign_host(x: u32) -> u32 {
    x % ATTACKER_HOSTS
}

/// An attacker host number from any `x`.
pub fn attacker_host(x: u32) -> u32 {
    ATTACKER_HOSTS + x % (ATTACKER_HOSTS - 2)
}

/// The IPv4 network of a city's `kind` block (a `/18`).
///
/// # Panics
/// If `city >= CITIES.len()` (a programming error in the caller, not data).
pub fn network(city: usize, kind: NetKind) -> IpNet {
    assert!(city < CITIES.len(), "city index {city} out of range");
    let base = (u32::from(kind.first_octet()) << 24) | ((city as u32) << 14);
    IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base), 18).unwrap_or_default())
}

/// The IPv6 network of a city's `kind` block (`2e00:<kind>:<city>::/48`).
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn network_v6(city: usize, kind: NetKind) -> IpNet {
    assert!(city < CITIES.len(), "city index {city} out of range");
    let prefix = Ipv6Addr::new(0x2e00, kind.v6_code(), city as u16, 0, 0, 0, 0, 0);
    IpNet::V6(Ipv6Net::new(prefix, 48).unwrap_or_default())
}

/// The `n`-th address of a city's network of `kind` (IPv4; wraps after 16382 hosts).
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn address(city: usize, kind: NetKind, n: u32) -> IpAddr {
    let IpNet::V4(net) = network(city, kind) else {
        unreachable!("network() is IPv4")
    };
    let host = 1 + n % V4_HOSTS_PER_BLOCK;
    IpAddr::V4(Ipv4Addr::from(u32::from(net.network()) + host))
}

/// The `n`-th IPv6 address of a city's network of `kind` (never wraps in practice).
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn address_v6(city: usize, kind: NetKind, n: u32) -> IpAddr {
    let IpNet::V6(net) = network_v6(city, kind) else {
        unreachable!("network_v6() is IPv6")
    };
    IpAddr::V6(Ipv6Addr::from(
        u128::from(net.network()) + 1 + u128::from(n),
    ))
}

/// Which city and kind a synthetic address belongs to (the inverse of [`address`] and
/// [`address_v6`]); `None` for any address outside the plan.
pub fn locate(ip: IpAddr) -> Option<(usize, NetKind)> {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kind = NetKind::from_first_octet((bits >> 24) as u8)?;
            let city = ((bits >> 14) & 0x3ff) as usize;
            (city < CITIES.len()).then_some((city, kind))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return locate(IpAddr::V4(v4));
            }
            let s = v6.segments();
            if s[0] != 0x2e00 {
                return None;
            }
            let kind = NetKind::from_v6_code(s[1])?;
            let city = usize::from(s[2]);
            (city < CITIES.len()).then_some((city, kind))
        }
    }
}

/// The distinct country codes of [`CITIES`], sorted; an ASN is derived from the position.
fn countries() -> &'static [&'static str] {
    static COUNTRIES: OnceLock<Vec<&'static str>> = OnceLock::new();
    COUNTRIES.get_or_init(|| {
        let set: BTreeSet<&'static str> = CITIES.iter().map(|c| c.country).collect();
        set.into_iter().collect()
    })
}

fn country_position(code: &str) -> usize {
    countries().iter().position(|c| *c == code).unwrap_or(0)
}

const RESIDENTIAL_ASN_BASE: u32 = 64_512;
const MOBILE_ASN_BASE: u32 = 64_768;
const HOSTING_ASN_BASE: u32 = 65_024;
/// The second broadband ISPs: 32-bit private use (RFC 6996), as the 16-bit range is full.
const ALT_RESIDENTIAL_ASN_BASE: u32 = 4_200_000_000;
/// The world-wide VPN operator.
pub const VPN_ASN: u32 = 65_400;
/// The world-wide satellite ISP.
pub const SATELLITE_ASN: u32 = 65_401;
/// The world-wide private-relay operator.
pub const RELAY_ASN: u32 = 65_402;
/// The corporate VPN (an operator allowlists it: [`corporate_vpn_networks`]).
pub const CORPORATE_VPN_ASN: u32 = 65_403;

/// The ASN that owns a city's network of `kind`. A city's carrier gateway belongs to the
/// mobile carrier of the city's country.
///
/// # Panics
/// If `city >= CITIES.len()`.
pub fn asn(city: usize, kind: NetKind) -> u32 {
    let position = country_position(CITIES[city].country) as u32;
    match kind {
        NetKind::Residential => RESIDENTIAL_ASN_BASE + position,
        NetKind::Mobile | NetKind::CarrierGateway => MOBILE_ASN_BASE + position,
        NetKind::Hosting => HOSTING_ASN_BASE + position,
        NetKind::AltResidential => ALT_RESIDENTIAL_ASN_BASE + position,
        NetKind::Vpn => VPN_ASN,
        NetKind::Satellite => SATELLITE_ASN,
        NetKind::Relay => RELAY_ASN,
        NetKind::CorporateVpn => CORPORATE_VPN_ASN,
    }
}

/// The organisation name written for a city's `kind` ASN.
fn asn_organization(city: usize, kind: NetKind) -> String {
    let country = CITIES[city].country;
    match kind {
        NetKind::Residential => format!("Synthetic Residential ISP {country}"),
        NetKind::Mobile | NetKind::CarrierGateway => format!("Synthetic Mobile Carrier {country}"),
        NetKind::Hosting => format!("Synthetic Hosting {country}"),
        NetKind::AltResidential => format!("Synthetic Broadband ISP {country}"),
        NetKind::Vpn => "Synthetic VPN".to_owned(),
        NetKind::Satellite => "Synthetic Satellite ISP".to_owned(),
        NetKind::Relay => "Synthetic Private Relay".to_owned(),
        NetKind::CorporateVpn => "Example Corp VPN".to_owned(),
    }
}

/// Every network the corporate VPN egresses from (IPv4 and IPv6): what an operator puts in
/// `detect.allow_cidrs` for their own VPN.
pub fn corporate_vpn_networks() -> Vec<IpNet> {
    let kind = NetKind::CorporateVpn;
    vec![
        IpNet::V4(Ipv4Net::new(Ipv4Addr::new(kind.first_octet(), 0, 0, 0), 8).unwrap_or_default()),
        IpNet::V6(
            Ipv6Net::new(Ipv6Addr::new(0x2e00, kind.v6_code(), 0, 0, 0, 0, 0, 0), 32)
                .unwrap_or_default(),
        ),
    ]
}

const DESCRIPTION: &str = "tokenwatch synthetic world: real cities, made-up address blocks. \
                           Not real data; see src/lab/world.rs.";

fn to_io(err: mmdb_writer::Error) -> io::Error {
    io::Error::other(err)
}

/// Write `bytes` next to `path` and rename over it, so a reader that memory-maps `path`
/// never sees a file change under it (it keeps the old inode until it reopens).
fn write_by_rename(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    // Unique per process and call, so concurrent writers never share a temporary file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}-{serial}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn geoip2_city_record(place: &Place) -> Value {
    let mut fields = Vec::with_capacity(3);
    if let Some(name) = place.city {
        fields.push((
            "city",
            Value::map([("names", Value::map([("en", Value::from(name))]))]),
        ));
    }
    fields.push((
        "country",
        Value::map([("iso_code", Value::from(place.country))]),
    ));
    fields.push((
        "location",
        Value::map([
            ("latitude", Value::Double(place.lat)),
            ("longitude", Value::Double(place.lon)),
            ("accuracy_radius", Value::U16(place.radius_km)),
        ]),
    ));
    Value::map(fields)
}

/// The GeoIP2-City-schema database as bytes (IPv6 tree holding both families).
pub fn city_db_bytes() -> io::Result<Vec<u8>> {
    let mut writer = Writer::builder("GeoIP2-City")
        .description(&[("en", DESCRIPTION)])
        .build();
    for i in 0..CITIES.len() {
        for kind in NetKind::EVERY {
            let record = geoip2_city_record(&place(i, kind));
            writer
                .insert_value(network(i, kind), record.clone())
                .map_err(to_io)?;
            writer
                .insert_value(network_v6(i, kind), record)
                .map_err(to_io)?;
        }
    }
    writer.to_bytes().map_err(to_io)
}

fn asn_record(city: usize, kind: NetKind) -> Value {
    Value::map([
        ("autonomous_system_number", Value::U32(asn(city, kind))),
        (
            "autonomous_system_organization",
            Value::from(asn_organization(city, kind)),
        ),
    ])
}

/// The GeoLite2-ASN-schema database as bytes.
pub fn asn_db_bytes() -> io::Result<Vec<u8>> {
    let mut writer = Writer::builder("GeoLite2-ASN")
        .description(&[("en", DESCRIPTION)])
        .build();
    for i in 0..CITIES.len() {
        for kind in NetKind::EVERY {
            let record = asn_record(i, kind);
            writer
                .insert_value(network(i, kind), record.clone())
                .map_err(to_io)?;
            writer
                .insert_value(network_v6(i, kind), record)
                .map_err(to_io)?;
        }
    }
    writer.to_bytes().map_err(to_io)
}

/// Write the City and ASN databases (each by write-then-rename).
pub fn write_databases(city_db: &Path, asn_db: &Path) -> io::Result<()> {
    write_by_rename(city_db, &city_db_bytes()?)?;
    write_by_rename(asn_db, &asn_db_bytes()?)
}

/// Write the same world in the flat DB-IP Lite schema that ip-location-db packages
/// (`city`, `country_code`, `latitude`/`longitude` as 32-bit floats, no accuracy radius),
/// IPv4 only, residential blocks only: exercises the enricher's second schema.
pub fn write_flat_city_db(path: &Path) -> io::Result<()> {
    let mut writer = Writer::builder("city ipv4")
        .ip_version(IpVersion::V4)
        .build();
    for (i, city) in CITIES.iter().enumerate() {
        let record = Value::map([
            ("city", Value::from(city.name)),
            ("country_code", Value::from(city.country)),
            ("latitude", Value::Float(city.lat as f32)),
            ("longitude", Value::Float(city.lon as f32)),
            ("state1", Value::from("")),
            ("postcode", Value::from("")),
            ("timezone", Value::from("")),
        ]);
        writer
            .insert_value(network(i, NetKind::Residential), record)
            .map_err(to_io)?;
    }
    write_by_rename(path, &writer.to_bytes().map_err(to_io)?)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::config::GeoIpConfig;
    use crate::enrich::{Enricher, classify};
    use crate::event::AddressClass;

    #[test]
    fn cities_are_many_valid_and_cover_every_continent() {
        assert!(CITIES.len() >= 200, "{} cities", CITIES.len());
        assert!(CITIES.len() <= 1024, "the /18 plan holds 1024 cities");
        let mut names = HashSet::new();
        for c in CITIES {
            assert!(names.insert(c.name), "duplicate city {}", c.name);
            assert!((-90.0..=90.0).contains(&c.lat) && (-180.0..=180.0).contains(&c.lon));
            assert!(
                c.country.len() == 2 && c.country.bytes().all(|b| b.is_ascii_uppercase()),
                "{}: bad country {}",
                c.name,
                c.country
            );
        }
        assert!(countries().len() < 256, "ASN plan holds 256 countries");
        // One witness per continent.
        for name in [
            "Berlin",
            "São Paulo",
            "London",
            "New York",
            "Paris",
            "Tokyo",
            "Sydney",
            "Mumbai",
            "Lagos",
            "Mexico City",
        ] {
            assert!(city_index(name).is_some(), "missing {name}");
        }
        let southern = CITIES.iter().filter(|c| c.lat < 0.0).count();
        let western = CITIES.iter().filter(|c| c.lon < -30.0).count();
        assert!(southern >= 40 && western >= 60, "{southern} {western}");
    }

    #[test]
    fn coordinates_are_real() {
        // Known great-circle distances (km) between city centres, ±2 %: catches a swapped or
        // mistyped coordinate.
        for (a, b, km) in [
            ("Berlin", "São Paulo", 10_250.0),
            ("Berlin", "Munich", 504.0),
            ("Berlin", "Hamburg", 255.0),
            ("New York", "Boston", 306.0),
            ("São Paulo", "Rio de Janeiro", 361.0),
            ("London", "Paris", 344.0),
            ("Tokyo", "Sydney", 7_800.0),
            ("Mumbai", "New Delhi", 1_150.0),
            ("Sydney", "Melbourne", 714.0),
            ("New York", "Los Angeles", 3_940.0),
            ("London", "New York", 5_570.0),
        ] {
            let (ca, cb) = (
                CITIES[city_index(a).unwrap()],
                CITIES[city_index(b).unwrap()],
            );
            let d = crate::track::great_circle_km((ca.lat, ca.lon), (cb.lat, cb.lon));
            assert!(
                (d - km).abs() / km < 0.02,
                "{a}–{b}: {d:.0} km, expected {km}"
            );
        }
    }

    #[test]
    fn address_plan_is_distinct_public_and_invertible() {
        let mut seen = HashSet::new();
        for city in 0..CITIES.len() {
            for kind in NetKind::EVERY {
                for n in [0, 1, 16_381, 16_382, 1_000_000] {
                    for ip in [address(city, kind, n), address_v6(city, kind, n)] {
                        assert_eq!(classify(ip), AddressClass::Public, "{ip}");
                        assert_eq!(locate(ip), Some((city, kind)), "{ip}");
                        assert!(
                            network(city, kind).contains(&ip)
                                || network_v6(city, kind).contains(&ip)
                        );
                    }
                }
                assert!(seen.insert(network(city, kind)));
                assert!(seen.insert(network_v6(city, kind)));
            }
        }
        // Wrapping: host 16382 is host 0 again, and the block's first/last addresses are skipped.
        let berlin = city_index("Berlin").unwrap();
        assert_eq!(
            address(berlin, NetKind::Mobile, 0),
            address(berlin, NetKind::Mobile, V4_HOSTS_PER_BLOCK)
        );
        assert_eq!(
            address(0, NetKind::Residential, 0),
            "11.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(locate("8.8.8.8".parse().unwrap()), None);
        assert_eq!(locate("2e00:a::1".parse().unwrap()), None);
    }

    #[test]
    fn asns_follow_country_and_kind() {
        let (berlin, munich, paris) = (
            city_index("Berlin").unwrap(),
            city_index("Munich").unwrap(),
            city_index("Paris").unwrap(),
        );
        assert_eq!(
            asn(berlin, NetKind::Residential),
            asn(munich, NetKind::Residential)
        );
        assert_ne!(
            asn(berlin, NetKind::Residential),
            asn(paris, NetKind::Residential)
        );
        assert_ne!(
            asn(berlin, NetKind::Residential),
            asn(berlin, NetKind::Mobile)
        );
        assert_ne!(asn(berlin, NetKind::Mobile), asn(berlin, NetKind::Hosting));
        assert_eq!(asn(berlin, NetKind::Vpn), asn(paris, NetKind::Vpn));
        // One ASN per (country, kind) for the national kinds, one per kind for the global
        // ones, and no ASN shared between two of those owners.
        let mut owner_of = std::collections::HashMap::new();
        for (i, city) in CITIES.iter().enumerate() {
            for kind in NetKind::EVERY {
                let a = asn(i, kind);
                assert!(
                    (64_512..=65_534).contains(&a) || (4_200_000_000..=4_294_967_294).contains(&a),
                    "{a} is not private-use"
                );
                let owner = match kind {
                    // The carrier gateways belong to the country's mobile carrier.
                    NetKind::CarrierGateway => (city.country, NetKind::Mobile),
                    NetKind::Residential
                    | NetKind::Mobile
                    | NetKind::Hosting
                    | NetKind::AltResidential => (city.country, kind),
                    _ => ("", kind),
                };
                assert_eq!(*owner_of.entry(a).or_insert(owner), owner, "ASN {a}");
            }
        }
        assert_eq!(owner_of.len(), countries().len() * 4 + 4);
        assert_ne!(
            asn(berlin, NetKind::Residential),
            asn(berlin, NetKind::AltResidential)
        );
    }

    /// An enricher over freshly written synthetic databases in `dir`.
    pub(super) fn enricher(dir: &Path) -> Enricher {
        let (city_db, asn_db) = (dir.join("city.mmdb"), dir.join("asn.mmdb"));
        write_databases(&city_db, &asn_db).unwrap();
        Enricher::from_config(&GeoIpConfig {
            city_db: Some(city_db),
            asn_db: Some(asn_db),
            ..GeoIpConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn round_trip_through_the_enricher() {
        let dir = tempfile::tempdir().unwrap();
        let enricher = enricher(dir.path());
        assert!(enricher.is_loaded());
        let epoch = enricher.city_build_epoch().unwrap();
        assert!(epoch > 1_700_000_000, "{epoch}");
        for (name, kind, radius) in [
            ("Berlin", NetKind::Residential, 20.0),
            ("São Paulo", NetKind::Mobile, 100.0),
            ("Tokyo", NetKind::Hosting, 10.0),
            ("Sydney", NetKind::Residential, 20.0),
            ("Lagos", NetKind::Mobile, 100.0),
            ("Mexico City", NetKind::Vpn, 10.0),
            ("New York", NetKind::Satellite, 500.0),
            ("Mumbai", NetKind::Relay, 50.0),
            ("Cairo", NetKind::AltResidential, 20.0),
            ("Dublin", NetKind::CorporateVpn, 10.0),
        ] {
            let i = city_index(name).unwrap();
            for ip in [address(i, kind, 7), address_v6(i, kind, 7), {
                // IPv4-mapped IPv6 resolves like the IPv4 address.
                let IpAddr::V4(v4) = address(i, kind, 9) else {
                    unreachable!()
                };
                IpAddr::V6(v4.to_ipv6_mapped())
            }] {
                let e = enricher.enrich(ip, None);
                let geo = e.geo.unwrap_or_else(|| panic!("{name} {ip} not located"));
                assert_eq!(geo.city.as_deref(), Some(name), "{ip}");
                assert_eq!(geo.country.as_deref(), Some(CITIES[i].country));
                assert_eq!((geo.lat, geo.lon), (CITIES[i].lat, CITIES[i].lon));
                assert_eq!(geo.radius_km, radius);
                assert_eq!(e.asn, Some(asn(i, kind)), "{ip}");
                assert_eq!(e.address_class, Some(AddressClass::Public));
            }
        }
        // Public but outside the plan: no data, still classified.
        let e = enricher.enrich("8.8.8.8".parse().unwrap(), None);
        assert!(e.geo.is_none() && e.asn.is_none());
        assert_eq!(e.address_class, Some(AddressClass::Public));
    }

    #[test]
    fn flat_schema_uses_the_default_accuracy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dbip.mmdb");
        write_flat_city_db(&path).unwrap();
        let enricher = Enricher::from_config(&GeoIpConfig {
            city_db: Some(path),
            default_accuracy_km: 42.0,
            ..GeoIpConfig::default()
        })
        .unwrap();
        let sp = city_index("São Paulo").unwrap();
        let e = enricher.enrich(address(sp, NetKind::Residential, 3), None);
        let geo = e.geo.unwrap();
        assert_eq!(geo.city.as_deref(), Some("São Paulo"));
        assert_eq!(geo.country.as_deref(), Some("BR"));
        assert_eq!(geo.radius_km, 42.0);
        // Stored as f32: equal to within float precision, not exactly.
        assert!((geo.lat - CITIES[sp].lat).abs() < 1e-4 && (geo.lon - CITIES[sp].lon).abs() < 1e-4);
        assert_eq!(e.asn, None, "no ASN database configured");
        // An IPv6 address in an IPv4-only database is simply unknown, not an error.
        let e = enricher.enrich(address_v6(sp, NetKind::Residential, 3), None);
        assert!(e.geo.is_none());
        assert_eq!(enricher.lookup_errors(), 0);
    }

    #[test]
    fn databases_are_deterministic_apart_from_build_time() {
        // Same networks, same records: a second build answers identically.
        let dir = tempfile::tempdir().unwrap();
        let a = enricher(dir.path());
        let b = enricher(dir.path());
        for city in (0..CITIES.len()).step_by(17) {
            let ip = address(city, NetKind::Residential, city as u32);
            assert_eq!(a.enrich(ip, None).geo, b.enrich(ip, None).geo);
        }
    }
}

#[cfg(test)]
mod carrier_and_index_tests {
    use super::*;
    use crate::config::GeoIpConfig;
    use crate::enrich::Enricher;

    use super::tests::enricher;

    #[test]
    fn carrier_gateways_are_hundreds_of_km_away_with_coarse_radius() {
        let mut same_country_city = 0;
        for (i, city) in CITIES.iter().enumerate() {
            let g = carrier_gateway(i);
            let d = crate::track::great_circle_km((city.lat, city.lon), (g.place.lat, g.place.lon));
            assert!(
                (149.0..=801.0).contains(&d),
                "{}: gateway {d:.0} km away",
                city.name
            );
            assert!((200..=500).contains(&g.place.radius_km));
            assert_eq!(g.place.city, None, "carrier ranges have no city");
            assert_eq!(g.place.country, city.country);
            if let Some(j) = g.city {
                assert_eq!(CITIES[j].country, city.country);
                same_country_city += 1;
            }
        }
        // Most gateways sit in a real city of the same country.
        assert!(same_country_city > CITIES.len() / 2, "{same_country_city}");
        // Munich's phones come out of a gateway in another German city.
        let munich = city_index("Munich").unwrap();
        let g = carrier_gateway(munich);
        assert!(g.city.is_some_and(|j| CITIES[j].country == "DE"));
    }

    #[test]
    fn special_blocks_resolve_as_intended() {
        let dir = tempfile::tempdir().unwrap();
        let enricher = enricher(dir.path());
        // Carrier gateways: the gateway's place, no city, a 200–500 km radius, the mobile
        // carrier's ASN — for both families.
        for name in ["Munich", "Lyon", "Luxembourg", "Seattle", "Perth"] {
            let i = city_index(name).unwrap();
            let g = carrier_gateway(i);
            for ip in [
                address(i, NetKind::CarrierGateway, 3),
                address_v6(i, NetKind::CarrierGateway, 3),
            ] {
                let e = enricher.enrich(ip, None);
                let geo = e.geo.unwrap();
                assert_eq!(geo.city, None, "{name} {ip}");
                assert_eq!(geo.country.as_deref(), Some(CITIES[i].country));
                assert_eq!((geo.lat, geo.lon), (g.place.lat, g.place.lon));
                assert_eq!(geo.radius_km, f64::from(g.place.radius_km));
                assert!(geo.radius_km >= 200.0);
                assert_eq!(e.asn, Some(asn(i, NetKind::Mobile)));
            }
        }
        // The corporate VPN: its own ASN, located at the egress city, inside the networks an
        // operator allowlists; nothing else is inside them.
        let vpn_nets = corporate_vpn_networks();
        for name in ["Amsterdam", "Singapore", "Washington D.C."] {
            let i = city_index(name).unwrap();
            for ip in [
                address(i, NetKind::CorporateVpn, 5),
                address_v6(i, NetKind::CorporateVpn, 5),
            ] {
                assert!(vpn_nets.iter().any(|n| n.contains(&ip)), "{ip}");
                let e = enricher.enrich(ip, None);
                assert_eq!(e.asn, Some(CORPORATE_VPN_ASN));
                assert_eq!(e.geo.unwrap().city.as_deref(), Some(name));
            }
            for kind in NetKind::EVERY {
                if kind != NetKind::CorporateVpn {
                    let ip = address(i, kind, 5);
                    assert!(!vpn_nets.iter().any(|n| n.contains(&ip)), "{ip}");
                }
            }
        }
        // Satellite: the provider's home with a 500 km radius; relay: its egress city.
        let la = city_index("Los Angeles").unwrap();
        let e = enricher.enrich(address(la, NetKind::Satellite, 1), None);
        assert_eq!(e.asn, Some(SATELLITE_ASN));
        let geo = e.geo.unwrap();
        assert_eq!(geo.city.as_deref(), Some("Los Angeles"));
        assert_eq!(geo.radius_km, 500.0);
        let lyon = city_index("Lyon").unwrap();
        let e = enricher.enrich(address(lyon, NetKind::Relay, 1), None);
        assert_eq!(e.asn, Some(RELAY_ASN));
        assert_eq!(e.geo.unwrap().city.as_deref(), Some("Lyon"));
    }

    #[test]
    fn benign_and_attacker_hosts_never_meet() {
        for x in [0, 1, 8191, 8192, 16_000, u32::MAX] {
            assert!(benign_host(x) < ATTACKER_HOSTS);
            let a = attacker_host(x);
            assert!((ATTACKER_HOSTS..V4_HOSTS_PER_BLOCK).contains(&a), "{a}");
        }
        let berlin = city_index("Berlin").unwrap();
        let benign: std::collections::HashSet<IpAddr> = (0..ATTACKER_HOSTS)
            .map(|n| address(berlin, NetKind::AltResidential, benign_host(n)))
            .collect();
        assert_eq!(benign.len(), ATTACKER_HOSTS as usize);
        for x in (0..100_000).step_by(7) {
            let ip = address(berlin, NetKind::AltResidential, attacker_host(x));
            assert!(!benign.contains(&ip), "{ip}");
        }
    }

    #[test]
    fn index_of_a_city_database_draws_addresses_located_in_each_city() {
        let dir = tempfile::tempdir().unwrap();
        let enricher = enricher(dir.path());
        let index = AddressIndex::build(&dir.path().join("city.mmdb"), None).unwrap();
        // The synthetic database places 8 kinds × 2 families in every city (gateways have no
        // city and are not indexed).
        assert_eq!(index.cities_found(), CITIES.len());
        assert_eq!(index.networks_kept(), CITIES.len() * 2 * NetKind::ALL.len());
        let plan = AddressPlan::Indexed(Arc::new(index));
        for name in ["Berlin", "São Paulo", "Tokyo", "Lagos", "Honolulu"] {
            let i = city_index(name).unwrap();
            for kind in NetKind::ALL {
                for n in [0, 1, 5000, attacker_host(0), attacker_host(77)] {
                    let ip = plan.address(i, kind, n);
                    let geo = enricher.enrich(ip, None).geo.unwrap();
                    assert_eq!(geo.city.as_deref(), Some(name), "{kind:?} {n} {ip}");
                }
                // Benign and attacker halves differ.
                assert_ne!(
                    plan.address(i, kind, 0),
                    plan.address(i, kind, attacker_host(0))
                );
            }
            // Carrier gateways come from the gateway city's networks.
            let ip = plan.address(i, NetKind::CarrierGateway, 9);
            let expected = carrier_gateway(i).city.unwrap_or(i);
            let geo = enricher.enrich(ip, None).geo.unwrap();
            assert_eq!(geo.city.as_deref(), Some(CITIES[expected].name), "{ip}");
        }
        // The ASN overlay gives indexed networks their (country, kind) ASN.
        let AddressPlan::Indexed(index) = &plan else {
            unreachable!()
        };
        let overlay = dir.path().join("overlay-asn.mmdb");
        index.write_asn_db(&overlay).unwrap();
        let with_overlay = Enricher::from_config(&GeoIpConfig {
            city_db: Some(dir.path().join("city.mmdb")),
            asn_db: Some(overlay),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let berlin = city_index("Berlin").unwrap();
        for kind in [
            NetKind::Residential,
            NetKind::AltResidential,
            NetKind::Hosting,
        ] {
            let ip = plan.address(berlin, kind, 3);
            assert_eq!(with_overlay.enrich(ip, None).asn, Some(asn(berlin, kind)));
        }
        // The corporate VPN's allowlist covers its egress addresses.
        let nets = plan.corporate_vpn_networks(&[berlin]);
        assert!(!nets.is_empty());
        for n in 0..64 {
            let ip = plan.address(berlin, NetKind::CorporateVpn, n);
            assert!(nets.iter().any(|net| net.contains(&ip)), "{ip}");
        }
    }
}
