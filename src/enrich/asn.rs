//! ASN look-ups for stage 4 (enrich): the autonomous system number of a client address, from
//! a GeoLite2-ASN (or ip-location-db asn) database.
//!
//! Where it sits in the data flow: `Enricher::enrich` (in `enrich.rs`) calls
//! [`Enricher::asn_of`] for a public address; the number goes into the event's `Enrichment`,
//! and `track` treats a change of ASN within a session as evidence. The database file is
//! mapped and reloaded by `geoip`'s `DbSlot`, like the City database.
//!
//! What it does NOT do: name the organisation (only `autonomous_system_number` is decoded), or
//! treat ASN 0 (unassigned) as a network.

use std::net::IpAddr;

use serde::Deserialize;

use super::Enricher;
use super::geoip::Number;

#[derive(Deserialize)]
struct AsnRecord {
    autonomous_system_number: Option<Number>,
}

impl Enricher {
    /// The autonomous system `ip` (a public address) belongs to, if the database knows it.
    pub(super) fn asn_of(&self, ip: IpAddr) -> Option<u32> {
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
}
