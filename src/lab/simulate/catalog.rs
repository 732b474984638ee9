//! The simulator's catalogue: real browser User-Agent strings, scripted clients, request
//! paths, and the cities that play special roles (offices, VPN egress, datacenters, in-flight
//! Wi-Fi providers).
//!
//! Data only, plus the small look-ups over it. Every city named here must be in
//! [`world::CITIES`] (a unit test checks); the look-up tables skip a missing one rather than
//! panic.

use std::sync::OnceLock;

use crate::lab::world::{self, CITIES};

/// A browser on an OS, with the User-Agent strings of consecutive releases.
#[derive(Debug)]
pub(super) struct Browser {
    /// Family and OS, for picking a *different* browser.
    pub name: &'static str,
    /// User-Agent template: `{v}` is the version; `{o}` the version with `_` for `.` (iOS).
    pub template: &'static str,
    /// Versions, oldest first: an auto-update moves to the next one.
    pub versions: &'static [&'static str],
    /// A phone.
    pub mobile: bool,
    /// Apple's (Safari): these are the users who turn on Private Relay.
    pub apple: bool,
    /// Share among desktop or among mobile users (per mille).
    pub weight: u32,
}

impl Browser {
    /// The User-Agent of release `version` (clamped to the newest).
    pub fn user_agent(&self, version: usize) -> String {
        let v = self.versions[version.min(self.versions.len() - 1)];
        self.template
            .replace("{v}", v)
            .replace("{o}", &v.replace('.', "_"))
    }
}

const CHROME: &[&str] = &["128", "129", "130", "131"];
const FIREFOX: &[&str] = &["130.0", "131.0", "132.0", "133.0"];

/// Desktop and mobile browsers with real User-Agent strings (UA-reduced where the browser
/// reduces them: Chrome reports `Windows NT 10.0`, `Mac OS X 10_15_7`, `Android 10; K`).
pub(super) const BROWSERS: &[Browser] = &[
    Browser {
        name: "chrome-windows",
        template: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        versions: CHROME,
        mobile: false,
        apple: false,
        weight: 380,
    },
    Browser {
        name: "edge-windows",
        template: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0",
        versions: CHROME,
        mobile: false,
        apple: false,
        weight: 130,
    },
    Browser {
        name: "firefox-windows",
        template: "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}) Gecko/20100101 Firefox/{v}",
        versions: FIREFOX,
        mobile: false,
        apple: false,
        weight: 80,
    },
    Browser {
        name: "chrome-macos",
        template: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        versions: CHROME,
        mobile: false,
        apple: false,
        weight: 140,
    },
    Browser {
        name: "safari-macos",
        template: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15",
        versions: &["17.5", "17.6", "18.0", "18.1"],
        mobile: false,
        apple: true,
        weight: 130,
    },
    Browser {
        name: "firefox-macos",
        template: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:{v}) Gecko/20100101 Firefox/{v}",
        versions: FIREFOX,
        mobile: false,
        apple: false,
        weight: 40,
    },
    Browser {
        name: "chrome-linux",
        template: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        versions: CHROME,
        mobile: false,
        apple: false,
        weight: 50,
    },
    Browser {
        name: "firefox-linux",
        template: "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:{v}) Gecko/20100101 Firefox/{v}",
        versions: FIREFOX,
        mobile: false,
        apple: false,
        weight: 30,
    },
    Browser {
        name: "safari-ios",
        template: "Mozilla/5.0 (iPhone; CPU iPhone OS {o} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1",
        versions: &["17.5", "17.6", "18.0", "18.1"],
        mobile: true,
        apple: true,
        weight: 450,
    },
    Browser {
        name: "chrome-android",
        template: "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
        versions: CHROME,
        mobile: true,
        apple: false,
        weight: 330,
    },
    Browser {
        name: "samsung-android",
        template: "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/{v} Chrome/125.0.0.0 Mobile Safari/537.36",
        versions: &["25.0", "26.0", "27.0"],
        mobile: true,
        apple: false,
        weight: 120,
    },
    Browser {
        name: "chrome-ios",
        template: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/{v}.0.6778.73 Mobile/15E148 Safari/604.1",
        versions: CHROME,
        mobile: true,
        apple: false,
        weight: 100,
    },
];

/// Scripted clients an attacker replays a token with (attack type 3).
pub(super) const SCRIPTED_ATTACK_UAS: &[&str] = &[
    "python-requests/2.32.3",
    "python-requests/2.31.0",
    "curl/8.5.0",
    "curl/7.81.0",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
];

/// Benign API-automation clients (integrations, sync jobs): scripted from their first request.
pub(super) const AUTOMATION_UAS: &[&str] = &[
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "axios/1.7.7",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "curl/8.5.0",
];

/// A request path: `prefix`, then a number when `numbered`.
#[derive(Debug, Clone, Copy)]
pub(super) struct PathSpec {
    /// The fixed part.
    pub prefix: &'static str,
    /// Whether a number follows (`/projects/` + 42, `?page=` + 3).
    pub numbered: bool,
}

const fn fixed(prefix: &'static str) -> PathSpec {
    PathSpec {
        prefix,
        numbered: false,
    }
}

const fn numbered(prefix: &'static str) -> PathSpec {
    PathSpec {
        prefix,
        numbered: true,
    }
}

/// Pages a browser loads.
pub(super) const PAGES: &[PathSpec] = &[
    fixed("/"),
    fixed("/dashboard"),
    fixed("/inbox"),
    fixed("/projects"),
    numbered("/projects/"),
    fixed("/settings"),
    fixed("/reports"),
    numbered("/search?q="),
    fixed("/calendar"),
    fixed("/files"),
];

/// API calls a page load bursts into (`GET`).
pub(super) const API_GETS: &[PathSpec] = &[
    fixed("/api/v1/me"),
    fixed("/api/v1/notifications"),
    fixed("/api/v1/feed"),
    numbered("/api/v1/projects/"),
    numbered("/api/v1/items?page="),
    fixed("/api/v1/messages?folder=inbox"),
    fixed("/api/v1/settings"),
    numbered("/api/v1/search?q="),
];

/// API calls that write (`POST`): telemetry (204), new items and messages (201).
pub(super) const API_POSTS: &[(PathSpec, u16)] = &[
    (fixed("/api/v1/events"), 204),
    (fixed("/api/v1/items"), 201),
    (fixed("/api/v1/messages"), 201),
];

/// Paths a scraper walks: bulk exports, directories, admin views (attack type 4).
pub(super) const SCRAPE_PATHS: &[PathSpec] = &[
    numbered("/api/v1/export?format=csv&page="),
    numbered("/api/v1/users?page="),
    numbered("/api/v1/admin/audit-log?page="),
    numbered("/api/v1/contacts?page="),
    numbered("/api/v1/billing/invoices/"),
    numbered("/api/v1/files/"),
    numbered("/api/v1/orgs/members?page="),
];

/// What integrations call.
pub(super) const AUTOMATION_PATHS: &[PathSpec] = &[
    numbered("/api/v1/sync?since="),
    numbered("/api/v1/items?updated_after="),
    numbered("/api/v1/webhooks/deliveries?page="),
    numbered("/api/v1/reports/"),
    fixed("/api/v1/me"),
];

/// Cities with a company office whose staff share one NAT address.
const OFFICE_HUBS: &[&str] = &[
    "Berlin",
    "London",
    "Paris",
    "New York",
    "San Francisco",
    "Toronto",
    "Tokyo",
    "Singapore",
    "Sydney",
    "São Paulo",
    "Bengaluru",
    "Amsterdam",
    "Chicago",
    "Madrid",
    "Stockholm",
    "Dublin",
];

/// The corporate VPN's egress points.
const VPN_EGRESS: &[&str] = &[
    "Amsterdam",
    "Frankfurt am Main",
    "Dublin",
    "London",
    "Zurich",
    "Washington D.C.",
    "San Jose",
    "Toronto",
    "São Paulo",
    "Singapore",
    "Tokyo",
    "Sydney",
    "Mumbai",
    "Johannesburg",
    "Dubai",
];

/// Datacenter cities (API-automation clients and hosting-based attackers).
const DATACENTERS: &[&str] = &[
    "Frankfurt am Main",
    "Amsterdam",
    "Washington D.C.",
    "San Jose",
    "Dublin",
    "Singapore",
    "Tokyo",
    "London",
    "Paris",
    "Sydney",
    "São Paulo",
    "Mumbai",
    "Dallas",
    "Seattle",
];

/// Where in-flight Wi-Fi providers' satellite ranges geolocate: their home, not the plane
/// (Viasat near San Diego, Gogo/Intelsat in Chicago, Inmarsat in London, Panasonic Avionics
/// near Los Angeles, Starlink near Seattle).
const SATELLITE_HOMES: &[&str] = &["San Diego", "Chicago", "London", "Los Angeles", "Seattle"];

fn indices(names: &[&str]) -> Vec<usize> {
    names.iter().filter_map(|n| world::city_index(n)).collect()
}

/// Office hub cities (indices into `CITIES`).
pub(super) fn office_hubs() -> &'static [usize] {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| indices(OFFICE_HUBS))
}

/// VPN egress cities.
pub(super) fn vpn_egress() -> &'static [usize] {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| indices(VPN_EGRESS))
}

/// Datacenter cities.
pub(super) fn datacenters() -> &'static [usize] {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| indices(DATACENTERS))
}

/// In-flight Wi-Fi providers' home cities.
pub(super) fn satellite_homes() -> &'static [usize] {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| indices(SATELLITE_HOMES))
}

/// The corporate VPN egress a user in `home` connects through: the nearest one in another
/// country (so the VPN always moves the user across a border).
pub(super) fn vpn_egress_for(home: usize) -> usize {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| {
        (0..CITIES.len())
            .map(|h| {
                vpn_egress()
                    .iter()
                    .copied()
                    .filter(|e| CITIES[*e].country != CITIES[h].country)
                    .min_by(|a, b| {
                        world::distance_km(&CITIES[h], &CITIES[*a])
                            .total_cmp(&world::distance_km(&CITIES[h], &CITIES[*b]))
                    })
                    .unwrap_or(h)
            })
            .collect()
    })[home]
}

/// Where a privacy relay's egress for a user in `home` geolocates: the nearest other city of
/// the same country within 500 km, else the nearest city within 500 km, else `home` itself.
pub(super) fn relay_egress_for(home: usize) -> usize {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| {
        (0..CITIES.len())
            .map(|h| {
                let near = |same_country: bool| {
                    (0..CITIES.len())
                        .filter(|c| *c != h)
                        .filter(|c| !same_country || CITIES[*c].country == CITIES[h].country)
                        .map(|c| (c, world::distance_km(&CITIES[h], &CITIES[c])))
                        .filter(|(_, d)| *d <= 500.0)
                        .min_by(|a, b| a.1.total_cmp(&b.1))
                        .map(|(c, _)| c)
                };
                near(true).or_else(|| near(false)).unwrap_or(h)
            })
            .collect()
    })[home]
}

/// The nearest city of another country than `home`'s (a neighbouring country's, mostly).
pub(super) fn nearest_foreign(home: usize) -> usize {
    static T: OnceLock<Vec<usize>> = OnceLock::new();
    T.get_or_init(|| {
        (0..CITIES.len())
            .map(|h| {
                (0..CITIES.len())
                    .filter(|c| CITIES[*c].country != CITIES[h].country)
                    .min_by(|a, b| {
                        world::distance_km(&CITIES[h], &CITIES[*a])
                            .total_cmp(&world::distance_km(&CITIES[h], &CITIES[*b]))
                    })
                    .unwrap_or(h)
            })
            .collect()
    })[home]
}

/// The in-flight Wi-Fi provider's home nearest `departure` (a domestic airline's provider).
pub(super) fn nearest_satellite_home(departure: usize) -> usize {
    satellite_homes()
        .iter()
        .copied()
        .min_by(|a, b| {
            world::distance_km(&CITIES[departure], &CITIES[*a])
                .total_cmp(&world::distance_km(&CITIES[departure], &CITIES[*b]))
        })
        .unwrap_or(departure)
}

/// Cities of the same country as `home` (including it).
pub(super) fn same_country(home: usize) -> &'static [usize] {
    static T: OnceLock<Vec<Vec<usize>>> = OnceLock::new();
    &T.get_or_init(|| {
        (0..CITIES.len())
            .map(|h| {
                (0..CITIES.len())
                    .filter(|c| CITIES[*c].country == CITIES[h].country)
                    .collect()
            })
            .collect()
    })[home]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::UserAgentInfo;

    fn parse(ua: &str) -> UserAgentInfo {
        let ip = "8.8.8.8".parse().unwrap();
        crate::enrich::Enricher::empty()
            .enrich(ip, Some(ua))
            .user_agent
            .unwrap()
    }

    #[test]
    fn every_named_city_exists() {
        for names in [OFFICE_HUBS, VPN_EGRESS, DATACENTERS, SATELLITE_HOMES] {
            assert_eq!(indices(names).len(), names.len(), "{names:?}");
        }
    }

    #[test]
    fn user_agents_parse_as_the_browser_they_claim() {
        for b in BROWSERS {
            for v in 0..b.versions.len() {
                let ua = b.user_agent(v);
                let info = parse(&ua);
                assert!(!info.scripted, "{ua}");
                assert_ne!(&*info.family, "unknown", "{ua}");
                assert_ne!(&*info.os, "unknown", "{ua}");
            }
            // An update changes the string, not the family or OS.
            let (a, b2) = (parse(&b.user_agent(0)), parse(&b.user_agent(1)));
            assert_eq!((a.family, a.os), (b2.family, b2.os), "{}", b.name);
            assert_ne!(b.user_agent(0), b.user_agent(1));
        }
        for ua in SCRIPTED_ATTACK_UAS.iter().chain(AUTOMATION_UAS) {
            assert!(parse(ua).scripted, "{ua}");
        }
    }

    #[test]
    fn vpn_egress_is_abroad_and_relays_are_near() {
        for h in 0..CITIES.len() {
            assert_ne!(CITIES[vpn_egress_for(h)].country, CITIES[h].country);
            let r = relay_egress_for(h);
            assert!(world::distance_km(&CITIES[h], &CITIES[r]) <= 500.0);
        }
    }
}
