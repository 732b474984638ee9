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

macro_rules! cities {
    ($( $name:literal, $country:literal, $lat:literal, $lon:literal; )*) => {
        &[ $( City { name: $name, country: $country, lat: $lat, lon: $lon }, )* ]
    };
}

/// Real cities with real coordinates (city centre, to about 0.01°).
///
/// Appending keeps every existing city's addresses; reordering or removing changes them.
pub const CITIES: &[City] = cities! {
    // Europe
    "Berlin", "DE", 52.520, 13.405;
    "Munich", "DE", 48.137, 11.575;
    "Hamburg", "DE", 53.551, 9.993;
    "Frankfurt am Main", "DE", 50.110, 8.682;
    "Cologne", "DE", 50.938, 6.960;
    "Stuttgart", "DE", 48.776, 9.183;
    "Düsseldorf", "DE", 51.227, 6.773;
    "Leipzig", "DE", 51.340, 12.375;
    "Dresden", "DE", 51.050, 13.738;
    "London", "GB", 51.507, -0.128;
    "Manchester", "GB", 53.481, -2.243;
    "Birmingham", "GB", 52.486, -1.890;
    "Edinburgh", "GB", 55.953, -3.188;
    "Glasgow", "GB", 55.864, -4.252;
    "Paris", "FR", 48.857, 2.352;
    "Lyon", "FR", 45.764, 4.836;
    "Marseille", "FR", 43.297, 5.370;
    "Toulouse", "FR", 43.605, 1.444;
    "Nice", "FR", 43.710, 7.262;
    "Madrid", "ES", 40.417, -3.704;
    "Barcelona", "ES", 41.385, 2.173;
    "Valencia", "ES", 39.470, -0.376;
    "Seville", "ES", 37.389, -5.984;
    "Lisbon", "PT", 38.722, -9.139;
    "Porto", "PT", 41.158, -8.629;
    "Rome", "IT", 41.903, 12.496;
    "Milan", "IT", 45.464, 9.190;
    "Naples", "IT", 40.852, 14.268;
    "Turin", "IT", 45.070, 7.687;
    "Amsterdam", "NL", 52.368, 4.904;
    "Rotterdam", "NL", 51.924, 4.478;
    "Brussels", "BE", 50.850, 4.352;
    "Antwerp", "BE", 51.219, 4.402;
    "Luxembourg", "LU", 49.612, 6.130;
    "Zurich", "CH", 47.377, 8.542;
    "Geneva", "CH", 46.204, 6.143;
    "Vienna", "AT", 48.208, 16.373;
    "Prague", "CZ", 50.076, 14.438;
    "Warsaw", "PL", 52.230, 21.012;
    "Kraków", "PL", 50.065, 19.945;
    "Budapest", "HU", 47.498, 19.040;
    "Bucharest", "RO", 44.427, 26.103;
    "Sofia", "BG", 42.698, 23.322;
    "Belgrade", "RS", 44.787, 20.457;
    "Zagreb", "HR", 45.815, 15.982;
    "Ljubljana", "SI", 46.057, 14.506;
    "Bratislava", "SK", 48.149, 17.107;
    "Athens", "GR", 37.984, 23.728;
    "Thessaloniki", "GR", 40.640, 22.944;
    "Istanbul", "TR", 41.008, 28.978;
    "Ankara", "TR", 39.933, 32.860;
    "Izmir", "TR", 38.423, 27.143;
    "Copenhagen", "DK", 55.676, 12.568;
    "Stockholm", "SE", 59.329, 18.069;
    "Gothenburg", "SE", 57.709, 11.975;
    "Oslo", "NO", 59.914, 10.752;
    "Bergen", "NO", 60.391, 5.322;
    "Helsinki", "FI", 60.170, 24.938;
    "Tallinn", "EE", 59.437, 24.754;
    "Riga", "LV", 56.950, 24.105;
    "Vilnius", "LT", 54.687, 25.280;
    "Dublin", "IE", 53.350, -6.260;
    "Cork", "IE", 51.898, -8.476;
    "Reykjavik", "IS", 64.147, -21.943;
    "Kyiv", "UA", 50.450, 30.523;
    "Lviv", "UA", 49.840, 24.030;
    "Minsk", "BY", 53.905, 27.562;
    "Moscow", "RU", 55.756, 37.617;
    "Saint Petersburg", "RU", 59.934, 30.335;
    "Novosibirsk", "RU", 55.008, 82.936;
    "Yekaterinburg", "RU", 56.839, 60.606;
    "Vladivostok", "RU", 43.116, 131.886;
    "Chișinău", "MD", 47.011, 28.864;
    "Tbilisi", "GE", 41.715, 44.827;
    "Yerevan", "AM", 40.179, 44.499;
    "Baku", "AZ", 40.409, 49.867;
    "Valletta", "MT", 35.899, 14.515;
    "Nicosia", "CY", 35.186, 33.382;
    // Middle East
    "Tel Aviv", "IL", 32.085, 34.782;
    "Jerusalem", "IL", 31.768, 35.214;
    "Dubai", "AE", 25.205, 55.271;
    "Abu Dhabi", "AE", 24.454, 54.377;
    "Riyadh", "SA", 24.714, 46.675;
    "Jeddah", "SA", 21.486, 39.193;
    "Doha", "QA", 25.285, 51.531;
    "Kuwait City", "KW", 29.376, 47.977;
    "Manama", "BH", 26.229, 50.586;
    "Muscat", "OM", 23.588, 58.383;
    "Amman", "JO", 31.954, 35.911;
    "Beirut", "LB", 33.894, 35.502;
    "Tehran", "IR", 35.689, 51.389;
    "Baghdad", "IQ", 33.315, 44.366;
    // Asia
    "Tokyo", "JP", 35.690, 139.692;
    "Osaka", "JP", 34.694, 135.502;
    "Nagoya", "JP", 35.181, 136.906;
    "Sapporo", "JP", 43.062, 141.354;
    "Fukuoka", "JP", 33.590, 130.402;
    "Seoul", "KR", 37.567, 126.978;
    "Busan", "KR", 35.180, 129.076;
    "Beijing", "CN", 39.904, 116.407;
    "Shanghai", "CN", 31.230, 121.474;
    "Guangzhou", "CN", 23.129, 113.264;
    "Shenzhen", "CN", 22.543, 114.058;
    "Chengdu", "CN", 30.573, 104.066;
    "Wuhan", "CN", 30.593, 114.305;
    "Hangzhou", "CN", 30.274, 120.155;
    "Xi'an", "CN", 34.342, 108.940;
    "Hong Kong", "HK", 22.319, 114.169;
    "Macau", "MO", 22.199, 113.544;
    "Taipei", "TW", 25.033, 121.565;
    "Kaohsiung", "TW", 22.627, 120.301;
    "Ulaanbaatar", "MN", 47.886, 106.906;
    "Singapore", "SG", 1.352, 103.820;
    "Kuala Lumpur", "MY", 3.139, 101.687;
    "Bangkok", "TH", 13.756, 100.502;
    "Chiang Mai", "TH", 18.788, 98.985;
    "Hanoi", "VN", 21.028, 105.834;
    "Ho Chi Minh City", "VN", 10.823, 106.630;
    "Manila", "PH", 14.600, 120.984;
    "Cebu City", "PH", 10.316, 123.885;
    "Jakarta", "ID", -6.209, 106.846;
    "Surabaya", "ID", -7.258, 112.752;
    "Denpasar", "ID", -8.650, 115.217;
    "Phnom Penh", "KH", 11.556, 104.928;
    "Yangon", "MM", 16.841, 96.174;
    "Vientiane", "LA", 17.976, 102.633;
    "Dhaka", "BD", 23.810, 90.413;
    "Kathmandu", "NP", 27.717, 85.324;
    "Colombo", "LK", 6.927, 79.861;
    "Mumbai", "IN", 19.076, 72.878;
    "New Delhi", "IN", 28.614, 77.209;
    "Bengaluru", "IN", 12.972, 77.595;
    "Chennai", "IN", 13.083, 80.271;
    "Hyderabad", "IN", 17.385, 78.487;
    "Kolkata", "IN", 22.573, 88.364;
    "Pune", "IN", 18.520, 73.857;
    "Ahmedabad", "IN", 23.023, 72.571;
    "Karachi", "PK", 24.861, 67.001;
    "Lahore", "PK", 31.520, 74.359;
    "Islamabad", "PK", 33.684, 73.048;
    "Kabul", "AF", 34.555, 69.208;
    "Tashkent", "UZ", 41.300, 69.240;
    "Almaty", "KZ", 43.222, 76.851;
    "Astana", "KZ", 51.161, 71.470;
    "Bishkek", "KG", 42.875, 74.570;
    // Oceania
    "Sydney", "AU", -33.869, 151.209;
    "Melbourne", "AU", -37.814, 144.963;
    "Brisbane", "AU", -27.470, 153.025;
    "Perth", "AU", -31.951, 115.861;
    "Adelaide", "AU", -34.929, 138.601;
    "Canberra", "AU", -35.281, 149.130;
    "Hobart", "AU", -42.882, 147.327;
    "Darwin", "AU", -12.463, 130.846;
    "Auckland", "NZ", -36.849, 174.763;
    "Wellington", "NZ", -41.287, 174.776;
    "Christchurch", "NZ", -43.532, 172.636;
    "Suva", "FJ", -18.125, 178.450;
    "Port Moresby", "PG", -9.444, 147.180;
    "Nouméa", "NC", -22.276, 166.458;
    "Honolulu", "US", 21.307, -157.858;
    // North and Central America, Caribbean
    "New York", "US", 40.713, -74.006;
    "Boston", "US", 42.360, -71.059;
    "Philadelphia", "US", 39.953, -75.165;
    "Washington D.C.", "US", 38.907, -77.037;
    "Chicago", "US", 41.878, -87.630;
    "Los Angeles", "US", 34.052, -118.244;
    "San Francisco", "US", 37.775, -122.419;
    "San Jose", "US", 37.338, -121.886;
    "Seattle", "US", 47.606, -122.332;
    "Portland", "US", 45.515, -122.678;
    "San Diego", "US", 32.716, -117.161;
    "Las Vegas", "US", 36.170, -115.140;
    "Phoenix", "US", 33.448, -112.074;
    "Denver", "US", 39.739, -104.990;
    "Dallas", "US", 32.777, -96.797;
    "Houston", "US", 29.760, -95.370;
    "Austin", "US", 30.267, -97.743;
    "Atlanta", "US", 33.749, -84.388;
    "Miami", "US", 25.762, -80.192;
    "Orlando", "US", 28.538, -81.379;
    "Minneapolis", "US", 44.978, -93.265;
    "Detroit", "US", 42.331, -83.046;
    "St. Louis", "US", 38.627, -90.199;
    "Kansas City", "US", 39.100, -94.579;
    "Salt Lake City", "US", 40.761, -111.891;
    "Anchorage", "US", 61.218, -149.900;
    "Nashville", "US", 36.163, -86.782;
    "New Orleans", "US", 29.951, -90.072;
    "Charlotte", "US", 35.227, -80.843;
    "Pittsburgh", "US", 40.441, -79.996;
    "Toronto", "CA", 43.653, -79.383;
    "Montreal", "CA", 45.502, -73.567;
    "Vancouver", "CA", 49.283, -123.121;
    "Calgary", "CA", 51.045, -114.072;
    "Ottawa", "CA", 45.422, -75.697;
    "Edmonton", "CA", 53.546, -113.494;
    "Winnipeg", "CA", 49.895, -97.138;
    "Halifax", "CA", 44.649, -63.575;
    "Quebec City", "CA", 46.814, -71.208;
    "Mexico City", "MX", 19.433, -99.133;
    "Guadalajara", "MX", 20.660, -103.350;
    "Monterrey", "MX", 25.687, -100.316;
    "Tijuana", "MX", 32.515, -117.038;
    "Cancún", "MX", 21.162, -86.852;
    "Guatemala City", "GT", 14.635, -90.507;
    "San Salvador", "SV", 13.693, -89.218;
    "Tegucigalpa", "HN", 14.072, -87.192;
    "Managua", "NI", 12.115, -86.236;
    "San José", "CR", 9.928, -84.091;
    "Panama City", "PA", 8.982, -79.520;
    "Havana", "CU", 23.114, -82.367;
    "Santo Domingo", "DO", 18.486, -69.931;
    "San Juan", "PR", 18.466, -66.106;
    "Kingston", "JM", 18.018, -76.810;
    "Port-au-Prince", "HT", 18.594, -72.307;
    "Nassau", "BS", 25.044, -77.350;
    // South America
    "São Paulo", "BR", -23.551, -46.633;
    "Rio de Janeiro", "BR", -22.907, -43.173;
    "Brasília", "BR", -15.794, -47.883;
    "Belo Horizonte", "BR", -19.917, -43.935;
    "Salvador", "BR", -12.978, -38.502;
    "Fortaleza", "BR", -3.732, -38.527;
    "Recife", "BR", -8.048, -34.877;
    "Porto Alegre", "BR", -30.035, -51.218;
    "Curitiba", "BR", -25.428, -49.273;
    "Manaus", "BR", -3.119, -60.022;
    "Belém", "BR", -1.456, -48.490;
    "Buenos Aires", "AR", -34.604, -58.382;
    "Córdoba", "AR", -31.420, -64.189;
    "Rosario", "AR", -32.944, -60.651;
    "Mendoza", "AR", -32.890, -68.846;
    "Santiago", "CL", -33.449, -70.669;
    "Valparaíso", "CL", -33.047, -71.613;
    "Lima", "PE", -12.046, -77.043;
    "Arequipa", "PE", -16.409, -71.538;
    "Bogotá", "CO", 4.711, -74.072;
    "Medellín", "CO", 6.244, -75.581;
    "Cali", "CO", 3.452, -76.532;
    "Quito", "EC", -0.181, -78.468;
    "Guayaquil", "EC", -2.171, -79.922;
    "Caracas", "VE", 10.481, -66.904;
    "Maracaibo", "VE", 10.643, -71.613;
    "La Paz", "BO", -16.490, -68.119;
    "Santa Cruz de la Sierra", "BO", -17.815, -63.156;
    "Asunción", "PY", -25.264, -57.576;
    "Montevideo", "UY", -34.901, -56.165;
    "Georgetown", "GY", 6.801, -58.155;
    "Paramaribo", "SR", 5.852, -55.204;
    // Africa
    "Lagos", "NG", 6.524, 3.379;
    "Abuja", "NG", 9.077, 7.399;
    "Kano", "NG", 12.002, 8.592;
    "Accra", "GH", 5.604, -0.187;
    "Kumasi", "GH", 6.689, -1.624;
    "Abidjan", "CI", 5.360, -4.008;
    "Dakar", "SN", 14.717, -17.468;
    "Bamako", "ML", 12.639, -8.003;
    "Ouagadougou", "BF", 12.371, -1.520;
    "Lomé", "TG", 6.132, 1.223;
    "Cotonou", "BJ", 6.365, 2.418;
    "Douala", "CM", 4.051, 9.768;
    "Yaoundé", "CM", 3.848, 11.502;
    "Kinshasa", "CD", -4.442, 15.266;
    "Lubumbashi", "CD", -11.665, 27.479;
    "Brazzaville", "CG", -4.263, 15.243;
    "Libreville", "GA", 0.416, 9.467;
    "Luanda", "AO", -8.839, 13.289;
    "Nairobi", "KE", -1.292, 36.822;
    "Mombasa", "KE", -4.044, 39.668;
    "Kampala", "UG", 0.348, 32.583;
    "Kigali", "RW", -1.944, 30.062;
    "Dar es Salaam", "TZ", -6.792, 39.208;
    "Addis Ababa", "ET", 9.025, 38.747;
    "Khartoum", "SD", 15.501, 32.560;
    "Cairo", "EG", 30.044, 31.236;
    "Alexandria", "EG", 31.200, 29.919;
    "Casablanca", "MA", 33.573, -7.590;
    "Rabat", "MA", 34.021, -6.842;
    "Marrakesh", "MA", 31.630, -7.981;
    "Algiers", "DZ", 36.754, 3.059;
    "Tunis", "TN", 36.807, 10.182;
    "Tripoli", "LY", 32.887, 13.191;
    "Johannesburg", "ZA", -26.204, 28.047;
    "Pretoria", "ZA", -25.748, 28.229;
    "Cape Town", "ZA", -33.925, 18.424;
    "Durban", "ZA", -29.859, 31.022;
    "Harare", "ZW", -17.825, 31.034;
    "Lusaka", "ZM", -15.388, 28.323;
    "Maputo", "MZ", -25.969, 32.573;
    "Windhoek", "NA", -22.561, 17.066;
    "Gaborone", "BW", -24.628, 25.923;
    "Antananarivo", "MG", -18.879, 47.508;
    "Port Louis", "MU", -20.161, 57.501;
    "Freetown", "SL", 8.466, -13.232;
    "Monrovia", "LR", 6.316, -10.807;
    "Conakry", "GN", 9.641, -13.578;
    "Niamey", "NE", 13.512, 2.125;
    "N'Djamena", "TD", 12.135, 15.056;
};

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

// ---------------------------------------------------------------------------------------------
// Real City databases: addresses indexed by city.

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
        let index = AddressIndex::build(&dir.path().join("city.mmdb")).unwrap();
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
