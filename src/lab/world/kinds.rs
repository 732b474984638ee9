//! What kind of network a real ASN is: home ISP, mobile carrier, hosting/VPN, satellite or
//! in-flight, education, business, or privacy relay, from the daemon's network catalog and
//! documented rules on the organisation's name.
//!
//! Where it sits: lab only. [`super::AddressIndex::build`] classifies every network it walks
//! (by the ASN the [`super::AsnTable`] gives it) and pools networks by kind per city, so the
//! simulator's `NetKind`s draw from real networks of the matching kind.
//!
//! # Rules, in order (the first that matches decides)
//!
//! 1. Satellite: the ASN is a `[[satellite]]` entry of the shipped catalog
//!    (`config/networks.toml`, read through [`crate::enrich::Catalog`]): Starlink (AS14593),
//!    Viasat, Inmarsat, Intelsat, Panasonic Avionics, HughesNet.
//! 2. Relay: the ASN is one of [`RELAY_ASNS`], the networks iCloud Private Relay egresses
//!    from per Apple's documentation (Akamai AS36183, Cloudflare AS13335, Fastly AS54113).
//!    The daemon's catalog deliberately does not list them as relays (they carry much else);
//!    the simulator only uses them as the addresses relay users appear from.
//! 3. Hosting: the ASN is a `[[hosting]]` entry of the catalog (AWS, Google Cloud, Azure,
//!    DigitalOcean, OVH, Hetzner, Linode, Vultr, M247, Datacamp, Leaseweb).
//! 4. Mobile: one of [`MOBILE_ASNS`] (carriers whose registered name does not say so, e.g.
//!    AS22394 "Verizon Business" is Cellco Partnership, Verizon Wireless — the daemon does
//!    not know these), or what the daemon's own name rules say (`enrich::org_names`: "T-Mobile
//!    USA", "Telefonica Moviles", "PT. Telekomunikasi Selular", "AT&T Mobility", …).
//! 5. Education: a word starting with `universi` ("University of Tokyo", "Universitaet",
//!    "Universidad"), `college`, `school`, `hochschule`, `polytechn`, `education`, `academ`,
//!    or research networks: `research`, `forschungsnetz` ("Verein zur Foerderung eines
//!    Deutschen Forschungsnetzes e.V." = DFN), `renater`, `jisc`, `garr`, `rediris`, `surf`,
//!    `internet2`, `cernet`, `aarnet`, `switch`.
//! 6. Hosting by name: what the daemon's own name rules say (`enrich::org_names`:
//!    "Hostinger", "ColoCrossing", "Contabo", "… Data Centre", …).
//! 7. Home ISP: a word of the access business: `telecom`/`telekom`/`tele…` ("Deutsche
//!    Telekom AG", "Telefonica", "Telenor"), `communications`, `broadband`, `cable`/`kabel`,
//!    `fiber`/`fibre`, `internet`, `isp`, `dsl`, `net`/`…net` words ("Kabelnet"), `online`,
//!    `provider`, `wifi`, `comcast`, `charter`, `spectrum`; or, whatever the name, an ASN
//!    announcing at least [`LARGE_ISP_ADDRESSES`] addresses (incumbents such as "Orange",
//!    "Free SAS", "Proximus").
//! 8. Business: everything else (a company's, a bank's, a public body's own network: its
//!    users come out of one office NAT).
//!
//! What it does NOT do: know which addresses of a mixed carrier are mobile (a carrier that
//! sells both is classified by its registered name only), or decide what a kind means for
//! detection (that is `track`, through the catalog).

use std::collections::HashSet;

use crate::enrich::Catalog;
use crate::event::NetworkKind;

/// The kind of a real network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RealKind {
    /// A home broadband ISP.
    HomeIsp,
    /// A mobile carrier.
    Mobile,
    /// Cloud, hosting, datacenter or VPN egress.
    Hosting,
    /// A satellite ISP or in-flight connectivity (catalog only).
    Satellite,
    /// A university or research network.
    Education,
    /// A company's or public body's own network.
    Business,
    /// A network that privacy relays egress from.
    Relay,
}

impl RealKind {
    /// Every kind, in a fixed order.
    pub const ALL: [RealKind; 7] = [
        RealKind::HomeIsp,
        RealKind::Mobile,
        RealKind::Hosting,
        RealKind::Satellite,
        RealKind::Education,
        RealKind::Business,
        RealKind::Relay,
    ];

    /// Bounded label (for logs and docs).
    pub fn label(self) -> &'static str {
        match self {
            RealKind::HomeIsp => "home_isp",
            RealKind::Mobile => "mobile",
            RealKind::Hosting => "hosting",
            RealKind::Satellite => "satellite",
            RealKind::Education => "education",
            RealKind::Business => "business",
            RealKind::Relay => "relay",
        }
    }
}

/// The ASNs iCloud Private Relay egresses from: Akamai (AS36183), Cloudflare (AS13335) and
/// Fastly (AS54113), per Apple's "Prepare your network or web server for iCloud Private
/// Relay" (support.apple.com/102602), which names Akamai, Cloudflare and Fastly as egress
/// partners and publishes the egress ranges (mask-api.icloud.com/egress-ip-ranges.csv).
pub const RELAY_ASNS: [u32; 3] = [36183, 13335, 54113];

/// Mobile carriers whose registered organisation name does not say "mobile".
pub const MOBILE_ASNS: [(u32, &str); 2] = [
    (
        22394,
        "Cellco Partnership (Verizon Wireless), registered as \"Verizon Business\"",
    ),
    (20057, "AT&T Mobility LLC"),
];

/// Hosters that commercial VPNs rent egress from (the simulator's `Vpn` pool prefers them):
/// M247 (AS9009), Datacamp/CDN77 (AS60068), Leaseweb (AS60781, AS16265), OVH (AS16276),
/// Hetzner (AS24940), Vultr/Choopa (AS20473), DigitalOcean (AS14061), Linode (AS63949).
pub const VPN_HOSTER_ASNS: [u32; 9] =
    [9009, 60068, 60781, 16265, 16276, 24940, 20473, 14061, 63949];

/// An ASN announcing at least this many IPv4 addresses (a `/14`) is an access provider,
/// whatever its name: companies and public bodies rarely hold that much.
pub const LARGE_ISP_ADDRESSES: u64 = 1 << 18;

/// Classifies real networks (rules in the module docs).
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    satellite: HashSet<u32>,
    hosting: HashSet<u32>,
}

impl Classifier {
    /// A classifier using `catalog`'s satellite and hosting ASNs.
    pub fn new(catalog: &Catalog) -> Classifier {
        Classifier {
            satellite: catalog.asns(NetworkKind::Satellite).into_iter().collect(),
            hosting: catalog.asns(NetworkKind::Hosting).into_iter().collect(),
        }
    }

    /// A classifier using the shipped catalog (`config/networks.toml`).
    pub fn shipped() -> Result<Classifier, crate::enrich::CatalogError> {
        Ok(Classifier::new(&Catalog::shipped()?))
    }

    /// The catalog's satellite ASNs.
    pub fn is_satellite_asn(&self, asn: u32) -> bool {
        self.satellite.contains(&asn)
    }

    /// The kind of the network of `asn`, held by `org`, announcing `addresses` IPv4
    /// addresses in all.
    pub fn classify(&self, asn: u32, org: &str, addresses: u64) -> RealKind {
        if self.satellite.contains(&asn) {
            return RealKind::Satellite;
        }
        if RELAY_ASNS.contains(&asn) {
            return RealKind::Relay;
        }
        if self.hosting.contains(&asn) {
            return RealKind::Hosting;
        }
        classify_by_name(asn, org, addresses)
    }
}

/// Rules 4–8 of the module docs (no catalog).
fn classify_by_name(asn: u32, org: &str, addresses: u64) -> RealKind {
    let name = crate::enrich::OrgName::new(org);
    let word_starts = |prefixes: &[&str]| name.word_starts(prefixes);
    let word_is = |names: &[&str]| name.word_is(names);

    let by_name = crate::enrich::kind_by_name(org);
    if MOBILE_ASNS.iter().any(|(a, _)| *a == asn) || by_name == Some(NetworkKind::Mobile) {
        return RealKind::Mobile;
    }
    if word_starts(&[
        "universi",
        "college",
        "school",
        "hochschule",
        "polytechn",
        "education",
        "academ",
        "research",
        "forschungsnetz",
    ]) || word_is(&[
        "renater",
        "jisc",
        "garr",
        "rediris",
        "surf",
        "internet2",
        "cernet",
        "aarnet",
        "switch",
    ]) {
        return RealKind::Education;
    }
    if by_name == Some(NetworkKind::Hosting) {
        return RealKind::Hosting;
    }
    let access_word = name.words().any(|w| {
        w.starts_with("tele")
            || w.starts_with("communication")
            || w.starts_with("broadband")
            || w.starts_with("cable")
            || w.starts_with("kabel")
            || w.starts_with("fib")
            || w.starts_with("internet")
            || w.starts_with("provider")
            || w.ends_with("net")
            || matches!(
                w,
                "isp" | "dsl" | "online" | "wifi" | "comcast" | "charter" | "spectrum"
            )
    });
    if access_word || addresses >= LARGE_ISP_ADDRESSES {
        return RealKind::HomeIsp;
    }
    RealKind::Business
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_organisations_classify_as_their_kind() {
        let c = Classifier::shipped().unwrap();
        // (ASN, organisation as the real table names it, addresses, expected kind).
        let small = 4096;
        let table: &[(u32, &str, u64, RealKind)] = &[
            (
                14593,
                "Space Exploration Technologies Corporation",
                814_592,
                RealKind::Satellite,
            ),
            (7155, "ViaSat,Inc.", 1_136_384, RealKind::Satellite),
            (13335, "Cloudflare, Inc.", 1_615_360, RealKind::Relay),
            (36183, "Akamai Technologies, Inc.", 125_184, RealKind::Relay),
            (54113, "Fastly, Inc.", 360_960, RealKind::Relay),
            (9009, "M247 Europe SRL", 1_544_704, RealKind::Hosting),
            (60068, "Datacamp Limited", 135_168, RealKind::Hosting),
            (24940, "Hetzner Online GmbH", 1_000_000, RealKind::Hosting),
            (51167, "Contabo GmbH", 300_000, RealKind::Hosting),
            (36352, "ColoCrossing", 300_000, RealKind::Hosting),
            (64500, "Example Hosting Ltd", small, RealKind::Hosting),
            (64501, "Nordic Data Center AB", small, RealKind::Hosting),
            (
                64502,
                "Servers Australia Pty. Ltd",
                small,
                RealKind::Hosting,
            ),
            (21928, "T-Mobile USA, Inc.", 14_050_048, RealKind::Mobile),
            (22394, "Verizon Business", 14_002_432, RealKind::Mobile),
            (20057, "AT&T Mobility LLC", 5_000_000, RealKind::Mobile),
            (
                12430,
                "Vodafone Espana S.A.U.",
                5_000_000,
                RealKind::HomeIsp,
            ),
            (
                3352,
                "Telefonica De Espana S.A.U.",
                5_000_000,
                RealKind::HomeIsp,
            ),
            (
                27680,
                "Telefonica Moviles Chile S.A.",
                500_000,
                RealKind::Mobile,
            ),
            (8359, "MTS PJSC", 5_000_000, RealKind::HomeIsp),
            (8359, "Mobile TeleSystems PJSC", 5_000_000, RealKind::Mobile),
            (9410, "Sprint Wireless", small, RealKind::Mobile),
            (
                45609,
                "Bharti Airtel Ltd. AS for GPRS Service",
                small,
                RealKind::Mobile,
            ),
            (9605, "NTT DOCOMO, INC.", 5_000_000, RealKind::Mobile),
            (
                23693,
                "PT. Telekomunikasi Selular",
                5_000_000,
                RealKind::Mobile,
            ),
            (10620, "Telmex Colombia S.A.", 5_000_000, RealKind::HomeIsp),
            (
                3816,
                "Colombia Telecomunicaciones S.A. ESP",
                5_000_000,
                RealKind::HomeIsp,
            ),
            (
                680,
                "Verein zur Foerderung eines Deutschen Forschungsnetzes e.V.",
                7_662_848,
                RealKind::Education,
            ),
            (786, "Jisc Services Limited", 5_000_000, RealKind::Education),
            (2500, "The University of Tokyo", small, RealKind::Education),
            (
                64503,
                "Universidad de Buenos Aires",
                small,
                RealKind::Education,
            ),
            (
                64504,
                "Trustees of Boston College",
                small,
                RealKind::Education,
            ),
            (3320, "Deutsche Telekom AG", 34_403_072, RealKind::HomeIsp),
            (
                7922,
                "Comcast Cable Communications, LLC",
                67_801_856,
                RealKind::HomeIsp,
            ),
            (12322, "Free SAS", 9_363_456, RealKind::HomeIsp),
            (5089, "Virgin Media Limited", 7_000_000, RealKind::HomeIsp),
            (
                64505,
                "Kabelnet Ostfriesland GmbH",
                small,
                RealKind::HomeIsp,
            ),
            (64506, "Fibra Optica Express", small, RealKind::HomeIsp),
            (64507, "Deutsche Bank AG", small, RealKind::Business),
            (64508, "Ministry of Finance", small, RealKind::Business),
            (64509, "Siemens AG", 100_000, RealKind::Business),
            (64510, "ExxonMobil Corporation", small, RealKind::Business),
        ];
        let mut wrong = Vec::new();
        for (asn, org, addresses, want) in table {
            let got = c.classify(*asn, org, *addresses);
            if got != *want {
                wrong.push(format!("AS{asn} {org:?}: {got:?}, want {want:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn catalog_decides_before_the_name() {
        let c = Classifier::shipped().unwrap();
        // A satellite ASN whose name would say "home ISP" by the name rules.
        assert_eq!(
            c.classify(14593, "Starlink Internet Services", 1),
            RealKind::Satellite
        );
        assert!(c.is_satellite_asn(14593));
        assert!(!c.is_satellite_asn(3320));
        // Without the catalog, the same name is an ISP.
        let bare = Classifier::default();
        assert_eq!(
            bare.classify(14593, "Starlink Internet Services", 1),
            RealKind::HomeIsp
        );
        assert_eq!(bare.classify(9009, "M247 Europe SRL", 1), RealKind::Hosting);
        assert_eq!(bare.classify(64000, "", 0), RealKind::Business);
        assert_eq!(
            bare.classify(64000, "", LARGE_ISP_ADDRESSES),
            RealKind::HomeIsp
        );
    }

    #[test]
    fn every_relay_and_vpn_hoster_asn_is_classified_accordingly() {
        let c = Classifier::shipped().unwrap();
        for asn in RELAY_ASNS {
            assert_eq!(c.classify(asn, "", 0), RealKind::Relay, "AS{asn}");
        }
        for asn in VPN_HOSTER_ASNS {
            assert_eq!(c.classify(asn, "", 0), RealKind::Hosting, "AS{asn}");
        }
        let labels: HashSet<&str> = RealKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), RealKind::ALL.len());
    }
}
