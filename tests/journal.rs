//! The denylist journal as operators meet it, through the real binary: one process per
//! journal, a damaged journal that refuses to start until `journal-repair`, and a full disk (a
//! small tmpfs in a mount namespace of its own) that makes the journal unwritable — revocations
//! refused, `/readyz` failing, the metric showing it — without taking the check API down, at
//! runtime and at startup, recovering once space is freed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn fixture(journal: &str) -> Fixture {
    Fixture::new(&format!(
        "[denylist]\njournal = \"{journal}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n"
    ))
}

/// Run the binary with `args` and the config; it must exit within 30 s.
fn run_to_exit(f: &Fixture, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
        .args(args)
        .arg("--config")
        .arg(&f.config)
        .env("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "tokenwatch {args:?} still running after 30 s: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

async fn readyz(client: &reqwest::Client, d: &Daemon) -> (u16, String) {
    let r = client.get(d.url("/readyz")).send().await.expect("readyz");
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_ready(client: &reqwest::Client, d: &Daemon, ready: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if (readyz(client, d).await.0 == 200) == ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never became {}:\n{}",
            if ready { "200" } else { "503" },
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn check(client: &reqwest::Client, d: &Daemon, token: &str) -> u16 {
    client
        .get(d.url("/v1/check"))
        .bearer_auth(token)
        .send()
        .await
        .expect("check")
        .status()
        .as_u16()
}

async fn revoke(client: &reqwest::Client, d: &Daemon, token: &str) -> u16 {
    client
        .post(d.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[("token", token), ("token_type_hint", "access_token")])
        .send()
        .await
        .expect("revoke")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_second_instance_on_the_same_journal_exits_naming_the_first_ones_pid() {
    let f = fixture("deny.journal");
    let client = reqwest::Client::new();
    let first = Daemon::start(&f);
    wait_ready(&client, &first, true).await;

    let second = run_to_exit(&f, &["run"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "second instance started: {stderr}"
    );
    assert!(
        stderr.contains(&format!("pid {}", first.child.id())),
        "names the holder: {stderr}"
    );
    assert!(stderr.contains("deny.journal.lock"), "{stderr}");

    // The first keeps working, and what it acknowledged survives its restart.
    let stolen = f.jwt("ivan", now_secs());
    assert_eq!(revoke(&client, &first, &stolen).await, 200);
    assert_eq!(check(&client, &first, &stolen).await, 401);
    drop(first);
    let again = Daemon::start(&f);
    wait_ready(&client, &again, true).await;
    assert_eq!(check(&client, &again, &stolen).await, 401);
}

#[tokio::test]
async fn a_damaged_journal_refuses_to_start_and_journal_repair_fixes_it() {
    let f = fixture("deny.journal");
    let client = reqwest::Client::new();
    let lost = f.jwt("judy", now_secs());
    let kept = f.jwt("karl", now_secs());
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon, true).await;
    assert_eq!(revoke(&client, &daemon, &lost).await, 200);
    assert_eq!(revoke(&client, &daemon, &kept).await, 200);
    drop(daemon);

    // One byte flipped inside the first revocation's key (line 2, after the header).
    let journal = f.path("deny.journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    let line2 = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    let key = line2 + find(&bytes[line2..], b"\"fp:").unwrap() + 4;
    bytes[key] = if bytes[key] == b'0' { b'1' } else { b'0' };
    std::fs::write(&journal, &bytes).unwrap();

    let refused = run_to_exit(&f, &["run"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "started on a damaged journal: {stderr}"
    );
    assert!(
        stderr.contains(&format!("is damaged at line 2 (byte offset {line2})")),
        "{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    assert!(
        stderr.contains("tokenwatch journal-repair --config"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "left untouched");

    let repaired = run_to_exit(&f, &["journal-repair"]);
    let stdout = String::from_utf8_lossy(&repaired.stdout);
    assert!(
        repaired.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&repaired.stderr)
    );
    assert!(
        stdout.contains("kept:     1 records with valid checksums"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped:  1 lines"), "{stdout}");
    assert!(stdout.contains("line 2 at byte offset"), "{stdout}");
    let copies: Vec<PathBuf> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("deny.journal.damaged-")
        })
        .collect();
    assert_eq!(copies.len(), 1, "{stdout}");
    assert_eq!(
        std::fs::read(&copies[0]).unwrap(),
        bytes,
        "the damaged file, kept"
    );

    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon, true).await;
    assert_eq!(check(&client, &daemon, &kept).await, 401, "salvaged");
    assert_eq!(
        check(&client, &daemon, &lost).await,
        200,
        "its record was dropped"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small tmpfs mounted on `mount_point` in a mount namespace of its own, kept alive by a
/// holder process; daemons join it through `nsenter`, the test reaches its files through
/// `/proc/<holder>/root`. `None` where this sandbox cannot do it (not root, no unshare).
struct SmallDisk {
    holder: Child,
    mount_point: PathBuf,
}

impl SmallDisk {
    fn mount(mount_point: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(mount_point).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size},mode=0700 tmpfs '{}' && echo mounted && exec sleep 600",
            mount_point.display()
        );
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let mut line = String::new();
        let read = BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
        if read.is_err() || line.trim() != "mounted" {
            let _ = holder.kill();
            let output = holder.wait_with_output().ok()?;
            eprintln!(
                "SKIPPED: cannot mount a tmpfs in a mount namespace here: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            return None;
        }
        Some(SmallDisk {
            holder,
            mount_point: mount_point.to_path_buf(),
        })
    }

    /// What runs a program inside the namespace.
    fn wrap(&self) -> Vec<String> {
        vec![
            "nsenter".into(),
            "-t".into(),
            self.holder.id().to_string(),
            "-m".into(),
        ]
    }

    /// `name` on the small disk, as the test sees it.
    fn path(&self, name: &str) -> PathBuf {
        let inside = self.mount_point.join(name);
        PathBuf::from(format!("/proc/{}/root", self.holder.id()))
            .join(inside.strip_prefix("/").unwrap())
    }

    /// Fill every free byte with one file.
    fn fill(&self) {
        let mut file = std::fs::File::create(self.path("filler")).unwrap();
        let chunk = vec![0x55u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.flush();
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[tokio::test]
async fn a_full_disk_makes_the_journal_unwritable_not_the_check_api_at_runtime_and_at_start() {
    let f = fixture("state/deny.journal");
    let Some(disk) = SmallDisk::mount(&f.path("state"), "256k") else {
        return;
    };
    let client = reqwest::Client::new();
    let tokens: Vec<String> = (0..200)
        .map(|i| f.jwt(&format!("user-{i}"), now_secs()))
        .collect();

    // Runtime: the disk fills while the daemon runs.
    let daemon = Daemon::start_wrapped(&f, &disk.wrap());
    wait_ready(&client, &daemon, true).await;
    assert_eq!(revoke(&client, &daemon, &tokens[0]).await, 200);
    disk.fill();
    // The journal's last page may still have room: revoke until a write needs a new one.
    let mut refused = None;
    for (i, token) in tokens.iter().enumerate().skip(1) {
        match revoke(&client, &daemon, token).await {
            200 => {}
            500 => {
                refused = Some(i);
                break;
            }
            other => panic!("revoke answered {other}"),
        }
    }
    let refused = refused.expect("a full disk refused a revocation");
    let (status, body) = readyz(&client, &daemon).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("journal"), "{body}");
    let text = metrics_text(&client, &daemon).await;
    assert_eq!(
        metric(&text, "tokenwatch_journal_writable"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "tokenwatch_journal_write_failures_total{op=\"revoke\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // Checks keep answering from memory, the refused revocation included (fail-safe).
    for token in &tokens[..=refused] {
        assert_eq!(check(&client, &daemon, token).await, 401);
    }
    assert_eq!(check(&client, &daemon, &tokens[199]).await, 200);
    assert_eq!(revoke(&client, &daemon, &tokens[refused + 1]).await, 500);

    // Space comes back: maintenance rewrites the journal from memory.
    disk.free();
    wait_ready(&client, &daemon, true).await;
    assert_eq!(
        metric(
            &metrics_text(&client, &daemon).await,
            "tokenwatch_journal_writable"
        ),
        Some(1.0)
    );
    assert!(
        !disk.path("deny.journal.compact-tmp").exists(),
        "no temp file left behind"
    );
    assert_eq!(revoke(&client, &daemon, &tokens[refused + 2]).await, 200);
    drop(daemon);

    // Start on a full disk: the startup rewrite cannot be written, the daemon serves anyway.
    disk.fill();
    let journal_before = std::fs::read(disk.path("deny.journal")).unwrap();
    let daemon = Daemon::start_wrapped(&f, &disk.wrap());
    wait_ready(&client, &daemon, false).await;
    let (_, body) = readyz(&client, &daemon).await;
    assert!(body.contains("journal"), "{body}");
    for token in &tokens[..=refused + 2] {
        assert_eq!(
            check(&client, &daemon, token).await,
            401,
            "every revocation, the refused ones too, was made durable by the recovery"
        );
    }
    assert_eq!(check(&client, &daemon, &tokens[199]).await, 200);
    assert_eq!(revoke(&client, &daemon, &tokens[199]).await, 500);
    assert_eq!(
        check(&client, &daemon, &tokens[199]).await,
        401,
        "held in memory"
    );
    let text = metrics_text(&client, &daemon).await;
    assert_eq!(
        metric(&text, "tokenwatch_journal_writable"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        std::fs::read(disk.path("deny.journal")).unwrap(),
        journal_before,
        "the journal is left whole"
    );
    assert!(
        daemon.log().contains("cannot be written at startup"),
        "{}",
        daemon.log()
    );

    disk.free();
    wait_ready(&client, &daemon, true).await;
    drop(daemon);
    let daemon = Daemon::start_wrapped(&f, &disk.wrap());
    wait_ready(&client, &daemon, true).await;
    assert_eq!(
        check(&client, &daemon, &tokens[199]).await,
        401,
        "refused while read-only, durable after the recovery"
    );
}
