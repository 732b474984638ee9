//! Configuration: one TOML file (DESIGN §9), in three steps.
//!
//! 1. **Parse** with serde, `deny_unknown_fields` everywhere, so a typo is an error that names
//!    the key. The file is read into its raw form (`RawConfig`, every key of DESIGN §9) and
//!    turned into [`Config`], what the daemon uses: a setting this build does not implement
//!    (`[kafka]` without the cargo feature `kafka`) is reported by [`Config::validate`] as an
//!    error naming its key rather than ignored.
//! 2. **Validate** purely ([`Config::validate`]), collecting every problem at once, each with
//!    its key's dotted name.
//! 3. **Build** happens in the stages that own the resources (`identify` reads keys, `enrich`
//!    opens databases, `denylist` opens the journal); this module only resolves relative paths
//!    against the config file's folder and reads secrets from the environment — the one place
//!    the environment is read.
//!
//! This module does no other I/O and knows nothing about the stages beyond their settings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::event::Mode;

mod kafka;
mod schema;
pub use kafka::{KafkaConfig, unused_settings};
mod operate;
pub use operate::{AuditConfig, AuditOutput, FeedConfig};

/// A duration written as text: `"30s"`, `"15m"`, `"24h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("bad duration {text:?}: {e}")))
    }
}

impl HumanDuration {
    /// Whole seconds.
    pub fn secs(self) -> u64 {
        self.0.as_secs()
    }
}

/// What this instance does (DESIGN §9 `role`). `detector` and `api` split detection from the
/// check API, which needs a denylist both sides share — the Kafka topic of distributed mode
/// (DESIGN §6) — so they require `[kafka]`: without it a `detector` would be an `all` by
/// another name and an `api` replica would open its own journal and never see a detector's
/// revocations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Detect and serve the API.
    #[default]
    All,
    /// Sources and detection; serves metrics and health only (requires `[kafka]`).
    Detector,
    /// The check and admin API from the shared denylist topic only, no sources and no
    /// detection: replicas beside the middleware (requires `[kafka]`).
    Api,
}

impl Role {
    /// The value as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Detector => "detector",
            Role::Api => "api",
        }
    }
}

/// Input log format: plain JSON with configurable fields, or a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// DESIGN §2 default field names.
    #[default]
    Json,
    /// nginx `log_format … escape=json` with the project's documented variable names.
    Nginx,
    /// Envoy JSON access log.
    Envoy,
    /// Traefik JSON access log.
    Traefik,
    /// Caddy JSON access log.
    Caddy,
}

/// The whole configuration file as written: every key of DESIGN §9, implemented or not.
/// [`Config::parse`] turns it into a [`Config`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    role: Role,
    #[serde(default)]
    input: InputConfig,
    tokens: TokensConfig,
    #[serde(default)]
    geoip: GeoIpConfig,
    #[serde(default)]
    detect: DetectConfig,
    #[serde(default)]
    networks: NetworksConfig,
    #[serde(default)]
    denylist: DenylistConfig,
    #[serde(default)]
    api: ApiConfig,
    kafka: Option<KafkaConfig>,
    // Day-2 operations (issue 17): the change feed and the audit trail (config/operate.rs).
    #[serde(default)]
    feed: FeedConfig,
    #[serde(default)]
    audit: AuditConfig,
}

/// The configuration the daemon runs on, from [`Config::parse`] and checked by
/// [`Config::validate`]. Settings this release does not implement are not here: they are
/// validation errors.
#[derive(Debug, Clone)]
pub struct Config {
    /// What this instance does ([`Role`]).
    pub role: Role,
    /// Where access logs come from and how to read them.
    pub input: InputConfig,
    /// Token handling.
    pub tokens: TokensConfig,
    /// GeoIP databases.
    pub geoip: GeoIpConfig,
    /// Detection and policy.
    pub detect: DetectConfig,
    /// The network catalog (satellite, hosting/VPN, relay networks).
    pub networks: NetworksConfig,
    /// The denylist.
    pub denylist: DenylistConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Distributed mode (DESIGN §6): absent = embedded mode (journal file, file/stdin/HTTP
    /// sources).
    pub kafka: Option<KafkaConfig>,
    /// The change feed (`GET /v1/revocations…`).
    pub feed: FeedConfig,
    /// Decision and admin audit records.
    pub audit: AuditConfig,
    /// The folder relative paths resolve against (the config file's folder).
    pub base_dir: PathBuf,
    /// Keys the file set that this release does not implement, each with why; reported by
    /// [`Config::validate`] with every other problem.
    not_implemented: Vec<String>,
}

/// `[input]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// Record format.
    pub format: InputFormat,
    /// File followed by `run` (like `tail -F`). Empty = no file source.
    pub path: Option<PathBuf>,
    /// Read standard input in `run` too.
    pub stdin: bool,
    /// Field-name overrides (DESIGN §2), nested paths like `request.headers.Cookie[0]` allowed.
    pub fields: FieldOverrides,
    /// Longest accepted line in bytes; longer lines are rejected as `too_large`.
    pub max_line_bytes: usize,
    /// How often a followed file is checked for new data and rotation.
    pub poll_interval: HumanDuration,
    /// Events per processing batch (parse/identify/enrich run in parallel within a batch).
    pub batch_size: usize,
    /// A record dated more than this ahead of the wall clock is rejected (`future`) and never
    /// moves the event-time watermark. Logs do not come from the future; a skewed clock
    /// upstream or a forged timestamp would otherwise make every session look idle.
    pub max_future_skew: HumanDuration,
    /// Batches that may wait between the sources (and `POST /v1/events`) and detection.
    /// When detection falls behind, sources block and ingestion answers 503: backpressure
    /// rather than unbounded memory (each batch holds up to `batch_size` lines).
    pub channel_capacity: usize,
    /// At shutdown, how long `run` waits for detection to finish the batches already read
    /// before it exits without them (stdin may block in a read that never returns).
    pub drain_timeout: HumanDuration,
}

/// Largest `input.channel_capacity` accepted: with the default batch of 2048 lines of at most
/// 64 KiB this is already far more memory than a queue should hold.
const MAX_CHANNEL_CAPACITY: usize = 4096;

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: InputFormat::Json,
            path: None,
            stdin: false,
            fields: FieldOverrides::default(),
            max_line_bytes: 64 * 1024,
            poll_interval: HumanDuration(Duration::from_millis(200)),
            batch_size: 2048,
            max_future_skew: HumanDuration(Duration::from_secs(5 * 60)),
            channel_capacity: 64,
            drain_timeout: HumanDuration(Duration::from_secs(10)),
        }
    }
}

/// `[input.fields]`: each value is a path into the JSON record.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FieldOverrides {
    /// Request time.
    pub time: Option<String>,
    /// Client IP.
    pub client_ip: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Request path.
    pub path: Option<String>,
    /// Response status.
    pub status: Option<String>,
    /// User-Agent.
    pub user_agent: Option<String>,
    /// Raw Authorization header.
    pub authorization: Option<String>,
    /// Raw Cookie header.
    pub cookie: Option<String>,
    /// Bare token.
    pub token: Option<String>,
    /// Upstream fingerprint.
    pub token_fingerprint: Option<String>,
}

/// `[tokens]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    /// Environment variable holding the pepper.
    #[serde(default)]
    pub pepper_env: Option<String>,
    /// Inline pepper (tests only).
    #[serde(default)]
    pub pepper: Option<String>,
    /// Session cookie name.
    #[serde(default = "default_cookie")]
    pub session_cookie: String,
    /// Largest accepted token in bytes (`too_large` above).
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
    /// How long a revoked opaque token (no `exp`) stays on the denylist.
    #[serde(default = "default_opaque_ttl")]
    pub opaque_ttl: HumanDuration,
    /// No revocation outlives this, whatever a token's `exp` or an admin's `ttl` says.
    #[serde(default = "default_max_ttl")]
    pub max_ttl: HumanDuration,
    /// Verified-token cache capacity (entries); each takes ≈ 450 bytes for a valid JWT with
    /// typical claims. Not part of `detect.max_session_bytes`.
    #[serde(default = "default_cache_entries")]
    pub verification_cache_entries: usize,
    /// JWT verification.
    #[serde(default)]
    pub jwt: JwtConfig,
}

fn default_cookie() -> String {
    "sid".into()
}
fn default_max_token() -> usize {
    8 * 1024
}
fn default_opaque_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}
fn default_max_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(400 * 24 * 3600))
}
/// ≈ 110 MB at most (≈ 450 bytes an entry, see config/default.toml): the order of the JWT
/// sessions the default `detect.max_session_bytes` holds. A million entries took as much
/// memory again as all session state.
fn default_cache_entries() -> usize {
    250_000
}

/// `[tokens.jwt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// Accepted `iss` values; a token must carry one of them. Empty = `iss` not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; a token must carry one of them. Empty = `aud` not checked.
    pub audiences: Vec<String>,
    /// Allowed algorithms (`HS256`, `RS256`, `PS256`, `ES256`, `EdDSA`, …).
    pub algorithms: Vec<String>,
    /// Clock-skew allowance for `exp` and `nbf`, against event time.
    pub leeway: HumanDuration,
    /// Require `exp`.
    pub require_exp: bool,
    /// Verification keys.
    pub keys: Vec<JwtKeyConfig>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            issuers: vec![],
            audiences: vec![],
            algorithms: vec![],
            leeway: HumanDuration(Duration::from_secs(30)),
            require_exp: true,
            keys: vec![],
        }
    }
}

/// `[[tokens.jwt.keys]]`: exactly one source per key.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// `kid` this key answers to; absent = tried for tokens without a `kid`.
    pub kid: Option<String>,
    /// Algorithm this key is for; required for HMAC secrets, inferred from PEM otherwise.
    pub algorithm: Option<String>,
    /// PEM public key file (RSA, EC or Ed25519).
    pub public_key_pem: Option<PathBuf>,
    /// Environment variable holding an HMAC secret.
    pub secret_env: Option<String>,
    /// Inline HMAC secret (tests only).
    pub secret: Option<String>,
    /// JWKS file (every key in it, by `kid`).
    pub jwks_file: Option<PathBuf>,
}

/// `[geoip]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoIpConfig {
    /// City database (GeoIP2/GeoLite2 City or DB-IP Lite city). Empty = no geolocation.
    pub city_db: Option<PathBuf>,
    /// ASN database (optional).
    pub asn_db: Option<PathBuf>,
    /// Accuracy radius when the database has none, km.
    pub default_accuracy_km: f64,
    /// How often the files are checked for replacement.
    pub reload_interval: HumanDuration,
}

impl Default for GeoIpConfig {
    fn default() -> Self {
        GeoIpConfig {
            city_db: None,
            asn_db: None,
            default_accuracy_km: 50.0,
            reload_interval: HumanDuration(Duration::from_secs(60)),
        }
    }
}

/// `[detect]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// `enforce` or `shadow`.
    pub mode: Mode,
    /// Score at or above which a session is revoked.
    pub threshold: f64,
    /// Score at or above which a session is asked to authenticate again (`step_up`, DESIGN
    /// §5), below `threshold`. Unset = `threshold`: no step-up band, scores below `threshold`
    /// are flagged as before (read it with [`DetectConfig::step_up_threshold`]).
    pub step_up_threshold: Option<f64>,
    /// Score at or above which a session is flagged (recorded, not revoked).
    pub flag_threshold: f64,
    /// Trained model artifact (`models/session-risk.json`), or [`BUILTIN_MODEL`] for the one
    /// embedded in the binary; empty = rules only.
    pub model: Option<PathBuf>,
    /// Networks whose addresses are not travel or network-change signals (VPN egress …).
    pub allow_cidrs: Vec<IpNet>,
    /// ASNs likewise (satellite ISPs …).
    pub allow_asns: Vec<u32>,
    /// Privacy-relay egress networks (iCloud Private Relay publishes its ranges): like the
    /// allowlist they are no network or country change, but a relay keeps its user's region,
    /// so their location counts for travel at [`crate::track::RELAY_RADIUS_KM`] accuracy.
    pub relay_cidrs: Vec<IpNet>,
    /// Relay ASNs likewise (only where the ASN carries nothing but relay traffic).
    pub relay_asns: Vec<u32>,
    /// Subjects (`sub`) never revoked automatically (flagged instead).
    pub allow_subjects: Vec<String>,
    /// Lower-bound speed above which travel is impossible, km/h.
    pub max_speed_kmh: f64,
    /// Lower-bound distance below which travel is never a signal, km.
    pub min_travel_km: f64,
    /// Impossible travel revokes on its own (a hard rule) only when the leg crosses a border
    /// or its lower-bound distance reaches this, km. Shorter domestic legs are one signal
    /// among others: carrier gateways and a user's second device produce them too.
    pub hard_travel_km: f64,
    /// Session-state capacity (entries); least recently used sessions are evicted first.
    pub max_sessions: usize,
    /// Budget in bytes for all tracker state (sessions, users, both maps' tables, the eviction
    /// queues), counted as the allocator hands it out; see the `track` module doc.
    pub max_session_bytes: usize,
    /// A session unused this long (event time) is forgotten. Long by default: a stolen
    /// cookie is typically replayed after its owner went idle, and a forgotten session makes
    /// the replay look like a new one (no device, network or place to compare with). Memory
    /// stays bounded by `max_sessions` and `max_session_bytes` either way.
    pub session_idle_timeout: HumanDuration,
    /// Which key a detection revokes: `token` (`fp:`) or `session` (`sid:` when the JWT has one).
    pub revoke_scope: RevokeScope,
}

/// `detect.model` value naming the shipped model embedded in the binary: a copied config
/// needs no model file beside it.
pub const BUILTIN_MODEL: &str = "builtin";

impl DetectConfig {
    /// `detect.model = "builtin"`: the embedded model.
    pub fn uses_builtin_model(&self) -> bool {
        self.model.as_deref() == Some(Path::new(BUILTIN_MODEL))
    }

    /// The score at or above which a session is stepped up: `detect.step_up_threshold`, or
    /// `threshold` when unset (then nothing is stepped up).
    pub fn step_up_threshold(&self) -> f64 {
        self.step_up_threshold.unwrap_or(self.threshold)
    }
}

/// `[networks]`: the network catalog (DESIGN §5, network knowledge; `config/networks.toml`
/// ships in the binary). `enrich` classifies addresses with it, `track` acts on the kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworksConfig {
    /// A catalog file replacing the shipped one (same format as `config/networks.toml`).
    pub catalog: Option<PathBuf>,
    /// Satellite / in-flight ASNs added to the catalog (overriding its kind for them).
    pub extra_satellite_asns: Vec<u32>,
    /// Hosting / VPN egress ASNs likewise.
    pub extra_hosting_asns: Vec<u32>,
    /// Privacy-relay ASNs likewise (only ASNs carrying nothing but relay traffic).
    pub extra_relay_asns: Vec<u32>,
    /// Satellite / in-flight address ranges.
    pub extra_satellite_cidrs: Vec<IpNet>,
    /// Hosting / VPN egress address ranges.
    pub extra_hosting_cidrs: Vec<IpNet>,
    /// Privacy-relay egress ranges (e.g. from iCloud Private Relay's published list).
    pub extra_relay_cidrs: Vec<IpNet>,
    /// Classify networks the catalog does not list by their ASN organisation name: a
    /// mobile carrier, or hosting / datacenter / VPN (`enrich::org_names`). Default on.
    pub classify_by_name: bool,
}

impl Default for NetworksConfig {
    fn default() -> Self {
        NetworksConfig {
            catalog: None,
            extra_satellite_asns: Vec::new(),
            extra_hosting_asns: Vec::new(),
            extra_relay_asns: Vec::new(),
            extra_satellite_cidrs: Vec::new(),
            extra_hosting_cidrs: Vec::new(),
            extra_relay_cidrs: Vec::new(),
            classify_by_name: true,
        }
    }
}

impl NetworksConfig {
    /// Problems with the `extra_*` lists, each naming its key.
    fn errors(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let asn_lists = [
            ("networks.extra_satellite_asns", &self.extra_satellite_asns),
            ("networks.extra_hosting_asns", &self.extra_hosting_asns),
            ("networks.extra_relay_asns", &self.extra_relay_asns),
        ];
        let mut seen: std::collections::HashMap<u32, &str> = std::collections::HashMap::new();
        for (key, asns) in asn_lists {
            for (i, asn) in asns.iter().enumerate() {
                if *asn == 0 {
                    errors.push(format!("{key}[{i}]: 0 is not an assigned ASN"));
                } else if let Some(first) = seen.insert(*asn, key)
                    && first != key
                {
                    errors.push(format!(
                        "{key}[{i}]: AS{asn} is also in {first} (one kind per network)"
                    ));
                }
            }
        }
        let cidr_lists = [
            (
                "networks.extra_satellite_cidrs",
                &self.extra_satellite_cidrs,
            ),
            ("networks.extra_hosting_cidrs", &self.extra_hosting_cidrs),
            ("networks.extra_relay_cidrs", &self.extra_relay_cidrs),
        ];
        for (key, nets) in cidr_lists {
            for (i, net) in nets.iter().enumerate() {
                // A /0 would make every address one kind: surely a typo.
                if net.prefix_len() == 0 {
                    errors.push(format!("{key}[{i}]: {net} covers every address"));
                }
            }
        }
        errors
    }
}

/// Which denylist key a detection writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RevokeScope {
    /// `fp:<fingerprint>`.
    #[default]
    Token,
    /// `sid:<iss>:<sid>` when the JWT carries `sid`, else `fp:`.
    Session,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            mode: Mode::Enforce,
            threshold: 0.8,
            step_up_threshold: None,
            flag_threshold: 0.5,
            model: None,
            allow_cidrs: vec![],
            allow_asns: vec![],
            relay_cidrs: vec![],
            relay_asns: vec![],
            allow_subjects: vec![],
            max_speed_kmh: 1000.0,
            min_travel_km: 100.0,
            hard_travel_km: 1500.0,
            max_sessions: 1_000_000,
            max_session_bytes: 512 * 1024 * 1024,
            session_idle_timeout: HumanDuration(Duration::from_secs(7 * 24 * 3600)),
            revoke_scope: RevokeScope::Token,
        }
    }
}

/// `[denylist]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenylistConfig {
    /// Journal file (embedded mode). Empty = in memory only (not durable).
    pub journal: Option<PathBuf>,
    /// TTL for API revocations that name no expiry.
    pub default_ttl: HumanDuration,
}

impl Default for DenylistConfig {
    fn default() -> Self {
        DenylistConfig {
            journal: None,
            default_ttl: HumanDuration(Duration::from_secs(24 * 3600)),
        }
    }
}

/// What `GET /v1/check` answers for a request without any token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoTokenPolicy {
    /// 200: nothing to revoke; the application decides about anonymous requests.
    #[default]
    Allow,
    /// 401.
    Deny,
}

/// `[api]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Environment variable with the admin key (admin routes).
    pub admin_key_env: Option<String>,
    /// Inline admin key (tests only).
    pub admin_key: Option<String>,
    /// Environment variable with the ingest key (`POST /v1/events`).
    pub ingest_key_env: Option<String>,
    /// Inline ingest key (tests only).
    pub ingest_key: Option<String>,
    /// `GET /v1/check` without a token: `allow` (200) or `deny` (401).
    pub no_token: NoTokenPolicy,
    /// Largest request body, bytes (413 above), except `POST /v1/events`.
    pub max_body_bytes: usize,
    /// Largest `POST /v1/events` body, bytes.
    pub max_ingest_bytes: usize,
    /// Per-request timeout.
    pub request_timeout: HumanDuration,
    /// Most open connections. At the cap the connection idle the longest is closed to make
    /// room; when none is idle a new one is refused at once. `app` lowers it to fit the
    /// open-file limit.
    pub max_connections: usize,
    /// Requests in flight per budget: `POST /v1/check` has one, the admin, ingest and
    /// metrics routes share another; beyond it 503 with `Retry-After` at once. `GET
    /// /v1/check`, `/healthz` and `/readyz` answer from memory and are not counted.
    pub max_concurrent_requests: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_key_env: Some("TOKENWATCH_ADMIN_KEY".into()),
            admin_key: None,
            ingest_key_env: Some("TOKENWATCH_INGEST_KEY".into()),
            ingest_key: None,
            no_token: NoTokenPolicy::Allow,
            max_body_bytes: 64 * 1024,
            max_ingest_bytes: 8 * 1024 * 1024,
            request_timeout: HumanDuration(Duration::from_secs(5)),
            max_connections: 4096,
            max_concurrent_requests: 64,
        }
    }
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The environment, read in one place so tests can pass their own.
pub trait Env {
    /// The variable's value, if set and not empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// The folder holding `path` (`.` for a bare file name): where a configured file's
/// neighbours live (the journal's state folder, the followed log's rotated files).
pub fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    }
}

/// Secrets resolved from config or environment.
#[derive(Clone, Default)]
pub struct Secrets {
    /// Fingerprint pepper (DESIGN §4).
    pub pepper: String,
    /// Admin API key, if configured.
    pub admin_key: Option<String>,
    /// Ingest key for `POST /v1/events`, if configured.
    pub ingest_key: Option<String>,
    /// Read-only key for the change feed (`feed.reader_key`), if configured.
    pub reader_key: Option<String>,
    /// HMAC secrets by index into `tokens.jwt.keys`.
    pub jwt_secrets: BTreeMap<usize, String>,
    /// `sasl.password` for librdkafka, from `TOKENWATCH_KAFKA_SASL_PASSWORD` (overrides the
    /// one in `[kafka.librdkafka]`).
    pub kafka_sasl_password: Option<String>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

/// Largest `api.max_connections` accepted (Linux's default `fs.nr_open`).
const MAX_CONNECTIONS: usize = 1 << 20;

const ALGORITHMS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA", "ES512",
];

impl Config {
    /// Parse TOML text. `base_dir` is the folder relative paths resolve against.
    /// Every schema error (unknown key, wrong type) is reported, each with its key path.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
        match Config::parse_collecting(text, base_dir) {
            (Some(config), errors) if errors.is_empty() => Ok(config),
            (_, errors) => Err(ConfigErrors(errors)),
        }
    }

    /// What could be read of `text` (keys with schema errors left out, so the rest can still
    /// be validated) and the schema errors.
    fn parse_collecting(text: &str, base_dir: &Path) -> (Option<Config>, Vec<String>) {
        let (raw, errors) = schema::parse_collecting::<RawConfig>(text);
        let config = raw.map(|raw| {
            let mut config = Config::from_raw(raw, base_dir);
            config.resolve_paths();
            config
        });
        (config, errors)
    }

    /// Keep what the daemon implements; note every other setting the file makes.
    fn from_raw(raw: RawConfig, base_dir: &Path) -> Config {
        let mut not_implemented = Vec::new();
        if raw.kafka.is_some() && !cfg!(feature = "kafka") {
            not_implemented.push(
                "kafka: this build has no Kafka support (built without the cargo feature \
                 `kafka`); rebuild with it or remove the [kafka] table"
                    .into(),
            );
        }
        Config {
            role: raw.role,
            input: raw.input,
            tokens: raw.tokens,
            geoip: raw.geoip,
            detect: raw.detect,
            networks: raw.networks,
            denylist: raw.denylist,
            api: raw.api,
            kafka: raw.kafka,
            feed: raw.feed,
            audit: raw.audit,
            base_dir: base_dir.to_path_buf(),
            not_implemented,
        }
    }

    /// Read, parse and validate a file; also resolves secrets from `env`.
    pub fn load(path: &Path, env: &dyn Env) -> Result<(Config, Secrets), ConfigErrors> {
        match Config::load_collecting(path, env) {
            (Some((config, Some(secrets))), errors) if errors.is_empty() => Ok((config, secrets)),
            (_, errors) => Err(ConfigErrors(errors)),
        }
    }

    /// Read, parse and validate a file, collecting every problem (schema errors, then what
    /// validation finds in the rest): `check-config`. Returns what could be read (with the
    /// secrets when validation passed) and the problems.
    pub fn load_collecting(
        path: &Path,
        env: &dyn Env,
    ) -> (Option<(Config, Option<Secrets>)>, Vec<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => return (None, vec![format!("cannot read {}: {e}", path.display())]),
        };
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let (config, mut errors) = Config::parse_collecting(&text, &base);
        let Some(config) = config else {
            return (None, errors);
        };
        let secrets = match config.validate(env) {
            Ok(secrets) => Some(secrets),
            Err(ConfigErrors(more)) => {
                errors.extend(more);
                None
            }
        };
        (Some((config, secrets)), errors)
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(path) = p.as_mut() {
                if path.as_os_str().is_empty() {
                    *p = None;
                } else if path.is_relative() {
                    *path = base.join(&*path);
                }
            }
        };
        fix(&mut self.input.path);
        fix(&mut self.geoip.city_db);
        fix(&mut self.geoip.asn_db);
        // `builtin` names the model embedded in the binary, not a file.
        if !self.detect.uses_builtin_model() {
            fix(&mut self.detect.model);
        }
        fix(&mut self.networks.catalog);
        fix(&mut self.denylist.journal);
        fix(&mut self.audit.path);
        for key in &mut self.tokens.jwt.keys {
            fix(&mut key.public_key_pem);
            fix(&mut key.jwks_file);
        }
    }

    /// Check everything that can be checked without opening files, collecting every problem.
    /// Returns the secrets read from config or `env`.
    pub fn validate(&self, env: &dyn Env) -> Result<Secrets, ConfigErrors> {
        let mut errors = self.not_implemented.clone();
        let mut secrets = Secrets::default();

        let t = &self.tokens;
        match (&t.pepper, &t.pepper_env) {
            (Some(p), _) if !p.is_empty() => secrets.pepper = p.clone(),
            (_, Some(var)) => match env.var(var) {
                Some(p) => secrets.pepper = p,
                None => errors.push(format!(
                    "tokens.pepper_env: environment variable {var} is not set (the pepper keys \
                     every fingerprint and must be the same on every instance)"
                )),
            },
            _ => errors.push(
                "tokens.pepper_env: set tokens.pepper_env (or tokens.pepper in tests)".into(),
            ),
        }
        if !secrets.pepper.is_empty() && secrets.pepper.len() < 16 {
            errors.push("tokens.pepper: must be at least 16 bytes".into());
        }
        if t.session_cookie.is_empty()
            || !t
                .session_cookie
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"=;,".contains(&b))
        {
            errors.push("tokens.session_cookie: not a valid cookie name".into());
        }
        if !(64..=1024 * 1024).contains(&t.max_token_bytes) {
            errors.push("tokens.max_token_bytes: must be between 64 and 1048576".into());
        }
        if t.max_ttl.0.is_zero() || t.opaque_ttl.0 > t.max_ttl.0 {
            errors.push("tokens.max_ttl: must be positive and at least tokens.opaque_ttl".into());
        }
        for (i, alg) in t.jwt.algorithms.iter().enumerate() {
            if !ALGORITHMS.contains(&alg.as_str()) {
                errors.push(format!(
                    "tokens.jwt.algorithms[{i}]: unknown algorithm {alg:?}"
                ));
            } else if alg == "ES512" {
                errors.push(format!(
                    "tokens.jwt.algorithms[{i}]: ES512 is not supported by the verifier"
                ));
            }
        }
        if !t.jwt.keys.is_empty() && t.jwt.algorithms.is_empty() {
            errors.push("tokens.jwt.algorithms: list the algorithms your keys use".into());
        }
        for (i, key) in t.jwt.keys.iter().enumerate() {
            let name = format!("tokens.jwt.keys[{i}]");
            let sources = [
                key.public_key_pem.is_some(),
                key.secret_env.is_some(),
                key.secret.is_some(),
                key.jwks_file.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                errors.push(format!(
                    "{name}: set exactly one of public_key_pem, secret_env, secret, jwks_file"
                ));
            }
            if let Some(alg) = &key.algorithm
                && !ALGORITHMS.contains(&alg.as_str())
            {
                errors.push(format!("{name}.algorithm: unknown algorithm {alg:?}"));
            }
            let is_secret = key.secret.is_some() || key.secret_env.is_some();
            if is_secret
                && !key
                    .algorithm
                    .as_deref()
                    .is_some_and(|a| a.starts_with("HS"))
            {
                errors.push(format!(
                    "{name}.algorithm: HMAC secrets need HS256, HS384 or HS512"
                ));
            }
            if let Some(s) = &key.secret {
                secrets.jwt_secrets.insert(i, s.clone());
            }
            if let Some(var) = &key.secret_env {
                match env.var(var) {
                    Some(s) => {
                        secrets.jwt_secrets.insert(i, s);
                    }
                    None => errors.push(format!(
                        "{name}.secret_env: environment variable {var} is not set"
                    )),
                }
            }
            if let Some(kid) = &key.kid
                && (kid.is_empty() || kid.len() > 256)
            {
                errors.push(format!("{name}.kid: must be 1 to 256 bytes"));
            }
        }

        if self.geoip.default_accuracy_km < 0.0 || !self.geoip.default_accuracy_km.is_finite() {
            errors.push("geoip.default_accuracy_km: must be a non-negative number".into());
        }

        errors.extend(self.networks.errors());

        let d = &self.detect;
        for (name, v) in [
            ("detect.threshold", d.threshold),
            ("detect.flag_threshold", d.flag_threshold),
        ] {
            if !(0.0..=1.0).contains(&v) {
                errors.push(format!("{name}: must be within [0, 1]"));
            }
        }
        if d.flag_threshold > d.threshold {
            errors.push("detect.flag_threshold: must not exceed detect.threshold".into());
        }
        if let Some(step_up) = d.step_up_threshold {
            if !(0.0..=1.0).contains(&step_up) {
                errors.push("detect.step_up_threshold: must be within [0, 1]".into());
            } else {
                if step_up > d.threshold {
                    errors
                        .push("detect.step_up_threshold: must not exceed detect.threshold".into());
                }
                if step_up < d.flag_threshold {
                    errors.push(
                        "detect.step_up_threshold: must not be below detect.flag_threshold".into(),
                    );
                }
            }
        }
        // TOML has `nan` and `inf`; every comparison with NaN is false, so a NaN speed or
        // distance would switch impossible travel off without a word.
        if !(d.max_speed_kmh.is_finite() && d.max_speed_kmh > 0.0) {
            errors.push("detect.max_speed_kmh: must be a positive number".into());
        }
        for (name, km) in [
            ("detect.min_travel_km", d.min_travel_km),
            ("detect.hard_travel_km", d.hard_travel_km),
        ] {
            if !(km.is_finite() && km >= 0.0) {
                errors.push(format!("{name}: must be a non-negative number"));
            }
        }
        if d.max_sessions == 0 {
            errors.push("detect.max_sessions: must be positive".into());
        }

        if self.input.max_line_bytes < 256 {
            errors.push("input.max_line_bytes: must be at least 256".into());
        }
        if self.input.batch_size == 0 || self.input.batch_size > 1 << 20 {
            errors.push("input.batch_size: must be between 1 and 1048576".into());
        }
        if !(1..=MAX_CHANNEL_CAPACITY).contains(&self.input.channel_capacity) {
            errors.push(format!(
                "input.channel_capacity: must be between 1 and {MAX_CHANNEL_CAPACITY}"
            ));
        }
        if self.input.drain_timeout.0.is_zero() {
            errors.push("input.drain_timeout: must be positive".into());
        }

        let a = &self.api;
        secrets.admin_key = secret_from(&a.admin_key, &a.admin_key_env, env);
        secrets.ingest_key = secret_from(&a.ingest_key, &a.ingest_key_env, env);
        for (name, key) in [
            ("api.admin_key", &secrets.admin_key),
            ("api.ingest_key", &secrets.ingest_key),
        ] {
            if key.as_ref().is_some_and(|k| k.len() < 16) {
                errors.push(format!("{name}: must be at least 16 bytes"));
            }
        }
        if a.max_body_bytes == 0 || a.max_ingest_bytes == 0 {
            errors.push("api.max_body_bytes / api.max_ingest_bytes: must be positive".into());
        }
        if !(1..=MAX_CONNECTIONS).contains(&a.max_connections) {
            errors.push(format!(
                "api.max_connections: must be between 1 and {MAX_CONNECTIONS}"
            ));
        }
        if a.max_concurrent_requests == 0 {
            errors.push("api.max_concurrent_requests: must be positive".into());
        } else if a.max_concurrent_requests.saturating_mul(2) >= a.max_connections {
            errors.push(format!(
                "api.max_concurrent_requests: its two budgets ({} requests) must leave room \
                 below api.max_connections ({}) for GET /v1/check",
                a.max_concurrent_requests.saturating_mul(2),
                a.max_connections
            ));
        }

        kafka::validate(self, env, &mut secrets, &mut errors);
        operate::validate(self, env, &mut secrets, &mut errors);

        if errors.is_empty() {
            Ok(secrets)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

fn secret_from(inline: &Option<String>, var: &Option<String>, env: &dyn Env) -> Option<String> {
    inline
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| var.as_deref().and_then(|v| env.var(v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [tokens]
        pepper = "test-pepper-0123456789"
    "#;

    #[test]
    fn shipped_default_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let text = std::fs::read_to_string(&path).expect("config/default.toml");
        let config = Config::parse(&text, path.parent().expect("dir")).expect("parses");
        let env = [
            ("TOKENWATCH_PEPPER", "pepper-from-env-0123456789"),
            ("TOKENWATCH_ADMIN_KEY", "admin-key-0123456789"),
            ("TOKENWATCH_INGEST_KEY", "ingest-key-0123456789"),
            ("TOKENWATCH_JWT_SECRET", "jwt-secret-0123456789"),
        ];
        let secrets = config.validate(&env).expect("validates");
        assert_eq!(secrets.pepper, "pepper-from-env-0123456789");
        assert_eq!(secrets.admin_key.as_deref(), Some("admin-key-0123456789"));
        assert_eq!(config.role, Role::All);
        // A new install detects and records; enforcing is a choice (README).
        assert_eq!(config.detect.mode, Mode::Shadow);
        // The shipped model is the embedded one: no path to break when the file is copied.
        assert!(config.detect.uses_builtin_model());
        assert_eq!(config.input.channel_capacity, 64);
        assert_eq!(config.input.drain_timeout.0, Duration::from_secs(10));
    }

    #[test]
    fn every_schema_error_is_reported_with_its_key_path() {
        let text = format!(
            "{MINIMAL}\nsession_cookie = 7\n[input]\nbatch_size = \"big\"\n[detect]\nmodle = \"x\"\n\
             [[tokens.jwt.keys]]\nkid = \"a\"\nsecret = \"s\"\ncolour = \"red\"\n"
        );
        let errors = Config::parse(&text, Path::new(".")).expect_err("invalid").0;
        let keys: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap_or(""))
            .collect();
        for key in [
            "tokens.session_cookie",
            "input.batch_size",
            "detect.modle",
            "tokens.jwt.keys[0].colour",
        ] {
            assert!(keys.contains(&key), "{key} not in {errors:#?}");
        }
        assert_eq!(errors.len(), 4, "{errors:#?}");
    }

    #[test]
    fn the_builtin_model_is_not_a_path() {
        let config = Config::parse(
            &format!("{MINIMAL}\n[detect]\nmodel = \"builtin\"\n"),
            Path::new("/etc/tw"),
        )
        .expect("parses");
        assert!(config.detect.uses_builtin_model());
        let config = Config::parse(
            &format!("{MINIMAL}\n[detect]\nmodel = \"models/mine.json\"\n"),
            Path::new("/etc/tw"),
        )
        .expect("parses");
        assert_eq!(
            config.detect.model.as_deref(),
            Some(Path::new("/etc/tw/models/mine.json"))
        );
    }

    #[test]
    fn step_up_threshold_defaults_to_threshold_and_is_validated() {
        let detect = |extra: &str| {
            let text = format!("{MINIMAL}\n[detect]\n{extra}\n");
            Config::parse(&text, Path::new(".")).expect("parses")
        };
        // Unset: no step-up band, today's revoke/flag split.
        let config = detect("threshold = 0.9");
        assert_eq!(config.detect.step_up_threshold(), 0.9);
        assert!(config.validate(&[]).is_ok());
        let config = detect("step_up_threshold = 0.6");
        assert_eq!(config.detect.step_up_threshold(), 0.6);
        assert!(config.validate(&[]).is_ok());
        // The band edges are allowed: step-up = threshold (off), step-up = flag (no flags).
        for ok in ["step_up_threshold = 0.8", "step_up_threshold = 0.5"] {
            assert!(detect(ok).validate(&[]).is_ok(), "{ok}");
        }
        for (bad, says) in [
            ("step_up_threshold = 1.5", "within [0, 1]"),
            ("step_up_threshold = nan", "within [0, 1]"),
            (
                "step_up_threshold = 0.85",
                "must not exceed detect.threshold",
            ),
            (
                "step_up_threshold = 0.4",
                "must not be below detect.flag_threshold",
            ),
        ] {
            let errors = detect(bad).validate(&[]).expect_err(bad).0.join("\n");
            assert!(
                errors.contains("detect.step_up_threshold") && errors.contains(says),
                "{bad}: {errors}"
            );
        }
    }

    #[test]
    fn networks_table_parses_resolves_and_validates_naming_keys() {
        const NO_ENV: [(&str, &str); 0] = [];
        let text = format!(
            "{MINIMAL}\n[networks]\ncatalog = \"nets.toml\"\nextra_satellite_asns = [64512]\n\
             extra_hosting_asns = [64513]\nextra_relay_cidrs = [\"172.224.226.0/27\"]\n"
        );
        let config = Config::parse(&text, Path::new("/etc/tw")).expect("parses");
        assert_eq!(
            config.networks.catalog.as_deref(),
            Some(Path::new("/etc/tw/nets.toml"))
        );
        assert_eq!(config.networks.extra_satellite_asns, [64512]);
        config.validate(&NO_ENV).expect("validates");

        let text = format!(
            "{MINIMAL}\n[networks]\nextra_satellite_asns = [64512, 0]\n\
             extra_hosting_asns = [64512]\nextra_hosting_cidrs = [\"0.0.0.0/0\"]\n"
        );
        let errors = Config::parse(&text, Path::new("."))
            .expect("parses")
            .validate(&NO_ENV)
            .expect_err("invalid")
            .to_string();
        for key in [
            "networks.extra_satellite_asns[1]: 0",
            "networks.extra_hosting_asns[0]: AS64512 is also in networks.extra_satellite_asns",
            "networks.extra_hosting_cidrs[0]",
        ] {
            assert!(errors.contains(key), "missing {key} in:\n{errors}");
        }
        let err = Config::parse(
            &format!("{MINIMAL}\n[networks]\nextra_vpn_asns = [1]\n"),
            Path::new("."),
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("extra_vpn_asns"), "{err}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let err = Config::parse("[tokens]\npepper = \"x\"\npeper = \"y\"\n", Path::new("."))
            .expect_err("unknown key");
        assert!(err.to_string().contains("peper"), "{err}");
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let text = r#"
            [tokens]
            pepper_env = "NOPE_NOT_SET"
            [tokens.jwt]
            algorithms = ["HS256", "XX999"]
            [[tokens.jwt.keys]]
            secret = "abc"
            public_key_pem = "k.pem"
            [detect]
            threshold = 1.5
        "#;
        let config = Config::parse(text, Path::new("/etc/tw")).expect("parses");
        let errors = config.validate(&[("X", "y")]).expect_err("invalid").0;
        let joined = errors.join("\n");
        for key in [
            "tokens.pepper_env",
            "tokens.jwt.algorithms[1]",
            "tokens.jwt.keys[0]: set exactly one",
            "tokens.jwt.keys[0].algorithm",
            "detect.threshold",
        ] {
            assert!(joined.contains(key), "missing {key} in:\n{joined}");
        }
    }

    #[test]
    fn connection_limits_are_validated() {
        let cases = [
            ("", None),
            (
                "max_connections = 100\nmax_concurrent_requests = 49\n",
                None,
            ),
            ("max_connections = 0\n", Some("api.max_connections")),
            ("max_connections = 2000000\n", Some("api.max_connections")),
            (
                "max_concurrent_requests = 0\n",
                Some("api.max_concurrent_requests"),
            ),
            (
                "max_connections = 100\nmax_concurrent_requests = 50\n",
                Some("api.max_concurrent_requests: its two budgets (100 requests)"),
            ),
        ];
        for (api, want) in cases {
            let text = format!("{MINIMAL}\n[api]\n{api}");
            let config = Config::parse(&text, Path::new(".")).expect("parses");
            match (config.validate(&[("X", "y")]), want) {
                (Ok(_), None) => {}
                (Err(errors), Some(key)) => {
                    assert!(errors.to_string().contains(key), "{api:?}: {errors}")
                }
                (got, want) => panic!("{api:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn travel_limits_must_be_finite() {
        let cases = [
            ("max_speed_kmh = 900.0\nmin_travel_km = 0.0\n", None),
            ("max_speed_kmh = nan\n", Some("detect.max_speed_kmh")),
            ("max_speed_kmh = inf\n", Some("detect.max_speed_kmh")),
            ("max_speed_kmh = 0.0\n", Some("detect.max_speed_kmh")),
            ("min_travel_km = nan\n", Some("detect.min_travel_km")),
            ("min_travel_km = -1.0\n", Some("detect.min_travel_km")),
            ("hard_travel_km = inf\n", Some("detect.hard_travel_km")),
            ("hard_travel_km = -nan\n", Some("detect.hard_travel_km")),
        ];
        for (detect, want) in cases {
            let text = format!("{MINIMAL}\n[detect]\n{detect}");
            let config = Config::parse(&text, Path::new(".")).expect("parses");
            match (config.validate(&[("X", "y")]), want) {
                (Ok(_), None) => {}
                (Err(errors), Some(key)) => {
                    assert!(errors.to_string().contains(key), "{detect:?}: {errors}")
                }
                (got, want) => panic!("{detect:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn channel_capacity_and_drain_timeout_are_validated() {
        let cases = [
            ("channel_capacity = 1\ndrain_timeout = \"1s\"\n", None),
            ("channel_capacity = 4096\n", None),
            ("channel_capacity = 0\n", Some("input.channel_capacity")),
            ("channel_capacity = 4097\n", Some("input.channel_capacity")),
            ("drain_timeout = \"0s\"\n", Some("input.drain_timeout")),
        ];
        for (input, want) in cases {
            let text = format!("{MINIMAL}\n[input]\n{input}");
            let config = Config::parse(&text, Path::new(".")).expect("parses");
            match (config.validate(&[("X", "y")]), want) {
                (Ok(_), None) => {}
                (Err(errors), Some(key)) => {
                    assert!(errors.to_string().contains(key), "{input:?}: {errors}")
                }
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
        let config = Config::parse(MINIMAL, Path::new(".")).expect("parses");
        assert_eq!(config.input.channel_capacity, 64, "today's queue");
        assert_eq!(config.input.drain_timeout.0, Duration::from_secs(10));
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let text = format!(
            "{MINIMAL}\n[denylist]\njournal = \"state/deny.journal\"\n[geoip]\ncity_db = \"/abs/city.mmdb\"\n"
        );
        let config = Config::parse(&text, Path::new("/etc/tw")).expect("parses");
        assert_eq!(
            config.denylist.journal,
            Some(PathBuf::from("/etc/tw/state/deny.journal"))
        );
        assert_eq!(config.geoip.city_db, Some(PathBuf::from("/abs/city.mmdb")));
    }

    #[test]
    fn durations_are_human_text() {
        let text = format!("{MINIMAL}\n[detect]\nsession_idle_timeout = \"15m\"\n");
        let config = Config::parse(&text, Path::new(".")).expect("parses");
        assert_eq!(
            config.detect.session_idle_timeout.0,
            Duration::from_secs(900)
        );
        let bad = format!("{MINIMAL}\n[detect]\nsession_idle_timeout = \"fifteen\"\n");
        assert!(Config::parse(&bad, Path::new(".")).is_err());
    }
}
