//! Fuzzes configuration parsing and validation: `Config::parse` on arbitrary text (lossy
//! UTF-8), then `Config::validate` with a fixed environment, then building the log parser
//! from a valid configuration as `check-config` does. Seeds: `fuzz/corpus/config/` (the
//! shipped `config/default.toml` and small variations).
//!
//! Asserts, besides "no panic":
//! - errors are a non-empty list of non-empty messages;
//! - after parsing, every configured path is absolute (relative ones resolved against the
//!   config file's folder) and none is empty;
//! - a configuration that validates has a pepper of at least 16 bytes, API keys of at least
//!   16 bytes when set, and every number in its documented domain (thresholds within [0, 1],
//!   the flag threshold not above the revoke threshold, distances and speeds finite and not
//!   negative, the speed positive);
//! - building the parser from a valid configuration gives a parser or an error, never a panic.

#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use tokenwatch::config::{Config, ConfigErrors};
use tokenwatch::parse::Parser;

const BASE_DIR: &str = "/etc/tokenwatch";

const ENV: [(&str, &str); 4] = [
    ("TOKENWATCH_PEPPER", "pepper-from-env-0123456789"),
    ("TOKENWATCH_ADMIN_KEY", "admin-key-0123456789"),
    ("TOKENWATCH_INGEST_KEY", "ingest-key-0123456789"),
    ("TOKENWATCH_JWT_SECRET", "jwt-secret-0123456789"),
];

fn check_errors(errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "an error without a message");
    for message in &errors.0 {
        assert!(!message.trim().is_empty(), "an empty error message");
    }
}

fn paths(config: &Config) -> Vec<&PathBuf> {
    let mut paths = vec![
        &config.input.path,
        &config.geoip.city_db,
        &config.geoip.asn_db,
        &config.detect.model,
        &config.denylist.journal,
    ];
    for key in &config.tokens.jwt.keys {
        paths.push(&key.public_key_pem);
        paths.push(&key.jwks_file);
    }
    paths.into_iter().flatten().collect()
}

fn check_valid(config: &Config) {
    let d = &config.detect;
    for (name, value) in [
        ("threshold", d.threshold),
        ("flag_threshold", d.flag_threshold),
    ] {
        assert!((0.0..=1.0).contains(&value), "detect.{name} = {value}");
    }
    assert!(d.flag_threshold <= d.threshold);
    for (name, value) in [
        ("detect.max_speed_kmh", d.max_speed_kmh),
        ("detect.min_travel_km", d.min_travel_km),
        ("detect.hard_travel_km", d.hard_travel_km),
        (
            "geoip.default_accuracy_km",
            config.geoip.default_accuracy_km,
        ),
    ] {
        assert!(
            value.is_finite() && value >= 0.0,
            "{name} = {value} validated"
        );
    }
    assert!(d.max_speed_kmh > 0.0, "detect.max_speed_kmh = 0 validated");
    assert!(config.input.max_line_bytes >= 256);
    let _ = Parser::new(
        config.input.format,
        &config.input.fields,
        &config.tokens.session_cookie,
        config.input.max_line_bytes,
    );
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let config = match Config::parse(&text, Path::new(BASE_DIR)) {
        Ok(config) => config,
        Err(errors) => return check_errors(&errors),
    };
    for path in paths(&config) {
        assert!(path.is_absolute(), "relative path {path:?} left unresolved");
        assert!(!path.as_os_str().is_empty(), "empty path kept");
    }
    match config.validate(&ENV) {
        Ok(secrets) => {
            assert!(secrets.pepper.len() >= 16, "short pepper validated");
            for key in [&secrets.admin_key, &secrets.ingest_key]
                .into_iter()
                .flatten()
            {
                assert!(key.len() >= 16, "short API key validated");
            }
            check_valid(&config);
        }
        Err(errors) => check_errors(&errors),
    }
});
