//! Where a request puts its user, and how far apart two places are: great-circle distance,
//! the uncertainty-aware travel leg between two located uses, and what a request's network
//! (direct, privacy relay, allowlisted or satellite) says about its user's place.
//!
//! Data flow: `enrich` → **track** (this file serves `session` and `user`) → `features` →
//! `score`. The crate's one haversine lives here (GeoIP and the lab use it too).
//!
//! Invariants: pure arithmetic; non-finite input gives 0 km (no travel rather than a made-up
//! one); a leg's distance and elapsed time are never negative and elapsed is floored at 1 s.
//!
//! What it does NOT do: classify an address (the tracker's allow and relay lists and the
//! catalog's kind from `enrich` do, in `track.rs`), keep state, or judge a speed (that is
//! `score`).

use std::borrow::Cow;
use std::net::IpAddr;

use crate::event::{EventTime, GeoPoint, TravelEvidence};

use super::networks;

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Accuracy radius (km) of a privacy relay's location. Relays keep the user's region, not
/// the city (iCloud Private Relay's egress "maintains general location"; where a country has
/// no egress nearby it can be hundreds of km off), so a relay use says "within this of its
/// egress": enough to show a replay from another continent, never a move within a region.
pub const RELAY_RADIUS_KM: f64 = 500.0;

/// Accuracy radius at least given to a mobile carrier's place, km. Carriers route phones
/// through a few gateways and pool addresses nationally, so GeoIP places a phone hundreds of
/// km from where it is (Balakrishnan et al., "Where's That Phone?: Geolocating IP Addresses
/// on 3G Networks", IMC 2009); the same judgement as the relay's region.
pub const MOBILE_RADIUS_KM: f64 = 500.0;

/// Great-circle distance between two points (haversine), km.
/// A non-finite coordinate (a corrupt database record) gives 0: no travel rather than a
/// made-up one.
pub fn haversine_km(from: &GeoPoint, to: &GeoPoint) -> f64 {
    great_circle_km((from.lat, from.lon), (to.lat, to.lon))
}

/// Great-circle distance in km between two `(lat, lon)` points in degrees (haversine, mean
/// Earth radius); 0 for non-finite input.
pub fn great_circle_km(from: (f64, f64), to: (f64, f64)) -> f64 {
    if ![from.0, from.1, to.0, to.1].iter().all(|v| v.is_finite()) {
        return 0.0;
    }
    let (lat1, lat2) = (from.0.to_radians(), to.0.to_radians());
    let d_lat = lat2 - lat1;
    let d_lon = (to.1 - from.1).to_radians();
    let a = (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
    // Rounding can push `a` a hair above 1 for antipodes.
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// The uncertainty-aware travel leg between two located uses (DESIGN §5).
///
/// Distance is the lower bound `max(0, d − r1 − r2)` (both GeoIP accuracy radii subtracted);
/// elapsed is the absolute event-time difference floored at 1 s, so out-of-order events and
/// same-second pairs never divide by zero or go negative; speed is km/h.
pub fn travel_leg(
    from: &GeoPoint,
    from_time: EventTime,
    to: &GeoPoint,
    to_time: EventTime,
) -> TravelEvidence {
    let radii = finite_non_negative(from.radius_km) + finite_non_negative(to.radius_km);
    let distance_km = (haversine_km(from, to) - radii).max(0.0);
    let elapsed_s = to_time.seconds_since(from_time).abs().max(1.0);
    TravelEvidence {
        from: from.clone(),
        to: to.clone(),
        distance_km,
        elapsed_s,
        speed_kmh: distance_km / elapsed_s * 3600.0,
        phone: false,
    }
}

fn finite_non_negative(value: f64) -> f64 {
    if value.is_finite() {
        value.max(0.0)
    } else {
        0.0
    }
}

/// What a request's network says about where its user is (its role for travel and network
/// changes; the catalog's [`crate::event::NetworkKind`] is one input to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum NetworkRole {
    /// The user's own connection: its location, ASN and country describe the user.
    Direct,
    /// A privacy relay: shared egress that keeps the user's region ([`RELAY_RADIUS_KM`]).
    Relay,
    /// A mobile carrier (by its organisation name): the user's own connection, but placed
    /// as a region ([`MOBILE_RADIUS_KM`]), and one network whatever block it comes from.
    Mobile,
    /// A catalogued hosting/VPN network: an anonymiser, not a place. No travel leg and no
    /// country from it; a move onto it is still a network (ASN) change, and the observation
    /// marks it as an anonymiser.
    Anonymiser,
    /// A catalogued satellite / in-flight link: nothing about where the user is.
    NoPlace,
    /// On the operator's allowlist (`detect.allow_*`): vouched for, it contributes nothing.
    Allowlisted,
}

impl NetworkRole {
    /// Shared egress: no ASN, country or network change (`allowlisted_network`).
    pub(super) fn is_shared(self) -> bool {
        matches!(
            self,
            NetworkRole::Relay | NetworkRole::NoPlace | NetworkRole::Allowlisted
        )
    }

    /// Where a request on this network puts its user, for travel.
    pub(super) fn place(self, geo: Option<&GeoPoint>) -> Option<Cow<'_, GeoPoint>> {
        let geo = geo?;
        match self {
            NetworkRole::Direct => Some(Cow::Borrowed(geo)),
            NetworkRole::Mobile => Some(Cow::Owned(GeoPoint {
                radius_km: geo.radius_km.max(MOBILE_RADIUS_KM),
                // A national pool may be placed across a border from its users (and a
                // roaming phone is routed home): no border to cross.
                country: None,
                ..geo.clone()
            })),
            NetworkRole::Relay => Some(Cow::Owned(GeoPoint {
                radius_km: geo.radius_km.max(RELAY_RADIUS_KM),
                // The egress may sit across a border from its users: no border to cross.
                country: None,
                ..geo.clone()
            })),
            NetworkRole::Anonymiser | NetworkRole::NoPlace | NetworkRole::Allowlisted => None,
        }
    }

    /// The request's spot in the network history: its ASN, address family and, on a direct
    /// connection, the place GeoIP gives it. A shared egress's place says nothing about which
    /// party is there, and a carrier's blocks are one network wherever GeoIP puts them.
    pub(super) fn spot(self, asn: u32, ip: IpAddr, geo: Option<&GeoPoint>) -> networks::Spot {
        networks::Spot {
            asn,
            ipv6: ip.to_canonical().is_ipv6(),
            place: geo
                .filter(|_| self == NetworkRole::Direct)
                .map(|g| (g.lat, g.lon)),
            shared: self.is_shared(),
            anonymiser: self == NetworkRole::Anonymiser,
        }
    }
}
