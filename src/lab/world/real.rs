//! Real City databases (e.g. DB-IP Lite) as an address source for the simulator and the
//! real-data test: every located network indexed by the nearest of the world's [`CITIES`],
//! addresses found by city name, and the [`AddressPlan`] that picks synthetic or real blocks.
//!
//! Where it sits: lab only; it reads real databases through the daemon's `Enricher`, so
//! what it finds is what the pipeline sees. It does NOT write databases (the parent does).

use super::*;

/// A real City database that cannot be indexed or walked.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The database cannot be opened or is not a City database.
    #[error("{0}")]
    Open(#[from] crate::enrich::EnrichError),
    /// Walking its networks failed.
    #[error("cannot read networks of {path}: {message}")]
    Iterate {
        /// The database path.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// No network is located in any of [`CITIES`].
    #[error("{path}: no network is located in any of the simulator's cities")]
    Empty {
        /// The database path.
        path: PathBuf,
    },
}

impl IndexError {
    /// Bounded code for a metric label or exit message.
    pub fn code(&self) -> &'static str {
        match self {
            IndexError::Open(_) => "open",
            IndexError::Iterate { .. } => "iterate",
            IndexError::Empty { .. } => "empty",
        }
    }
}

/// Networks kept per city: plenty of distinct addresses per kind, bounded memory.
const INDEX_NETWORKS_PER_CITY: usize = 512;
/// Smallest network kept (IPv4 `/29`): its benign and attacker halves need a few hosts each.
const MIN_INDEXED_ADDRESSES: u128 = 8;

/// Addresses of a real City database, indexed by the cities of [`CITIES`].
///
/// [`AddressIndex::build`] walks every network once (`Reader::networks`), asks the real
/// enricher where each distinct record is (so both database schemas work), and keeps up to
/// 512 networks per city, in address order. A city's networks are dealt out to the kinds
/// round-robin, so two kinds never share a network when a city has at least nine; a city the
/// database does not know borrows the nearest known city's networks. Within a network the
/// lower half of the hosts is for benign users and the upper half for attackers, as in the
/// synthetic plan. What the real database says about those addresses is what the pipeline
/// sees; ASNs come from a small overlay database ([`AddressIndex::asn_db_bytes`]) that gives
/// each (city's country, kind) its synthetic ASN.
pub struct AddressIndex {
    /// Per city: networks the database places there, or empty.
    networks: Vec<Vec<IpNet>>,
    /// Per city: the city whose networks stand in (itself when it has any).
    stand_in: Vec<usize>,
    /// Networks walked.
    walked: u64,
}

impl std::fmt::Debug for AddressIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressIndex")
            .field("cities_found", &self.cities_found())
            .field("networks_kept", &self.networks_kept())
            .field("networks_walked", &self.walked)
            .finish()
    }
}

impl AddressIndex {
    /// Walk the City database at `city_db` and index its networks by city.
    pub fn build(city_db: &Path) -> Result<AddressIndex, IndexError> {
        let enricher = crate::enrich::Enricher::from_config(&crate::config::GeoIpConfig {
            city_db: Some(city_db.to_path_buf()),
            ..crate::config::GeoIpConfig::default()
        })?;
        let iterate = |e: maxminddb::MaxMindDbError| IndexError::Iterate {
            path: city_db.to_path_buf(),
            message: e.to_string(),
        };
        let reader = maxminddb::Reader::open_readfile(city_db).map_err(iterate)?;
        let mut by_country: HashMap<&'static str, Vec<usize>> = HashMap::new();
        for (i, c) in CITIES.iter().enumerate() {
            by_country.entry(c.country).or_default().push(i);
        }
        // Networks share records (same data offset): locate each record once.
        let mut by_record: HashMap<usize, Option<usize>> = HashMap::new();
        let mut networks = vec![Vec::new(); CITIES.len()];
        let mut walked = 0u64;
        for item in reader.networks(Default::default()).map_err(iterate)? {
            let item = item.map_err(iterate)?;
            walked += 1;
            let Some(offset) = item.offset() else {
                continue;
            };
            let found = item.network().map_err(iterate)?;
            let Ok(net) = IpNet::new(found.network(), found.prefix()) else {
                continue;
            };
            if addresses_in(&net) < MIN_INDEXED_ADDRESSES {
                continue;
            }
            let city = *by_record
                .entry(offset)
                .or_insert_with(|| city_of(&enricher, &by_country, nth_address(&net, 1)));
            if let Some(c) = city
                && networks[c].len() < INDEX_NETWORKS_PER_CITY
            {
                networks[c].push(net);
            }
        }
        let known: Vec<usize> = (0..CITIES.len())
            .filter(|c| !networks[*c].is_empty())
            .collect();
        if known.is_empty() {
            return Err(IndexError::Empty {
                path: city_db.to_path_buf(),
            });
        }
        let stand_in = (0..CITIES.len())
            .map(|c| {
                if networks[c].is_empty() {
                    *known
                        .iter()
                        .min_by(|a, b| {
                            distance_km(&CITIES[c], &CITIES[**a])
                                .total_cmp(&distance_km(&CITIES[c], &CITIES[**b]))
                        })
                        .unwrap_or(&c)
                } else {
                    c
                }
            })
            .collect();
        Ok(AddressIndex {
            networks,
            stand_in,
            walked,
        })
    }

    /// Cities of [`CITIES`] the database has networks for.
    pub fn cities_found(&self) -> usize {
        self.networks.iter().filter(|n| !n.is_empty()).count()
    }

    /// Networks kept in the index.
    pub fn networks_kept(&self) -> usize {
        self.networks.iter().map(Vec::len).sum()
    }

    /// Networks walked while building.
    pub fn networks_walked(&self) -> u64 {
        self.walked
    }

    /// The networks dealt to `kind` in `city` (after standing in and, for carrier gateways,
    /// moving to the gateway's city). The corporate VPN egresses from one network per city.
    pub fn networks_of(&self, city: usize, kind: NetKind) -> Vec<IpNet> {
        let (nets, first, step, count) = self.deal(city, kind);
        nets.iter()
            .skip(first)
            .step_by(step)
            .take(count)
            .copied()
            .collect()
    }

    /// The city's networks, where `kind`'s share starts, the stride between its networks and
    /// how many it has.
    fn deal(&self, city: usize, kind: NetKind) -> (&[IpNet], usize, usize, usize) {
        let city = match kind {
            NetKind::CarrierGateway => carrier_gateway(city).city.unwrap_or(city),
            _ => city,
        };
        let nets = &self.networks[self.stand_in[city]];
        let slot = NetKind::EVERY.iter().position(|k| *k == kind).unwrap_or(0);
        let (first, step) = if nets.len() >= NetKind::EVERY.len() {
            (slot, NetKind::EVERY.len())
        } else {
            // Fewer networks than kinds: kinds share, one network each.
            (slot % nets.len(), nets.len())
        };
        let count = match kind {
            NetKind::CorporateVpn => 1,
            _ => (nets.len() - first).div_ceil(step).max(1),
        };
        (nets, first, step, count)
    }

    /// The `n`-th address of `kind` in `city`: benign for `n < ATTACKER_HOSTS`, else an
    /// attacker's (the other half of the same networks).
    pub fn address(&self, city: usize, kind: NetKind, n: u32) -> IpAddr {
        let (nets, first, step, count) = self.deal(city, kind);
        let (attacker, m) = if n < ATTACKER_HOSTS {
            (false, n)
        } else {
            (true, n - ATTACKER_HOSTS)
        };
        let net = &nets[first + (m as usize % count) * step];
        let usable = addresses_in(net) - 2;
        let half = usable / 2;
        let host = (m as usize / count) as u128 % half;
        nth_address(net, 1 + host + if attacker { half } else { 0 })
    }

    /// An ASN database for the indexed networks: each (city's country, kind) gets its
    /// synthetic ASN ([`asn`]), so ASN changes are visible on real addresses too.
    pub fn asn_db_bytes(&self) -> io::Result<Vec<u8>> {
        let mut writer = Writer::builder("GeoLite2-ASN")
            .description(&[("en", DESCRIPTION)])
            .build();
        let mut written = std::collections::HashSet::new();
        for city in 0..CITIES.len() {
            if self.stand_in[city] != city {
                continue;
            }
            for kind in NetKind::EVERY {
                for net in self.networks_of(city, kind) {
                    if written.insert(net) {
                        writer
                            .insert_value(net, asn_record(city, kind))
                            .map_err(to_io)?;
                    }
                }
            }
        }
        writer.to_bytes().map_err(to_io)
    }

    /// Write [`AddressIndex::asn_db_bytes`] to `path` (write, then rename).
    pub fn write_asn_db(&self, path: &Path) -> io::Result<()> {
        write_by_rename(path, &self.asn_db_bytes()?)
    }
}

/// Addresses in a network (saturating for huge IPv6 ones).
fn addresses_in(net: &IpNet) -> u128 {
    let bits = u32::from(net.max_prefix_len() - net.prefix_len());
    1u128.checked_shl(bits).unwrap_or(u128::MAX)
}

/// The address `offset` past the network address.
fn nth_address(net: &IpNet, offset: u128) -> IpAddr {
    match net {
        IpNet::V4(v4) => IpAddr::V4(Ipv4Addr::from(
            u32::from(v4.network()).wrapping_add(offset as u32),
        )),
        IpNet::V6(v6) => IpAddr::V6(Ipv6Addr::from(
            u128::from(v6.network()).wrapping_add(offset),
        )),
    }
}

/// Which of [`CITIES`] the database places `ip` in.
fn city_of(
    enricher: &crate::enrich::Enricher,
    by_country: &HashMap<&'static str, Vec<usize>>,
    ip: IpAddr,
) -> Option<usize> {
    let geo = enricher.enrich(ip, None).geo?;
    let candidates = by_country.get(&*geo.country?)?;
    let name = geo.city?;
    candidates
        .iter()
        .copied()
        .find(|c| city_name_matches(&name, CITIES[*c].name))
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
/// network, located by the run-time [`crate::enrich::Enricher`] (so both City schemas work,
/// exactly as the pipeline reads them). The city name matches ignoring case and diacritics,
/// and DB-IP's district suffixes count (`"Berlin (Pankow)"` is Berlin). For tests and
/// evaluation on real data; a full walk of a 60 MB database takes a few seconds.
pub fn find_addresses(
    db_path: &Path,
    city: &str,
    country: &str,
    n: usize,
) -> Result<Vec<IpAddr>, IndexError> {
    let enricher = crate::enrich::Enricher::from_config(&crate::config::GeoIpConfig {
        city_db: Some(db_path.to_path_buf()),
        ..crate::config::GeoIpConfig::default()
    })?;
    let iterate = |e: maxminddb::MaxMindDbError| IndexError::Iterate {
        path: db_path.to_path_buf(),
        message: e.to_string(),
    };
    let reader = maxminddb::Reader::open_readfile(db_path).map_err(iterate)?;
    let wanted = fold_name(city);
    let mut found = Vec::new();
    if n == 0 {
        return Ok(found);
    }
    // Networks share records (same data offset): judge each record once.
    let mut matches_by_record: HashMap<usize, bool> = HashMap::new();
    for item in reader.networks(Default::default()).map_err(iterate)? {
        let item = item.map_err(iterate)?;
        let network = item.network().map_err(iterate)?;
        let host = host_in(network.network(), network.prefix());
        let judge = || {
            enricher.enrich(host, None).geo.is_some_and(|geo| {
                geo.country.as_deref() == Some(country)
                    && geo
                        .city
                        .is_some_and(|name| folded_city_matches(&fold_name(&name), &wanted))
            })
        };
        let matches = match item.offset() {
            Some(offset) => *matches_by_record.entry(offset).or_insert_with(judge),
            None => false,
        };
        if matches {
            found.push(host);
            if found.len() >= n {
                break;
            }
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

/// Where simulated addresses come from: the synthetic plan, or a real database's networks.
#[derive(Debug, Clone, Default)]
pub enum AddressPlan {
    /// [`address`]: the synthetic blocks of [`write_databases`].
    #[default]
    Synthetic,
    /// A real City database's networks ([`AddressIndex`]).
    Indexed(Arc<AddressIndex>),
}

impl AddressPlan {
    /// The `n`-th address of `kind` in `city` (benign below [`ATTACKER_HOSTS`]).
    pub fn address(&self, city: usize, kind: NetKind, n: u32) -> IpAddr {
        match self {
            AddressPlan::Synthetic => address(city, kind, n),
            AddressPlan::Indexed(index) => index.address(city, kind, n),
        }
    }

    /// The networks the corporate VPN egresses from when its egress points are `cities`:
    /// what the replay config allowlists.
    pub fn corporate_vpn_networks(&self, cities: &[usize]) -> Vec<IpNet> {
        match self {
            AddressPlan::Synthetic => corporate_vpn_networks(),
            AddressPlan::Indexed(index) => {
                let mut nets: Vec<IpNet> = cities
                    .iter()
                    .flat_map(|c| index.networks_of(*c, NetKind::CorporateVpn))
                    .collect();
                nets.sort_unstable();
                nets.dedup();
                nets
            }
        }
    }
}

#[cfg(test)]
mod real_database_helper_tests {
    use super::*;
    use crate::config::GeoIpConfig;
    use crate::enrich::Enricher;

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
        super::write_databases(&city, &asn).unwrap();
        let flat = dir.path().join("flat.mmdb");
        super::write_flat_city_db(&flat).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(city.clone()),
            ..GeoIpConfig::default()
        })
        .unwrap();
        // The synthetic City database has one network per kind and family; the flat one has
        // only the residential IPv4 block.
        for (db, networks) in [(&city, 2 * super::NetKind::ALL.len()), (&flat, 1)] {
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
