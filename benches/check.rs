//! Criterion bench for the check hot path: `Denylist::check` against 100k entries (hits and
//! misses for each key kind), and `GET /v1/check` through the real router with
//! `tower::ServiceExt::oneshot` (fingerprint + unverified claims + look-up + response; no
//! socket). Run: `cargo bench --bench check`.
//!
//! The router numbers include the `identify` stage's fingerprint and claims reader; with its
//! interface stub they measure only this crate's part.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use criterion::{Criterion, criterion_group, criterion_main};
use tower::ServiceExt;

use tokenwatch::api::{ApiState, router};
use tokenwatch::denylist::{
    CheckQuery, DenyKey, Denylist, Entry, EntryAction, Origin, wall_clock_ms,
};
use tokenwatch::event::Fingerprint;
use tokenwatch::identify::Fingerprinter;
use tokenwatch::metrics::Metrics;

const ENTRIES: u32 = 100_000;
const ISS: &str = "https://id.example.com";
const PEPPER: &str = "bench-pepper-not-a-secret-0123456789";

fn fingerprint(i: u32) -> Fingerprint {
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    bytes[4..8].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_le_bytes());
    Fingerprint(bytes)
}

/// 100k entries: 70% fingerprints, 10% each jti, sid, sub.
fn filled_denylist() -> Denylist {
    let denylist = Denylist::open(None).expect("in memory");
    let now = wall_clock_ms();
    let entry = Entry {
        action: EntryAction::Revoke,
        reasons: vec!["impossible_travel".into()],
        origin: Origin::Detector,
        created_at_ms: now,
        expires_at_ms: now + 3_600_000,
        not_before: Some(now / 1000),
        score: Some(0.97),
    };
    let batch: Vec<(DenyKey, Entry)> = (0..ENTRIES)
        .map(|i| {
            let key = match i % 10 {
                0 => DenyKey::Jti {
                    iss: ISS.into(),
                    jti: format!("jti-{i}"),
                },
                1 => DenyKey::Sid {
                    iss: ISS.into(),
                    sid: format!("sid-{i}"),
                },
                2 => DenyKey::Sub {
                    iss: ISS.into(),
                    sub: format!("user-{i}"),
                },
                _ => DenyKey::Fingerprint(fingerprint(i)),
            };
            (key, entry.clone())
        })
        .collect();
    denylist.revoke_many(batch).expect("fill");
    denylist
}

fn denylist_check(c: &mut Criterion) {
    let denylist = filled_denylist();
    let now = wall_clock_ms();
    let fp_hit = CheckQuery {
        fingerprint: Some(fingerprint(5)),
        ..CheckQuery::default()
    };
    let fp_miss = CheckQuery {
        fingerprint: Some(fingerprint(ENTRIES + 5)),
        ..CheckQuery::default()
    };
    let jwt = |jti: &str, sid: &str, sub: &str| CheckQuery {
        fingerprint: Some(fingerprint(ENTRIES + 7)),
        iss: Some(ISS.into()),
        jti: Some(jti.into()),
        sid: Some(sid.into()),
        sub: Some(sub.into()),
        iat: Some(now / 1000 - 60),
    };
    let jwt_miss = jwt("jti-x", "sid-x", "user-x");
    let sub_hit = jwt("jti-x", "sid-x", "user-12");

    let mut group = c.benchmark_group("denylist_check_100k");
    group.bench_function("fp_hit", |b| {
        b.iter(|| denylist.check(black_box(&fp_hit), now))
    });
    group.bench_function("fp_miss", |b| {
        b.iter(|| denylist.check(black_box(&fp_miss), now))
    });
    group.bench_function("jwt_miss_all_four_keys", |b| {
        b.iter(|| denylist.check(black_box(&jwt_miss), now))
    });
    group.bench_function("jwt_sub_hit", |b| {
        b.iter(|| denylist.check(black_box(&sub_hit), now))
    });
    group.finish();
}

fn test_jwt(claims: &str) -> String {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    // Signature bytes are irrelevant: the check reads claims without verifying them.
    format!(
        "{}.{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.as_bytes()),
        b64(&[7u8; 32])
    )
}

fn router_check(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fingerprinter = Fingerprinter::new(PEPPER);
    let denylist = Arc::new(filled_denylist());
    let revoked_token = "opaque-session-token-revoked-0001";
    let now = wall_clock_ms();
    denylist
        .revoke(
            DenyKey::Fingerprint(fingerprinter.fingerprint(revoked_token.as_bytes())),
            Entry {
                action: EntryAction::Revoke,
                reasons: vec!["admin".into()],
                origin: Origin::Admin,
                created_at_ms: now,
                expires_at_ms: now + 3_600_000,
                not_before: None,
                score: None,
            },
        )
        .expect("revoke");
    let state = ApiState::new(denylist, Arc::new(Metrics::new()), fingerprinter);
    let app = router(Arc::new(state));
    let jwt = test_jwt(&format!(
        r#"{{"iss":"{ISS}","sub":"user-x","jti":"jti-x","sid":"sid-x","iat":{},"exp":{}}}"#,
        now / 1000,
        now / 1000 + 900
    ));
    let cases = [
        (
            "opaque_allow",
            "opaque-session-token-clean-00001".to_string(),
            StatusCode::OK,
        ),
        (
            "opaque_revoked",
            revoked_token.to_string(),
            StatusCode::UNAUTHORIZED,
        ),
        ("jwt_allow", jwt, StatusCode::OK),
    ];

    let mut group = c.benchmark_group("get_v1_check_router");
    for (name, token, expected) in cases {
        let authorization = format!("Bearer {token}");
        let request = || {
            Request::get("/v1/check")
                .header(header::AUTHORIZATION, &authorization)
                .body(Body::empty())
                .expect("request")
        };
        let status = runtime
            .block_on(app.clone().oneshot(request()))
            .expect("infallible")
            .status();
        assert_eq!(status, expected, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                runtime
                    .block_on(app.clone().oneshot(black_box(request())))
                    .expect("infallible")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = denylist_check, router_check
}
criterion_main!(benches);
