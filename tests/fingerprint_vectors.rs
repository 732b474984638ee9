//! The canonical token fingerprint (DESIGN §4) agrees across languages: the shared vectors in
//! `tests/vectors/fingerprint.json` are checked against the Rust implementation, and against
//! the Python and JavaScript references exactly as the README prints them (the code blocks are
//! read out of README.md, so the README cannot drift from what is tested).
//!
//! python3 and node are on every machine this project builds on; under `CI` a missing
//! interpreter fails the test rather than skipping it, so a green CI run proves all three ran.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use tokenwatch::credential::Canonical;
use tokenwatch::identify::Fingerprinter;

#[derive(Deserialize)]
struct Vectors {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    pepper: String,
    token: Option<String>,
    token_hex: Option<String>,
    canonical: String,
    fingerprint: String,
}

impl Vector {
    fn token_bytes(&self) -> Vec<u8> {
        match (&self.token, &self.token_hex) {
            (Some(text), None) => text.as_bytes().to_vec(),
            (None, Some(hex)) => hex::decode(hex).expect("token_hex is hex"),
            _ => panic!("{}: exactly one of token and token_hex", self.name),
        }
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(root().join("tests/vectors/fingerprint.json"))
        .expect("tests/vectors/fingerprint.json");
    let vectors: Vectors = serde_json::from_str(&text).expect("vectors parse");
    assert!(vectors.vectors.len() >= 20, "the vectors file lost entries");
    vectors.vectors
}

#[test]
fn rust_matches_the_shared_vectors() {
    for vector in vectors() {
        let bytes = vector.token_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let canonical = Canonical::of(&text);
        assert_eq!(
            String::from_utf8_lossy(canonical.message()),
            vector.canonical,
            "{}: canonical form",
            vector.name
        );
        let fingerprint = Fingerprinter::new(&vector.pepper).fingerprint(&bytes);
        assert_eq!(fingerprint.to_hex(), vector.fingerprint, "{}", vector.name);
    }
}

#[test]
fn re_encodings_of_one_token_share_a_fingerprint_and_distinct_tokens_do_not() {
    let vectors = vectors();
    let of = |name: &str| {
        vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("vector {name:?}"))
            .fingerprint
            .clone()
    };
    let jwt = of("JWT as issued");
    for variant in [
        "JWT, '==' padding appended to the signature",
        "JWT, standard base64 alphabet with padding",
        "JWT, another signature over the same header and payload",
        "JWT with percent-encoded dots",
        "JWT in a quoted cookie value",
    ] {
        assert_eq!(of(variant), jwt, "{variant}");
    }
    let opaque = of("opaque session id");
    assert_eq!(of("opaque, percent-encoded"), opaque);
    assert_eq!(of("opaque, quoted and padded with whitespace"), opaque);
    assert_ne!(of("three parts, header without alg: opaque"), jwt);
    assert_ne!(of("JWT, non-ASCII pepper"), jwt);
}

/// The fenced code block that follows `<!-- fingerprint-reference:{lang} -->` in README.md.
fn readme_block(lang: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let marker = format!("<!-- fingerprint-reference:{lang} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let fence_start = after.find("```").expect("a code block after the marker");
    let body = &after[fence_start..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    let end = body.find("\n```").expect("closing fence");
    body[..end].to_owned()
}

/// `name` if it runs here. Under `CI` a missing interpreter fails the test instead.
fn interpreter(name: &'static str) -> Option<&'static str> {
    let found = Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(name);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing; CI must run the {name} reference (scripts/install-deps.sh)"
    );
    eprintln!("SKIP: {name} not installed; the {name} reference was not checked");
    None
}

/// Run `program` on a script: the README's reference plus a harness that checks every vector.
fn run_reference(program: &str, script: &Path) {
    let vectors_file = root().join("tests/vectors/fingerprint.json");
    let output = Command::new(program)
        .arg(script)
        .arg(&vectors_file)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{program} reference failed:\n{stdout}\n{stderr}"
    );
    let checked: usize = stdout
        .trim()
        .strip_prefix("checked ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{program} printed {stdout:?}"));
    assert_eq!(checked, vectors().len(), "{program} checked every vector");
}

#[test]
fn the_readme_python_reference_matches_the_vectors() {
    let Some(python) = interpreter("python3") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("reference.py");
    let harness = r#"
import json, sys
vectors = json.load(open(sys.argv[1], encoding="utf-8"))["vectors"]
for v in vectors:
    token = v["token"] if "token" in v else bytes.fromhex(v["token_hex"]).decode("utf-8", "replace")
    assert canonical(token).decode("utf-8") == v["canonical"], (v["name"], canonical(token))
    assert fingerprint(v["pepper"], token) == v["fingerprint"], v["name"]
print("checked", len(vectors))
"#;
    std::fs::write(&script, format!("{}\n{harness}", readme_block("python"))).expect("write");
    run_reference(python, &script);
}

#[test]
fn the_readme_javascript_reference_matches_the_vectors() {
    let Some(node) = interpreter("node") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("reference.js");
    let harness = r#"
const vectors = JSON.parse(require("fs").readFileSync(process.argv[2], "utf8")).vectors;
for (const v of vectors) {
  const token = "token" in v ? v.token : new TextDecoder().decode(Buffer.from(v.token_hex, "hex"));
  const got = canonical(token).toString("utf8");
  if (got !== v.canonical) throw new Error(`${v.name}: canonical ${got}`);
  if (fingerprint(v.pepper, token) !== v.fingerprint) throw new Error(`${v.name}: fingerprint`);
}
console.log("checked", vectors.length);
"#;
    std::fs::write(
        &script,
        format!("{}\n{harness}", readme_block("javascript")),
    )
    .expect("write");
    run_reference(node, &script);
}
