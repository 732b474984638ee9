//! Real City databases (e.g. DB-IP Lite) as an address source for the simulator and the
//! real-data test: networks indexed by the world's [`CITIES`] and, with ip-location-db's ASN
//! table, by the kind of network they really are; addresses found by city name; and the
//! [`AddressPlan`] that picks synthetic or real blocks.
//!
//! Where it sits: lab only; it reads real databases through the daemon's `Enricher`, so
//! what it finds is what the pipeline sees, and classifies networks with the daemon's
//! catalog ([`Classifier`]). It writes one database: the ASN overlay of the networks it hands
//! out ([`AddressIndex::write_asn_db`]).

use super::*;

/// A real City database (or ASN table) that cannot be indexed or walked.
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
    /// The ASN table cannot be read.
    #[error("{0}")]
    Asn(#[from] AsnTableError),
    /// The shipped network catalog does not parse (a build defect).
    #[error("{0}")]
    Catalog(#[from] crate::enrich::CatalogError),
}

impl IndexError {
    /// Bounded code for a metric label or exit message.
    pub fn code(&self) -> &'static str {
        match self {
            IndexError::Open(_) => "open",
            IndexError::Iterate { .. } => "iterate",
            IndexError::Empty { .. } => "empty",
            IndexError::Asn(e) => e.code(),
            IndexError::Catalog(_) => "catalog",
        }
    }
}

/// Networks kept per city without an ASN table: plenty of distinct addresses per kind,
/// bounded memory.
const INDEX_NETWORKS_PER_CITY: usize = 512;
/// With an ASN table: networks kept per (city, pool).
const NETWORKS_PER_POOL: usize = 128;
/// With an ASN table: networks kept per (city, pool, ASN), so a pool holds several networks
/// (ISPs, hosters) when the city has them.
const NETWORKS_PER_POOL_ASN: usize = 32;
/// Smallest network kept (IPv4 `/29`): its benign and attacker halves need a few hosts each.
const MIN_INDEXED_ADDRESSES: u128 = 8;

/// A network handed out by the index, with the ASN the overlay gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    net: IpNet,
    asn: u32,
}

/// Where the index puts a classified network of a city. [`RealKind::Hosting`] is split in
/// two, so the VPN-typical hosters ([`VPN_HOSTER_ASNS`]) have a pool of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pool {
    Home,
    Business,
    Education,
    Mobile,
    Hosting,
    VpnHosting,
    Satellite,
    Relay,
}

impl Pool {
    const COUNT: usize = 8;

    fn of(kind: RealKind, asn: u32) -> Pool {
        match kind {
            RealKind::HomeIsp => Pool::Home,
            RealKind::Business => Pool::Business,
            RealKind::Education => Pool::Education,
            RealKind::Mobile => Pool::Mobile,
            RealKind::Hosting if VPN_HOSTER_ASNS.contains(&asn) => Pool::VpnHosting,
            RealKind::Hosting => Pool::Hosting,
            RealKind::Satellite => Pool::Satellite,
            RealKind::Relay => Pool::Relay,
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// How many networks of one real kind the walk saw (located in or, for satellite and relay
/// networks, assigned to one of [`CITIES`]) and how many the index kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindCount {
    /// Networks seen.
    pub seen: u64,
    /// Networks kept in the city pools.
    pub kept: u64,
}

/// Addresses of a real City database, indexed by the cities of [`CITIES`] and, with an ASN
/// table, by real network kind.
///
/// [`AddressIndex::build`] walks every network once (`Reader::networks`), asks the real
/// enricher where each distinct record is (so both database schemas work), and keeps
/// networks of at least 8 addresses. Within a network the lower half of the hosts is for
/// benign users and the upper half for attackers, as in the synthetic plan.
///
/// Without an ASN table, up to 512 networks per city are dealt out to the kinds round-robin
/// (two kinds never share a network when a city has at least nine), a city the database does
/// not know borrows the nearest known city's networks, and the overlay gives each (city's
/// country, kind) its synthetic ASN ([`asn`]).
///
/// With one, every network carries its real ASN and organisation and is classified
/// ([`Classifier`]); the kinds draw from matching real networks (see `docs/real-world.md`):
/// `Residential` from the city's largest home ISP, `AltResidential` from its other home ISPs
/// and business networks, `Mobile` from its largest mobile carrier, `CarrierGateway` from the
/// gateway city's, `Hosting` from its hosters, `Vpn` from VPN-typical hosters, `CorporateVpn`
/// from one hosting network per city (kept out of every other kind), `Satellite` from the
/// catalog's satellite ASNs and `Relay` from the private-relay ASNs that DB-IP places nearest
/// the city. A kind a city has no network of borrows the nearest city that has one.
pub struct AddressIndex {
    /// Per city, per kind in [`NetKind::EVERY`] order: the networks handed out.
    by_kind: Vec<Vec<Vec<Held>>>,
    /// Organisation per ASN handed out (real, or the synthetic world's names).
    orgs: HashMap<u32, Arc<str>>,
    /// Cities the database itself names.
    cities_found: usize,
    /// Networks kept in the city pools.
    kept: usize,
    /// Networks walked.
    walked: u64,
    /// Per [`RealKind::ALL`]: seen and kept (empty without an ASN table).
    kinds: Vec<(RealKind, KindCount)>,
    /// Networks left out because they straddle two ASN ranges.
    straddling: u64,
}

impl std::fmt::Debug for AddressIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressIndex")
            .field("cities_found", &self.cities_found)
            .field("networks_kept", &self.kept)
            .field("networks_walked", &self.walked)
            .field("kinds", &self.kinds)
            .finish()
    }
}

/// Where the City database places a record: the city of [`CITIES`] it names, and its
/// coordinates (for satellite and relay networks, placed at the nearest city).
#[derive(Debug, Clone, Copy)]
struct Located {
    named: Option<usize>,
    point: Option<(f64, f64)>,
}

impl AddressIndex {
    /// Walk the City database at `city_db` and index its networks by city and, with the ASN
    /// table at `asn_csv` (ip-location-db's `asn-ipv4.csv`), by real network kind.
    pub fn build(city_db: &Path, asn_csv: Option<&Path>) -> Result<AddressIndex, IndexError> {
        let asn_table = asn_csv.map(AsnTable::load).transpose()?;
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
        let mut walk = Walk {
            enricher: &enricher,
            by_country: &by_country,
            by_record: HashMap::new(),
        };
        match asn_table {
            None => {
                let mut networks = vec![Vec::new(); CITIES.len()];
                let mut walked = 0u64;
                for item in reader.networks(Default::default()).map_err(iterate)? {
                    let item = item.map_err(iterate)?;
                    walked += 1;
                    let Some((net, offset)) = indexable(&item).map_err(iterate)? else {
                        continue;
                    };
                    if let Some(c) = walk.locate(offset, &net).named
                        && networks[c].len() < INDEX_NETWORKS_PER_CITY
                    {
                        networks[c].push(net);
                    }
                }
                AddressIndex::dealt(networks, walked).ok_or_else(|| IndexError::Empty {
                    path: city_db.to_path_buf(),
                })
            }
            Some(table) => {
                let classifier = Classifier::shipped()?;
                let mut kind_of: HashMap<u32, RealKind> = HashMap::new();
                let mut pools: Vec<Vec<Vec<Held>>> =
                    vec![vec![Vec::new(); Pool::COUNT]; CITIES.len()];
                let mut per_asn: HashMap<(usize, Pool, u32), usize> = HashMap::new();
                let mut counts: HashMap<RealKind, KindCount> = HashMap::new();
                let mut named_cities = vec![false; CITIES.len()];
                let (mut walked, mut straddling) = (0u64, 0u64);
                for item in reader.networks(Default::default()).map_err(iterate)? {
                    let item = item.map_err(iterate)?;
                    walked += 1;
                    let Some((net, offset)) = indexable(&item).map_err(iterate)? else {
                        continue;
                    };
                    let IpNet::V4(v4) = net else { continue };
                    let Some(record) = table.lookup(v4.network()) else {
                        continue;
                    };
                    if record.range_end < v4.broadcast() {
                        straddling += 1;
                        continue;
                    }
                    let kind = *kind_of.entry(record.asn).or_insert_with(|| {
                        classifier.classify(record.asn, &record.org, table.addresses_of(record.asn))
                    });
                    let located = walk.locate(offset, &net);
                    if let Some(c) = located.named {
                        named_cities[c] = true;
                    }
                    // Satellite and relay networks serve wherever DB-IP places them: the
                    // nearest city takes them. Every other kind must be in the city itself.
                    let city = match kind {
                        RealKind::Satellite | RealKind::Relay => {
                            located.named.or_else(|| located.point.map(nearest_city))
                        }
                        _ => located.named,
                    };
                    let Some(city) = city else { continue };
                    let count = counts.entry(kind).or_default();
                    count.seen += 1;
                    let pool = Pool::of(kind, record.asn);
                    let held = per_asn.entry((city, pool, record.asn)).or_default();
                    let list = &mut pools[city][pool.slot()];
                    if *held < NETWORKS_PER_POOL_ASN && list.len() < NETWORKS_PER_POOL {
                        *held += 1;
                        count.kept += 1;
                        list.push(Held {
                            net,
                            asn: record.asn,
                        });
                    }
                }
                let cities_found = named_cities.iter().filter(|n| **n).count();
                if cities_found == 0 {
                    return Err(IndexError::Empty {
                        path: city_db.to_path_buf(),
                    });
                }
                let kept = pools.iter().flatten().map(Vec::len).sum();
                let orgs = pools
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|h| (h.asn, table.org(h.asn)))
                    .collect();
                Ok(AddressIndex {
                    by_kind: assign_kinds(&pools),
                    orgs,
                    cities_found,
                    kept,
                    walked,
                    kinds: RealKind::ALL
                        .iter()
                        .map(|k| (*k, counts.get(k).copied().unwrap_or_default()))
                        .collect(),
                    straddling,
                })
            }
        }
    }

    /// The index without an ASN table: each city's networks dealt to the kinds round-robin,
    /// unknown cities borrowing the nearest known city's, synthetic ASNs per (country, kind).
    /// `None` when no city has a network.
    fn dealt(networks: Vec<Vec<IpNet>>, walked: u64) -> Option<AddressIndex> {
        let known: Vec<usize> = (0..CITIES.len())
            .filter(|c| !networks[*c].is_empty())
            .collect();
        if known.is_empty() {
            return None;
        }
        let stand_in: Vec<usize> = (0..CITIES.len())
            .map(|c| {
                if networks[c].is_empty() {
                    nearest_of(c, &known).unwrap_or(c)
                } else {
                    c
                }
            })
            .collect();
        let mut orgs = HashMap::new();
        let by_kind = (0..CITIES.len())
            .map(|city| {
                NetKind::EVERY
                    .iter()
                    .map(|kind| {
                        let from = stand_in[match kind {
                            NetKind::CarrierGateway => carrier_gateway(city).city.unwrap_or(city),
                            _ => city,
                        }];
                        let asn = asn(from, *kind);
                        orgs.entry(asn)
                            .or_insert_with(|| Arc::from(asn_organization(from, *kind)));
                        deal(&networks[from], *kind)
                            .into_iter()
                            .map(|net| Held { net, asn })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Some(AddressIndex {
            by_kind,
            orgs,
            cities_found: known.len(),
            kept: networks.iter().map(Vec::len).sum(),
            walked,
            kinds: Vec::new(),
            straddling: 0,
        })
    }

    /// Cities of [`CITIES`] the database has networks for.
    pub fn cities_found(&self) -> usize {
        self.cities_found
    }

    /// Networks kept in the index.
    pub fn networks_kept(&self) -> usize {
        self.kept
    }

    /// Networks walked while building.
    pub fn networks_walked(&self) -> u64 {
        self.walked
    }

    /// Networks seen and kept per real kind (empty when built without an ASN table).
    pub fn kind_counts(&self) -> &[(RealKind, KindCount)] {
        &self.kinds
    }

    /// Networks left out because they straddle two ASN ranges (so no single ASN is theirs).
    pub fn networks_straddling(&self) -> u64 {
        self.straddling
    }

    /// One line of networks seen/kept per real kind (`None` without an ASN table).
    pub fn kind_summary(&self) -> Option<String> {
        if !self.has_real_asns() {
            return None;
        }
        let kinds: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, c)| format!("{} {}/{}", k.label(), c.seen, c.kept))
            .collect();
        Some(format!(
            "networks seen/kept by kind: {}; {} straddling two ASNs left out",
            kinds.join(", "),
            self.straddling
        ))
    }

    /// Whether the index was built with an ASN table (real ASNs and kinds).
    pub fn has_real_asns(&self) -> bool {
        !self.kinds.is_empty()
    }

    /// The networks handed out for `kind` in `city` (after borrowing and, for carrier
    /// gateways, moving to the gateway's city). The corporate VPN egresses from one network
    /// per city.
    ///
    /// # Panics
    /// If `city >= CITIES.len()`.
    pub fn networks_of(&self, city: usize, kind: NetKind) -> Vec<IpNet> {
        self.held(city, kind).iter().map(|h| h.net).collect()
    }

    /// The networks of `kind` in `city` with the ASN and organisation the overlay gives them.
    ///
    /// # Panics
    /// If `city >= CITIES.len()`.
    pub fn networks_with_asn(&self, city: usize, kind: NetKind) -> Vec<(IpNet, u32, Arc<str>)> {
        self.held(city, kind)
            .iter()
            .map(|h| (h.net, h.asn, self.org(h.asn)))
            .collect()
    }

    fn held(&self, city: usize, kind: NetKind) -> &[Held] {
        let slot = NetKind::EVERY.iter().position(|k| *k == kind).unwrap_or(0);
        &self.by_kind[city][slot]
    }

    fn org(&self, asn: u32) -> Arc<str> {
        self.orgs
            .get(&asn)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// The `n`-th address of `kind` in `city`: benign for `n < ATTACKER_HOSTS`, else an
    /// attacker's (the other half of the same networks). Consecutive `n` go to the pool's
    /// networks in turn, so a carrier NAT's users spread over all its blocks.
    ///
    /// # Panics
    /// If `city >= CITIES.len()`.
    pub fn address(&self, city: usize, kind: NetKind, n: u32) -> IpAddr {
        let nets = self.held(city, kind);
        let (attacker, m) = if n < ATTACKER_HOSTS {
            (false, n)
        } else {
            (true, n - ATTACKER_HOSTS)
        };
        let count = nets.len().max(1);
        let Some(held) = nets.get(m as usize % count) else {
            // Unreachable: every (city, kind) holds a network once the index is built.
            return address(city, kind, n);
        };
        let usable = addresses_in(&held.net) - 2;
        let half = usable / 2;
        let host = (m as usize / count) as u128 % half;
        nth_address(&held.net, 1 + host + if attacker { half } else { 0 })
    }

    /// An ASN database for every network the index hands out: with an ASN table, the real
    /// ASN and organisation; without, each (city's country, kind) its synthetic ASN
    /// ([`asn`]). The first kind to claim a network names it.
    pub fn asn_db_bytes(&self) -> io::Result<Vec<u8>> {
        let description = if self.has_real_asns() {
            "tokenwatch simulator overlay: real ASNs and organisations (ip-location-db asn: \
             RouteViews, NRO, DB-IP; CC BY 4.0) of the real networks it hands out."
        } else {
            DESCRIPTION
        };
        let mut writer = Writer::builder("GeoLite2-ASN")
            .description(&[("en", description)])
            .build();
        let mut written = std::collections::HashSet::new();
        for kinds in &self.by_kind {
            for held in kinds.iter().flatten() {
                if written.insert(held.net) {
                    let record = Value::map([
                        ("autonomous_system_number", Value::U32(held.asn)),
                        (
                            "autonomous_system_organization",
                            Value::from(&*self.org(held.asn)),
                        ),
                    ]);
                    writer.insert_value(held.net, record).map_err(to_io)?;
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

/// A walked network worth indexing (at least [`MIN_INDEXED_ADDRESSES`]) and its record's
/// offset; `None` for the rest.
fn indexable<S: AsRef<[u8]>>(
    item: &maxminddb::LookupResult<'_, S>,
) -> Result<Option<(IpNet, usize)>, maxminddb::MaxMindDbError> {
    let Some(offset) = item.offset() else {
        return Ok(None);
    };
    let found = item.network()?;
    let Ok(net) = IpNet::new(found.network(), found.prefix()) else {
        return Ok(None);
    };
    Ok((addresses_in(&net) >= MIN_INDEXED_ADDRESSES).then_some((net, offset)))
}

/// Locates records through the run-time enricher, each record once.
struct Walk<'a> {
    enricher: &'a crate::enrich::Enricher,
    by_country: &'a HashMap<&'static str, Vec<usize>>,
    by_record: HashMap<usize, Located>,
}

impl Walk<'_> {
    fn locate(&mut self, offset: usize, net: &IpNet) -> Located {
        let (enricher, by_country) = (self.enricher, self.by_country);
        *self.by_record.entry(offset).or_insert_with(|| {
            let Some(geo) = enricher.enrich(nth_address(net, 1), None).geo else {
                return Located {
                    named: None,
                    point: None,
                };
            };
            let named = geo.country.as_deref().and_then(|country| {
                let name = geo.city.as_deref()?;
                by_country
                    .get(country)?
                    .iter()
                    .copied()
                    .find(|c| city_name_matches(name, CITIES[*c].name))
            });
            Located {
                named,
                point: Some((geo.lat, geo.lon)),
            }
        })
    }
}

/// The city of [`CITIES`] nearest to `point`.
fn nearest_city(point: (f64, f64)) -> usize {
    (0..CITIES.len())
        .min_by(|a, b| {
            let d = |c: usize| crate::track::great_circle_km(point, (CITIES[c].lat, CITIES[c].lon));
            d(*a).total_cmp(&d(*b))
        })
        .unwrap_or(0)
}

/// Of `candidates`, the city nearest to `city`.
fn nearest_of(city: usize, candidates: &[usize]) -> Option<usize> {
    candidates.iter().copied().min_by(|a, b| {
        distance_km(&CITIES[city], &CITIES[*a]).total_cmp(&distance_km(&CITIES[city], &CITIES[*b]))
    })
}

/// `kind`'s share of a city's networks dealt round-robin (no ASN table): every ninth network
/// from the kind's slot, or one shared network when the city has fewer than nine; the
/// corporate VPN takes one.
fn deal(nets: &[IpNet], kind: NetKind) -> Vec<IpNet> {
    if nets.is_empty() {
        return Vec::new();
    }
    let slot = NetKind::EVERY.iter().position(|k| *k == kind).unwrap_or(0);
    let (first, step) = if nets.len() >= NetKind::EVERY.len() {
        (slot, NetKind::EVERY.len())
    } else {
        (slot % nets.len(), nets.len())
    };
    let count = match kind {
        NetKind::CorporateVpn => 1,
        _ => (nets.len() - first).div_ceil(step).max(1),
    };
    nets.iter()
        .skip(first)
        .step_by(step)
        .take(count)
        .copied()
        .collect()
}

/// The networks of the ASN holding most networks of `pool` (ties: the smaller ASN).
fn largest_asn(pool: &[Held]) -> Vec<Held> {
    let mut per_asn: HashMap<u32, usize> = HashMap::new();
    for h in pool {
        *per_asn.entry(h.asn).or_default() += 1;
    }
    let Some(top) = per_asn
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(asn, _)| asn)
    else {
        return Vec::new();
    };
    pool.iter().copied().filter(|h| h.asn == top).collect()
}

/// The first non-empty of `choices`.
fn first_non_empty(choices: impl IntoIterator<Item = Vec<Held>>) -> Vec<Held> {
    choices
        .into_iter()
        .find(|c| !c.is_empty())
        .unwrap_or_default()
}

/// Per city and [`NetKind`], the networks it draws from (module docs of [`AddressIndex`]),
/// then borrowing: a kind a city has none of takes the nearest city's that has one.
fn assign_kinds(pools: &[Vec<Vec<Held>>]) -> Vec<Vec<Vec<Held>>> {
    let pool = |city: usize, p: Pool| pools[city][p.slot()].clone();
    // One hosting network per city egresses the corporate VPN: a general hoster's if any
    // (the VPN-typical hosters are the attackers'), else a VPN hoster's. It is kept out of
    // every other kind, so allowlisting it never allowlists an attacker.
    let corporate: Vec<Option<Held>> = (0..CITIES.len())
        .map(|c| {
            pool(c, Pool::Hosting)
                .last()
                .or(pool(c, Pool::VpnHosting).last())
                .copied()
        })
        .collect();
    let corporate_nets: std::collections::HashSet<IpNet> =
        corporate.iter().flatten().map(|h| h.net).collect();
    let hosting = |c: usize, p: Pool| -> Vec<Held> {
        pool(c, p)
            .into_iter()
            .filter(|h| !corporate_nets.contains(&h.net))
            .collect()
    };
    let mut own: Vec<Vec<Vec<Held>>> = (0..CITIES.len())
        .map(|c| {
            let residential = largest_asn(&pools[c][Pool::Home.slot()]);
            let top_home = residential.first().map(|h| h.asn);
            let other_home: Vec<Held> = pool(c, Pool::Home)
                .into_iter()
                .filter(|h| Some(h.asn) != top_home)
                .chain(pool(c, Pool::Business))
                .collect();
            NetKind::EVERY
                .iter()
                .map(|kind| match kind {
                    NetKind::Residential => residential.clone(),
                    NetKind::AltResidential => first_non_empty([
                        other_home.clone(),
                        pool(c, Pool::Education),
                        pool(c, Pool::Home),
                    ]),
                    NetKind::Mobile | NetKind::CarrierGateway => {
                        largest_asn(&pools[c][Pool::Mobile.slot()])
                    }
                    NetKind::Hosting => {
                        first_non_empty([hosting(c, Pool::Hosting), hosting(c, Pool::VpnHosting)])
                    }
                    NetKind::Vpn => {
                        first_non_empty([hosting(c, Pool::VpnHosting), hosting(c, Pool::Hosting)])
                    }
                    NetKind::Satellite => pool(c, Pool::Satellite),
                    NetKind::Relay => pool(c, Pool::Relay),
                    NetKind::CorporateVpn => corporate[c].into_iter().collect(),
                })
                .collect()
        })
        .collect();
    // Borrow per kind from the nearest city that has one. A person's own lines (home ISP,
    // office, mobile carrier) are in their own country: those kinds borrow only within the
    // country, else fall back to the city's home ISP (most incumbents run the mobile network
    // too; for a phone, the city's other ISP, so phone and home stay different networks) — a
    // Prague phone on a carrier block DB-IP places in Hamburg would be a border crossing no
    // real phone makes. Hosting, VPN, satellite and relay networks are anyone's, wherever
    // they are.
    let slot_of = |kind: NetKind| NetKind::EVERY.iter().position(|k| *k == kind).unwrap_or(0);
    let residential_slot = slot_of(NetKind::Residential);
    let alt_slot = slot_of(NetKind::AltResidential);
    for (slot, kind) in NetKind::EVERY.iter().enumerate() {
        let domestic = matches!(
            kind,
            NetKind::Residential
                | NetKind::AltResidential
                | NetKind::Mobile
                | NetKind::CarrierGateway
        );
        let have: Vec<usize> = (0..CITIES.len())
            .filter(|c| !own[*c][slot].is_empty())
            .collect();
        let lent: Vec<(usize, Vec<Held>)> = (0..CITIES.len())
            .filter(|c| own[*c][slot].is_empty())
            .filter_map(|c| {
                if !domestic {
                    return Some((c, own[nearest_of(c, &have)?][slot].clone()));
                }
                let compatriots: Vec<usize> = have
                    .iter()
                    .copied()
                    .filter(|h| CITIES[*h].country == CITIES[c].country)
                    .collect();
                let fallback = match kind {
                    NetKind::Mobile | NetKind::CarrierGateway => alt_slot,
                    _ => residential_slot,
                };
                match nearest_of(c, &compatriots) {
                    Some(from) => Some((c, own[from][slot].clone())),
                    None if slot != fallback && !own[c][fallback].is_empty() => {
                        Some((c, own[c][fallback].clone()))
                    }
                    None => Some((c, own[nearest_of(c, &have)?][slot].clone())),
                }
            })
            .collect();
        for (c, nets) in lent {
            own[c][slot] = nets;
        }
    }
    // Carrier gateways: the (possibly borrowed) mobile networks of the gateway's city.
    let mobile = NetKind::EVERY
        .iter()
        .position(|k| *k == NetKind::Mobile)
        .unwrap_or(0);
    let gateway = NetKind::EVERY
        .iter()
        .position(|k| *k == NetKind::CarrierGateway)
        .unwrap_or(0);
    for c in 0..CITIES.len() {
        let from = carrier_gateway(c).city.unwrap_or(c);
        own[c][gateway] = own[from][mobile].clone();
    }
    own
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

    /// Every network the plan hands out for the privacy relay: what an operator copies from
    /// the relay's published egress list into `detect.relay_cidrs` (the synthetic plan's
    /// relay has an ASN of its own instead: none).
    pub fn relay_networks(&self) -> Vec<IpNet> {
        match self {
            AddressPlan::Synthetic => Vec::new(),
            AddressPlan::Indexed(index) => {
                let mut nets: Vec<IpNet> = (0..CITIES.len())
                    .flat_map(|c| index.networks_of(c, NetKind::Relay))
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

    /// An ASN table for the synthetic blocks: one real-looking organisation per kind, Munich
    /// without hosting (it borrows) and only Berlin with a satellite block.
    fn synthetic_asn_csv(path: &Path) {
        let munich = super::city_index("Munich").unwrap();
        let berlin = super::city_index("Berlin").unwrap();
        let mut lines = Vec::new();
        for city in 0..CITIES.len() {
            for (kind, asn, org) in [
                (NetKind::Residential, 64600, "Example Telecom"),
                // One bank per city: a small ASN, so a business (not a large ISP).
                (
                    NetKind::AltResidential,
                    4_200_000_000 + city as u32,
                    "\"Example Bank, AG\"",
                ),
                (NetKind::Mobile, 21928, "\"T-Mobile USA, Inc.\""),
                (NetKind::Hosting, 64602, "Example Hosting Ltd"),
                (NetKind::Vpn, 9009, "M247 Europe SRL"),
                (
                    NetKind::Satellite,
                    14593,
                    "Space Exploration Technologies Corporation",
                ),
                (NetKind::Relay, 13335, "\"Cloudflare, Inc.\""),
                (NetKind::CorporateVpn, 64603, "Example Cloud GmbH"),
            ] {
                let hosting = matches!(
                    kind,
                    NetKind::Hosting | NetKind::Vpn | NetKind::CorporateVpn
                );
                if (city == munich && hosting) || (kind == NetKind::Satellite && city != berlin) {
                    continue;
                }
                let IpNet::V4(net) = super::network(city, kind) else {
                    unreachable!()
                };
                lines.push(format!("{},{},{asn},{org}", net.network(), net.broadcast()));
            }
        }
        std::fs::write(path, lines.join("\n")).unwrap();
    }

    #[test]
    fn asn_table_index_hands_out_networks_of_the_right_real_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (city, asn) = (dir.path().join("c.mmdb"), dir.path().join("a.mmdb"));
        super::write_databases(&city, &asn).unwrap();
        let csv = dir.path().join("asn-ipv4.csv");
        synthetic_asn_csv(&csv);
        let index = AddressIndex::build(&city, Some(&csv)).unwrap();
        assert!(index.has_real_asns());
        assert_eq!(index.cities_found(), CITIES.len());
        let count = |kind| {
            index
                .kind_counts()
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, c)| *c)
                .unwrap()
        };
        let cities = CITIES.len() as u64;
        assert_eq!(count(RealKind::HomeIsp).seen, cities);
        assert_eq!(count(RealKind::Business).kept, cities);
        assert_eq!(count(RealKind::Mobile).kept, cities);
        assert_eq!(count(RealKind::Hosting).kept, 3 * (cities - 1));
        assert_eq!(count(RealKind::Satellite).kept, 1);
        assert_eq!(count(RealKind::Education).seen, 0);
        assert!(index.kind_summary().unwrap().contains("home_isp"));

        let overlay = dir.path().join("overlay.mmdb");
        index.write_asn_db(&overlay).unwrap();
        let e = Enricher::from_config(&GeoIpConfig {
            city_db: Some(city.clone()),
            asn_db: Some(overlay),
            ..GeoIpConfig::default()
        })
        .unwrap();
        let berlin = super::city_index("Berlin").unwrap();
        let munich = super::city_index("Munich").unwrap();
        let plan = AddressPlan::Indexed(Arc::new(index));
        let AddressPlan::Indexed(index) = &plan else {
            unreachable!()
        };
        let asn_of = |c, kind, n| e.enrich(plan.address(c, kind, n), None).asn;
        for (kind, want) in [
            (NetKind::Residential, 64600),
            (NetKind::AltResidential, 4_200_000_000 + berlin as u32),
            (NetKind::Mobile, 21928),
            (NetKind::CarrierGateway, 21928),
            (NetKind::Hosting, 64602),
            (NetKind::Vpn, 9009),
            (NetKind::Satellite, 14593),
            (NetKind::Relay, 13335),
            (NetKind::CorporateVpn, 64603),
        ] {
            for n in [0, 7, attacker_host(3)] {
                assert_eq!(asn_of(berlin, kind, n), Some(want), "Berlin {kind:?} {n}");
            }
            let (_, asn, org) = index.networks_with_asn(berlin, kind)[0].clone();
            assert_eq!(asn, want);
            assert!(!org.is_empty(), "{kind:?}");
        }
        assert_eq!(
            &*index.networks_with_asn(berlin, NetKind::AltResidential)[0].2,
            "Example Bank, AG",
            "quoted organisation, comma kept"
        );
        // Munich has no hosting of its own: it borrows a nearby city's, which DB places
        // elsewhere; every city's satellite block is Berlin's, the only one.
        for kind in [NetKind::Hosting, NetKind::Vpn, NetKind::CorporateVpn] {
            let ip = plan.address(munich, kind, 1);
            let geo = e.enrich(ip, None).geo.unwrap();
            assert_ne!(geo.city.as_deref(), Some("Munich"), "{kind:?} {ip}");
            assert_eq!(geo.country.as_deref(), Some("DE"), "{kind:?}: nearest city");
        }
        for c in 0..CITIES.len() {
            assert_eq!(
                index.networks_of(c, NetKind::Satellite),
                vec![super::network(berlin, NetKind::Satellite)]
            );
        }
        // The corporate VPN's networks are allowlisted and no attacker's kind uses them.
        let corporate = plan.corporate_vpn_networks(&(0..CITIES.len()).collect::<Vec<_>>());
        assert_eq!(corporate.len(), CITIES.len() - 1, "Munich borrows");
        for c in 0..CITIES.len() {
            let ip = plan.address(c, NetKind::CorporateVpn, 5);
            assert!(corporate.iter().any(|n| n.contains(&ip)), "{ip}");
            for kind in [NetKind::Hosting, NetKind::Vpn] {
                for net in index.networks_of(c, kind) {
                    assert!(!corporate.contains(&net), "{kind:?} of {c} uses {net}");
                }
            }
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
