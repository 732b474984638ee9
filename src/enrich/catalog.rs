//! The network catalog for stage 4 (enrich): which networks are satellite or in-flight links,
//! hosting/VPN egress or privacy relays (DESIGN §5, network knowledge).
//!
//! Where it sits in the data flow: `Enricher::enrich` (in `enrich.rs`) asks [`Catalog::lookup`]
//! about every public address, by its ASN (from the ASN database) and by CIDR; the answer goes
//! into the event's `Enrichment` as `network_kind` and `network_org`. `track` acts on it: a
//! satellite network is no place and no network change, a relay keeps only its region, a
//! hosting network is recorded as an anonymiser on the observation.
//!
//! The catalog ships in the repository (`config/networks.toml`, embedded with `include_str!`,
//! header naming its sources and date). `[networks] catalog` replaces it with the operator's
//! file; `[networks] extra_*_asns` / `extra_*_cidrs` extend whichever is in use, and an extra
//! entry overrides the catalog's kind for that ASN (how an operator reclassifies a network).
//!
//! Invariants: an ASN has one kind (a file listing one ASN twice is refused, naming it); ASN 0
//! (unassigned) is never an entry; look-ups are a hash probe plus a scan of the (few) CIDRs and
//! allocate nothing (the organisation is a shared `Arc<str>`).
//!
//! What it does NOT do: fetch lists from the network (a maintained file is reviewed, a feed is
//! not), or decide what a kind means for detection (that is `track`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;

use crate::config::NetworksConfig;
use crate::event::NetworkKind;

/// The catalog shipped with this build.
pub const SHIPPED: &str = include_str!("../../config/networks.toml");

/// A catalog that cannot be read or is not valid. The message names the setting or the entry.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `[networks] catalog` cannot be read.
    #[error("networks.catalog: cannot read {path}: {source}")]
    Read {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid catalog.
    #[error("{origin}: {message}")]
    Invalid {
        /// `networks.catalog (<path>)` or `the shipped catalog`.
        origin: String,
        /// What is wrong, naming the entry.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    satellite: Vec<Entry>,
    #[serde(default)]
    hosting: Vec<Entry>,
    #[serde(default)]
    relay: Vec<Entry>,
}

/// One `[[satellite]]`, `[[hosting]]` or `[[relay]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    asn: Option<u32>,
    #[serde(default)]
    cidrs: Vec<IpNet>,
    org: String,
    /// Where the entry comes from (kept in the file for reviewers).
    #[serde(default)]
    #[allow(dead_code)]
    source: String,
    /// Seen in one source only (kept in the file for reviewers; the entry is active).
    #[serde(default)]
    #[allow(dead_code)]
    verified: Option<bool>,
}

/// A catalogued network: its kind and who runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    /// Satellite, hosting or relay.
    pub kind: NetworkKind,
    /// The organisation (from the catalog; `None` for an operator's `extra_*` entry).
    pub org: Option<Arc<str>>,
}

/// Known networks by ASN and by CIDR.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    asns: HashMap<u32, Listed>,
    cidrs: Vec<(IpNet, Listed)>,
    /// Networks it does not list are classified by their organisation name
    /// (`enrich::org_names`; `[networks] classify_by_name`). On for a parsed catalog.
    by_name: bool,
}

impl Catalog {
    /// The catalog shipped with this build (`config/networks.toml`).
    pub fn shipped() -> Result<Catalog, CatalogError> {
        Catalog::parse(SHIPPED, "the shipped catalog")
    }

    /// The catalog `[networks]` asks for: the configured file or the shipped one, extended by
    /// the `extra_*` lists (which override the file's kind for their ASNs).
    pub fn from_config(config: &NetworksConfig) -> Result<Catalog, CatalogError> {
        let mut catalog = match &config.catalog {
            Some(path) => Catalog::load(path)?,
            None => Catalog::shipped()?,
        };
        catalog.by_name = config.classify_by_name;
        for (kind, asns, cidrs) in [
            (
                NetworkKind::Satellite,
                &config.extra_satellite_asns,
                &config.extra_satellite_cidrs,
            ),
            (
                NetworkKind::Hosting,
                &config.extra_hosting_asns,
                &config.extra_hosting_cidrs,
            ),
            (
                NetworkKind::Relay,
                &config.extra_relay_asns,
                &config.extra_relay_cidrs,
            ),
        ] {
            let listed = Listed { kind, org: None };
            for asn in asns.iter().filter(|asn| **asn != 0) {
                catalog.asns.insert(*asn, listed.clone());
            }
            // The operator's ranges first: a CIDR match is the first one found.
            for net in cidrs {
                catalog.cidrs.insert(0, (net.trunc(), listed.clone()));
            }
        }
        Ok(catalog)
    }

    /// Read a catalog file.
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Catalog::parse(&text, &format!("networks.catalog ({})", path.display()))
    }

    /// Parse catalog text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let invalid = |message: String| CatalogError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let file: CatalogFile = toml::from_str(text)
            .map_err(|e| invalid(e.to_string().trim_end().replace('\n', "\n    ")))?;
        let mut catalog = Catalog {
            by_name: true,
            ..Catalog::default()
        };
        let mut seen: HashMap<u32, String> = HashMap::new();
        for (kind, name, entries) in [
            (NetworkKind::Satellite, "satellite", &file.satellite),
            (NetworkKind::Hosting, "hosting", &file.hosting),
            (NetworkKind::Relay, "relay", &file.relay),
        ] {
            for (i, entry) in entries.iter().enumerate() {
                let at = format!("{name}[{i}]");
                let org = entry.org.trim();
                if org.is_empty() {
                    return Err(invalid(format!("{at}.org: must name the organisation")));
                }
                if entry.asn.is_none() && entry.cidrs.is_empty() {
                    return Err(invalid(format!("{at}: set asn, cidrs or both")));
                }
                let listed = Listed {
                    kind,
                    org: Some(Arc::from(org)),
                };
                if let Some(asn) = entry.asn {
                    if asn == 0 {
                        return Err(invalid(format!("{at}.asn: 0 is not an assigned ASN")));
                    }
                    if let Some(first) = seen.insert(asn, at.clone()) {
                        return Err(invalid(format!(
                            "{at}.asn: AS{asn} is already listed as {first} (one kind per ASN)"
                        )));
                    }
                    catalog.asns.insert(asn, listed.clone());
                }
                for net in &entry.cidrs {
                    catalog.cidrs.push((net.trunc(), listed.clone()));
                }
            }
        }
        Ok(catalog)
    }

    /// What the catalog knows about `ip` (a public address) on `asn`: the ASN first (the
    /// common case), then the ranges.
    pub fn lookup(&self, ip: IpAddr, asn: Option<u32>) -> Option<&Listed> {
        asn.and_then(|asn| self.asns.get(&asn)).or_else(|| {
            self.cidrs
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, listed)| listed)
        })
    }

    /// Catalogued ASNs of `kind`, sorted (for tests and the README's counts).
    pub fn asns(&self, kind: NetworkKind) -> Vec<u32> {
        let mut asns: Vec<u32> = self
            .asns
            .iter()
            .filter(|(_, listed)| listed.kind == kind)
            .map(|(asn, _)| *asn)
            .collect();
        asns.sort_unstable();
        asns
    }

    /// Whether networks it does not list are classified by their organisation name.
    pub fn classifies_by_name(&self) -> bool {
        self.by_name
    }

    /// Nothing catalogued.
    pub fn is_empty(&self) -> bool {
        self.asns.is_empty() && self.cidrs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn shipped_catalog_parses_and_knows_the_big_providers() {
        let c = Catalog::shipped().expect("shipped catalog parses");
        let sat = c.asns(NetworkKind::Satellite);
        for asn in [14593, 7155, 40306, 31515, 22351, 64294] {
            assert!(sat.contains(&asn), "satellite AS{asn}");
        }
        let hosting = c.asns(NetworkKind::Hosting);
        for asn in [
            16509, 14618, 396982, 8075, 14061, 16276, 24940, 63949, 20473, 9009,
        ] {
            assert!(hosting.contains(&asn), "hosting AS{asn}");
        }
        // No relay ASN ships (iCloud Private Relay shares CDN ASNs); see the file's header.
        assert!(c.asns(NetworkKind::Relay).is_empty());
        let starlink = c.lookup(ip("98.97.0.1"), Some(14593)).expect("listed");
        assert_eq!(starlink.kind, NetworkKind::Satellite);
        assert!(starlink.org.as_deref().unwrap().contains("Starlink"));
        // The simulator's private-use ASNs are never catalogued.
        for asn in 65_000..=65_535 {
            assert!(c.lookup(ip("8.8.8.8"), Some(asn)).is_none(), "AS{asn}");
        }
    }

    #[test]
    fn every_shipped_entry_is_valid_and_no_asn_has_two_kinds() {
        let file: CatalogFile = toml::from_str(SHIPPED).expect("toml");
        let mut seen = std::collections::HashSet::new();
        for entry in file
            .satellite
            .iter()
            .chain(&file.hosting)
            .chain(&file.relay)
        {
            assert!(!entry.org.trim().is_empty());
            assert!(
                !entry.source.trim().is_empty(),
                "{} has no source",
                entry.org
            );
            assert!(
                entry.verified.is_some(),
                "{} says nothing of verification",
                entry.org
            );
            let asn = entry.asn.expect("shipped entries are by ASN");
            // Public ASNs only: not 0, AS_TRANS, documentation, private-use or reserved.
            assert!(
                asn != 0
                    && asn != 23_456
                    && !(64_496..=131_071).contains(&asn)
                    && asn < 4_200_000_000,
                "AS{asn} is not a public ASN"
            );
            assert!(seen.insert(asn), "AS{asn} listed twice");
        }
    }

    #[test]
    fn invalid_catalogs_are_refused_naming_the_entry() {
        for (text, wants) in [
            (
                "[[satellite]]\nasn = 1\norg = \"a\"\n[[hosting]]\nasn = 1\norg = \"b\"\n",
                "hosting[0].asn: AS1 is already listed as satellite[0]",
            ),
            (
                "[[relay]]\norg = \"x\"\n",
                "relay[0]: set asn, cidrs or both",
            ),
            ("[[hosting]]\nasn = 0\norg = \"x\"\n", "hosting[0].asn: 0"),
            ("[[hosting]]\nasn = 5\norg = \" \"\n", "hosting[0].org"),
            ("[[vpn]]\nasn = 5\norg = \"x\"\n", "unknown field"),
            (
                "[[relay]]\ncidrs = [\"10.0.0.0/33\"]\norg = \"x\"\n",
                "invalid",
            ),
        ] {
            let err = Catalog::parse(text, "test").expect_err(text).to_string();
            assert!(err.starts_with("test: "), "{err}");
            assert!(err.contains(wants), "{text}: {err}");
        }
    }

    #[test]
    fn config_replaces_and_extends_the_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.toml");
        std::fs::write(
            &path,
            "[[relay]]\norg = \"iCloud Private Relay\"\ncidrs = [\"172.224.226.0/27\"]\n\
             [[satellite]]\nasn = 64512\norg = \"Test sat\"\nsource = \"t\"\n",
        )
        .unwrap();
        let config = NetworksConfig {
            catalog: Some(path),
            extra_hosting_asns: vec![64512, 3320],
            extra_satellite_cidrs: vec!["192.0.2.0/24".parse().unwrap()],
            ..NetworksConfig::default()
        };
        let c = Catalog::from_config(&config).unwrap();
        // The file replaced the shipped catalog.
        assert!(c.lookup(ip("1.1.1.1"), Some(14593)).is_none());
        // Extras override the file's kind and add new ASNs.
        assert_eq!(
            c.lookup(ip("1.1.1.1"), Some(64512)).map(|l| l.kind),
            Some(NetworkKind::Hosting)
        );
        assert_eq!(
            c.lookup(ip("1.1.1.1"), Some(3320)).map(|l| l.kind),
            Some(NetworkKind::Hosting)
        );
        let relay = c.lookup(ip("172.224.226.5"), None).unwrap();
        assert_eq!(relay.kind, NetworkKind::Relay);
        assert_eq!(relay.org.as_deref(), Some("iCloud Private Relay"));
        assert_eq!(
            c.lookup(ip("192.0.2.9"), Some(1)).map(|l| l.kind),
            Some(NetworkKind::Satellite)
        );
        assert!(c.lookup(ip("172.224.227.5"), None).is_none());

        // Without `catalog`, the shipped one is extended.
        let c = Catalog::from_config(&NetworksConfig {
            extra_relay_asns: vec![64513],
            ..NetworksConfig::default()
        })
        .unwrap();
        assert!(c.lookup(ip("1.1.1.1"), Some(14593)).is_some());
        assert_eq!(
            c.lookup(ip("1.1.1.1"), Some(64513)).map(|l| l.kind),
            Some(NetworkKind::Relay)
        );

        let err = Catalog::from_config(&NetworksConfig {
            catalog: Some(dir.path().join("missing.toml")),
            ..NetworksConfig::default()
        })
        .expect_err("missing file");
        assert!(
            err.to_string().starts_with("networks.catalog: cannot read"),
            "{err}"
        );
    }
}
