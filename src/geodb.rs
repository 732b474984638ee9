//! A small synthetic world for the demo, the simulator and tests: real cities with real
//! coordinates, made-up address blocks per city and network kind, written as GeoIP2-schema
//! City and ASN mmdb files so no download is needed.
//!
//! STUB: interface only; the implementation is being written.

use std::net::IpAddr;
use std::path::Path;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetKind {
    /// Home broadband.
    Residential,
    /// Mobile carrier.
    Mobile,
    /// Hosting / datacenter.
    Hosting,
}

/// Real cities with real coordinates.
pub const CITIES: &[City] = &[];

/// Index of a city by name.
pub fn city_index(_name: &str) -> Option<usize> {
    None
}

/// The `n`-th address of a city's network of `kind`.
pub fn address(_city: usize, _kind: NetKind, _n: u32) -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

/// The ASN that owns a city's network of `kind`.
pub fn asn(_city: usize, _kind: NetKind) -> u32 {
    0
}

/// Write the City and ASN databases.
pub fn write_databases(_city_db: &Path, _asn_db: &Path) -> std::io::Result<()> {
    Ok(())
}
