//! Criterion bench for the stateful detection stages: `track` → `score` → `decide` per event.
//!
//! The stream is synthetic but shaped like production traffic: 20,000 sessions over one hour
//! of event time (a quarter of them JWTs of 8,000 users, the rest opaque cookies), each with a
//! home city and accuracy radius, phones hopping between Wi-Fi and carrier ASNs, browsers at a
//! few requests a minute with page-load bursts, and 1 % of sessions stolen (impossible travel,
//! a new browser with a request burst, or a script on a browser session). Events are processed
//! as the pipeline does: batches of 2,048 observed, scored in one call, then decided and
//! recorded in order, with `evict_idle` once per batch.
//!
//! Run: `cargo bench --bench detect` (throughput is reported as events/s).

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use tokenwatch::config::{Config, DetectConfig};
use tokenwatch::decide::Policy;
use tokenwatch::event::{
    AccessEvent, Action, AddressClass, Claims, Credential, Decision, Enrichment, EventTime,
    Fingerprint, GeoPoint, IdentifiedEvent, Identity, TokenKind, UserAgentInfo,
};
use tokenwatch::pipeline::detect_event;
use tokenwatch::score::RuleScorer;
use tokenwatch::track::SessionTracker;

const SESSIONS: usize = 20_000;
const USERS: usize = 8_000;
const STREAM_SECONDS: i64 = 3_600;
const BATCH: usize = 2_048;
const T0: i64 = 1_795_453_200;

const CITIES: [(&str, &str, f64, f64); 12] = [
    ("Berlin", "DE", 52.52, 13.405),
    ("Munich", "DE", 48.137, 11.575),
    ("London", "GB", 51.507, -0.128),
    ("Paris", "FR", 48.857, 2.352),
    ("Madrid", "ES", 40.417, -3.704),
    ("New York", "US", 40.713, -74.006),
    ("Chicago", "US", 41.878, -87.630),
    ("São Paulo", "BR", -23.55, -46.633),
    ("Tokyo", "JP", 35.676, 139.650),
    ("Sydney", "AU", -33.869, 151.209),
    ("Mumbai", "IN", 19.076, 72.878),
    ("Lagos", "NG", 6.524, 3.379),
];

struct Fixtures {
    cities: Vec<GeoPoint>,
    browsers: Vec<UserAgentInfo>,
    script: UserAgentInfo,
}

fn fixtures() -> Fixtures {
    let cities = CITIES
        .iter()
        .map(|(city, country, lat, lon)| GeoPoint {
            city: Some(Arc::from(*city)),
            country: Some(Arc::from(*country)),
            lat: *lat,
            lon: *lon,
            radius_km: 20.0,
        })
        .collect();
    let ua = |family: &str, os: &str, scripted: bool| {
        UserAgentInfo::new(Arc::from(family), Arc::from(os), scripted)
    };
    Fixtures {
        cities,
        browsers: vec![
            ua("Chrome", "Windows 10", false),
            ua("Firefox", "Linux", false),
            ua("Safari", "Mac OSX", false),
            ua("Chrome Mobile", "Android", false),
            ua("Safari", "iPhone", false),
        ],
        script: ua("python-requests", "unknown", true),
    }
}

struct SessionPlan {
    fingerprint: Fingerprint,
    claims: Option<Arc<Claims>>,
    home: usize,
    browser: usize,
    ip: IpAddr,
    asn: u32,
    mobile: bool,
    /// Mean seconds between requests.
    gap_s: f64,
    start_s: i64,
    theft: Option<u8>,
}

/// The events in time order, and the fingerprints of the stolen sessions.
fn stream(seed: u64) -> (Vec<IdentifiedEvent>, HashSet<Fingerprint>) {
    let fx = fixtures();
    let mut rng = SmallRng::seed_from_u64(seed);
    let plans: Vec<SessionPlan> = (0..SESSIONS)
        .map(|i| {
            let mut fp = [0u8; 16];
            rng.fill(&mut fp);
            let user = rng.random_range(0..USERS);
            let claims = (i % 4 == 0).then(|| {
                Arc::new(Claims {
                    iss: Some("https://id.example.com".into()),
                    sub: Some(format!("user-{user}")),
                    jti: Some(format!("jti-{i}")),
                    sid: Some(format!("sid-{i}")),
                    exp: Some(T0 + STREAM_SECONDS + 600),
                    iat: Some(T0 - 600),
                    nbf: None,
                })
            });
            SessionPlan {
                fingerprint: Fingerprint(fp),
                claims,
                // A user's tokens live where the user does.
                home: if i % 4 == 0 {
                    user % fx.cities.len()
                } else {
                    rng.random_range(0..fx.cities.len())
                },
                browser: rng.random_range(0..fx.browsers.len()),
                ip: IpAddr::V4(Ipv4Addr::from(rng.random::<u32>() | 0x0100_0000)),
                asn: rng.random_range(1_000..60_000),
                mobile: rng.random_bool(0.3),
                gap_s: rng.random_range(10.0..150.0),
                start_s: rng.random_range(0..STREAM_SECONDS / 2),
                theft: rng.random_bool(0.01).then(|| rng.random_range(0..3u8)),
            }
        })
        .collect();

    let mut events = Vec::new();
    for plan in &plans {
        let mut t = plan.start_s as f64;
        let mut k = 0u32;
        while t < STREAM_SECONDS as f64 {
            let stolen = plan.theft.filter(|_| t > plan.start_s as f64 + 900.0);
            let on_carrier = plan.mobile && k % 7 >= 4;
            let mut geo = fx.cities[plan.home].clone();
            let mut ip = plan.ip;
            let mut asn = plan.asn;
            let mut ua = fx.browsers[plan.browser].clone();
            if on_carrier {
                geo.radius_km = 100.0;
                asn += 1;
                ip = IpAddr::V4(Ipv4Addr::from(
                    u32::from(match plan.ip {
                        IpAddr::V4(v4) => v4,
                        IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
                    }) ^ 0xff,
                ));
            }
            match stolen {
                Some(0) if k.is_multiple_of(3) => {
                    geo = fx.cities[(plan.home + 6) % fx.cities.len()].clone();
                    asn = 9_999;
                }
                Some(1) => ua = fx.browsers[(plan.browser + 1) % fx.browsers.len()].clone(),
                Some(2) => ua = fx.script.clone(),
                _ => {}
            }
            events.push(IdentifiedEvent {
                seq: 0,
                event: AccessEvent {
                    time: EventTime(T0 * 1000 + (t * 1000.0) as i64),
                    client_ip: ip,
                    method: Some("GET".into()),
                    path: Some("/api/items".into()),
                    status: Some(200),
                    user_agent: None,
                    credentials: vec![Credential::Fingerprint(plan.fingerprint)],
                },
                identity: Identity {
                    fingerprint: plan.fingerprint,
                    kind: if plan.claims.is_some() {
                        TokenKind::Jwt
                    } else {
                        TokenKind::Opaque
                    },
                    claims: plan.claims.clone(),
                },
                enrichment: Enrichment {
                    geo: Some(geo),
                    asn: Some(asn),
                    address_class: Some(AddressClass::Public),
                    user_agent: Some(ua),
                    ..Enrichment::default()
                },
            });
            // Page loads: a burst of requests, then a pause; thieves hammer.
            let burst = k % 10 < 3;
            t += match stolen {
                Some(1) | Some(2) => 1.0,
                _ if burst => rng.random_range(0.05..0.5),
                _ => rng.random_range(0.2..2.0) * plan.gap_s,
            };
            k += 1;
        }
    }
    events.sort_by_key(|e| e.event.time);
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64;
    }
    let stolen = plans
        .iter()
        .filter(|p| p.theft.is_some())
        .map(|p| p.fingerprint)
        .collect();
    (events, stolen)
}

struct Stages {
    tracker: SessionTracker,
    scorer: RuleScorer,
    policy: Policy,
}

fn stages(detect: &DetectConfig) -> Stages {
    let tokens = Config::parse(
        "[tokens]\npepper = \"bench-pepper-0123456789\"\n",
        std::path::Path::new("."),
    )
    .expect("config")
    .tokens;
    Stages {
        tracker: SessionTracker::new(detect),
        scorer: RuleScorer::new(detect),
        policy: Policy::new(detect, &tokens),
    }
}

/// The pipeline's per-batch sequence (each event tracked, scored, decided and recorded before
/// the next); returns the decisions.
fn run(stages: &Stages, events: &[&IdentifiedEvent]) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for batch in events.chunks(BATCH) {
        for event in batch {
            let (_, _, decision) =
                detect_event(&stages.tracker, &stages.scorer, &stages.policy, event);
            decisions.extend(decision);
        }
        if let Some(last) = batch.last() {
            stages.tracker.evict_idle(last.event.time);
        }
    }
    decisions
}

fn bench_detect(c: &mut Criterion) {
    let (events, stolen) = stream(7);
    let all: Vec<&IdentifiedEvent> = events.iter().collect();
    let detect = DetectConfig::default();
    {
        // What the stream looks like, and a sanity check that the rules find the thefts and
        // leave the owners alone.
        let s = stages(&detect);
        let decisions = run(&s, &all);
        let count = |action: Action, theft: bool| {
            decisions
                .iter()
                .filter(|d| d.action == action && stolen.contains(&d.fingerprint) == theft)
                .count()
        };
        eprintln!(
            "stream: {} events, {} sessions ({} stolen), ~{} B/session; revoked {} stolen + {} \
             clean, flagged {} stolen + {} clean",
            events.len(),
            s.tracker.len(),
            stolen.len(),
            s.tracker.approx_bytes() / s.tracker.len().max(1),
            count(Action::Revoke, true),
            count(Action::Revoke, false),
            count(Action::Flag, true),
            count(Action::Flag, false),
        );
        // A clean token of a user whose other token was stolen is collateral of concurrent
        // use (the rule cannot tell which of the two tokens is the thief's).
        let robbed: HashSet<&str> = events
            .iter()
            .filter(|e| stolen.contains(&e.identity.fingerprint))
            .filter_map(|e| e.identity.claims.as_ref()?.sub.as_deref())
            .collect();
        let mut by_reason = std::collections::BTreeMap::new();
        for d in decisions
            .iter()
            .filter(|d| !stolen.contains(&d.fingerprint))
        {
            let robbed_user = d.sub.as_deref().is_some_and(|s| robbed.contains(s));
            *by_reason
                .entry((d.action.label(), d.reasons.clone(), robbed_user))
                .or_insert(0) += 1;
        }
        eprintln!("clean-token decisions (action, reasons, user was robbed): {by_reason:?}");
    }

    let mut group = c.benchmark_group("detect");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("one_worker", |b| {
        b.iter_batched(
            || stages(&detect),
            |s| black_box(run(&s, &all).len()),
            BatchSize::LargeInput,
        )
    });

    // Pipeline layout: events routed to workers by fingerprint, each in order, one shared
    // tracker (DashMap) as in the daemon.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut shards: Vec<Vec<&IdentifiedEvent>> = vec![Vec::new(); workers];
    for e in &events {
        shards[(e.identity.fingerprint.shard_hash() % workers as u64) as usize].push(e);
    }
    group.bench_function(format!("{workers}_workers"), |b| {
        b.iter_batched(
            || stages(&detect),
            |s| {
                std::thread::scope(|scope| {
                    let handles: Vec<_> = shards
                        .iter()
                        .map(|shard| {
                            let s = &s;
                            scope.spawn(move || run(s, shard).len())
                        })
                        .collect();
                    black_box(
                        handles
                            .into_iter()
                            .map(|h| h.join().unwrap_or(0))
                            .sum::<usize>(),
                    )
                })
            },
            BatchSize::LargeInput,
        )
    });

    // Under memory pressure: capacity a tenth of the live sessions, so most new sessions
    // evict one.
    let tight = DetectConfig {
        max_sessions: SESSIONS / 10,
        ..DetectConfig::default()
    };
    group.bench_function("one_worker_evicting", |b| {
        b.iter_batched(
            || stages(&tight),
            |s| black_box(run(&s, &all).len()),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_detect);
criterion_main!(benches);
