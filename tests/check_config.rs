//! `tokenwatch check-config` as a user runs it (issue 17): every problem in one run with its
//! key path (schema errors included), folders that must exist, GeoIP databases of the wrong
//! kind; and the shipped `config/default.toml`, copied elsewhere with the README's `export`
//! block as its only environment, passes.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn check_config(config: &Path, env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(["check-config", "--config"])
        .arg(config)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn replace_in_config(f: &Fixture, from: &str, to: &str) {
    let config = std::fs::read_to_string(&f.config).unwrap();
    assert!(config.contains(from), "{from} not in the config");
    std::fs::write(&f.config, config.replace(from, to)).unwrap();
}

#[test]
fn every_problem_is_reported_in_one_run_with_its_key() {
    let f = Fixture::new(
        r#"
[detect]
treshold = 0.9
flag_threshold = 2.0

[api]
max_connections = "many"

[denylist]
journal = "missing-folder/deny.journal"
"#,
    );
    let output = check_config(&f.config, &[]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    for expected in [
        "detect.treshold: unknown field `treshold`",
        "api.max_connections: invalid type",
        "detect.flag_threshold: must be within [0, 1]",
        "denylist.journal: its folder",
    ] {
        assert!(report.contains(expected), "{expected:?} missing:\n{report}");
    }
    // flag_threshold = 2.0 is also above detect.threshold: five in all.
    assert!(report.contains("5 problem(s)"), "{report}");
}

#[test]
fn an_asn_database_given_as_city_db_is_an_error() {
    let f = Fixture::new("");
    assert!(check_config(&f.config, &[]).status.success());
    replace_in_config(&f, "city_db = \"city.mmdb\"", "city_db = \"asn.mmdb\"");
    let output = check_config(&f.config, &[]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("geoip.city_db:") && report.contains("\"GeoLite2-ASN\""),
        "{report}"
    );
    // And the other way round.
    replace_in_config(&f, "city_db = \"asn.mmdb\"", "city_db = \"city.mmdb\"");
    replace_in_config(&f, "asn_db = \"asn.mmdb\"", "asn_db = \"city.mmdb\"");
    let report = text(&check_config(&f.config, &[]));
    assert!(
        report.contains("geoip.asn_db:") && report.contains("\"GeoIP2-City\""),
        "{report}"
    );
}

#[test]
fn missing_journal_and_audit_folders_fail_until_they_are_created() {
    // `run` creates neither (opening the journal or the audit file fails), so check-config
    // must not pass them.
    let f = Fixture::new(
        "[denylist]\njournal = \"state/deny.journal\"\n\n\
         [audit]\noutput = \"file\"\npath = \"logs/audit.jsonl\"\n",
    );
    let output = check_config(&f.config, &[]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("denylist.journal: its folder"), "{report}");
    assert!(report.contains("audit.path: its folder"), "{report}");
    assert!(report.contains("2 problem(s)"), "{report}");
    std::fs::create_dir(f.path("state")).unwrap();
    std::fs::create_dir(f.path("logs")).unwrap();
    let output = check_config(&f.config, &[]);
    assert!(output.status.success(), "{}", text(&output));
}

/// The variables `export`ed in README.md's "Run it on your own logs" section.
fn readme_exports() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Run it on your own logs")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

/// A PEM public key (EC P-256, ES256 is among the default config's algorithms) generated
/// now: what `keys/jwt-2026-11.pub.pem` would hold.
fn public_key_pem() -> String {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
    use base64::Engine;
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n")
}

#[test]
fn the_default_config_copied_elsewhere_passes_with_the_readmes_exports() {
    let exports = readme_exports();
    assert!(
        exports.len() >= 3 && exports.iter().all(|v| v.starts_with("TOKENWATCH_")),
        "{exports:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .unwrap();
    // What README step 2 tells the reader to set: the site's own paths. Everything else
    // (model, key names, environment variable names) is the shipped file's.
    let (city, asn) = (dir.path().join("city.mmdb"), dir.path().join("asn.mmdb"));
    tokenwatch::lab::world::write_databases(&city, &asn).unwrap();
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::create_dir_all(dir.path().join("keys")).unwrap();
    std::fs::write(
        dir.path().join("keys/jwt-2026-11.pub.pem"),
        public_key_pem(),
    )
    .unwrap();
    let config_text = [
        ("/var/lib/GeoIP/GeoLite2-City.mmdb", "city.mmdb"),
        (
            "/var/lib/tokenwatch/denylist.journal",
            "state/denylist.journal",
        ),
        ("/var/log/app/access.json", "logs/access.json"),
    ]
    .iter()
    .fold(shipped, |text, (from, to)| {
        assert!(
            text.contains(from),
            "{from} is no longer in config/default.toml"
        );
        text.replace(from, to)
    });
    assert!(
        config_text.contains("mode = \"shadow\""),
        "a new install starts in shadow"
    );
    let config = dir.path().join("tokenwatch.toml");
    std::fs::write(&config, config_text).unwrap();

    let env: Vec<(String, String)> = exports
        .iter()
        .map(|name| (name.clone(), format!("{name}-value-0123456789abcdef")))
        .collect();
    let output = check_config(&config, &env);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("configuration OK"));

    // The reported gap: without TOKENWATCH_JWT_SECRET the copied default config fails.
    assert!(exports.iter().any(|v| v == "TOKENWATCH_JWT_SECRET"));
    let fewer: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k != "TOKENWATCH_JWT_SECRET")
        .cloned()
        .collect();
    let output = check_config(&config, &fewer);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains(
            "tokens.jwt.keys[1].secret_env: environment variable TOKENWATCH_JWT_SECRET is not set"
        ),
        "{report}"
    );
}
