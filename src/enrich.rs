//! Stage 4, enrich: GeoIP city and ASN look-ups, address classification, User-Agent parsing.
//!
//! STUB: interface only; the implementation is being written.

use std::net::IpAddr;

use crate::config::GeoIpConfig;
use crate::event::{AddressClass, Enrichment};

/// A database that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnrichError(pub String);

/// Looks up addresses in memory-mapped databases that are reloaded when their files change.
pub struct Enricher {}

impl Enricher {
    /// Open the configured databases.
    pub fn from_config(_config: &GeoIpConfig) -> Result<Self, EnrichError> {
        Ok(Enricher {})
    }
    /// Enrich one request.
    pub fn enrich(&self, _ip: IpAddr, _user_agent: Option<&str>) -> Enrichment {
        Enrichment::default()
    }
    /// Reopen databases whose files changed; true if any was reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, EnrichError> {
        Ok(false)
    }
    /// Build time of the city database (epoch seconds), for a gauge.
    pub fn city_build_epoch(&self) -> Option<u64> {
        None
    }
}

/// Classify an address (public, private, reserved).
pub fn classify(_ip: IpAddr) -> AddressClass {
    AddressClass::Public
}
