//! Synthetic, labelled access-log traffic: for `demo`, `simulate`, tests and benchmarks.
//!
//! Users live in real cities (`geodb`), browse with real browser User-Agents at their own
//! steady pace with page-load bursts, and carry a signed JWT (HS256, generated key) or an
//! opaque session cookie. Benign behaviour includes what fools naive rules: moving between
//! home Wi-Fi and a mobile carrier in the same city, and a browser auto-update mid-session.
//! Attacks replay a victim's token:
//!
//! - `impossible_travel`: from a far-away hosting network while the victim is active;
//! - `scripted_scraping`: from another ISP in the victim's country with a scripted client at
//!   50+ requests a minute.
//!
//! Everything is drawn from one seeded ChaCha RNG and event times are computed from `start`,
//! so the same [`SimSpec`] always gives the same bytes. This module does no I/O; `app` writes
//! what it returns. (A later issue grows it into the full labelled simulator.)

use std::net::IpAddr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::event::{EventTime, RawToken};
use crate::geodb::{self, NetKind};
use crate::identify::Fingerprinter;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// RNG seed.
    pub seed: u64,
    /// First event time.
    pub start: EventTime,
    /// Simulated span, seconds.
    pub duration_s: u64,
    /// Number of users (one session each).
    pub users: usize,
    /// Fraction of sessions that are attacked.
    pub attack_fraction: f64,
}

impl SimSpec {
    /// Users needed for about `events` events over `duration_s` (≈ 6 requests a minute each,
    /// measured on the generator itself).
    pub fn users_for_events(events: u64, duration_s: u64) -> usize {
        let per_user = (duration_s as f64 / 60.0 * 6.0).max(1.0);
        ((events as f64 / per_user).ceil() as usize).max(1)
    }
}

/// Key material the simulated IdP signs with; `app` writes it into the generated config.
#[derive(Clone)]
pub struct SimKeys {
    /// Fingerprint pepper.
    pub pepper: String,
    /// HS256 secret.
    pub jwt_secret: String,
    /// `kid` of the key.
    pub kid: String,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
}

impl SimKeys {
    /// Keys derived from the seed (test fixtures: reproducible, never real secrets).
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5eed);
        let mut hex = |n: usize| {
            (0..n)
                .map(|_| format!("{:02x}", rng.random::<u8>()))
                .collect::<String>()
        };
        SimKeys {
            pepper: hex(16),
            jwt_secret: hex(32),
            kid: "sim-1".into(),
            issuer: "https://id.example.com".into(),
            audience: "api".into(),
        }
    }
}

/// Ground truth for one session.
#[derive(Debug, Clone, Serialize)]
pub struct Label {
    /// Session number.
    pub session: u64,
    /// The token's fingerprint under the simulation's pepper.
    pub fingerprint: String,
    /// `sub` (JWT sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `sid` (JWT sessions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `benign` or `attack`.
    pub label: &'static str,
    /// Attack type, for attacked sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack_type: Option<&'static str>,
    /// First attacker request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack_start: Option<EventTime>,
    /// Benign behaviours this session shows (`wifi_mobile_switch`, `browser_update`).
    pub behaviours: Vec<&'static str>,
}

/// One simulated token, kept in memory for the demo's own check calls.
#[derive(Debug, Clone)]
pub struct SimToken {
    /// Session number.
    pub session: u64,
    /// The token.
    pub token: RawToken,
    /// Whether an attacker replays it.
    pub attacked: bool,
}

/// The simulation's output.
pub struct Simulation {
    /// Access-log lines (JSON, DESIGN §2 default fields), ordered by event time.
    pub lines: Vec<String>,
    /// Ground truth per session.
    pub labels: Vec<Label>,
    /// Tokens, for the demo.
    pub tokens: Vec<SimToken>,
}

const BROWSERS: &[(&str, &str)] = &[
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36",
        "130",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Safari/605.1.15",
        "17.6",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:{v}) Gecko/20100101 Firefox/{v}",
        "132.0",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} Mobile/15E148 Safari/604.1",
        "17.6",
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Mobile Safari/537.36",
        "130",
    ),
];
const BUMPED_VERSION: &str = "131";
const SCRIPTED: &[&str] = &["python-requests/2.32.3", "curl/8.5.0", "Go-http-client/1.1"];
const PAGES: &[&str] = &[
    "/",
    "/dashboard",
    "/inbox",
    "/settings",
    "/reports",
    "/projects",
];
const API_CALLS: &[&str] = &[
    "/api/me",
    "/api/notifications",
    "/api/items",
    "/api/feed",
    "/api/search",
];
const SCRAPE_PATHS: &[&str] = &[
    "/api/export",
    "/api/users",
    "/api/admin/audit",
    "/api/items?page=",
];

/// Run the simulation.
pub fn simulate(spec: &SimSpec, keys: &SimKeys) -> Simulation {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let fingerprinter = Fingerprinter::new(&keys.pepper);
    let cities = geodb::CITIES.len();
    let mut all: Vec<(EventTime, u64, String)> = Vec::new();
    let mut labels = Vec::with_capacity(spec.users);
    let mut tokens = Vec::with_capacity(spec.users);
    let end = spec.start.0 + spec.duration_s as i64 * 1000;

    for session in 0..spec.users as u64 {
        let home = rng.random_range(0..cities);
        let (template, version) = BROWSERS[rng.random_range(0..BROWSERS.len())];
        let user_agent = template.replace("{v}", version);
        let is_jwt = rng.random_bool(0.8);
        let sub = format!("user-{session}");
        let sid = format!("s-{:016x}", rng.random::<u64>());
        let session_start =
            spec.start.0 + rng.random_range(0..(spec.duration_s as i64 * 1000 / 4).max(1));
        let token = if is_jwt {
            sign_jwt(
                keys,
                &sub,
                &sid,
                session,
                session_start / 1000,
                end / 1000 + 3600,
            )
        } else {
            format!("{:032x}{:032x}", rng.random::<u128>(), rng.random::<u128>())
        };
        let fingerprint = fingerprinter.fingerprint(token.as_bytes());
        let per_minute = rng.random_range(3.0..10.0);
        let host = rng.random_range(0..4000u32);

        // Benign quirks.
        let mut behaviours = Vec::new();
        let switch_at = rng.random_bool(0.3).then(|| {
            behaviours.push("wifi_mobile_switch");
            rng.random_range(session_start..end)
        });
        let bump_at = (rng.random_bool(0.1) && version == "130").then(|| {
            behaviours.push("browser_update");
            rng.random_range(session_start..end)
        });

        // The victim's own traffic.
        let mut emit = Emitter {
            out: &mut all,
            session,
            token: &token,
            is_jwt,
        };
        let mut t = session_start;
        while t < end {
            let on_mobile = switch_at.is_some_and(|s| t >= s && ((t - s) / 600_000) % 2 == 0);
            let kind = if on_mobile {
                NetKind::Mobile
            } else {
                NetKind::Residential
            };
            let ua = if bump_at.is_some_and(|b| t >= b) {
                template.replace("{v}", BUMPED_VERSION)
            } else {
                user_agent.clone()
            };
            let ip = geodb::address(home, kind, host);
            // A page load bursts into a few API calls within two seconds.
            emit.get(t, ip, PAGES[rng.random_range(0..PAGES.len())], &ua);
            for _ in 0..rng.random_range(0..3) {
                let dt = rng.random_range(50..2000);
                emit.get(
                    t + dt,
                    ip,
                    API_CALLS[rng.random_range(0..API_CALLS.len())],
                    &ua,
                );
            }
            t += exponential_ms(&mut rng, per_minute / 2.0);
        }

        // The attacker, if any.
        let attack = rng.random_bool(spec.attack_fraction).then(|| {
            let attack_start = rng
                .random_range(session_start + 120_000..(end - 60_000).max(session_start + 120_001));
            if rng.random_bool(0.5) {
                let far = far_city(&mut rng, home);
                let ip = geodb::address(far, NetKind::Hosting, rng.random_range(0..4000));
                let mut t = attack_start;
                for _ in 0..rng.random_range(6..15) {
                    emit.get(
                        t,
                        ip,
                        API_CALLS[rng.random_range(0..API_CALLS.len())],
                        &user_agent,
                    );
                    t += rng.random_range(5_000..30_000);
                }
                ("impossible_travel", attack_start)
            } else {
                let near = same_country_city(&mut rng, home);
                let ip = geodb::address(near, NetKind::Hosting, rng.random_range(0..4000));
                let ua = SCRIPTED[rng.random_range(0..SCRIPTED.len())];
                let rate = rng.random_range(60.0..120.0);
                let stop = attack_start + 180_000;
                let (mut t, mut page) = (attack_start, 0);
                while t < stop {
                    page += 1;
                    let path = SCRAPE_PATHS[rng.random_range(0..SCRAPE_PATHS.len())];
                    emit.get(t, ip, &format!("{path}{page}"), ua);
                    t += exponential_ms(&mut rng, rate);
                }
                ("scripted_scraping", attack_start)
            }
        });

        labels.push(Label {
            session,
            fingerprint: fingerprint.to_hex(),
            sub: is_jwt.then(|| sub.clone()),
            sid: is_jwt.then(|| sid.clone()),
            label: if attack.is_some() { "attack" } else { "benign" },
            attack_type: attack.map(|a| a.0),
            attack_start: attack.map(|a| EventTime(a.1)),
            behaviours,
        });
        tokens.push(SimToken {
            session,
            token: RawToken::new(token),
            attacked: attack.is_some(),
        });
    }

    // Order by event time; ties keep generation order, so the output is deterministic.
    all.sort_by_key(|(t, session, _)| (*t, *session));
    Simulation {
        lines: all.into_iter().map(|(_, _, line)| line).collect(),
        labels,
        tokens,
    }
}

/// Writes one session's requests as access-log lines.
struct Emitter<'a> {
    out: &'a mut Vec<(EventTime, u64, String)>,
    session: u64,
    token: &'a str,
    is_jwt: bool,
}

impl Emitter<'_> {
    /// A `GET` answered 200 at `time` (ms).
    fn get(&mut self, time: i64, ip: IpAddr, path: &str, user_agent: &str) {
        let time = EventTime(time);
        let mut record = serde_json::json!({
            "time": time.to_rfc3339(),
            "client_ip": ip.to_string(),
            "method": "GET",
            "path": path,
            "status": 200,
            "user_agent": user_agent,
        });
        if self.is_jwt {
            record["authorization"] = format!("Bearer {}", self.token).into();
        } else {
            record["cookie"] = format!("theme=dark; sid={}", self.token).into();
        }
        self.out.push((time, self.session, record.to_string()));
    }
}

fn exponential_ms(rng: &mut ChaCha8Rng, per_minute: f64) -> i64 {
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    ((-u.ln() / per_minute) * 60_000.0).max(50.0) as i64
}

fn far_city(rng: &mut ChaCha8Rng, home: usize) -> usize {
    let h = geodb::CITIES[home];
    loop {
        let c = rng.random_range(0..geodb::CITIES.len());
        let o = geodb::CITIES[c];
        // ≥ 3000 km: well beyond any radius or short hop.
        let d = crate::track::great_circle_km((h.lat, h.lon), (o.lat, o.lon));
        if d > 3000.0 {
            return c;
        }
    }
}

fn same_country_city(rng: &mut ChaCha8Rng, home: usize) -> usize {
    let country = geodb::CITIES[home].country;
    let candidates: Vec<usize> = (0..geodb::CITIES.len())
        .filter(|c| geodb::CITIES[*c].country == country)
        .collect();
    candidates[rng.random_range(0..candidates.len())]
}

fn sign_jwt(keys: &SimKeys, sub: &str, sid: &str, session: u64, iat: i64, exp: i64) -> String {
    let claims = serde_json::json!({
        "iss": keys.issuer, "aud": keys.audience, "sub": sub, "sid": sid,
        "jti": format!("jti-{session}"), "iat": iat, "exp": exp,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(keys.kid.clone());
    let key = jsonwebtoken::EncodingKey::from_secret(keys.jwt_secret.as_bytes());
    // HS256 signing with an in-memory key cannot fail.
    jsonwebtoken::encode(&header, &claims, &key).unwrap_or_default()
}

/// The config for replaying a simulation: written next to the generated files.
pub fn config_toml(keys: &SimKeys, city_db: &str, asn_db: &str, journal: Option<&str>) -> String {
    let journal = journal
        .map(|j| format!("journal = {j:?}\n"))
        .unwrap_or_default();
    format!(
        r#"# Generated by `tokenwatch simulate` / `demo`. The secrets below are generated test
# fixtures for the synthetic traffic only: never reuse them.
[input]
format = "json"

[tokens]
pepper = "{pepper}"
session_cookie = "sid"

[tokens.jwt]
issuers = ["{issuer}"]
audiences = ["{audience}"]
algorithms = ["HS256"]
leeway = "30s"

[[tokens.jwt.keys]]
kid = "{kid}"
algorithm = "HS256"
secret = "{secret}"

[geoip]
city_db = "{city_db}"
asn_db = "{asn_db}"

[detect]
mode = "enforce"
threshold = 0.8

[denylist]
{journal}"#,
        pepper = keys.pepper,
        issuer = keys.issuer,
        audience = keys.audience,
        kid = keys.kid,
        secret = keys.jwt_secret,
    )
}
