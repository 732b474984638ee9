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
//! - **Network knowledge.** Every public address is looked up in the network [`Catalog`]
//!   (shipped `config/networks.toml`, replaced or extended by `[networks]`) by ASN, then by
//!   range: `network_kind` says satellite/in-flight, hosting/VPN or relay, and `network_org`
//!   who runs it (the ASN database's `autonomous_system_organization` when it has one, else
//!   the catalog's name). A network the catalog does not list is classified by its
//!   organisation name (`org_names`: a mobile carrier, or hosting / datacenter / VPN; cached
//!   per ASN; `[networks] classify_by_name`). Other networks get neither, and cost no
//!   allocation.
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
//!
//! Files: this one holds [`Enricher`] (the stage's entry point) and address classification;
//! `geoip` maps and reloads the database files and decodes City records, `asn` decodes ASN
//! records, `catalog` holds the network catalog, `user_agent` reduces User-Agents.

mod asn;
mod catalog;
mod geoip;
mod org_names;
mod user_agent;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use maxminddb::MaxMindDbError;

use crate::config::GeoIpConfig;
use crate::event::{AddressClass, Enrichment, UserAgentInfo};
pub use catalog::{Catalog, CatalogError, Listed, SHIPPED as SHIPPED_CATALOG};
use geoip::DbSlot;
pub use org_names::{OrgName, kind_by_name};
pub use user_agent::MAX_USER_AGENT_BYTES;

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
    /// The network catalog cannot be used.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl EnrichError {
    /// Bounded code for a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            EnrichError::Open { .. } => "open",
            EnrichError::Invalid { .. } => "invalid",
            EnrichError::Catalog(_) => "catalog",
        }
    }
}

/// Looks up addresses in memory-mapped databases that are reloaded when their files change.
///
/// Shared by reference between workers (`Send + Sync`); every method takes `&self`.
pub struct Enricher {
    city: Option<DbSlot>,
    asn: Option<DbSlot>,
    default_accuracy_km: f64,
    catalog: Catalog,
    /// Per ASN, what its organisation name says (`org_names`) and the name; bounded by the
    /// ASN database's distinct ASNs, not by the input; cleared when a database reloads.
    kind_by_asn: DashMap<u32, Option<(crate::event::NetworkKind, Arc<str>)>>,
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
    /// Open the configured databases (none configured is fine: no geolocation), with the
    /// shipped network catalog ([`Enricher::with_catalog`] replaces it).
    pub fn from_config(config: &GeoIpConfig) -> Result<Self, EnrichError> {
        let city = config.city_db.as_deref().map(DbSlot::open).transpose()?;
        let asn = config.asn_db.as_deref().map(DbSlot::open).transpose()?;
        let mut enricher = Enricher::empty();
        enricher.city = city;
        enricher.asn = asn;
        enricher.default_accuracy_km = config.default_accuracy_km;
        enricher.catalog = Catalog::shipped()?;
        Ok(enricher)
    }

    /// Use `catalog` (from `[networks]`, [`Catalog::from_config`]) to classify networks.
    pub fn with_catalog(mut self, catalog: Catalog) -> Self {
        self.catalog = catalog;
        self
    }

    /// No databases and no catalog: classifies addresses and parses User-Agents only.
    pub fn empty() -> Self {
        Enricher {
            city: None,
            asn: None,
            default_accuracy_km: GeoIpConfig::default().default_accuracy_km,
            catalog: Catalog::default(),
            kind_by_asn: DashMap::new(),
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
        let (geo, asn, network) = if class == AddressClass::Public {
            let asn = self.asn_of(ip);
            let network = self.network_of(ip, asn.as_ref());
            (self.locate(ip), asn.map(|a| a.number), network)
        } else {
            (None, None, None)
        };
        let (network_kind, network_org) = match network {
            Some((kind, org)) => (Some(kind), org),
            None => (None, None),
        };
        Enrichment {
            geo,
            asn,
            address_class: Some(class),
            user_agent: user_agent.map(|ua| self.user_agent(ua)),
            network_kind,
            network_org,
        }
    }

    /// The kind of `ip`'s network and who runs it: the catalog's kind, else what the ASN's
    /// organisation name says (when the catalog classifies by name); the name is the ASN
    /// database's when it has one (what an operator sees in whois), else the catalog's.
    fn network_of(
        &self,
        ip: IpAddr,
        asn: Option<&asn::Asn>,
    ) -> Option<(crate::event::NetworkKind, Option<Arc<str>>)> {
        if let Some(listed) = self.catalog.lookup(ip, asn.map(|a| a.number)) {
            let org = asn
                .and_then(|a| a.organisation.clone())
                .or_else(|| listed.org.clone());
            return Some((listed.kind, org));
        }
        if !self.catalog.classifies_by_name() {
            return None;
        }
        let (kind, org) = self.kind_by_asn.get(&asn?.number)?.clone()?;
        Some((kind, Some(org)))
    }

    /// What `asn`'s organisation name says it is, classified once per ASN.
    fn kind_by_name_of(
        &self,
        asn: u32,
        name: Option<&str>,
    ) -> Option<(crate::event::NetworkKind, Arc<str>)> {
        if let Some(known) = self.kind_by_asn.get(&asn) {
            return known.clone();
        }
        let classified = name.and_then(|name| Some((kind_by_name(name)?, Arc::from(name))));
        self.kind_by_asn.insert(asn, classified.clone());
        classified
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
        if reloaded {
            // A new ASN database may name its networks differently.
            self.kind_by_asn.clear();
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
    fn catalogued_networks_are_classified_with_their_organisation() {
        use crate::event::NetworkKind;
        let dir = tempfile::tempdir().unwrap();
        let asn_db = dir.path().join("a.mmdb");
        let mut w = mmdb_writer::Writer::new("GeoLite2-ASN");
        for (net, asn, org) in [
            ("98.97.0.0/16", 14_593, Some("SPACEX-STARLINK")),
            ("3.0.0.0/8", 16_509, None),
            ("8.8.8.0/24", 15_169, Some("GOOGLE")),
            ("9.9.9.0/24", 65_001, Some("Example Broadband")),
            ("11.0.0.0/16", 65_002, Some("T-Mobile USA, Inc.")),
            ("10.0.0.0/8", 14_593, Some("SPACEX-STARLINK")),
            ("2a0d:3344::/32", 14_593, Some("  ")),
        ] {
            let mut fields = vec![("autonomous_system_number", mmdb_writer::Value::U32(asn))];
            if let Some(org) = org {
                fields.push((
                    "autonomous_system_organization",
                    mmdb_writer::Value::String(org.into()),
                ));
            }
            w.insert_value(
                net.parse::<ipnet::IpNet>().unwrap(),
                mmdb_writer::Value::map(fields),
            )
            .unwrap();
        }
        std::fs::write(&asn_db, w.to_bytes().unwrap()).unwrap();
        let config = GeoIpConfig {
            asn_db: Some(asn_db),
            ..GeoIpConfig::default()
        };
        let e = Enricher::from_config(&config).unwrap();

        // Satellite, with the database's organisation name.
        let r = e.enrich(ip("98.97.1.2"), None);
        assert_eq!(r.asn, Some(14_593));
        assert_eq!(r.network_kind, Some(NetworkKind::Satellite));
        assert_eq!(r.network_org.as_deref(), Some("SPACEX-STARLINK"));
        // Hosting; the database has no name, so the catalog's.
        let r = e.enrich(ip("3.4.5.6"), None);
        assert_eq!(r.network_kind, Some(NetworkKind::Hosting));
        assert!(r.network_org.as_deref().unwrap().contains("Amazon"));
        // A blank name in the database falls back to the catalog's too.
        let r = e.enrich(ip("2a0d:3344::1"), None);
        assert_eq!(r.network_kind, Some(NetworkKind::Satellite));
        assert!(r.network_org.as_deref().unwrap().contains("Starlink"));
        // Not catalogued: the organisation name decides (cached per ASN, asked twice)…
        for _ in 0..2 {
            let r = e.enrich(ip("8.8.8.8"), None);
            assert_eq!(r.network_kind, Some(NetworkKind::Hosting));
            assert_eq!(r.network_org.as_deref(), Some("GOOGLE"));
            let r = e.enrich(ip("11.0.1.2"), None);
            assert_eq!(r.network_kind, Some(NetworkKind::Mobile));
        }
        // …and a name that says nothing gives no kind, and is not kept.
        let r = e.enrich(ip("9.9.9.9"), None);
        assert_eq!(
            (r.asn, r.network_kind, r.network_org),
            (Some(65_001), None, None)
        );
        // `[networks] classify_by_name = false`: only the catalog speaks.
        let catalog = Catalog::from_config(&crate::config::NetworksConfig {
            classify_by_name: false,
            ..Default::default()
        })
        .unwrap();
        let off = Enricher::from_config(&config)
            .unwrap()
            .with_catalog(catalog);
        let r = off.enrich(ip("11.0.1.2"), None);
        assert_eq!((r.network_kind, r.network_org), (None, None));
        assert_eq!(
            off.enrich(ip("98.97.1.2"), None).network_kind,
            Some(NetworkKind::Satellite)
        );
        // Private addresses are never looked up, catalogued ASN or not.
        let r = e.enrich(ip("10.1.2.3"), None);
        assert_eq!((r.asn, r.network_kind), (None, None));

        // `[networks]` reclassifies: Starlink as hosting (extras override the catalog).
        let catalog = Catalog::from_config(&crate::config::NetworksConfig {
            extra_hosting_asns: vec![14_593],
            ..Default::default()
        })
        .unwrap();
        let e = Enricher::from_config(&config)
            .unwrap()
            .with_catalog(catalog);
        let r = e.enrich(ip("98.97.1.2"), None);
        assert_eq!(r.network_kind, Some(NetworkKind::Hosting));
        assert_eq!(r.network_org.as_deref(), Some("SPACEX-STARLINK"));

        // No catalog at all (`Enricher::empty`): nothing is classified.
        let r = Enricher::empty().enrich(ip("98.97.1.2"), None);
        assert_eq!(r.network_kind, None);
    }
}
