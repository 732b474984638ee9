//! `tokenwatch demo`: simulate, detect, revoke and serve the API — see it work in a minute.
//!
//! Writes a synthetic world (GeoIP databases, keys, config) into a temporary folder, plays ten
//! minutes of simulated users with stolen-token attacks through the real pipeline at `--speed`,
//! prints each revocation with its explanation, then asks its own API over real HTTP what the
//! auth middleware would be told. Everything it uses is built by `app`; this module only plays,
//! prints and checks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::api::ReadyFlag;

/// The shipped model (`models/session-risk.json`), embedded for the demo.
const SHIPPED_MODEL: &str = include_str!("../../models/session-risk.json");

use crate::app::{Services, build_stages, shutdown_signal};
use crate::config::Config;
use crate::event::RawLine;
use crate::identify::Fingerprinter;
use crate::lab::simulate::write_support;
use crate::pipeline::{Pipeline, Totals};
use crate::publish::Publisher;

/// `tokenwatch demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// API listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// RNG seed of the simulated traffic.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Users in the simulation.
    #[arg(long, default_value_t = 300)]
    pub users: usize,
    /// Playback speed: simulated seconds per wall second.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
    /// Exit after the demo instead of serving the API until Ctrl-C.
    #[arg(long)]
    pub no_serve: bool,
}

/// `tokenwatch demo`.
pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo_async(args))
}

async fn demo_async(args: DemoArgs) -> anyhow::Result<()> {
    use crate::lab::simulate::{SimKeys, SimSpec, generate};
    anyhow::ensure!(args.speed > 0.0, "--speed must be positive");
    let dir = tempfile::Builder::new()
        .prefix("tokenwatch-demo-")
        .tempdir()?;
    let keys = SimKeys::from_seed(args.seed);
    let files = write_support(
        dir.path(),
        &keys,
        Some(&dir.path().join("denylist.journal")),
    )?;
    let admin_key = random_key();
    let (mut config, mut secrets) = Config::load(&files.config, &crate::config::ProcessEnv)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    config.api.listen = args.listen;
    secrets.admin_key = Some(admin_key.clone());
    // The shipped model travels inside the binary, so the demo scores with it from anywhere.
    let model = dir.path().join("session-risk.json");
    std::fs::write(&model, SHIPPED_MODEL)?;
    config.detect.model = Some(model);

    let duration_s = 10 * 60;
    let now_ms = crate::denylist::wall_clock_ms();
    let spec = SimSpec {
        attack_fraction: 0.04,
        ..SimSpec::new(
            args.seed,
            crate::event::EventTime(now_ms - duration_s as i64 * 1000),
            duration_s,
            args.users,
        )
    };
    let generated = generate(&spec, &keys);
    let times: Vec<i64> = (0..generated.len()).map(|i| generated.time(i).0).collect();
    let sim = generated.into_simulation();
    let attacked = sim
        .labels
        .iter()
        .filter(|l| l.attack_type.is_some())
        .count();
    println!(
        "tokenwatch demo: {} users, {} requests over the last {} minutes; an attacker replays {} stolen tokens.\n\
         Playing it back at {}x through parse → identify → enrich → track → score → decide → denylist.\n",
        sim.labels.len(),
        sim.lines.len(),
        duration_s / 60,
        attacked,
        args.speed
    );

    let stages = build_stages(&config, &secrets)?;
    let tracker = stages.tracker.clone();
    let services = Services::start(&config, &secrets, Some(tracker), None).await?;
    services.readiness.mark_ready(ReadyFlag::Geoip);
    services.readiness.mark_ready(ReadyFlag::Model);
    let mut pipeline = Pipeline::new(stages, services.metrics.clone());
    let mut publisher = Publisher::live(services.denylist.clone(), services.metrics.clone());

    // Pace by event time: each wall-clock tick releases the next slice of simulated time.
    let started = Instant::now();
    let tick = Duration::from_millis(100);
    let slice_ms = (tick.as_secs_f64() * args.speed * 1000.0) as i64;
    let mut next = 0;
    let mut slice_end = spec.start.0;
    let mut revocations = Vec::new();
    let mut step_ups = Vec::new();
    while next < sim.lines.len() {
        slice_end += slice_ms.max(1);
        let end = next + times[next..].iter().take_while(|t| **t < slice_end).count();
        if end > next {
            let batch: Vec<RawLine> = sim.lines[next..end]
                .iter()
                .map(|l| RawLine {
                    source: crate::event::SourceKind::Simulator,
                    bytes: l.as_bytes().to_vec(),
                    truncated: false,
                })
                .collect();
            next = end;
            let decided = Instant::now();
            let (decisions, returned) = tokio::task::spawn_blocking(move || {
                let d = pipeline.process_batch(&batch);
                (d, pipeline)
            })
            .await?;
            pipeline = returned;
            for d in publisher.publish(decisions, decided)? {
                match d.action {
                    crate::event::Action::Revoke => {
                        println!("{}", explain(&d));
                        revocations.push(d);
                    }
                    crate::event::Action::StepUp => {
                        println!("{}", explain(&d));
                        step_ups.push(d);
                    }
                    crate::event::Action::Flag => {}
                }
            }
        }
        tokio::time::sleep(tick).await;
    }

    println!(
        "{}",
        demo_report(
            &sim.labels,
            &revocations,
            &step_ups,
            pipeline.totals(),
            started.elapsed()
        )
    );
    self_check(
        &services,
        &sim.tokens,
        &revocations,
        &keys.pepper,
        &admin_key,
    )
    .await?;

    if args.no_serve {
        services.shutdown().await?;
        return Ok(());
    }
    println!(
        "\nServing until Ctrl-C. Metrics: http://{}/metrics",
        services.api_addr
    );
    shutdown_signal().await;
    services.shutdown().await
}

fn random_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..24)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// One revocation, explained for a person.
pub fn explain(d: &crate::event::Decision) -> String {
    use std::fmt::Write as _;
    let who = d
        .sub
        .as_deref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    let header = match d.action {
        crate::event::Action::StepUp => "STEP-UP",
        _ => "REVOKED",
    };
    let mut out = format!(
        "{header}  {}{}  score {:.2}  at {}\n",
        d.key,
        who,
        d.score,
        &d.event_time.to_rfc3339()[11..19]
    );
    let place = |p: &crate::event::GeoPoint| match &p.city {
        Some(city) => format!("{city}, {}", p.country.as_deref().unwrap_or("?")),
        // Carrier and other regional ranges have no city: say how vague the location is.
        None => format!(
            "somewhere in {} (±{:.0} km)",
            p.country.as_deref().unwrap_or("?"),
            p.radius_km
        ),
    };
    for reason in &d.reasons {
        let e = &d.evidence;
        let detail = match reason {
            crate::event::Reason::ImpossibleTravel | crate::event::Reason::ConcurrentUse => {
                e.travel.as_ref().map(|t| {
                    format!(
                        "{} → {}: at least {:.0} km in {} ({:.0} km/h)",
                        place(&t.from),
                        place(&t.to),
                        t.distance_km,
                        humantime::format_duration(Duration::from_secs(t.elapsed_s as u64)),
                        t.speed_kmh
                    )
                })
            }
            crate::event::Reason::RateAnomaly => e.rate.map(|r| {
                format!(
                    "{:.0} requests/min against a baseline of {:.1}",
                    r.per_minute, r.baseline_per_minute
                )
            }),
            crate::event::Reason::UserAgentChange => {
                e.user_agent.as_ref().map(|(a, b)| format!("{a} → {b}"))
            }
            crate::event::Reason::OsChange => e.os.as_ref().map(|(a, b)| format!("{a} → {b}")),
            crate::event::Reason::AsnChange => {
                e.asn.as_ref().map(|(a, b)| format!("AS{a} → AS{b}"))
            }
            crate::event::Reason::CountryChange => {
                e.country.as_ref().map(|(a, b)| format!("{a} → {b}"))
            }
            _ => None,
        };
        let _ = writeln!(
            out,
            "         {}{}",
            reason.code(),
            detail.map(|d| format!(": {d}")).unwrap_or_default()
        );
    }
    out
}

/// Detection results against the simulation's ground truth: a session counts as revoked
/// when any of its tokens was, as stepped up when one was challenged and none revoked.
fn demo_report(
    labels: &[crate::lab::labels::SessionLabel],
    revocations: &[crate::event::Decision],
    step_ups: &[crate::event::Decision],
    totals: &Totals,
    elapsed: Duration,
) -> String {
    let hex = |ds: &[crate::event::Decision]| -> std::collections::HashSet<String> {
        ds.iter().map(|d| d.fingerprint.to_hex()).collect()
    };
    let (revoked, stepped_up) = (hex(revocations), hex(step_ups));
    // (sessions, revoked, stepped up and not revoked)
    let mut by_type: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut benign = (0usize, 0usize, 0usize);
    for label in labels {
        let revoke = label.tokens.iter().any(|t| revoked.contains(t));
        let step_up = !revoke && label.tokens.iter().any(|t| stepped_up.contains(t));
        let row = match &label.attack_type {
            Some(t) => by_type.entry(t).or_default(),
            None => &mut benign,
        };
        row.0 += 1;
        row.1 += usize::from(revoke);
        row.2 += usize::from(step_up);
    }
    let mut out = format!(
        "\n{} requests processed in {:.1} s ({} parse errors, {} rejected tokens).\n\n  {:<34} {:>9} {:>9} {:>11}\n",
        totals.lines,
        elapsed.as_secs_f64(),
        totals.parse_error_count(),
        totals.rejected_count(),
        "sessions",
        "total",
        "revoked",
        "stepped up"
    );
    for (t, (n, revoke, step_up)) in by_type {
        out += &format!(
            "  {:<34} {:>9} {:>9} {:>11}\n",
            format!("attack: {t}"),
            n,
            revoke,
            step_up
        );
    }
    out += &format!(
        "  {:<34} {:>9} {:>9} {:>11}\n",
        "benign", benign.0, benign.1, benign.2
    );
    out += "  (a step-up asks the user to authenticate again; a thief cannot, so it stops the token)\n";
    out
}

/// Ask our own API, over real HTTP, what the middleware would be told.
async fn self_check(
    services: &Services,
    tokens: &[crate::lab::simulate::SimToken],
    revocations: &[crate::event::Decision],
    pepper: &str,
    admin_key: &str,
) -> anyhow::Result<()> {
    let addr = services.api_addr;
    let fingerprinter = Fingerprinter::new(pepper);
    let revoked: std::collections::HashSet<_> = revocations.iter().map(|d| d.fingerprint).collect();
    let stolen = tokens
        .iter()
        .find(|t| revoked.contains(&fingerprinter.fingerprint(t.token.expose().as_bytes())));
    // A token of a session no attacker touched and that was not (falsely) revoked: what
    // every other user sees.
    let attacked: std::collections::HashSet<u64> = tokens
        .iter()
        .filter(|t| t.attacked)
        .map(|t| t.session)
        .collect();
    let honest = tokens.iter().find(|t| {
        !attacked.contains(&t.session)
            && !revoked.contains(&fingerprinter.fingerprint(t.token.expose().as_bytes()))
    });
    println!("\nWhat auth middleware is told at GET http://{addr}/v1/check (real HTTP requests):");
    for (what, token) in [
        ("a stolen token", stolen),
        ("an honest user's token", honest),
    ] {
        if let Some(t) = token {
            let bearer = format!("Bearer {}", t.token.expose());
            let status =
                http_status(addr, "GET", "/v1/check", &[("Authorization", &bearer)]).await?;
            println!("  {what:<24} → {status}");
        }
    }
    let example = revocations
        .first()
        .map(|d| d.fingerprint.to_hex())
        .unwrap_or_else(|| "<fingerprint>".into());
    println!(
        "\nTry it yourself (the admin key was generated for this demo run):\n  \
         curl -s -X POST http://{addr}/v1/check -H 'Content-Type: application/json' -d '{{\"fingerprint\":\"{example}\"}}'\n  \
         curl -s -H 'Authorization: Bearer {admin_key}' http://{addr}/v1/sessions/{example}\n  \
         curl -s -X DELETE -H 'Authorization: Bearer {admin_key}' 'http://{addr}/v1/revocations/fp:{example}?allowlist=true'\n  \
         curl -s http://{addr}/metrics | grep -E '^tokenwatch_(revocations|detections)_total'\n\
         Or with the on-call CLI (in another terminal):\n  \
         export TOKENWATCH_URL=http://{addr} TOKENWATCH_ADMIN_KEY={admin_key}\n  \
         cargo run --release -- revocations list\n  \
         cargo run --release -- sessions show {example}"
    );
    Ok(())
}

/// Minimal HTTP/1.1 request over TCP; returns the status line's code and reason.
async fn http_status(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request += &format!("{k}: {v}\r\n");
    }
    request += "\r\n";
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("HTTP/1.1 ")
        .to_string())
}
