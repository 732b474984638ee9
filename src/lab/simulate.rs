//! Realistic, labelled synthetic traffic: for `simulate`, `train`, `evaluate`, `demo`, tests
//! and benchmarks.
//!
//! Where it sits: outside the pipeline, in front of it. [`simulate`] (or [`generate`]) turns a
//! [`SimSpec`] into access-log lines in the default JSON input format (DESIGN §2) and one
//! [`SessionLabel`] per session (`labels.jsonl`); [`write_files`] writes them (from plain
//! [`Options`], which `tokenwatch simulate` and `train` both pass), and replaying the lines
//! through the pipeline is what `evaluate` measures against the labels.
//!
//! The world:
//! - **People** live in the real cities of [`world::CITIES`], browse with real browser
//!   User-Agents (desktop and mobile; Chrome, Edge, Firefox, Safari, Samsung Internet on
//!   Windows, macOS, Linux, iOS, Android), log in once and come back in visits that follow
//!   their local day; a page load bursts into a few API calls (`agents`). Some have a
//!   second device. Their quirks are the benign behaviours that fool naive rules
//!   ([`BEHAVIOURS`]: carrier gateways, corporate VPN, flights, in-flight satellite Wi-Fi,
//!   privacy relays, browser updates, shared office NAT, home-line renumbering, carrier-NAT
//!   churn, home-routed roaming, consumer VPNs, split-tunnel corporate VPN).
//! - **API-automation clients**: scripted User-Agents at steady high rates from one
//!   datacenter address, from their first request on.
//! - **Tokens**: JWT sessions carry HS256 tokens signed with [`SimKeys`], refreshed every
//!   [`SimSpec::refresh_s`] while in use (same `sid`, new `jti`, `exp = iat + lifetime`);
//!   other sessions carry a long-lived opaque cookie or API key (`session`).
//! - **Attacks**: a small fraction of people's sessions ([`SimSpec::attack_fraction`]) are
//!   attacked, the seven types of [`crate::lab::labels::ATTACK_TYPES`] dealt in turn (`attack`).
//! - **Worlds**: every behaviour's prevalence and parameters come from [`SimSpec::params`]
//!   ([`WorldParams`]: nominal, or drawn from documented ranges per world seed; `params`).
//! - **Addresses** come from [`SimSpec::addresses`]: the synthetic plan of [`world`], or a real
//!   City database's networks indexed by city ([`world::AddressIndex`]).
//!
//! Labels (see [`crate::lab::labels`]): `tokens` are the fingerprints, under the simulation's
//! pepper, of every token the session used, in issue order; for attacked sessions
//! `attack_start` is the first attacker request and `attacker_ips` exactly the addresses the
//! attacker used, none of which the victim ever uses; `behaviours` names every benign quirk
//! the session's own requests show.
//!
//! Determinism: a plan is drawn from the seed first (who lives where, who is attacked how),
//! then every session is generated from its own RNG stream (ChaCha8, stream = session + 1),
//! in parallel; requests are ordered by (event time, session, position in session). The same
//! spec therefore always gives the same bytes, on any number of threads. The generator does no
//! I/O and never reads the wall clock; [`write_files`] (the `files` submodule) writes what it
//! returns.
//!
//! What it does NOT do: model real ISPs' address allocation (beyond renumbering within the
//! ISP's block), roaming other than home-routed, or anything after the response (bodies,
//! latency).

mod agents;
mod attack;
mod catalog;
mod files;
mod params;
mod render;
mod session;
mod timing;

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::event::{EventTime, RawToken};
use crate::identify::Fingerprinter;
use crate::lab::labels::{ATTACK_TYPES, SessionLabel};
use crate::lab::world::{self, AddressPlan, CITIES};

pub use agents::BEHAVIOURS;
pub use files::{Options, SimFiles, write_files, write_support};
pub use params::{PARAMS, ParamSpec, Scale, WorldParams};
use session::{Credential, Request};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// RNG seed.
    pub seed: u64,
    /// First event time.
    pub start: EventTime,
    /// Simulated span, seconds.
    pub duration_s: u64,
    /// Number of users. Some are API-automation clients and some people use two or three
    /// devices (a session each), so there are more sessions than users (shares per
    /// [`SimSpec::params`]; nominally 1 % and a tenth).
    pub users: usize,
    /// Fraction of people's sessions that are attacked (at least one when > 0).
    pub attack_fraction: f64,
    /// JWT refresh interval, seconds: a session gets a new token after this much use.
    pub refresh_s: u64,
    /// Where client addresses come from.
    pub addresses: AddressPlan,
    /// The world: every behaviour's prevalence and parameters ([`WorldParams::nominal`] by
    /// default; [`SimSpec::with_params`] sets another).
    pub params: WorldParams,
}

impl SimSpec {
    /// Default attack fraction.
    pub const DEFAULT_ATTACK_FRACTION: f64 = 0.03;
    /// Default JWT refresh interval (15 minutes).
    pub const DEFAULT_REFRESH_S: u64 = 900;

    /// A spec with the default attack fraction, refresh interval and synthetic addresses.
    pub fn new(seed: u64, start: EventTime, duration_s: u64, users: usize) -> SimSpec {
        SimSpec {
            seed,
            start,
            duration_s,
            users,
            attack_fraction: Self::DEFAULT_ATTACK_FRACTION,
            refresh_s: Self::DEFAULT_REFRESH_S,
            addresses: AddressPlan::Synthetic,
            params: WorldParams::nominal(),
        }
    }

    /// This spec in the world `params`, whose JWT refresh interval it takes too.
    pub fn with_params(self, params: WorldParams) -> SimSpec {
        SimSpec {
            refresh_s: (params.refresh_s.round() as u64).max(60),
            params,
            ..self
        }
    }

    /// A JWT's lifetime (`exp − iat`): the refresh interval plus a third of it (at least
    /// five minutes), so a token in use is refreshed before it expires.
    pub fn token_lifetime_s(&self) -> u64 {
        let refresh = self.refresh_s.max(1);
        refresh + (refresh / 3).max(300)
    }

    /// Users needed for about `events` events with this spec, measured on the generator
    /// itself: a pilot run of 2000 users (enough API-automation clients, whose rates vary
    /// most, to average out), then one run at the estimate to correct it.
    pub fn users_for_events(&self, events: u64) -> usize {
        let keys = SimKeys::from_seed(self.seed);
        let rescale = |users: usize| {
            let spec = SimSpec {
                users,
                ..self.clone()
            };
            let n = generate(&spec, &keys).len().max(1);
            ((events as f64 * users as f64 / n as f64).round() as usize).max(1)
        };
        rescale(rescale(2000))
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

/// One simulated token, kept in memory for the demo's own check calls.
#[derive(Debug, Clone)]
pub struct SimToken {
    /// Session number.
    pub session: u64,
    /// The token.
    pub token: RawToken,
    /// Whether an attacker used it.
    pub attacked: bool,
}

/// The simulation's output, with every line rendered.
pub struct Simulation {
    /// Access-log lines (JSON, DESIGN §2 default fields), ordered by event time.
    pub lines: Vec<String>,
    /// Ground truth per session.
    pub labels: Vec<SessionLabel>,
    /// Every token issued, in session order.
    pub tokens: Vec<SimToken>,
}

/// Run the simulation and render every line.
pub fn simulate(spec: &SimSpec, keys: &SimKeys) -> Simulation {
    generate(spec, keys).into_simulation()
}

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Person,
    Automation,
}

/// What the plan fixes for a session before its own RNG stream takes over. A user's
/// sessions (their devices) share what the user's life fixes: home, home line, trip.
#[derive(Debug, Clone)]
struct Plan {
    session: u32,
    user: String,
    role: Role,
    home: usize,
    /// Benign host number (the home address).
    host: u32,
    desktop: bool,
    office: bool,
    /// One of the user's further sessions (a phone or tablet).
    second_device: bool,
    /// The user has two or more sessions.
    multi_device: bool,
    credential: Credential,
    /// Index into [`ATTACK_TYPES`].
    attack: Option<usize>,
    /// For API-automation clients: where the client's rate sits in the rate range, spread
    /// evenly over the clients (so the run's volume does not hinge on a few draws).
    rate_quantile: f64,
    /// The home line's periodic renumbering: the first change (ms) and the period (ms).
    renumber: Option<(i64, i64)>,
    /// The user's flight, shared by all their devices.
    trip: Option<agents::Trip>,
}

/// The run's constants, shared by every session's generator.
struct World<'k> {
    spec: &'k SimSpec,
    keys: &'k SimKeys,
    start: i64,
    end: i64,
    lifetime_s: u64,
}

impl World<'_> {
    /// The world's behaviour parameters.
    fn params(&self) -> &WorldParams {
        &self.spec.params
    }
}

/// Who lives where, who uses what, who is attacked how, who flies where: drawn from the seed
/// (stream 0).
fn plan_sessions(spec: &SimSpec) -> Vec<Plan> {
    let p = &spec.params;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let users = spec.users;
    let automation: HashSet<usize> = if users >= 20 {
        let n = ((users as f64 * p.automation_share).round() as usize).max(1);
        rand::seq::index::sample(&mut rng, users, n)
            .into_iter()
            .collect()
    } else {
        HashSet::new()
    };
    let start = spec.start.0;
    let end = start + spec.duration_s.max(1) as i64 * 1000;
    let mut plans: Vec<Plan> = Vec::with_capacity(users + users / 4);
    for u in 0..users {
        let host = world::benign_host(u as u32);
        let mut plan = Plan {
            session: plans.len() as u32,
            user: format!("user-{u}"),
            role: Role::Person,
            home: 0,
            host,
            desktop: false,
            office: false,
            second_device: false,
            multi_device: false,
            credential: Credential::Cookie,
            attack: None,
            rate_quantile: 0.5,
            renumber: None,
            trip: None,
        };
        if automation.contains(&u) {
            plan.user = format!("svc-{u}");
            plan.role = Role::Automation;
            plans.push(plan);
            continue;
        }
        plan.desktop = rng.random_bool(p.desktop_share);
        plan.office = plan.desktop && rng.random_bool(p.office_share);
        plan.home = if plan.office {
            *timing::pick(&mut rng, catalog::office_hubs())
        } else {
            rng.random_range(0..CITIES.len())
        };
        plan.multi_device = rng.random_bool(p.multi_device_share);
        let devices = match plan.multi_device {
            false => 1,
            true if rng.random_bool(p.third_device_share) => 3,
            true => 2,
        };
        if rng.random_bool(p.home_renumber_share) {
            let period = ((p.home_renumber_period_h * timing::HOUR as f64) as i64).max(1);
            plan.renumber = Some((start + timing::between(&mut rng, 0, period), period));
        }
        let first = plan.session;
        let further = Plan {
            desktop: false,
            office: false,
            second_device: true,
            ..plan.clone()
        };
        plans.push(plan);
        for d in 1..devices {
            plans.push(Plan {
                session: first + d,
                ..further.clone()
            });
        }
    }
    let clients: Vec<usize> = (0..plans.len())
        .filter(|i| plans[*i].role == Role::Automation)
        .collect();
    for (k, i) in clients.iter().enumerate() {
        plans[*i].rate_quantile = (k as f64 + 0.5) / clients.len() as f64;
    }
    // Attacks: an exact count, the types dealt in turn in session order.
    let people: Vec<usize> = (0..plans.len())
        .filter(|i| plans[*i].role == Role::Person)
        .collect();
    let attacked = if spec.attack_fraction > 0.0 && !people.is_empty() {
        ((people.len() as f64 * spec.attack_fraction).round() as usize).clamp(1, people.len())
    } else {
        0
    };
    let mut chosen = rand::seq::index::sample(&mut rng, people.len(), attacked).into_vec();
    chosen.sort_unstable();
    for (k, i) in chosen.into_iter().enumerate() {
        plans[people[i]].attack = Some(k % ATTACK_TYPES.len());
    }
    // Trips, per user (all their devices fly): not for a victim whose attack needs them idle
    // at home for hours.
    let mut i = 0;
    while i < plans.len() {
        let n = plans[i..]
            .iter()
            .take_while(|q| q.user == plans[i].user)
            .count();
        let idle_victim = plans[i..i + n]
            .iter()
            .any(|q| q.attack == Some(attack::FOREIGN_REPLAY_IDLE));
        if plans[i].role == Role::Person && !idle_victim && rng.random_bool(p.travel_share) {
            let trip = agents::plan_trip(start, end, &mut rng, plans[i].home);
            for q in &mut plans[i..i + n] {
                q.trip = trip;
            }
        }
        i += n;
    }
    for plan in &mut plans {
        plan.credential = match (plan.role, plan.attack) {
            (Role::Automation, _) => {
                if rng.random_bool(0.5) {
                    Credential::ApiKey
                } else {
                    Credential::Jwt
                }
            }
            // These attacks need hours: the victim holds a long-lived cookie.
            (Role::Person, Some(attack::FOREIGN_REPLAY_IDLE | attack::LOW_AND_SLOW)) => {
                Credential::Cookie
            }
            (Role::Person, _) => {
                if rng.random_bool(0.75) {
                    Credential::Jwt
                } else {
                    Credential::Cookie
                }
            }
        };
    }
    plans
}

/// One generated session: what rendering needs.
struct SessionOut {
    session: u64,
    tokens: Vec<String>,
    uas: Vec<String>,
    credential: Credential,
    requests: Vec<Request>,
}

fn generate_session(
    w: &World<'_>,
    plan: &Plan,
    fingerprinter: &Fingerprinter,
) -> (SessionLabel, SessionOut) {
    let mut rng = ChaCha8Rng::seed_from_u64(w.spec.seed);
    rng.set_stream(u64::from(plan.session) + 1);
    let (mut b, behaviours, outcome) = match plan.role {
        Role::Automation => (
            agents::automation(w, plan, &mut rng),
            vec!["api_automation".to_owned()],
            None,
        ),
        Role::Person => {
            let login = agents::login_time(w, &mut rng, CITIES[plan.home].lon);
            // Type 2 needs the victim idle for hours: planned before their traffic.
            let idle = (plan.attack == Some(attack::FOREIGN_REPLAY_IDLE))
                .then(|| attack::plan_idle(w, &mut rng, plan.home, login));
            let mut person = agents::person(w, plan, &mut rng, login, idle.map(|i| i.blackout));
            let outcome = plan.attack.and_then(|kind| {
                attack::run(w, plan, kind, &mut rng, &mut person, idle)
                    .map(|outcome| (kind, outcome))
            });
            let behaviours = person.behaviours();
            (person.b, behaviours, outcome)
        }
    };
    // Attackers' requests were appended after the owner's: order by time, owner first on ties.
    b.requests.sort_by_key(|r| r.time);
    let label = SessionLabel {
        session: u64::from(plan.session),
        user: plan.user.clone(),
        sid: b.sid.clone(),
        tokens: b
            .tokens
            .iter()
            .map(|t| fingerprinter.fingerprint(t.raw.as_bytes()).to_hex())
            .collect(),
        label: if outcome.is_some() {
            "attack"
        } else {
            "benign"
        }
        .to_owned(),
        attack_type: outcome
            .as_ref()
            .map(|(kind, _)| ATTACK_TYPES[*kind].to_owned()),
        attack_start: outcome.as_ref().map(|(_, o)| EventTime(o.start)),
        attacker_ips: outcome.map(|(_, o)| o.ips).unwrap_or_default(),
        behaviours,
    };
    let out = SessionOut {
        session: u64::from(plan.session),
        tokens: b.tokens.into_iter().map(|t| t.raw).collect(),
        uas: b.uas,
        credential: b.credential,
        requests: b.requests,
    };
    (label, out)
}

/// A generated simulation: compact requests in log order, labels and tokens. Lines are
/// rendered on demand ([`Generated::for_each_chunk`], [`Generated::line`]), so a large run
/// never holds every line in memory.
pub struct Generated {
    sessions: Vec<SessionOut>,
    /// (session, index in session), in log order.
    order: Vec<(u32, u32)>,
    labels: Vec<SessionLabel>,
}

/// Generate a simulation (pure; parallel across sessions, deterministic).
pub fn generate(spec: &SimSpec, keys: &SimKeys) -> Generated {
    let start = spec.start.0;
    let w = World {
        spec,
        keys,
        start,
        end: start + spec.duration_s.max(1) as i64 * 1000,
        lifetime_s: spec.token_lifetime_s(),
    };
    let fingerprinter = Fingerprinter::new(&keys.pepper);
    let plans = plan_sessions(spec);
    let (mut labels, sessions): (Vec<SessionLabel>, Vec<SessionOut>) = plans
        .par_iter()
        .map(|plan| generate_session(&w, plan, &fingerprinter))
        .unzip();
    keep_roaming_only_when_seen_abroad(&mut labels);
    let mut keyed: Vec<(i64, u32, u32)> = sessions
        .iter()
        .enumerate()
        .flat_map(|(s, out)| {
            out.requests
                .iter()
                .enumerate()
                .map(move |(i, r)| (r.time, s as u32, i as u32))
        })
        .collect();
    keyed.par_sort_unstable();
    Generated {
        sessions,
        order: keyed.into_iter().map(|(_, s, i)| (s, i)).collect(),
        labels,
    }
}

/// Home-routed roaming shows only against the user being seen abroad: a session keeps
/// `roaming_home_routed` when one of the user's sessions (their sessions are consecutive)
/// shows `real_travel`, i.e. requests from the destination.
fn keep_roaming_only_when_seen_abroad(labels: &mut [SessionLabel]) {
    let roaming = BEHAVIOURS[agents::ROAMING_HOME_ROUTED];
    let travel = BEHAVIOURS[agents::REAL_TRAVEL];
    for group in labels.chunk_by_mut(|a, b| a.user == b.user) {
        let abroad = group
            .iter()
            .any(|l| l.behaviours.iter().any(|b| b == travel));
        if !abroad {
            for l in group.iter_mut() {
                l.behaviours.retain(|b| b != roaming);
            }
        }
    }
}

/// Lines rendered per parallel chunk.
const RENDER_CHUNK: usize = 16_384;

impl Generated {
    /// Number of requests (lines).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// No requests at all.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Ground truth per session, in session order.
    pub fn labels(&self) -> &[SessionLabel] {
        &self.labels
    }

    fn request(&self, i: usize) -> (&SessionOut, &Request) {
        let (s, r) = self.order[i];
        let session = &self.sessions[s as usize];
        (session, &session.requests[r as usize])
    }

    /// Line `i` of the log (without newline).
    pub fn line(&self, i: usize) -> String {
        let mut out = String::with_capacity(512);
        self.render_into(&mut out, i);
        out
    }

    fn render_into(&self, out: &mut String, i: usize) {
        let (session, request) = self.request(i);
        let texts = render::SessionTexts {
            tokens: &session.tokens,
            uas: &session.uas,
            credential: session.credential,
        };
        render::render(out, request, &texts);
    }

    /// Ground truth per line: whether line `i` is an attacker's request.
    pub fn is_attacker(&self, i: usize) -> bool {
        self.request(i).1.attacker
    }

    /// The session (index into [`Generated::labels`]) line `i` belongs to.
    pub fn session_of(&self, i: usize) -> usize {
        self.order[i].0 as usize
    }

    /// Event time of line `i`.
    pub fn time(&self, i: usize) -> EventTime {
        EventTime(self.request(i).1.time)
    }

    /// Client address of line `i`.
    pub fn client_ip(&self, i: usize) -> IpAddr {
        self.request(i).1.ip
    }

    /// Every token issued, in session order.
    pub fn tokens(&self) -> Vec<SimToken> {
        self.sessions
            .iter()
            .flat_map(|s| {
                let stolen: HashSet<u32> = s
                    .requests
                    .iter()
                    .filter(|r| r.attacker)
                    .map(|r| r.token)
                    .collect();
                s.tokens.iter().enumerate().map(move |(i, t)| SimToken {
                    session: s.session,
                    token: RawToken::new(t.clone()),
                    attacked: stolen.contains(&(i as u32)),
                })
            })
            .collect()
    }

    /// Hand every line to `sink` in log order, as newline-terminated chunks rendered in
    /// parallel (a few chunks at a time, so memory stays bounded).
    pub fn for_each_chunk<E>(&self, mut sink: impl FnMut(&str) -> Result<(), E>) -> Result<(), E> {
        let group = RENDER_CHUNK * rayon::current_num_threads().max(1) * 2;
        for first in (0..self.len()).step_by(group) {
            let last = (first + group).min(self.len());
            let chunks: Vec<String> = (first..last)
                .step_by(RENDER_CHUNK)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|from| {
                    let to = (from + RENDER_CHUNK).min(last);
                    let mut out = String::with_capacity((to - from) * 512);
                    for i in from..to {
                        self.render_into(&mut out, i);
                        out.push('\n');
                    }
                    out
                })
                .collect();
            for chunk in &chunks {
                sink(chunk)?;
            }
        }
        Ok(())
    }

    /// Every line, rendered in parallel.
    pub fn lines(&self) -> Vec<String> {
        (0..self.len())
            .into_par_iter()
            .map(|i| self.line(i))
            .collect()
    }

    /// Render everything.
    pub fn into_simulation(self) -> Simulation {
        Simulation {
            lines: self.lines(),
            tokens: self.tokens(),
            labels: self.labels,
        }
    }
}

/// The config for replaying a simulation on the synthetic databases: written next to the
/// generated files. It allowlists the corporate VPN, as its operator would.
pub fn config_toml(keys: &SimKeys, city_db: &str, asn_db: &str, journal: Option<&str>) -> String {
    config_toml_allowing(
        keys,
        city_db,
        asn_db,
        journal,
        &world::corporate_vpn_networks(),
        &[],
    )
}

/// The corporate VPN's egress cities (for [`AddressPlan::corporate_vpn_networks`]).
pub fn corporate_vpn_egress_cities() -> Vec<usize> {
    (0..CITIES.len())
        .map(catalog::vpn_egress_for)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// [`config_toml`] with the networks to allowlist (`detect.allow_cidrs`) and the privacy
/// relay's egress ranges (`detect.relay_cidrs`, what an operator takes from the relay's
/// published list) given.
pub fn config_toml_allowing(
    keys: &SimKeys,
    city_db: &str,
    asn_db: &str,
    journal: Option<&str>,
    allow_cidrs: &[IpNet],
    relay_cidrs: &[IpNet],
) -> String {
    let journal = journal
        .map(|j| format!("journal = {j:?}\n"))
        .unwrap_or_default();
    let quoted = |nets: &[IpNet]| {
        nets.iter()
            .map(|n| format!("{:?}", n.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (allow, relay_cidrs) = (quoted(allow_cidrs), quoted(relay_cidrs));
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
# What an operator following DESIGN §5 allowlists: the company's own VPN egress and the
# in-flight satellite ASN ({satellite}), whose addresses say nothing about where the user
# is; and the private relay ({relay}, or its published egress ranges), which keeps its
# users' region (coarse travel only).
allow_cidrs = [{allow}]
allow_asns = [{satellite}]
relay_asns = [{relay}]
relay_cidrs = [{relay_cidrs}]

[denylist]
{journal}"#,
        pepper = keys.pepper,
        issuer = keys.issuer,
        audience = keys.audience,
        kid = keys.kid,
        secret = keys.jwt_secret,
        satellite = world::SATELLITE_ASN,
        relay = world::RELAY_ASN,
    )
}

#[cfg(test)]
mod tests;
