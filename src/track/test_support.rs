//! Hand-built events for the detection tests (no GeoIP files, no real tokens): places,
//! User-Agents and a builder for [`IdentifiedEvent`]s, shared by the `track`, `features`,
//! `score`, `decide` and `model` unit tests. Test-only.

use std::net::IpAddr;
use std::sync::Arc;

use crate::event::{
    AccessEvent, AddressClass, Claims, Credential, Enrichment, EventTime, Fingerprint, GeoPoint,
    IdentifiedEvent, Identity, NetworkKind, TokenKind, UserAgentInfo,
};

/// A test fingerprint: `n` repeated.
pub fn fp(n: u8) -> Fingerprint {
    Fingerprint([n; 16])
}

/// A GeoPoint fixture.
pub fn place(city: &str, country: &str, lat: f64, lon: f64, radius_km: f64) -> GeoPoint {
    GeoPoint {
        city: Some(Arc::from(city)),
        country: Some(Arc::from(country)),
        lat,
        lon,
        radius_km,
    }
}

pub fn berlin() -> GeoPoint {
    place("Berlin", "DE", 52.52, 13.405, 20.0)
}
pub fn sao_paulo() -> GeoPoint {
    place("São Paulo", "BR", -23.55, -46.633, 50.0)
}
pub fn london() -> GeoPoint {
    place("London", "GB", 51.5074, -0.1278, 20.0)
}
pub fn paris() -> GeoPoint {
    place("Paris", "FR", 48.8566, 2.3522, 20.0)
}

pub fn ua(family: &str, os: &str, scripted: bool) -> UserAgentInfo {
    UserAgentInfo::new(Arc::from(family), Arc::from(os), scripted)
}

pub fn chrome_windows() -> UserAgentInfo {
    ua("Chrome", "Windows 10", false)
}

/// 2026-11-23T17:00:00Z, the base time of the scenarios.
pub const T0: i64 = 1_795_453_200;

/// One event; tweak with the builder methods.
pub struct Ev(pub IdentifiedEvent);

/// An opaque-token event of session `n` at `T0 + offset_s`, from a public address in
/// Berlin on Chrome/Windows (AS 3320).
pub fn ev(n: u8, offset_s: i64) -> Ev {
    Ev(IdentifiedEvent {
        seq: 0,
        event: AccessEvent {
            time: EventTime::from_secs(T0 + offset_s),
            client_ip: "203.0.113.10".parse().expect("ip"),
            method: Some("GET".into()),
            path: Some("/api".into()),
            status: Some(200),
            user_agent: None,
            credentials: vec![Credential::Fingerprint(fp(n))],
        },
        identity: Identity {
            fingerprint: fp(n),
            kind: TokenKind::Opaque,
            claims: None,
        },
        enrichment: Enrichment {
            geo: Some(berlin()),
            asn: Some(3320),
            address_class: Some(AddressClass::Public),
            user_agent: Some(chrome_windows()),
            ..Enrichment::default()
        },
    })
}

impl Ev {
    pub fn seq(mut self, seq: u64) -> Self {
        self.0.seq = seq;
        self
    }
    pub fn ip(mut self, ip: &str) -> Self {
        self.0.event.client_ip = ip.parse::<IpAddr>().expect("ip");
        self
    }
    pub fn geo(mut self, geo: Option<GeoPoint>) -> Self {
        self.0.enrichment.geo = geo;
        self
    }
    pub fn asn(mut self, asn: Option<u32>) -> Self {
        self.0.enrichment.asn = asn;
        self
    }
    /// A network the catalog knows (what `enrich` sets for a catalogued ASN).
    pub fn network(mut self, kind: NetworkKind, org: &str) -> Self {
        self.0.enrichment.network_kind = Some(kind);
        self.0.enrichment.network_org = Some(Arc::from(org));
        self
    }
    pub fn ua(mut self, ua: UserAgentInfo) -> Self {
        self.0.enrichment.user_agent = Some(ua);
        self
    }
    pub fn private(mut self, ip: &str) -> Self {
        self.0.event.client_ip = ip.parse::<IpAddr>().expect("ip");
        self.0.enrichment.geo = None;
        self.0.enrichment.asn = None;
        self.0.enrichment.address_class = Some(AddressClass::Private);
        self
    }
    /// A verified JWT of `sub` at `https://id.example.com`, expiring at `exp`.
    pub fn jwt(mut self, sub: &str, sid: Option<&str>, exp: i64) -> Self {
        self.0.identity.kind = TokenKind::Jwt;
        self.0.identity.claims = Some(Arc::new(Claims {
            iss: Some("https://id.example.com".into()),
            sub: Some(sub.into()),
            jti: Some(format!("jti-{}", self.0.identity.fingerprint)),
            sid: sid.map(str::to_string),
            exp: Some(exp),
            iat: Some(exp - 3600),
            nbf: None,
        }));
        self
    }
    pub fn build(self) -> IdentifiedEvent {
        self.0
    }
}
