//! The types that flow between pipeline stages, in data-flow order.
//!
//! `source` yields [`RawLine`]s; `parse` turns them into [`AccessEvent`]s; `identify` adds an
//! [`Identity`]; `enrich` adds an [`Enrichment`]; together they form an [`IdentifiedEvent`].
//! `track` turns that into an [`Observation`] (features over the session's history), `score`
//! into an [`Assessment`], and `decide` into a [`Decision`] that `publish` applies.
//!
//! Stages never import each other: they meet only here. Nothing in this module does I/O or
//! reads the wall clock. A raw token only ever lives inside [`RawToken`], whose `Debug` is
//! redacted so that it cannot reach a log line by accident.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// The denylist key a [`Decision`] applies to. Defined with the denylist (its text form is
/// the journal's and the API's); re-exported here because it passes from `decide` to
/// `publish`, and stages meet only in this module.
pub use crate::denylist::DenyKey;

/// Event time: milliseconds since the Unix epoch, taken from the log record.
///
/// Detection uses only this clock, so replaying a file gives the same decisions as watching it
/// live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(pub i64);

impl EventTime {
    /// From whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        EventTime(secs.saturating_mul(1000))
    }
    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// Seconds elapsed from `earlier` to `self` (negative if `earlier` is later).
    pub fn seconds_since(self, earlier: EventTime) -> f64 {
        (self.0 - earlier.0) as f64 / 1000.0
    }
    /// Parse RFC 3339 (`2023-11-14T22:13:20.123+01:00`; also `t` or a space as separator,
    /// lowercase `z`, offsets without a colon). The one parser every module uses: hand-written
    /// because `parse` calls it on every record.
    pub fn parse_rfc3339(text: &str) -> Option<EventTime> {
        parse_rfc3339_ms(text).map(EventTime)
    }

    /// RFC 3339 text in UTC with millisecond precision when needed (`2026-11-23T17:12:00Z`).
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => {
                let ms = self.0.rem_euclid(1000);
                let base = format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    t.year(),
                    u8::from(t.month()),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                );
                if ms == 0 {
                    format!("{base}Z")
                } else {
                    format!("{base}.{ms:03}Z")
                }
            }
            Err(_) => self.0.to_string(),
        }
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// RFC 3339 (`2023-11-14T22:13:20.123+01:00`) to epoch milliseconds. Also accepts `t` or a space
/// as separator, lowercase `z` and offsets without a colon (`+0100`, as some loggers write).
fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let number = |start: usize, len: usize| -> Option<i64> {
        b.get(start..start + len)?.iter().try_fold(0i64, |acc, d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let year = number(0, 4)?;
    let month = number(5, 2)?;
    let day = number(8, 2)?;
    let hour = number(11, 2)?;
    let minute = number(14, 2)?;
    let mut second = number(17, 2)?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis += i64::from(b[i] - b'0') * [100, 10, 1][i - start];
            }
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') => {
            let (hh, mm) = match b.len() - i {
                6 if b[i + 3] == b':' => (number(i + 1, 2)?, number(i + 4, 2)?),
                5 => (number(i + 1, 2)?, number(i + 3, 2)?),
                _ => return None,
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            let offset = hh * 3600 + mm * 60;
            if *sign == b'-' { -offset } else { offset }
        }
        _ => return None,
    };
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    if second == 60 {
        // A leap second: the last instant of the minute before it.
        second = 59;
        millis = 999;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Which kind of source a line came from; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A file, read to EOF or followed.
    File,
    /// Standard input.
    Stdin,
    /// `POST /v1/events`.
    Http,
    /// The built-in traffic simulator (`demo`).
    Simulator,
    /// The access-log Kafka topic.
    Kafka,
    /// The repartition topic: events identified by another detector, keyed by session.
    Repartition,
}

impl SourceKind {
    /// Bounded label value.
    pub fn label(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Stdin => "stdin",
            SourceKind::Http => "http",
            SourceKind::Simulator => "simulator",
            SourceKind::Kafka => "kafka",
            SourceKind::Repartition => "repartition",
        }
    }
}

/// One access-log line as read, before parsing. Bytes, because the line may not be UTF-8.
#[derive(Debug, Clone)]
pub struct RawLine {
    /// Where it came from.
    pub source: SourceKind,
    /// The line without its trailing newline. Already capped by the source; a line that was
    /// longer has `truncated = true` and is rejected by `parse` as `too_large`.
    pub bytes: Vec<u8>,
    /// The source had to cut this line at the configured maximum.
    pub truncated: bool,
}

/// A bare token (JWT, opaque session id or API key) as it appeared in the request.
///
/// Its `Debug` never prints the value; there is deliberately no `Display` and no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct RawToken(String);

impl RawToken {
    /// Wrap a bare token (no `Bearer ` prefix, no cookie name, trimmed).
    pub fn new(token: impl Into<String>) -> Self {
        RawToken(token.into())
    }
    /// The token bytes, for fingerprinting and verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True for an empty token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawToken(<{} bytes redacted>)", self.0.len())
    }
}

/// A credential a request carried, as found (not yet canonical: `identify` makes it so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// From `Authorization: Bearer …` or the `token` field.
    Bearer(RawToken),
    /// The configured session cookie's value.
    Cookie(RawToken),
    /// RFC 6750's `access_token` query parameter.
    Query(RawToken),
    /// A fingerprint computed upstream (DESIGN §4), for logs that must not carry tokens.
    Fingerprint(Fingerprint),
}

/// 128-bit token fingerprint: the first 16 bytes of HMAC-SHA256(pepper, token) (DESIGN §4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 16]);

impl Fingerprint {
    /// Parse 32 hex characters (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(Fingerprint(out))
    }
    /// 32 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// A well-mixed 64-bit value for sharding and hashing.
    pub fn shard_hash(&self) -> u64 {
        u64::from_le_bytes([
            self.0[0], self.0[1], self.0[2], self.0[3], self.0[4], self.0[5], self.0[6], self.0[7],
        ])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// A parsed access-log record: one HTTP request.
#[derive(Debug, Clone)]
pub struct AccessEvent {
    /// Request time (event time).
    pub time: EventTime,
    /// Client address after trusted-proxy resolution.
    pub client_ip: IpAddr,
    /// HTTP method, if logged.
    pub method: Option<String>,
    /// Request path without the query string, if logged.
    pub path: Option<String>,
    /// Response status, if logged.
    pub status: Option<u16>,
    /// User-Agent header, if logged.
    pub user_agent: Option<String>,
    /// Every credential the record carries (DESIGN §4), at least one and at most
    /// [`crate::credential::MAX_CREDENTIALS`]; records without one are `anonymous` and never
    /// reach here. After `identify`, each event of an [`IdentifiedEvent`] is about one of them.
    pub credentials: Vec<Credential>,
}

/// Claims of a verified JWT that detection and the denylist use. Never the token itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `jti`.
    pub jti: Option<String>,
    /// `sid` (session id shared across refreshed tokens).
    pub sid: Option<String>,
    /// `exp`, seconds since the epoch.
    pub exp: Option<i64>,
    /// `iat`, seconds since the epoch.
    pub iat: Option<i64>,
    /// `nbf`, seconds since the epoch.
    pub nbf: Option<i64>,
}

/// What kind of credential a fingerprint stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A JWT whose signature and claims verified.
    Jwt,
    /// An opaque session id or API key (fingerprinted, not verified).
    Opaque,
    /// Only a fingerprint computed upstream was logged.
    Upstream,
}

impl TokenKind {
    /// The `token_verifications_total{result}` label of an identified token.
    pub fn verification_label(self) -> &'static str {
        match self {
            TokenKind::Jwt => "valid",
            TokenKind::Opaque => "opaque",
            TokenKind::Upstream => "upstream",
        }
    }
}

/// Who the request claims to be, after `identify`.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's fingerprint; every piece of state is keyed on it.
    pub fingerprint: Fingerprint,
    /// What the credential was.
    pub kind: TokenKind,
    /// Verified claims (JWTs only). Shared with the verification cache.
    pub claims: Option<Arc<Claims>>,
}

/// How an IP address is classified before any GeoIP lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressClass {
    /// Globally routable.
    Public,
    /// RFC 1918, ULA, CGNAT shared space: an internal client or a proxy we were not told about.
    Private,
    /// Loopback, link-local, documentation, multicast, unspecified and other reserved space.
    Reserved,
}

/// A location from GeoIP, with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeoPoint {
    /// City name (English), when the database has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<Arc<str>>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<Arc<str>>,
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// Accuracy radius in km (the database's, or the configured default).
    pub radius_km: f64,
}

/// What the User-Agent says, reduced to the parts detection compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserAgentInfo {
    /// Browser or client family (`Chrome`, `Firefox`, `python-requests`, …); `unknown` if none.
    pub family: Arc<str>,
    /// Operating system family (`Windows 10`, `iPhone`, …); `unknown` if none.
    pub os: Arc<str>,
    /// A scripted HTTP client (curl, python-requests, Go-http-client, …) rather than a browser.
    pub scripted: bool,
    /// Derived from `os` once, when the User-Agent is parsed (enrich caches the result), not
    /// per request: see [`UserAgentInfo::is_phone`].
    phone: bool,
}

impl UserAgentInfo {
    /// A reduced User-Agent.
    pub fn new(family: Arc<str>, os: Arc<str>, scripted: bool) -> Self {
        let phone = matches!(os_family(&os), "ios" | "android");
        UserAgentInfo {
            family,
            os,
            scripted,
            phone,
        }
    }

    /// A phone or tablet OS (iOS, Android): a device that may be on a roaming carrier, whose
    /// traffic is routed home (GSMA IR.34's home routing, the default for roaming data), so
    /// its address can sit in its home country while the phone is abroad.
    pub fn is_phone(&self) -> bool {
        self.phone
    }
}

/// The OS family of a User-Agent's OS name (woothee's: "Windows 10", "Mac OSX", "iPhone"):
/// `windows`, `macos`, `ios`, `android`, `linux` or `other`.
pub fn os_family(os: &str) -> &'static str {
    let os = os.to_ascii_lowercase();
    if os.starts_with("windows") {
        "windows"
    } else if os.contains("mac") {
        "macos"
    } else if os.starts_with("iphone")
        || os.starts_with("ipad")
        || os.starts_with("ipod")
        || os == "ios"
    {
        "ios"
    } else if os.contains("android") {
        "android"
    } else if os.contains("linux") {
        "linux"
    } else {
        "other"
    }
}

/// Everything `enrich` adds to an event.
#[derive(Debug, Clone, Default)]
pub struct Enrichment {
    /// `None` for private/reserved addresses and for public ones the database does not know.
    pub geo: Option<GeoPoint>,
    /// Autonomous system number, when an ASN database knows the address.
    pub asn: Option<u32>,
    /// Address class of the client IP.
    pub address_class: Option<AddressClass>,
    /// Parsed User-Agent, if the record had one.
    pub user_agent: Option<UserAgentInfo>,
    /// What the network catalog knows about the address's network (public addresses only).
    pub network_kind: Option<NetworkKind>,
    /// The catalogued network's organisation (the ASN database's name when it has one, else
    /// the catalog's), for evidence; set only with `network_kind`.
    pub network_org: Option<Arc<str>>,
}

/// What a network is, from the catalog shipped with tokenwatch (`config/networks.toml`) and
/// the `[networks]` settings (DESIGN §5, network knowledge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkKind {
    /// A satellite ISP or in-flight Wi-Fi: its addresses have no meaningful location.
    Satellite,
    /// Cloud, hosting or VPN egress: an anonymiser, not the user's own network.
    Hosting,
    /// A privacy relay (an ASN that carries nothing else, or listed egress ranges).
    Relay,
    /// A mobile carrier (by its organisation name, `enrich::org_names`): GeoIP places its
    /// blocks coarsely (gateways, national pools), so its place is a region, not a city.
    Mobile,
}

impl NetworkKind {
    /// Hides who and where the user is (hosting/VPN egress, privacy relays).
    pub fn is_anonymiser(self) -> bool {
        matches!(self, NetworkKind::Hosting | NetworkKind::Relay)
    }
}

/// A catalogued network a request came from, as the observation and the decision record show
/// it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkEvidence {
    /// `satellite`, `hosting`, `relay` or `mobile`.
    pub kind: NetworkKind,
    /// The ASN, when the ASN database knows the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// Who runs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org: Option<Arc<str>>,
    /// An anonymiser network (hosting/VPN egress or privacy relay): not a user's place.
    pub anonymiser: bool,
}

/// An event that passed parse, identify and enrich: ready for the stateful stages.
#[derive(Debug, Clone)]
pub struct IdentifiedEvent {
    /// Position in the input (0-based); decisions refer back to it and order output by it.
    pub seq: u64,
    /// The request.
    pub event: AccessEvent,
    /// The token behind it.
    pub identity: Identity,
    /// GeoIP, ASN and User-Agent.
    pub enrichment: Enrichment,
}

/// One leg of a journey between two uses of a token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TravelEvidence {
    /// Where the previous use was.
    pub from: GeoPoint,
    /// Where this use is.
    pub to: GeoPoint,
    /// Lower-bound distance: great-circle distance minus both accuracy radii (floor 0), km.
    pub distance_km: f64,
    /// Seconds between the two uses (event time).
    pub elapsed_s: f64,
    /// Lower-bound speed, km/h (`distance_km / elapsed`); elapsed is floored at 1 s.
    pub speed_kmh: f64,
    /// One end of the leg is a phone's request (iOS, Android): a roaming phone's carrier
    /// address may be in its home country, so the leg alone is never certain.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub phone: bool,
}

/// Request-rate features of a session at this event.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateEvidence {
    /// Requests in the last 60 s of event time, this one included.
    pub per_minute: f64,
    /// The session's own EWMA baseline, requests per minute (before this minute).
    pub baseline_per_minute: f64,
}

/// Features of one event against the history of its session (and user), from `track`.
///
/// The model (a later stage) consumes exactly these; the rule-based scorer reads them too.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Observation {
    /// Travel from the session's previous located use, if both ends are located.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub travel: Option<TravelEvidence>,
    /// Travel from the same user's other token (another session) used most recently.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_travel: Option<TravelEvidence>,
    /// Rate features (absent until the session has a baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateEvidence>,
    /// User-Agent family changed mid-session: `(before, after)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent_change: Option<(String, String)>,
    /// OS family changed mid-session: `(before, after)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_change: Option<(String, String)>,
    /// ASN changed mid-session: `(before, after)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn_change: Option<(u32, u32)>,
    /// Country changed mid-session: `(before, after)`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_change: Option<(String, String)>,
    /// A scripted client on a session that began in a browser.
    pub scripted_client: bool,
    /// The client IP was not seen before in this session.
    pub new_ip: bool,
    /// Requests seen in this session so far, this one included.
    pub session_requests: u64,
    /// Distinct IPs and countries seen in this session (bounded sets).
    pub distinct_ips: u32,
    /// Distinct countries seen in this session.
    pub distinct_countries: u32,
    /// Seconds since the session's first use (event time).
    pub session_age_s: f64,
    /// Shared egress (allowlisted, relay, satellite): travel and network changes are not
    /// signals.
    pub allowlisted_network: bool,
    /// On the operator's allowlist (`detect.allow_*`): vouched for, the request contributes
    /// nothing to any score (scorers assess it as nothing).
    pub vouched_network: bool,
    /// The network is catalogued (satellite, hosting, relay): what it is and who runs it.
    /// Its `anonymiser` flag is a model feature; shown in the decision's evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkEvidence>,
    /// Seconds since the session's previous request (event time); 0 for its first request
    /// and for a late (out-of-order) one.
    pub since_previous_s: f64,
    /// The ASN is not among the session's recently seen ASNs (never on the first located
    /// request, never on an allowlisted network): a network the session has not used.
    pub new_asn: bool,
    /// Distinct ASNs seen in this session (approximate beyond the bounded set), allowlisted
    /// networks excluded.
    pub distinct_asns: u32,
    /// ASN changes in this session within the last 10 minutes of event time, this one
    /// included: a phone moving between Wi-Fi and carrier changes a few times an hour, two
    /// parties interleaving on one token change every few requests.
    pub recent_network_changes: u32,
    /// Returns to the network the session had just left and used within the last 2 minutes
    /// (A → B → A), counted over the last 10 minutes, this one included: one device moving
    /// between networks rarely goes back and forth within minutes; two parties sharing a
    /// token do so at every turn. A network here is an ASN and, inside it, a GeoIP place more
    /// than 100 km from its others of the same address family (a thief on the owner's own ISP
    /// in another city); one city's NAT pool stays one network. For a JWT with a `sid`, the
    /// larger of the token's count and its login session's across refreshed tokens.
    /// Allowlisted networks count as networks here (by ASN alone); without an ASN this and
    /// the other `network_*` fields are 0.
    pub network_returns: u32,
    /// Of `network_returns`, those between two networks neither of which is a shared egress
    /// (privacy relay, satellite link, allowlisted network), or a shared egress and a
    /// hosting/VPN network: two parties' connections interleaving on one token, which one
    /// honest device does not do.
    pub network_direct_returns: u32,
    /// Requests of the session from this request's network (ASN) in the last minute, this
    /// one included, when that is not the network the session started on: a second party's
    /// rate, undiluted by the owner's traffic and baseline.
    pub network_rate_per_minute: u32,
    /// Seconds since the session first used this network (event time).
    pub network_age_s: f64,
    /// Earlier requests of the session from this network that stood alone: no other request
    /// from it within 10 s either side (people's page loads burst into API calls). 0 on the
    /// network the session started on (an API client's polling is how it is used).
    pub network_lone_requests: u32,
}

/// A detector's reason code: a signal a person can check in the decision's evidence. Bounded:
/// used as a metric label. There is deliberately no "the model said so" code: the model's
/// contribution is explained in terms of these signals (`model`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Lower-bound speed between two uses of the token exceeds what a traveller can do.
    ImpossibleTravel,
    /// The user's other token was used from a place no traveller could reach in time.
    ConcurrentUse,
    /// Requests per minute far above the session's own baseline.
    RateAnomaly,
    /// The User-Agent family changed mid-session.
    UserAgentChange,
    /// The OS changed mid-session.
    OsChange,
    /// The network (ASN) changed mid-session.
    AsnChange,
    /// The country changed mid-session.
    CountryChange,
    /// A scripted client on a browser session.
    ScriptedClient,
}

impl Reason {
    /// Every reason, for pre-registering metric label values.
    pub const ALL: [Reason; 8] = [
        Reason::ImpossibleTravel,
        Reason::ConcurrentUse,
        Reason::RateAnomaly,
        Reason::UserAgentChange,
        Reason::OsChange,
        Reason::AsnChange,
        Reason::CountryChange,
        Reason::ScriptedClient,
    ];

    /// The snake_case code, as in decision records and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            Reason::ImpossibleTravel => "impossible_travel",
            Reason::ConcurrentUse => "concurrent_use",
            Reason::RateAnomaly => "rate_anomaly",
            Reason::UserAgentChange => "user_agent_change",
            Reason::OsChange => "os_change",
            Reason::AsnChange => "asn_change",
            Reason::CountryChange => "country_change",
            Reason::ScriptedClient => "scripted_client",
        }
    }
}

/// One reason's share of the score, so every decision can say why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    /// The reason.
    pub reason: Reason,
    /// Its contribution in [0, 1] before combination.
    pub weight: f64,
}

/// The scorer's verdict on one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Assessment {
    /// Risk in [0, 1].
    pub score: f64,
    /// Reasons that contributed, strongest first.
    pub contributions: Vec<Contribution>,
    /// A hard rule fired: revoke regardless of the threshold (still subject to mode).
    pub hard_rule: bool,
}

impl Assessment {
    /// The reason codes, strongest first.
    pub fn reasons(&self) -> Vec<Reason> {
        self.contributions.iter().map(|c| c.reason).collect()
    }
}

/// What the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Add the token (or session) to the denylist: the check answers 401 `invalid_token`.
    Revoke,
    /// Ask for a fresh authentication (DESIGN §5): the check answers 401
    /// `insufficient_user_authentication` (RFC 9470) until the app issues a new token; tokens
    /// of the session issued after the challenge pass.
    StepUp,
    /// Record only: suspicious but below the step-up threshold.
    Flag,
}

impl Action {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Action::Revoke => "revoke",
            Action::StepUp => "step_up",
            Action::Flag => "flag",
        }
    }

    /// Every action, strongest first.
    pub const ALL: [Action; 3] = [Action::Revoke, Action::StepUp, Action::Flag];

    /// How much the action enforces: flag 0, step-up 1, revoke 2. A session's action is only
    /// ever raised, never lowered by a later, weaker one.
    pub fn strength(self) -> u8 {
        match self {
            Action::Revoke => 2,
            Action::StepUp => 1,
            Action::Flag => 0,
        }
    }
}

/// `enforce` revokes; `shadow` records what would have been revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decisions take effect.
    Enforce,
    /// Decisions are recorded only.
    Shadow,
}

impl Mode {
    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// Evidence attached to a decision record (DESIGN §5): the travel leg at top level (`from`,
/// `to`, `distance_km`, `elapsed_s`, `speed_kmh`) plus whatever else explains the reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// The travel leg that made the decision, if travel was a reason.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub travel: Option<TravelEvidence>,
    /// Rate features, if rate was a reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateEvidence>,
    /// `[before, after]` User-Agent family.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<(String, String)>,
    /// `[before, after]` OS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<(String, String)>,
    /// `[before, after]` ASN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asn: Option<(u32, u32)>,
    /// `[before, after]` country.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<(String, String)>,
    /// The catalogued network (satellite, hosting/VPN, relay) of the deciding request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkEvidence>,
    /// Switches back to a network just left, if concurrent use was a reason and the session
    /// (or its login session) made any: what the model's concurrent-use weight rests on when
    /// no leg between two tokens does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_returns: Option<ReturnsEvidence>,
    /// Per-reason contributions to the score.
    pub contributions: Vec<Contribution>,
}

/// Returns to a network just left (A → B → A within two minutes), over the last 10 minutes
/// (`Observation::network_returns`, `network_direct_returns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReturnsEvidence {
    /// All returns.
    pub returns: u32,
    /// Those between two of a party's own connections (no shared egress): two parties'.
    pub direct: u32,
}

/// A decision record, serialized exactly as DESIGN §5 (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `revoke`, `step_up` or `flag`.
    pub action: Action,
    /// `enforce` or `shadow`.
    pub mode: Mode,
    /// The denylist key this decision applies to (`fp:…`, `sid:…`). Typed from `decide` to
    /// `publish`, so publishing never re-parses it; serialized as its text form.
    pub key: DenyKey,
    /// The token's fingerprint.
    pub fingerprint: Fingerprint,
    /// `iss`, for JWTs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `sub`, for JWTs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `jti`, for JWTs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Risk score in [0, 1].
    pub score: f64,
    /// Reason codes, strongest first.
    pub reasons: Vec<Reason>,
    /// What the reasons rest on.
    pub evidence: Evidence,
    /// Time of the event that triggered the decision.
    pub event_time: EventTime,
    /// When the decision was made. Event time in the deterministic core; `publish` may
    /// restamp it with the wall clock in live mode.
    pub decided_at: EventTime,
    /// When the denylist entry lapses (token `exp` plus leeway, or the opaque-token TTL).
    pub expires_at: EventTime,
    /// Input position of the triggering event (not serialized; orders output).
    #[serde(skip)]
    pub seq: u64,
}
