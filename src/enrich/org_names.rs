//! Network knowledge from the ASN database's organisation name, for networks the catalog
//! does not list: a mobile carrier, or a hosting / datacenter / VPN network.
//!
//! Where it sits: inside `enrich`, after the catalog (`catalog`) found nothing for an
//! address; the ASN database (`autonomous_system_organization`) supplies the name. The
//! result is cached per ASN by the [`super::Enricher`], so a request costs a map look-up.
//! `[networks] classify_by_name = false` switches it off.
//!
//! Why: a catalog of ASNs can never list every hoster a consumer VPN rents egress from, nor
//! every carrier; an evaluation on real ASNs found uncatalogued VPN hosters and carriers
//! whose blocks GeoIP places hundreds of km apart behind most honest revocations. The
//! organisation name is what an operator would look at in whois, and it says "Mobile",
//! "Wireless", "Hosting", "Cloud" or "Datacenter" often enough to matter.
//!
//! # Rules (on the lower-cased name split into words; the first that matches decides)
//!
//! 1. **Mobile**: a word starting with `mobil`, `movil`, `móvil`, `celular`, `selular`
//!    ("T-Mobile USA", "Telefonica Moviles", "Mobile TeleSystems", "PT. Telekomunikasi
//!    Selular"), a word `gprs`, `lte`, `umts`, `3g`, `4g`, `5g` ("Bharti Airtel Ltd. AS for
//!    GPRS Service"), or the name containing `wireless`, `cellular`, `cellco`, `docomo`,
//!    `telcel`, `telkomsel`, `safaricom`, `vodacom`, `turkcell`, `mobility` ("AT&T
//!    Mobility").
//! 2. **Hosting**: a word starting with `host` ("Hostinger"), `server`, `coloc`
//!    ("ColoCrossing"; not `colo`, which is Colombia), `datacent`, `cloud`, a word `vps`,
//!    `dedicated`, `datacamp`, `m247`, `leaseweb`, `hetzner`, `ovh`, `contabo`, `scaleway`,
//!    `digitalocean`, `linode`, `vultr`, `choopa`, `amazon`, `google`, `microsoft`, `oracle`,
//!    `alibaba`, `tencent`, `ionos`, or the name containing `data center` / `data centre`.
//!
//! What it does NOT do: know a carrier that sells both fixed and mobile lines under one
//! name (Deutsche Telekom's phones are not named "mobile"), or a hoster whose name says
//! nothing of it. Those stay uncatalogued: their places count for travel as they are.

use crate::event::NetworkKind;

/// An organisation name as the rules read it: lower-cased, and split into its alphanumeric
/// words (the lab's finer classifier reads names the same way).
pub struct OrgName {
    lower: String,
}

impl OrgName {
    /// Read `organisation`.
    pub fn new(organisation: &str) -> OrgName {
        OrgName {
            lower: organisation.to_lowercase(),
        }
    }

    /// Its words.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
    }

    /// A word starts with one of `prefixes`.
    pub fn word_starts(&self, prefixes: &[&str]) -> bool {
        self.words()
            .any(|w| prefixes.iter().any(|p| w.starts_with(p)))
    }

    /// A word is one of `names`.
    pub fn word_is(&self, names: &[&str]) -> bool {
        self.words().any(|w| names.contains(&w))
    }

    /// The name contains one of `parts` (which may span words).
    pub fn contains(&self, parts: &[&str]) -> bool {
        parts.iter().any(|p| self.lower.contains(p))
    }
}

/// The kind the organisation name says, if any (rules in the module docs).
pub fn kind_by_name(organisation: &str) -> Option<NetworkKind> {
    let name = OrgName::new(organisation);
    let word_starts = |prefixes: &[&str]| name.word_starts(prefixes);
    let word_is = |names: &[&str]| name.word_is(names);
    let contains = |parts: &[&str]| name.contains(parts);

    if word_starts(&["mobil", "movil", "móvil", "celular", "selular"])
        || word_is(&["gprs", "lte", "umts", "3g", "4g", "5g"])
        || contains(&[
            "wireless",
            "cellular",
            "cellco",
            "docomo",
            "telcel",
            "telkomsel",
            "safaricom",
            "vodacom",
            "turkcell",
            "mobility",
        ])
    {
        return Some(NetworkKind::Mobile);
    }
    if word_starts(&["host", "server", "coloc", "datacent", "cloud"])
        || word_is(&[
            "vps",
            "dedicated",
            "datacamp",
            "m247",
            "leaseweb",
            "hetzner",
            "ovh",
            "contabo",
            "scaleway",
            "digitalocean",
            "linode",
            "vultr",
            "choopa",
            "amazon",
            "google",
            "microsoft",
            "oracle",
            "alibaba",
            "tencent",
            "ionos",
        ])
        || contains(&["data center", "data centre"])
    {
        return Some(NetworkKind::Hosting);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_organisation_names_say_mobile_or_hosting() {
        // Names as ip-location-db's ASN table gives them.
        for (name, kind) in [
            ("T-Mobile USA, Inc.", Some(NetworkKind::Mobile)),
            ("Telefonica Moviles Chile", Some(NetworkKind::Mobile)),
            ("Verizon Wireless", Some(NetworkKind::Mobile)),
            ("PT. Telekomunikasi Selular", Some(NetworkKind::Mobile)),
            (
                "Bharti Airtel Ltd. AS for GPRS Service",
                Some(NetworkKind::Mobile),
            ),
            ("AT&T Mobility LLC", Some(NetworkKind::Mobile)),
            (
                "Hostinger International Limited",
                Some(NetworkKind::Hosting),
            ),
            ("ColoCrossing", Some(NetworkKind::Hosting)),
            ("M247 Europe SRL", Some(NetworkKind::Hosting)),
            ("Contabo GmbH", Some(NetworkKind::Hosting)),
            (
                "Alibaba (US) Technology Co., Ltd.",
                Some(NetworkKind::Hosting),
            ),
            ("Example Data Centre Ltd", Some(NetworkKind::Hosting)),
            ("Deutsche Telekom AG", None),
            ("Comcast Cable Communications, LLC", None),
            ("Colombia Movil", Some(NetworkKind::Mobile)),
            ("Colombia Telecomunicaciones S.A.", None),
            ("Free SAS", None),
            ("", None),
        ] {
            assert_eq!(kind_by_name(name), kind, "{name}");
        }
    }
}
