//! The files of `tokenwatch simulate`: the access log, its labels, the GeoIP databases, a
//! config that replays it and the world's parameters (`world.json`), written from plain
//! [`Options`].
//!
//! Where it sits: the simulator's I/O edge. [`write_files`] runs [`generate`] and writes what
//! it returns; `train` calls it per seed with [`Options`] built in code, the binary converts
//! its `simulate` arguments (clap, `src/main.rs`) into the same struct, and `demo` writes only
//! the support files ([`write_support`]). The rest of the simulator does no I/O.
//!
//! What it does NOT do: parse command lines (the binary does), or choose defaults other than
//! those of [`Options::default`], which are also the command's defaults.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::{SimKeys, SimSpec, WorldParams, generate};
use crate::event::EventTime;
use crate::lab::world::{self, AddressIndex, AddressPlan};

/// What to simulate and where to write it (the options of `tokenwatch simulate`).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Access log to write (JSON lines). The GeoIP databases, labels and a config to replay
    /// it are written beside it.
    pub out: PathBuf,
    /// Labels file (default: `labels.jsonl` beside `out`).
    pub labels: Option<PathBuf>,
    /// RNG seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Approximate number of events (sets the number of users, measured on a pilot run);
    /// overrides `users` when set.
    pub events: Option<u64>,
    /// Number of users.
    pub users: usize,
    /// Simulated span (at least a minute is simulated).
    pub duration: Duration,
    /// First event time. The simulation must end by now.
    pub start: EventTime,
    /// Fraction of people's sessions an attacker uses, within [0, 1].
    pub attack_fraction: f64,
    /// JWT refresh interval (at least a minute).
    pub refresh: Duration,
    /// A real City database to draw client addresses from; without it, the synthetic
    /// databases of [`world`] are written beside `out`.
    pub geoip: Option<PathBuf>,
    /// ip-location-db's `asn-ipv4.csv` (needs `geoip`): real ASNs, organisations and network
    /// kinds for the indexed networks; without it the overlay's ASNs are synthetic.
    pub asn_csv: Option<PathBuf>,
    /// Draw the world's behaviour parameters from this seed ([`WorldParams::draw`]; its JWT
    /// refresh interval replaces `refresh`); without it, the nominal world.
    pub world_seed: Option<u64>,
}

impl Options {
    /// Default first event time, 2026-11-23T12:00:00Z: fixed, so runs are reproducible.
    pub const DEFAULT_START: EventTime = EventTime(1_795_435_200_000);
}

impl Default for Options {
    fn default() -> Self {
        Options {
            out: PathBuf::from("access.jsonl"),
            labels: None,
            seed: 1,
            events: None,
            users: 2000,
            duration: Duration::from_secs(24 * 3600),
            start: Options::DEFAULT_START,
            attack_fraction: SimSpec::DEFAULT_ATTACK_FRACTION,
            refresh: Duration::from_secs(15 * 60),
            geoip: None,
            asn_csv: None,
            world_seed: None,
        }
    }
}

/// Files written next to a simulated access log.
#[derive(Debug, Clone)]
pub struct SimFiles {
    /// City database.
    pub city_db: PathBuf,
    /// ASN database.
    pub asn_db: PathBuf,
    /// Config that replays the simulation.
    pub config: PathBuf,
}

/// Write the synthetic GeoIP databases and a replay config for `keys` into `dir`.
pub fn write_support(
    dir: &Path,
    keys: &SimKeys,
    journal: Option<&Path>,
) -> anyhow::Result<SimFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = SimFiles {
        city_db: dir.join("geo-city.mmdb"),
        asn_db: dir.join("geo-asn.mmdb"),
        config: dir.join("tokenwatch.toml"),
    };
    world::write_databases(&files.city_db, &files.asn_db).context("writing GeoIP databases")?;
    let journal = journal.map(|j| j.display().to_string());
    let text = super::config_toml(keys, "geo-city.mmdb", "geo-asn.mmdb", journal.as_deref());
    std::fs::write(&files.config, text)
        .with_context(|| format!("cannot write {}", files.config.display()))?;
    Ok(files)
}

/// Write `world.json`: the world's name (what `evaluate` labels the world with: `world-<N>`,
/// or `nominal seed <S>`, with ` seed <S>` also when the traffic seed differs from the world
/// seed, so two logs never share a name by accident), its seed, the traffic seed and every
/// parameter.
fn write_world(path: &Path, options: &Options, params: &WorldParams) -> anyhow::Result<()> {
    let seed = options.seed;
    let name = match options.world_seed {
        Some(world) if world == seed => format!("world-{world}"),
        Some(world) => format!("world-{world} seed {seed}"),
        None => format!("nominal seed {seed}"),
    };
    let world = serde_json::json!({
        "name": name,
        "world_seed": options.world_seed,
        "seed": options.seed,
        "params": params,
    });
    let text = serde_json::to_string_pretty(&world)? + "\n";
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Simulate per `options` and write the log, the labels, the GeoIP databases and the replay
/// config; a summary goes to stderr.
pub fn write_files(options: &Options) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&options.attack_fraction),
        "--attack-fraction must be within [0, 1]"
    );
    let refresh_s = options.refresh.as_secs();
    anyhow::ensure!(refresh_s >= 60, "--refresh must be at least 1m");
    let dir = options
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keys = SimKeys::from_seed(options.seed);

    anyhow::ensure!(
        options.asn_csv.is_none() || options.geoip.is_some(),
        "--asn-csv needs --geoip (the ASN table classifies the City database's networks)"
    );
    // Addresses: a real City database indexed by city, or the synthetic plan.
    let (addresses, files) = match &options.geoip {
        Some(city_db) => {
            let started = Instant::now();
            let index = AddressIndex::build(city_db, options.asn_csv.as_deref())
                .with_context(|| format!("--geoip {}", city_db.display()))?;
            if let Some(kinds) = index.kind_summary() {
                eprintln!("{kinds}");
            }
            eprintln!(
                "indexed {}: {} networks walked, {} kept, {} of {} cities found ({:.1} s)",
                city_db.display(),
                index.networks_walked(),
                index.networks_kept(),
                index.cities_found(),
                world::CITIES.len(),
                started.elapsed().as_secs_f64()
            );
            let files = SimFiles {
                city_db: std::fs::canonicalize(city_db)
                    .with_context(|| format!("--geoip {}", city_db.display()))?,
                asn_db: dir.join("geo-asn.mmdb"),
                config: dir.join("tokenwatch.toml"),
            };
            // ASNs for the real networks: a small overlay (the real file has none to give).
            index
                .write_asn_db(&files.asn_db)
                .context("writing the ASN overlay database")?;
            let plan = AddressPlan::Indexed(Arc::new(index));
            let allow = plan.corporate_vpn_networks(&super::corporate_vpn_egress_cities());
            let relays = plan.relay_networks();
            let text = super::config_toml_allowing(
                &keys,
                &files.city_db.display().to_string(),
                "geo-asn.mmdb",
                None,
                &allow,
                &relays,
            );
            std::fs::write(&files.config, text)
                .with_context(|| format!("cannot write {}", files.config.display()))?;
            (plan, files)
        }
        None => (AddressPlan::Synthetic, write_support(dir, &keys, None)?),
    };
    let start = options.start;
    let duration = humantime::format_duration(options.duration);
    let mut spec = SimSpec::new(
        options.seed,
        start,
        options.duration.as_secs().max(60),
        options.users,
    );
    // A log from the future would be rejected (`input.max_future_skew`): traffic ends by now.
    let end_ms = spec.start.0 + spec.duration_s as i64 * 1000;
    if end_ms > crate::denylist::wall_clock_ms() {
        anyhow::bail!(
            "--start {} + --duration {duration} ends in the future ({}); tokenwatch rejects \
             records from the future, so simulated traffic must end by now",
            start.to_rfc3339(),
            EventTime(end_ms).to_rfc3339()
        );
    }
    spec.attack_fraction = options.attack_fraction;
    spec.refresh_s = refresh_s;
    spec.addresses = addresses;
    if let Some(world_seed) = options.world_seed {
        spec = spec.with_params(WorldParams::draw(world_seed));
    }
    write_world(&dir.join("world.json"), options, &spec.params)?;
    if let Some(events) = options.events {
        spec.users = spec.users_for_events(events);
    }

    let started = Instant::now();
    let sim = generate(&spec, &keys);
    let generated = started.elapsed();
    let mut out = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&options.out)
            .with_context(|| format!("cannot create {}", options.out.display()))?,
    );
    sim.for_each_chunk(|chunk| out.write_all(chunk.as_bytes()))?;
    out.flush()?;
    let labels_path = options
        .labels
        .clone()
        .unwrap_or_else(|| dir.join("labels.jsonl"));
    let mut labels = std::io::BufWriter::new(
        std::fs::File::create(&labels_path)
            .with_context(|| format!("cannot create {}", labels_path.display()))?,
    );
    for label in sim.labels() {
        serde_json::to_writer(&mut labels, label)?;
        labels.write_all(b"\n")?;
    }
    labels.flush()?;
    let total = started.elapsed();

    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    let mut by_behaviour: BTreeMap<&str, usize> = BTreeMap::new();
    for label in sim.labels() {
        if let Some(t) = &label.attack_type {
            *by_type.entry(t).or_default() += 1;
        }
        for b in &label.behaviours {
            *by_behaviour.entry(b).or_default() += 1;
        }
    }
    let list = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    eprintln!(
        "simulated {} events, {} users, {} sessions ({} attacked) in {:.2} s ({:.0} events/s generated, {:.0} events/s with writing)\n  attacks     {}\n  behaviours  {}\n  log     {}\n  labels  {}\n  geoip   {} {}\n  config  {}\nreplay it: tokenwatch replay {} --config {}",
        sim.len(),
        spec.users,
        sim.labels().len(),
        by_type.values().sum::<usize>(),
        total.as_secs_f64(),
        sim.len() as f64 / generated.as_secs_f64().max(1e-9),
        sim.len() as f64 / total.as_secs_f64().max(1e-9),
        list(&by_type),
        list(&by_behaviour),
        options.out.display(),
        labels_path.display(),
        files.city_db.display(),
        files.asn_db.display(),
        files.config.display(),
        options.out.display(),
        files.config.display(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_start_is_the_documented_time() {
        assert_eq!(
            EventTime::parse_rfc3339("2026-11-23T12:00:00Z"),
            Some(Options::DEFAULT_START)
        );
    }
}
