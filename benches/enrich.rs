//! Criterion bench for the enrich stage: one `Enricher::enrich` call per iteration.
//!
//! Uses the synthetic GeoIP2-schema City and ASN databases (`world::write_databases`), with
//! addresses spread over every city and network kind so look-ups do not all hit one record.
//! If `TOKENWATCH_DBIP_CITY` points at a DB-IP Lite city file (`scripts/fetch-dbip.sh`), the
//! same look-up is measured on that real 6-million-network database too.
//!
//! `cargo bench --bench enrich`

// `criterion_group!` expands to an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use tokenwatch::config::GeoIpConfig;
use tokenwatch::enrich::Enricher;
use tokenwatch::lab::world::find_addresses;
use tokenwatch::lab::world::{self, CITIES, NetKind};

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const SAFARI_IOS: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (city_db, asn_db) = (dir.path().join("city.mmdb"), dir.path().join("asn.mmdb"));
    world::write_databases(&city_db, &asn_db).expect("write synthetic databases");
    let enricher = Enricher::from_config(&GeoIpConfig {
        city_db: Some(city_db),
        asn_db: Some(asn_db),
        ..GeoIpConfig::default()
    })
    .expect("open synthetic databases");

    let addresses: Vec<IpAddr> = (0..1024u32)
        .map(|n| {
            let city = (n as usize * 7) % CITIES.len();
            let kind = NetKind::ALL[n as usize % NetKind::ALL.len()];
            if n % 4 == 0 {
                world::address_v6(city, kind, n)
            } else {
                world::address(city, kind, n)
            }
        })
        .collect();
    let user_agents = [CHROME, SAFARI_IOS, "curl/8.5.0", "python-requests/2.31.0"];

    let mut group = c.benchmark_group("enrich");
    let mut i = 0usize;
    group.bench_function("public_city_asn_ua", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            let ip = addresses[i % addresses.len()];
            black_box(enricher.enrich(ip, Some(user_agents[i % user_agents.len()])))
        })
    });
    group.bench_function("public_city_asn_no_ua", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            black_box(enricher.enrich(addresses[i % addresses.len()], None))
        })
    });
    let private: IpAddr = "10.1.2.3".parse().expect("ip");
    group.bench_function("private_classify_only", |b| {
        b.iter(|| black_box(enricher.enrich(black_box(private), None)))
    });
    // Every UA new: woothee's full parse plus a cache insert (the cache clears when full).
    let empty = Enricher::empty();
    let mut n = 0u64;
    group.bench_function("user_agent_uncached", |b| {
        b.iter(|| {
            n += 1;
            let ua = format!("{CHROME} build/{n}");
            black_box(empty.enrich(private, Some(&ua)))
        })
    });

    if let Some(dbip) = std::env::var_os("TOKENWATCH_DBIP_CITY").filter(|p| !p.is_empty()) {
        let dbip = std::path::PathBuf::from(dbip);
        let enricher = Enricher::from_config(&GeoIpConfig {
            city_db: Some(dbip.clone()),
            ..GeoIpConfig::default()
        })
        .expect("open DB-IP");
        let mut real: Vec<IpAddr> = Vec::new();
        for (city, cc) in [("Berlin", "DE"), ("Sao Paulo", "BR"), ("London", "GB")] {
            real.extend(find_addresses(&dbip, city, cc, 100).expect("walk DB-IP"));
        }
        group.bench_function("dbip_city_ua", |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(enricher.enrich(real[i % real.len()], Some(CHROME)))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
