//! Layering: the run-time library never depends on the lab.
//!
//! Reads every `src/**/*.rs` except `src/lab.rs`, `src/lab/**`, `src/main.rs` and `src/lib.rs`
//! (the binary and the crate root gate the lab behind the `lab` feature) and fails on a path
//! into the lab (`crate::lab`, `tokenwatch::lab`, `super::lab`, …) or on a crate that only the
//! lab may use (`linfa`, `plotters`, `mmdb_writer`, …) in non-test code. Test code — a file's
//! `#[cfg(test)]` tail, and files declared under `#[cfg(test)]` — may use the lab's crates that
//! are also dev-dependencies; `cargo test --no-default-features --lib` checks the rest.

use std::fs;
use std::path::{Path, PathBuf};

/// Crates that are optional dependencies enabled by the `lab` feature.
const LAB_ONLY_CRATES: &[&str] = &[
    "linfa",
    "linfa_logistic",
    "linfa_trees",
    "mmdb_writer",
    "ndarray",
    "plotters",
    "rand",
    "rand_chacha",
    "tempfile",
];

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `line` uses the identifier `name` as a path segment (`name::…` or `…::name`).
fn uses_path_segment(line: &str, name: &str) -> bool {
    let bytes = line.as_bytes();
    line.match_indices(name).any(|(at, _)| {
        let end = at + name.len();
        let before_ok = at == 0 || !is_ident_byte(bytes[at - 1]);
        let after_ok = end == bytes.len() || !is_ident_byte(bytes[end]);
        before_ok && after_ok && (line[end..].starts_with("::") || line[..at].ends_with("::"))
    })
}

/// Whether `line` names the crate `name` (`name::…`, not another crate's module
/// `other::name::…`: `aws_lc_rs::rand` is not the `rand` crate).
fn uses_crate(line: &str, name: &str) -> bool {
    let bytes = line.as_bytes();
    line.match_indices(name).any(|(at, _)| {
        let end = at + name.len();
        let before_ok = at == 0 || !is_ident_byte(bytes[at - 1]);
        before_ok && line[end..].starts_with("::") && !line[..at].ends_with("::")
    })
}

/// Problems in one line of non-test run-time code.
fn problems(line: &str) -> Vec<String> {
    let code = line.trim_start();
    if code.starts_with("//") {
        return Vec::new();
    }
    let mut found = Vec::new();
    if uses_path_segment(code, "lab") {
        found.push("path into the lab".to_string());
    }
    for name in LAB_ONLY_CRATES {
        if uses_crate(code, name) || code.starts_with(&format!("extern crate {name}")) {
            found.push(format!("lab-only crate `{name}`"));
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files declared as `#[cfg(test)] mod name;` by `file`.
fn test_only_children(file: &Path, text: &str) -> Vec<PathBuf> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let dir = file.parent().unwrap_or(Path::new(""));
    let module_dir = if stem == "mod" || stem == "lib" {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut children = Vec::new();
    for pair in lines.windows(2) {
        if pair[0].starts_with("#[cfg(test)]")
            && let Some(name) = pair[1]
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
        {
            children.push(module_dir.join(format!("{name}.rs")));
            children.push(module_dir.join(name).join("mod.rs"));
        }
    }
    children
}

/// Every violation in `src` as `path:line: problem`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let exempt = |p: &Path| {
        let rel = p.strip_prefix(src).unwrap_or(p);
        rel == Path::new("lab.rs")
            || rel.starts_with("lab")
            || rel == Path::new("main.rs")
            || rel == Path::new("lib.rs")
    };
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).expect("read source");
            (p, text)
        })
        .collect();
    let test_only: Vec<PathBuf> = texts
        .iter()
        .flat_map(|(p, t)| test_only_children(p, t))
        .collect();
    let mut found = Vec::new();
    for (path, text) in &texts {
        if exempt(path) || test_only.contains(path) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            // Test modules sit at the end of a file: everything from here on is test code.
            if trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(all(test") {
                break;
            }
            for problem in problems(line) {
                found.push(format!(
                    "{}:{}: {problem}: {}",
                    path.display(),
                    n + 1,
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn runtime_modules_do_not_import_the_lab() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "run-time modules must not depend on the lab:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_recognises_lab_imports() {
    for bad in [
        "use crate::lab::world;",
        "use tokenwatch::lab::simulate::Options;",
        "use super::super::lab::labels;",
        "    let w = crate::lab::world::CITIES;",
        "use linfa::prelude::*;",
        "let rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);",
        "use mmdb_writer::Writer;",
        "use {plotters::prelude::*};",
    ] {
        assert!(!problems(bad).is_empty(), "not caught: {bad}");
    }
    for fine in [
        "// the lab's `world::write_databases`",
        "let label = labels.len();",
        "use crate::labeling::x;",
        "let operand::x = 1;",
        "fn grand::f() {}",
        "if aws_lc_rs::rand::fill(&mut bytes).is_err() {",
    ] {
        assert!(problems(fine).is_empty(), "false alarm: {fine}");
    }
}
