//! ASN look-ups for stage 4 (enrich): the autonomous system number of a client address, from
//! a GeoLite2-ASN (or ip-location-db asn) database.
//!
//! Where it sits in the data flow: `Enricher::enrich` (in `enrich.rs`) calls
//! [`Enricher::asn_of`] for a public address; the number goes into the event's `Enrichment`,
//! and `track` treats a change of ASN within a session as evidence. The database file is
//! mapped and reloaded by `geoip`'s `DbSlot`, like the City database.
//!
//! The organisation (`autonomous_system_organization`) is decoded borrowed and kept only for a
//! network the catalog lists (evidence for a satellite, hosting or relay network) or one
//! whose name says what it is (`org_names`, classified once per ASN and cached with its
//! name), so the common case allocates nothing.
//!
//! What it does NOT do: treat ASN 0 (unassigned) as a network.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;

use super::Enricher;
use super::geoip::Number;

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<Number>,
    #[serde(borrow)]
    autonomous_system_organization: Option<&'a str>,
}

/// An address's autonomous system.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Asn {
    pub number: u32,
    /// The database's organisation name, kept only for catalogued networks and those its
    /// name classifies.
    pub organisation: Option<Arc<str>>,
}

impl Enricher {
    /// The autonomous system `ip` (a public address) belongs to, if the database knows it.
    pub(super) fn asn_of(&self, ip: IpAddr) -> Option<Asn> {
        let db = self.asn.as_ref()?.current.load();
        if ip.is_ipv6() && db.reader.metadata().ip_version == 4 {
            return None;
        }
        let found = self.count_error(db.reader.lookup(ip))?;
        let record: AsnRecord<'_> = self.count_error(found.decode())??;
        let number = record
            .autonomous_system_number
            .and_then(|n| n.as_u32())
            .filter(|n| *n != 0)?;
        let name = record
            .autonomous_system_organization
            .map(str::trim)
            .filter(|org| !org.is_empty());
        let organisation = if self.catalog.lookup(ip, Some(number)).is_some() {
            name.map(Arc::from)
        } else if self.catalog.classifies_by_name() {
            self.kind_by_name_of(number, name).map(|(_, org)| org)
        } else {
            None
        };
        Some(Asn {
            number,
            organisation,
        })
    }
}
