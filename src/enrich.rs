//! Stage 4, enrich: GeoIP city and ASN look-ups, address classification, User-Agent parsing.
//!
//! Where it sits: after `identify`, before `track`. [`Enricher::enrich`] turns a client
//! address and a User-Agent into an [`Enrichment`]; `track` compares enrichments across a
//! session's requests (travel, ASN/country/UA changes, scripted clients).
//!
//! - **Classification first.** [`classify`] sorts every address into public, private or
//!   reserved (IPv4-mapped and NAT64 well-known-prefix IPv6 count as the IPv4 address they
//!   carry). Only public addresses are looked up, so a private or reserved address never gets
//!   a location; `address_class` is always set. An IPv6 address in an IPv4-only database is
//!   simply not found.
//! - **Two City schemas.** GeoIP2/GeoLite2 City (`location.*`, `country.iso_code`,
//!   `city.names.en`) and the flat DB-IP Lite schema packaged by ip-location-db (`latitude`,
//!   `longitude`, `country_code`, `city`; no radius, so the configured default applies, or
//!   1000 km for a record without a city, whose coordinates are a country centroid). One
//!   borrowed record type decodes either, field by field, skipping everything else. ASN:
//!   `autonomous_system_number` (GeoLite2-ASN and ip-location-db's asn packages).
//! - **Memory-mapped, swapped atomically.** Databases are mapped, never read into the heap.
//!   [`Enricher::reload_if_changed`] compares the file's identity (device, inode, mtime,
//!   length) to the mapped one and swaps in a new reader with `arc-swap`; look-ups in flight
//!   keep the old mapping alive until they finish. A file that fails to open keeps the old
//!   reader.
//! - **User-Agent** is reduced with `woothee` to a family without version (`Chrome`) and an
//!   OS without minor versions (`Windows 10`, `iPhone`, `Mac OSX`), so a browser update is not
//!   a "change". Scripted clients (curl, python-requests, Go-http-client, …) are recognised
//!   by their product token and named by it; so are crawlers. An empty (or `-`) User-Agent
//!   gives family and OS `unknown`, not scripted. Results are cached per UA string (bounded).
//!
//! Invariants: no wall-clock reads; no panics on any input; inputs are size-capped (User-Agent
//! at [`MAX_USER_AGENT_BYTES`]). A corrupt record is counted ([`Enricher::lookup_errors`])
//! and treated as unknown.
//!
//! What it does NOT do: decide whether a difference between two enrichments matters (that is
//! `track`), resolve proxies (the parser's `client_ip` is already the client), or download
//! databases (`scripts/fetch-dbip.sh`, or geoipupdate).

use std::fmt;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use maxminddb::{MaxMindDbError, Mmap, Reader};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::config::GeoIpConfig;
use crate::event::{AddressClass, Enrichment, GeoPoint, UserAgentInfo};

/// Longest User-Agent prefix that is parsed; the rest is ignored (browsers send < 300 bytes).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// Distinct User-Agent strings remembered; the cache is cleared when it fills up.
const USER_AGENT_CACHE_ENTRIES: usize = 8192;

/// Accuracy for a flat-schema record that has coordinates but no city: DB-IP then gives a
/// country centroid, which is as coarse as MaxMind's country-level records (1000 km).
const COUNTRY_LEVEL_ACCURACY_KM: f64 = 1000.0;

/// A database that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The file cannot be opened, inspected or mapped.
    #[error("cannot open GeoIP database {path}: {source}")]
    Open {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB (or is damaged).
    #[error("{path} is not a readable MaxMind DB: {source}")]
    Invalid {
        /// The configured path.
        path: PathBuf,
        /// What the reader said.
        source: MaxMindDbError,
    },
    /// Iterating the database failed (only [`find_addresses`]).
    #[error("cannot read networks of {path}: {source}")]
    Iterate {
        /// The database path.
        path: PathBuf,
        /// What the reader said.
        source: MaxMindDbError,
    },
}

impl EnrichError {
    /// Bounded code for a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            EnrichError::Open { .. } => "open",
            EnrichError::Invalid { .. } => "invalid",
            EnrichError::Iterate { .. } => "iterate",
        }
    }
}

/// What identifies one version of a database file: replacing it (geoipupdate, `mv`) changes
/// the inode; touching or rewriting it changes mtime or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let (device, inode) = {
            use std::os::unix::fs::MetadataExt;
            (metadata.dev(), metadata.ino())
        };
        #[cfg(not(unix))]
        let (device, inode) = (0, 0);
        FileIdentity {
            device,
            inode,
            modified: metadata.modified().ok(),
            len: metadata.len(),
        }
    }
}

/// One mapped database and the identity of the file it was mapped from.
struct LoadedDb {
    reader: Reader<Mmap>,
    identity: FileIdentity,
}

impl LoadedDb {
    fn open(path: &Path) -> Result<LoadedDb, EnrichError> {
        let open_error = |source| EnrichError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_error)?;
        // The identity comes from the open handle, so it describes exactly the bytes mapped
        // even if the path is replaced between the two calls.
        let identity = FileIdentity::of(&file.metadata().map_err(open_error)?);
        // SAFETY: a mapping is undefined behaviour only if the file is modified or truncated
        // in place while mapped. GeoIP files are replaced by writing a new file and renaming
        // it over the old path (geoipupdate, `scripts/fetch-dbip.sh`, `geodb::write_databases`
        // all do), which leaves this inode untouched until the last mapping is dropped. This
        // is the one unsafe call of the crate; `maxminddb::Reader::open_mmap` makes the same
        // call, but by path, which would lose the identity of the mapped file.
        #[allow(unsafe_code)]
        let mmap = unsafe { Mmap::map(&file) }.map_err(open_error)?;
        let reader = Reader::from_source(mmap).map_err(|source| EnrichError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(LoadedDb { reader, identity })
    }
}

/// A configured database: its path and the reader currently serving it.
struct DbSlot {
    path: PathBuf,
    current: ArcSwap<LoadedDb>,
}

impl DbSlot {
    fn open(path: &Path) -> Result<DbSlot, EnrichError> {
        Ok(DbSlot {
            path: path.to_path_buf(),
            current: ArcSwap::from_pointee(LoadedDb::open(path)?),
        })
    }

    /// Swap in the file at `path` if it is not the one mapped; true if swapped.
    fn reload_if_changed(&self) -> Result<bool, EnrichError> {
        let metadata = std::fs::metadata(&self.path).map_err(|source| EnrichError::Open {
            path: self.path.clone(),
            source,
        })?;
        if FileIdentity::of(&metadata) == self.current.load().identity {
            return Ok(false);
        }
        let fresh = LoadedDb::open(&self.path)?;
        self.current.store(Arc::new(fresh));
        Ok(true)
    }
}

/// Looks up addresses in memory-mapped databases that are reloaded when their files change.
///
/// Shared by reference between workers (`Send + Sync`); every method takes `&self`.
pub struct Enricher {
    city: Option<DbSlot>,
    asn: Option<DbSlot>,
    default_accuracy_km: f64,
    lookup_errors: AtomicU64,
    user_agents: DashMap<Box<str>, UserAgentInfo>,
}

impl fmt::Debug for Enricher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enricher")
            .field("city_db", &self.city.as_ref().map(|s| &s.path))
            .field("asn_db", &self.asn.as_ref().map(|s| &s.path))
            .field("default_accuracy_km", &self.default_accuracy_km)
            .finish_non_exhaustive()
    }
}

impl Enricher {
    /// Open the configured databases (none configured is fine: no geolocation).
    pub fn from_config(config: &GeoIpConfig) -> Result<Self, EnrichError> {
        let city = config.city_db.as_deref().map(DbSlot::open).transpose()?;
        let asn = config.asn_db.as_deref().map(DbSlot::open).transpose()?;
        let mut enricher = Enricher::empty();
        enricher.city = city;
        enricher.asn = asn;
        enricher.default_accuracy_km = config.default_accuracy_km;
        Ok(enricher)
    }

    /// No databases: classifies addresses and parses User-Agents only.
    pub fn empty() -> Self {
        Enricher {
            city: None,
            asn: None,
            default_accuracy_km: GeoIpConfig::default().default_accuracy_km,
            lookup_errors: AtomicU64::new(0),
            user_agents: DashMap::new(),
        }
    }

    /// A City database is loaded.
    pub fn is_loaded(&self) -> bool {
        self.city.is_some()
    }

    /// Enrich one request.
    pub fn enrich(&self, ip: IpAddr, user_agent: Option<&str>) -> Enrichment {
        let ip = canonical(ip);
        let class = classify(ip);
        let (geo, asn) = if class == AddressClass::Public {
            (self.locate(ip), self.asn_of(ip))
        } else {
            (None, None)
        };
        Enrichment {
            geo,
            asn,
            address_class: Some(class),
            user_agent: user_agent.map(|ua| self.user_agent(ua)),
        }
    }

    /// Reopen databases whose files changed; true if any was reloaded.
    ///
    /// Both databases are checked even if the first fails; the first error is returned and
    /// the failed database keeps serving its previous version.
    pub fn reload_if_changed(&self) -> Result<bool, EnrichError> {
        let mut reloaded = false;
        let mut first_error = None;
        for slot in [&self.city, &self.asn].into_iter().flatten() {
            match slot.reload_if_changed() {
                Ok(changed) => reloaded |= changed,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reloaded),
        }
    }

    /// Build time of the city database (epoch seconds), for a gauge.
    pub fn city_build_epoch(&self) -> Option<u64> {
        let slot = self.city.as_ref()?;
        Some(slot.current.load().reader.metadata().build_epoch)
    }

    /// Records that could not be decoded since start (a damaged or unexpected database).
    pub fn lookup_errors(&self) -> u64 {
        self.lookup_errors.load(Ordering::Relaxed)
    }

    fn count_error<T>(&self, result: Result<T, MaxMindDbError>) -> Option<T> {
        result
            .inspect_err(|_| {
                self.lookup_errors.fetch_add(1, Ordering::Relaxed);
            })
            .ok()
    }

    fn locate(&self, ip: IpAddr) -> Option<GeoPoint> {
        let db = self.city.as_ref()?.current.load();
        if ip.is_ipv6() && db.reader.metadata().ip_version == 4 {
            return None;
        }
        let found = self.count_error(db.reader.lookup(ip))?;
        let record: CityRecord<'_> = self.count_error(found.decode())??;
        record.into_geo_point(self.default_accuracy_km)
    }

    fn asn_of(&self, ip: IpAddr) -> Option<u32> {
        let db = self.asn.as_ref()?.current.load();
        if ip.is_ipv6() && db.reader.metadata().ip_version == 4 {
            return None;
        }
        let found = self.count_error(db.reader.lookup(ip))?;
        let record: AsnRecord = self.count_error(found.decode())??;
        record
            .autonomous_system_number
            .and_then(|n| n.as_u32())
            .filter(|n| *n != 0)
    }

    fn user_agent(&self, raw: &str) -> UserAgentInfo {
        let ua = truncate_to_char_boundary(raw.trim(), MAX_USER_AGENT_BYTES);
        if let Some(hit) = self.user_agents.get(ua) {
            return hit.clone();
        }
        let info = parse_user_agent(ua);
        if self.user_agents.len() >= USER_AGENT_CACHE_ENTRIES {
            // Crude but bounded: real traffic has a few hundred distinct UAs; a flood of
            // random ones only costs re-parsing.
            self.user_agents.clear();
        }
        self.user_agents.insert(ua.into(), info.clone());
        info
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) and NAT64 well-known-prefix (`64:ff9b::a.b.c.d`)
/// addresses stand for an IPv4 host: classify and look them up as that host.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [_, _, _, _, _, _, _, _, _, _, _, _, a, b, c, d] = v6.octets();
                return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// Classify an address (public, private, reserved).
///
/// IPv4-mapped (and NAT64 well-known-prefix) IPv6 addresses are classified as the IPv4
/// address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match canonical(ip) {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn in_v4(ip: u32, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    ip & mask == u32::from_be_bytes(net) & mask
}

fn classify_v4(v4: Ipv4Addr) -> AddressClass {
    const PRIVATE: &[([u8; 4], u32)] = &[
        ([10, 0, 0, 0], 8),
        ([172, 16, 0, 0], 12),
        ([192, 168, 0, 0], 16),
        ([100, 64, 0, 0], 10), // CGNAT shared address space (RFC 6598)
    ];
    const RESERVED: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", includes 0.0.0.0
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, includes 255.255.255.255
    ];
    let ip = u32::from(v4);
    if PRIVATE.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        AddressClass::Private
    } else if RESERVED.iter().any(|(net, p)| in_v4(ip, *net, *p)) {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn in_v6(ip: u128, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    ip & mask == u128::from(net) & mask
}

fn classify_v6(v6: Ipv6Addr) -> AddressClass {
    const fn a(s: [u16; 8]) -> Ipv6Addr {
        Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
    }
    const PRIVATE: &[(Ipv6Addr, u32)] = &[
        (a([0xfc00, 0, 0, 0, 0, 0, 0, 0]), 7),     // unique local
        (a([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]), 48), // local-use NAT64 (RFC 8215)
    ];
    // Reserved space inside global unicast 2000::/3; everything outside 2000::/3 that is not
    // private is reserved as well (loopback, unspecified, link-local, multicast, …).
    const RESERVED_IN_GLOBAL: &[(Ipv6Addr, u32)] = &[
        (a([0x2001, 0x2, 0, 0, 0, 0, 0, 0]), 48),   // benchmarking
        (a([0x2001, 0x10, 0, 0, 0, 0, 0, 0]), 28),  // deprecated ORCHID
        (a([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]), 32), // documentation
        (a([0x3fff, 0, 0, 0, 0, 0, 0, 0]), 20),     // documentation (RFC 9637)
    ];
    let ip = u128::from(v6);
    if PRIVATE.iter().any(|(net, p)| in_v6(ip, *net, *p)) {
        AddressClass::Private
    } else if !in_v6(ip, a([0x2000, 0, 0, 0, 0, 0, 0, 0]), 3)
        || RESERVED_IN_GLOBAL
            .iter()
            .any(|(net, p)| in_v6(ip, *net, *p))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

// ---------------------------------------------------------------------------------------------
// Database records. Borrowed from the mapping; unknown fields are skipped without decoding.

/// Any MMDB number: GeoIP2 stores coordinates as doubles, DB-IP as floats; radii are u16,
/// ASNs u32. Accepting every numeric type keeps one vendor's choice from failing the decode.
#[derive(Debug, Clone, Copy)]
struct Number(f64);

impl Number {
    fn as_u32(self) -> Option<u32> {
        (self.0 >= 0.0 && self.0 <= f64::from(u32::MAX) && self.0.fract() == 0.0)
            .then_some(self.0 as u32)
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

/// `city`: a map with `names.en` (GeoIP2) or a plain string (DB-IP flat).
#[derive(Debug, Default)]
struct CityName<'a>(Option<&'a str>);

#[derive(Deserialize)]
struct Names<'a> {
    #[serde(borrow)]
    en: Option<&'a str>,
}

impl<'de: 'a, 'a> Deserialize<'de> for CityName<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CityVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for CityVisitor<'a> {
            type Value = CityName<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a city name or a map with names")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CityName(Some(v)))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut name = None;
                while let Some(key) = map.next_key::<&'de str>()? {
                    if key == "names" {
                        name = map.next_value::<Names<'de>>()?.en;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(CityName(name))
            }
        }
        deserializer.deserialize_any(CityVisitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Country<'a> {
    #[serde(borrow)]
    iso_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Number>,
    longitude: Option<Number>,
    accuracy_radius: Option<Number>,
}

/// The fields of either City schema that enrichment needs.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: CityName<'a>,
    // GeoIP2
    #[serde(borrow)]
    country: Option<Country<'a>>,
    #[serde(borrow)]
    registered_country: Option<Country<'a>>,
    location: Option<Location>,
    // DB-IP flat
    #[serde(borrow)]
    country_code: Option<&'a str>,
    latitude: Option<Number>,
    longitude: Option<Number>,
}

impl CityRecord<'_> {
    fn country_code(&self) -> Option<&str> {
        self.country_code
            .or_else(|| self.country.as_ref().and_then(|c| c.iso_code))
            .or_else(|| self.registered_country.as_ref().and_then(|c| c.iso_code))
            .filter(|c| !c.is_empty())
    }

    fn into_geo_point(self, default_accuracy_km: f64) -> Option<GeoPoint> {
        let city = self.city.0.filter(|c| !c.is_empty());
        let (lat, lon, radius) = match &self.location {
            Some(loc) => (loc.latitude?, loc.longitude?, loc.accuracy_radius),
            None => (self.latitude?, self.longitude?, None),
        };
        let (lat, lon) = (lat.0, lon.0);
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
            return None;
        }
        let radius_km = match radius {
            Some(r) if r.0.is_finite() && r.0 > 0.0 => r.0,
            _ if city.is_none() && self.location.is_none() => {
                COUNTRY_LEVEL_ACCURACY_KM.max(default_accuracy_km)
            }
            _ => default_accuracy_km,
        };
        Some(GeoPoint {
            city: city.map(Arc::from),
            country: self.country_code().map(intern_country),
            lat,
            lon,
            radius_km,
        })
    }
}

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<Number>,
}

/// Country codes are shared `Arc<str>`s: there are fewer than 700 two-letter codes and every
/// located event carries one, so allocating per event would be waste.
fn intern_country(code: &str) -> Arc<str> {
    static TABLE: [OnceLock<Arc<str>>; 26 * 26] = [const { OnceLock::new() }; 26 * 26];
    match code.as_bytes() {
        [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
            let slot = usize::from(a - b'A') * 26 + usize::from(b - b'A');
            TABLE[slot].get_or_init(|| Arc::from(code)).clone()
        }
        _ => Arc::from(code),
    }
}

/// Fold a city name for comparison: lower case, common Latin diacritics removed, so
/// `"São Paulo"` matches DB-IP's `"Sao Paulo"`.
fn fold_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' | 'ă' | 'ą' | 'Á' | 'À' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'a'
            }
            'é' | 'è' | 'ê' | 'ë' | 'ě' | 'ę' | 'É' | 'È' | 'Ê' | 'Ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' | 'ı' | 'Í' | 'Ì' | 'Î' | 'Ï' | 'İ' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' | 'Ó' | 'Ò' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => {
                'o'
            }
            'ú' | 'ù' | 'û' | 'ü' | 'ű' | 'ů' | 'Ú' | 'Ù' | 'Û' | 'Ü' => 'u',
            'ç' | 'č' | 'ć' | 'Ç' | 'Č' | 'Ć' => 'c',
            'ñ' | 'ń' | 'Ñ' => 'n',
            'ș' | 'ş' | 'š' | 'ś' | 'Ș' | 'Ş' | 'Š' | 'Ś' => 's',
            'ț' | 'ţ' | 'Ț' | 'Ţ' => 't',
            'ž' | 'ź' | 'ż' | 'Ž' | 'Ź' | 'Ż' => 'z',
            'ł' | 'Ł' => 'l',
            'ř' | 'Ř' => 'r',
            'ğ' | 'Ğ' => 'g',
            'ý' | 'Ý' => 'y',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether a database's city name denotes the city `wanted`: equal ignoring case and
/// diacritics, or `wanted` with a district in parentheses, as DB-IP writes them
/// (`"Berlin (Pankow)"`, `"Sao Paulo (Vila Olimpia)"`).
pub fn city_name_matches(database_name: &str, wanted: &str) -> bool {
    folded_city_matches(&fold_name(database_name), &fold_name(wanted))
}

fn folded_city_matches(name: &str, wanted: &str) -> bool {
    name == wanted
        || name
            .strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with(" (") && rest.ends_with(')'))
}

/// Up to `n` addresses that the City database at `db_path` places in `city`, `country`.
///
/// Walks the database's networks in address order and takes one host from each matching
/// network. The city name matches ignoring case and diacritics, and DB-IP's district
/// suffixes count (`"Berlin (Pankow)"` is Berlin). For tests and evaluation on real data;
/// a full walk of a 60 MB database takes a few seconds.
pub fn find_addresses(
    db_path: &Path,
    city: &str,
    country: &str,
    n: usize,
) -> Result<Vec<IpAddr>, EnrichError> {
    let db = LoadedDb::open(db_path)?;
    let iterate_error = |source| EnrichError::Iterate {
        path: db_path.to_path_buf(),
        source,
    };
    let wanted = fold_name(city);
    let mut found = Vec::new();
    if n == 0 {
        return Ok(found);
    }
    for item in db
        .reader
        .networks(Default::default())
        .map_err(iterate_error)?
    {
        let item = item.map_err(iterate_error)?;
        let Some(record) = item.decode::<CityRecord<'_>>().map_err(iterate_error)? else {
            continue;
        };
        if record.country_code() != Some(country) {
            continue;
        }
        let Some(name) = record.city.0 else { continue };
        if !folded_city_matches(&fold_name(name), &wanted) {
            continue;
        }
        let network = item.network().map_err(iterate_error)?;
        found.push(host_in(network.network(), network.prefix()));
        if found.len() >= n {
            break;
        }
    }
    Ok(found)
}

/// The first usable host of a network (the network address itself for /31, /32, /127, /128).
fn host_in(network: IpAddr, prefix: u8) -> IpAddr {
    match network {
        IpAddr::V4(v4) if prefix <= 30 => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + 1)),
        IpAddr::V6(v6) if prefix <= 126 => IpAddr::V6(Ipv6Addr::from(u128::from(v6) + 1)),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// User-Agent.

/// Cut `s` to at most `max` bytes without splitting a character.
fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Product tokens of programmatic HTTP clients, spelled as they send them. Matched
/// case-insensitively at the start of the User-Agent, followed by `/`, a space, `;`, `(` or
/// the end, so `curly-browser/1` is not curl. Longer names that share a prefix come first.
const SCRIPTED_PREFIXES: &[&str] = &[
    "curl",
    "libcurl",
    "Wget2",
    "Wget",
    "python-requests",
    "python-urllib3",
    "Python-urllib",
    "python-httpx",
    "httpx",
    "aiohttp",
    "HTTPie",
    "Scrapy",
    "Go-http-client",
    "okhttp",
    "Java-http-client",
    "Java",
    "Apache-HttpClient",
    "Apache-HttpAsyncClient",
    "Jakarta Commons-HttpClient",
    "axios",
    "node-fetch",
    "undici",
    "node",
    "got",
    "Deno",
    "Bun",
    "PostmanRuntime",
    "insomnia",
    "libwww-perl",
    "lwp-trivial",
    "WWW-Mechanize",
    "Mechanize",
    "Ruby",
    "Faraday",
    "rest-client",
    "Typhoeus",
    "GuzzleHttp",
    "PHP",
    "Dart",
    "k6",
    "reqwest",
    "RestSharp",
    "aria2",
    "sqlmap",
    "Nuclei",
];

/// Tokens of automation tools that hide inside an otherwise browser-like User-Agent.
const SCRIPTED_MARKERS: &[(&str, &str)] = &[
    ("HeadlessChrome/", "HeadlessChrome"),
    ("PhantomJS/", "PhantomJS"),
    ("WindowsPowerShell/", "PowerShell"),
    ("PowerShell/", "PowerShell"),
    ("Nmap Scripting Engine", "Nmap"),
    ("Nikto", "Nikto"),
];

fn starts_with_token(ua: &[u8], token: &str) -> bool {
    let t = token.as_bytes();
    ua.len() >= t.len()
        && ua[..t.len()].eq_ignore_ascii_case(t)
        && matches!(ua.get(t.len()), None | Some(b'/' | b' ' | b';' | b'('))
}

/// The tool behind a scripted User-Agent, if it is one.
fn scripted_tool(ua: &str) -> Option<&'static str> {
    let bytes = ua.as_bytes();
    // aiohttp sends "Python/3.12 aiohttp/3.9.5": the interpreter first, the library second.
    if starts_with_token(bytes, "Python") {
        let rest = ua.split_once(' ').map_or("", |(_, rest)| rest);
        return Some(if starts_with_token(rest.as_bytes(), "aiohttp") {
            "aiohttp"
        } else {
            "Python"
        });
    }
    if let Some(tool) = SCRIPTED_PREFIXES
        .iter()
        .find(|p| starts_with_token(bytes, p))
    {
        return Some(tool);
    }
    SCRIPTED_MARKERS
        .iter()
        .find(|(marker, _)| ua.contains(marker))
        .map(|(_, tool)| *tool)
}

/// A `woothee` value, or `unknown` when it has none.
fn known(value: &str) -> Option<&str> {
    (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then_some(value)
}

fn parse_user_agent(ua: &str) -> UserAgentInfo {
    static UNKNOWN: OnceLock<Arc<str>> = OnceLock::new();
    let unknown = || UNKNOWN.get_or_init(|| Arc::from("unknown")).clone();
    if ua.is_empty() || ua == "-" {
        return UserAgentInfo {
            family: unknown(),
            os: unknown(),
            scripted: false,
        };
    }
    let parsed = woothee::parser::Parser::new().parse(ua);
    let os = parsed
        .as_ref()
        .and_then(|r| known(r.os))
        .map_or_else(unknown, Arc::from);
    if let Some(tool) = scripted_tool(ua) {
        return UserAgentInfo {
            family: Arc::from(tool),
            os,
            scripted: true,
        };
    }
    match parsed {
        Some(r) if r.name == "HTTP Library" => UserAgentInfo {
            // woothee names the language (`ruby`, `php`, `perl`, `Java`) in `version`.
            family: Arc::from(known(r.version).unwrap_or("HTTP Library")),
            os,
            scripted: true,
        },
        Some(r) => match known(r.name) {
            Some(name) => UserAgentInfo {
                family: Arc::from(name),
                os,
                scripted: r.category == "crawler",
            },
            None => UserAgentInfo {
                family: unknown(),
                os,
                scripted: false,
            },
        },
        None => UserAgentInfo {
            family: unknown(),
            os,
            scripted: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classification_table() {
        use AddressClass::*;
        for (addr, want) in [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("11.0.0.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("172.15.255.255", Public),
            ("172.32.0.0", Public),
            ("192.0.1.1", Public),
            ("198.17.255.255", Public),
            ("198.20.0.0", Public),
            ("223.255.255.255", Public),
            ("10.0.0.1", Private),
            ("10.255.255.255", Private),
            ("172.16.0.1", Private),
            ("172.31.255.254", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.127.255.254", Private),
            ("0.0.0.0", Reserved),
            ("0.1.2.3", Reserved),
            ("127.0.0.1", Reserved),
            ("169.254.169.254", Reserved),
            ("192.0.0.8", Reserved),
            ("192.0.2.10", Reserved),
            ("198.18.0.1", Reserved),
            ("198.19.255.255", Reserved),
            ("198.51.100.7", Reserved),
            ("203.0.113.9", Reserved),
            ("224.0.0.251", Reserved),
            ("239.255.255.250", Reserved),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
            ("2001:4860:4860::8888", Public),
            ("2a00:1450:4001:81b::200e", Public),
            ("2e00:1:0::1", Public),
            ("2002:c000:0204::1", Public),
            ("::ffff:8.8.8.8", Public),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:127.0.0.1", Reserved),
            ("::ffff:100.64.0.1", Private),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b::192.168.0.1", Private),
            ("64:ff9b:1::1", Private),
            ("fc00::1", Private),
            ("fd12:3456:789a::1", Private),
            ("::", Reserved),
            ("::1", Reserved),
            ("::8.8.8.8", Reserved),
            ("fe80::1", Reserved),
            ("febf::1", Reserved),
            ("ff02::1", Reserved),
            ("ff0e::1", Reserved),
            ("2001:db8::1", Reserved),
            ("2001:2::1", Reserved),
            ("3fff::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
        ] {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn private_and_reserved_addresses_are_never_located() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = (dir.path().join("c.mmdb"), dir.path().join("a.mmdb"));
        // A database that (wrongly) claims private and documentation space.
        let mut w = mmdb_writer::Writer::new("GeoIP2-City");
        let record = mmdb_writer::Value::map([(
            "location",
            mmdb_writer::Value::map([
                ("latitude", mmdb_writer::Value::Double(1.0)),
                ("longitude", mmdb_writer::Value::Double(2.0)),
            ]),
        )]);
        for net in ["10.0.0.0/8", "192.0.2.0/24", "8.8.8.0/24", "fd00::/8"] {
            w.insert_value(net.parse::<ipnet::IpNet>().unwrap(), record.clone())
                .unwrap();
        }
        std::fs::write(&city, w.to_bytes().unwrap()).unwrap();
        let mut w = mmdb_writer::Writer::new("GeoLite2-ASN");
        let record = mmdb_writer::Value::map([(
            "autonomous_system_number",
            mmdb_writer::Value::U32(64_500),
        )]);
        for net in ["10.0.0.0/8", "8.8.8.0/24"] {
            w.insert_value(net.parse::<ipnet::IpNet>().unwrap(), record.clone())
                .unwrap();
        }
        std::fs::write(&asn, w.to_bytes().unwrap()).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(city),
            asn_db: Some(asn),
            ..GeoIpConfig::default()
        })
        .unwrap();
        for (addr, class) in [
            ("10.1.2.3", AddressClass::Private),
            ("::ffff:10.1.2.3", AddressClass::Private),
            ("192.0.2.1", AddressClass::Reserved),
            ("fd00::1", AddressClass::Private),
        ] {
            let r = e.enrich(ip(addr), None);
            assert_eq!(r.address_class, Some(class), "{addr}");
            assert!(r.geo.is_none() && r.asn.is_none(), "{addr} was looked up");
        }
        let r = e.enrich(ip("8.8.8.8"), None);
        let geo = r.geo.unwrap();
        assert_eq!((geo.lat, geo.lon, geo.radius_km), (1.0, 2.0, 50.0));
        assert_eq!((geo.city, geo.country), (None, None));
        assert_eq!(r.asn, Some(64_500));
    }

    #[test]
    fn flat_record_without_city_is_country_level() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flat.mmdb");
        let mut w = mmdb_writer::Writer::builder("city ipv4")
            .ip_version(mmdb_writer::IpVersion::V4)
            .build();
        for (net, city) in [("8.8.8.0/24", "Mountain View"), ("8.8.4.0/24", "")] {
            let record = mmdb_writer::Value::map([
                ("city", mmdb_writer::Value::from(city)),
                ("country_code", mmdb_writer::Value::from("US")),
                ("latitude", mmdb_writer::Value::Float(37.4)),
                ("longitude", mmdb_writer::Value::Float(-122.1)),
            ]);
            w.insert_value(net.parse::<ipnet::IpNet>().unwrap(), record)
                .unwrap();
        }
        std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(path),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let city_level = e.enrich(ip("8.8.8.8"), None).geo.unwrap();
        assert_eq!(city_level.city.as_deref(), Some("Mountain View"));
        assert_eq!(city_level.radius_km, 50.0);
        // No city: DB-IP's coordinates are the country's, and the radius must say so, or a
        // user moving between a city-level and a country-level record would "travel".
        let country_level = e.enrich(ip("8.8.4.4"), None).geo.unwrap();
        assert_eq!(country_level.city, None);
        assert_eq!(country_level.country.as_deref(), Some("US"));
        assert_eq!(country_level.radius_km, COUNTRY_LEVEL_ACCURACY_KM);
    }

    const CHROME_WIN_120: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
    const CHROME_WIN_131: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const FIREFOX_WIN_121: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const FIREFOX_WIN_133: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const FIREFOX_MAC: &str =
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:128.0) Gecko/20100101 Firefox/128.0";
    const SAFARI_MAC_17: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";
    const SAFARI_MAC_18: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15";
    const SAFARI_IOS_17: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
    const SAFARI_IOS_18: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";
    const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1";
    const CHROME_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1";
    const CHROME_ANDROID_13: &str = "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
    const CHROME_ANDROID_14: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36";
    const FIREFOX_ANDROID: &str =
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0";
    const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const EDGE_WIN_120: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
    const EDGE_WIN_131: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86";
    const EDGE_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91";
    const EDGE_ANDROID: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120.0.2210.115";
    const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

    #[test]
    fn browsers_reduce_to_family_and_os() {
        for (ua, family, os) in [
            (CHROME_WIN_120, "Chrome", "Windows 10"),
            (CHROME_MAC, "Chrome", "Mac OSX"),
            (CHROME_IOS, "Chrome", "iPhone"),
            (CHROME_ANDROID_13, "Chrome", "Android"),
            (CHROME_LINUX, "Chrome", "Linux"),
            (FIREFOX_WIN_121, "Firefox", "Windows 10"),
            (FIREFOX_MAC, "Firefox", "Mac OSX"),
            (FIREFOX_ANDROID, "Firefox", "Android"),
            (SAFARI_MAC_17, "Safari", "Mac OSX"),
            (SAFARI_IOS_17, "Safari", "iPhone"),
            (SAFARI_IPAD, "Safari", "iPad"),
            (EDGE_WIN_120, "Edge", "Windows 10"),
            (EDGE_MAC, "Edge", "Mac OSX"),
            (EDGE_ANDROID, "Edge", "Android"),
        ] {
            let info = parse_user_agent(ua);
            assert_eq!(
                (&*info.family, &*info.os, info.scripted),
                (family, os, false),
                "{ua}"
            );
        }
    }

    #[test]
    fn version_bumps_keep_family_and_os() {
        for (before, after) in [
            (CHROME_WIN_120, CHROME_WIN_131),
            (FIREFOX_WIN_121, FIREFOX_WIN_133),
            (SAFARI_MAC_17, SAFARI_MAC_18),
            (SAFARI_IOS_17, SAFARI_IOS_18),
            (CHROME_ANDROID_13, CHROME_ANDROID_14),
            (EDGE_WIN_120, EDGE_WIN_131),
        ] {
            assert_eq!(parse_user_agent(before), parse_user_agent(after), "{after}");
        }
        // A real change still shows.
        assert_ne!(
            parse_user_agent(CHROME_WIN_120).family,
            parse_user_agent(EDGE_WIN_120).family
        );
        assert_ne!(
            parse_user_agent(SAFARI_IOS_17).os,
            parse_user_agent(SAFARI_MAC_17).os
        );
    }

    #[test]
    fn scripted_clients_are_named_by_their_tool() {
        for (ua, family) in [
            ("curl/8.4.0", "curl"),
            ("Wget/1.21.4", "Wget"),
            ("Wget2/2.1.0", "Wget2"),
            ("python-requests/2.31.0", "python-requests"),
            ("Python-urllib/3.11", "Python-urllib"),
            ("python-urllib3/2.1.0", "python-urllib3"),
            ("Python/3.12 aiohttp/3.9.5", "aiohttp"),
            ("Python/3.12", "Python"),
            ("python-httpx/0.27.0", "python-httpx"),
            ("Go-http-client/1.1", "Go-http-client"),
            ("Go-http-client/2.0", "Go-http-client"),
            ("okhttp/4.12.0", "okhttp"),
            ("Java/17.0.9", "Java"),
            ("Java-http-client/21.0.1", "Java-http-client"),
            (
                "Apache-HttpClient/4.5.14 (Java/17.0.9)",
                "Apache-HttpClient",
            ),
            ("axios/1.6.2", "axios"),
            (
                "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
                "node-fetch",
            ),
            ("undici", "undici"),
            ("node", "node"),
            ("PostmanRuntime/7.36.0", "PostmanRuntime"),
            ("libwww-perl/6.72", "libwww-perl"),
            ("HTTPie/3.2.2", "HTTPie"),
            ("Scrapy/2.11.0 (+https://scrapy.org)", "Scrapy"),
            ("GuzzleHttp/7", "GuzzleHttp"),
            ("Ruby", "Ruby"),
            ("k6/0.48.0 (https://k6.io/)", "k6"),
            ("CURL/7.0", "curl"),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.28 Safari/537.36",
                "HeadlessChrome",
            ),
            (
                "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506",
                "PowerShell",
            ),
        ] {
            let info = parse_user_agent(ua);
            assert!(info.scripted, "{ua} not scripted");
            assert_eq!(&*info.family, family, "{ua}");
        }
        // Versions of a tool are one family.
        assert_eq!(
            parse_user_agent("curl/7.88.1"),
            parse_user_agent("curl/8.5.0")
        );
        // Token boundary: a name that merely starts like a tool is not that tool.
        assert!(!parse_user_agent("curly-browser/1.0").scripted);
        assert!(!parse_user_agent("nodejs-app-but-not/1").scripted);
        // Crawlers are programmatic too; woothee names them.
        let bot = parse_user_agent(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        );
        assert!(bot.scripted);
        assert_eq!(&*bot.family, "Googlebot");
    }

    #[test]
    fn unknown_and_oversized_user_agents() {
        for ua in ["", "-", "   ", "SomethingNobodyKnows", "\u{0}\u{7f}ü"] {
            let info = parse_user_agent(truncate_to_char_boundary(ua.trim(), 512));
            assert_eq!(&*info.family, "unknown", "{ua:?}");
            assert!(!info.scripted);
        }
        let huge = format!("{CHROME_WIN_120} {}", "é".repeat(10_000));
        let e = Enricher::empty();
        let info = e.enrich(ip("8.8.8.8"), Some(&huge)).user_agent.unwrap();
        assert_eq!(&*info.family, "Chrome");
        assert_eq!(truncate_to_char_boundary(&huge, 512).len(), 511);
        assert!(e.enrich(ip("8.8.8.8"), None).user_agent.is_none());
    }

    #[test]
    fn user_agent_cache_is_bounded_and_transparent() {
        let e = Enricher::empty();
        for i in 0..(USER_AGENT_CACHE_ENTRIES + 10) {
            let ua = format!("curl/{i}");
            let info = e.enrich(ip("8.8.8.8"), Some(&ua)).user_agent.unwrap();
            assert_eq!(&*info.family, "curl");
        }
        assert!(e.user_agents.len() <= USER_AGENT_CACHE_ENTRIES);
        let first = e.enrich(ip("8.8.8.8"), Some(SAFARI_IOS_17)).user_agent;
        let cached = e.enrich(ip("8.8.8.8"), Some(SAFARI_IOS_17)).user_agent;
        assert_eq!(first, cached);
        assert_eq!(first, Some(parse_user_agent(SAFARI_IOS_17)));
    }

    fn write_one_city_db(path: &Path, name: &str, lat: f64) {
        let mut w = mmdb_writer::Writer::new("GeoIP2-City");
        let record = mmdb_writer::Value::map([
            (
                "city",
                mmdb_writer::Value::map([(
                    "names",
                    mmdb_writer::Value::map([("en", mmdb_writer::Value::from(name))]),
                )]),
            ),
            (
                "location",
                mmdb_writer::Value::map([
                    ("latitude", mmdb_writer::Value::Double(lat)),
                    ("longitude", mmdb_writer::Value::Double(0.5)),
                    ("accuracy_radius", mmdb_writer::Value::U16(5)),
                ]),
            ),
        ]);
        w.insert_value("8.8.8.0/24".parse::<ipnet::IpNet>().unwrap(), record)
            .unwrap();
        // Write then rename, as geoipupdate does: the mapped inode is never modified.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, w.to_bytes().unwrap()).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn reload_swaps_in_a_replaced_file_and_survives_a_broken_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.mmdb");
        write_one_city_db(&path, "Before", 10.0);
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(path.clone()),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let city_of = |e: &Enricher| {
            e.enrich(ip("8.8.8.8"), None)
                .geo
                .and_then(|g| g.city)
                .map(|c| c.to_string())
        };
        assert_eq!(city_of(&e).as_deref(), Some("Before"));
        assert!(!e.reload_if_changed().unwrap(), "unchanged file reloaded");

        write_one_city_db(&path, "After", 20.0);
        assert!(e.reload_if_changed().unwrap());
        assert_eq!(city_of(&e).as_deref(), Some("After"));
        assert!(!e.reload_if_changed().unwrap());

        // A broken replacement keeps the old reader and reports the error, every time.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, b"not a maxmind database").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let err = e.reload_if_changed().unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert_eq!(city_of(&e).as_deref(), Some("After"));
        assert!(e.reload_if_changed().is_err());

        // A vanished file likewise.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(e.reload_if_changed().unwrap_err().code(), "open");
        assert_eq!(city_of(&e).as_deref(), Some("After"));

        // And a good file afterwards is picked up.
        write_one_city_db(&path, "Again", 30.0);
        assert!(e.reload_if_changed().unwrap());
        assert_eq!(city_of(&e).as_deref(), Some("Again"));
    }

    #[test]
    fn a_missing_or_invalid_database_is_a_startup_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = GeoIpConfig {
            city_db: Some(dir.path().join("nope.mmdb")),
            ..GeoIpConfig::default()
        };
        assert_eq!(Enricher::from_config(&missing).unwrap_err().code(), "open");
        let junk = dir.path().join("junk.mmdb");
        std::fs::write(&junk, b"junk").unwrap();
        let invalid = GeoIpConfig {
            asn_db: Some(junk),
            ..GeoIpConfig::default()
        };
        let err = Enricher::from_config(&invalid).unwrap_err();
        assert_eq!(err.code(), "invalid");
        assert!(err.to_string().contains("junk.mmdb"), "{err}");
        // Shared between pipeline workers by reference.
        fn shared<T: Send + Sync>(_: &T) {}
        let none = Enricher::from_config(&GeoIpConfig::default()).unwrap();
        shared(&none);
        assert!(!none.is_loaded() && none.city_build_epoch().is_none());
        assert!(none.enrich(ip("8.8.8.8"), None).geo.is_none());
    }

    #[test]
    fn names_fold_for_matching() {
        assert_eq!(fold_name("São Paulo"), "sao paulo");
        assert_eq!(fold_name("Sao Paulo (Pinheiros)"), "sao paulo (pinheiros)");
        assert_eq!(fold_name("Bogotá"), fold_name("BOGOTA"));
        assert_eq!(fold_name("Chișinău"), "chisinau");
        assert_eq!(fold_name("Kraków"), "krakow");
        assert_eq!(fold_name("Łódź"), "lodz");
        for (name, wanted, matches) in [
            ("Berlin", "Berlin", true),
            ("Berlin (Pankow)", "Berlin", true),
            ("Sao Paulo (Vila Olimpia)", "São Paulo", true),
            ("BERLIN", "berlin", true),
            ("Berlingen", "Berlin", false),
            ("Berlin-Pankow", "Berlin", false),
            ("Londonderry", "London", false),
            ("New York (Brooklyn)", "New York", true),
            ("West Berlin", "Berlin", false),
        ] {
            assert_eq!(
                city_name_matches(name, wanted),
                matches,
                "{name} ~ {wanted}"
            );
        }
    }

    #[test]
    fn find_addresses_walks_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = (dir.path().join("c.mmdb"), dir.path().join("a.mmdb"));
        crate::lab::world::write_databases(&city, &asn).unwrap();
        let flat = dir.path().join("flat.mmdb");
        crate::lab::world::write_flat_city_db(&flat).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(city.clone()),
            ..GeoIpConfig::default()
        })
        .unwrap();
        // The synthetic City database has one network per kind and family; the flat one has
        // only the residential IPv4 block.
        for (db, networks) in [(&city, 2 * crate::lab::world::NetKind::ALL.len()), (&flat, 1)] {
            // "Sao Paulo" without the tilde, as DB-IP spells it, finds "São Paulo".
            let found = find_addresses(db, "Sao Paulo", "BR", 100).unwrap();
            assert_eq!(found.len(), networks, "{}", db.display());
            for addr in found {
                let geo = e.enrich(addr, None).geo.unwrap();
                assert_eq!(geo.city.as_deref(), Some("São Paulo"));
            }
            assert!(find_addresses(db, "Sao Paulo", "PT", 3).unwrap().is_empty());
        }
    }
}
