//! The middleware recipes of `deploy/middleware/` as a user runs them: real nginx
//! (`auth_request`) and real Caddy (`forward_auth`) in front of a tiny app, asking a live
//! `tokenwatch run` (the end of the request path: client → proxy → **GET /v1/check** → app).
//!
//! Each proxy runs the committed recipe with only its addresses replaced (and, for the
//! fail-open variant, the one line the recipe says to change), so a broken recipe fails here.
//! For each: a good token reaches the app (body and all), a revoked one — in `Authorization`,
//! a session cookie or `access_token` — gets 401 `invalid_token` and never reaches it, a
//! stepped-up one gets 401 with `insufficient_user_authentication` passed to the client, and
//! with tokenwatch killed the fail-closed recipe answers its documented status (nginx 500,
//! Caddy 502) while the fail-open variant lets the request through.
//!
//! Also (no proxy needed): the check under Envoy ext_authz's `path_prefix`, which calls
//! `/v1/check` + the original path with the original method.
//!
//! Without nginx or Caddy a test prints `SKIP middleware …` and passes; under `CI=true` it
//! fails (`scripts/install-deps.sh` installs both). Every process is killed on drop and every
//! wait is bounded.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::Request;
use common::*;
use reqwest::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use tokenwatch::lab::world::NetKind;

const NGINX_RECIPE: &str = include_str!("../deploy/middleware/nginx.conf");
const CADDY_RECIPE: &str = include_str!("../deploy/middleware/Caddyfile");

/// The recipes' placeholder addresses, replaced by the test's.
const RECIPE_TOKENWATCH: &str = "127.0.0.1:8080";
const RECIPE_APP: &str = "127.0.0.1:3000";

/// The lines each recipe tells the reader to change for fail-open, and what to change them to.
const NGINX_FAIL_OPEN: (&str, &str) = (
    "# error_page 500 = @tokenwatch_down;",
    "error_page 500 = @tokenwatch_down;",
);
const CADDY_FAIL_OPEN: (&str, &str) = (
    "vars tokenwatch_fail_open no",
    "vars tokenwatch_fail_open yes",
);

const DENY_CHALLENGE: &str = r#"Bearer error="invalid_token""#;
const STEP_UP_CHALLENGE: &str = r#"Bearer error="insufficient_user_authentication""#;
const APP_ANSWER: &str = "hello from the app";

// ---------------------------------------------------------------------------------------------
// Tools

/// The proxy's binary, or `None` (after printing why) when it is not installed outside CI.
/// Panics under `CI=true`: a green CI run must prove the proxies ran.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    // nginx lives in /usr/sbin, which a non-root PATH often lacks.
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        let how = format!("{name} is not installed; scripts/install-deps.sh installs it");
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and {how}"
        );
        // Straight to the process's stderr: the harness captures `eprintln!` of a passing
        // test, and a skip must be visible in a green run.
        let _ = writeln!(std::io::stderr(), "SKIP middleware: {how}");
    }
    found
}

/// A port free on 127.0.0.1 right now (the proxy binds it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `recipe` with every `(from, to)` replaced; each `from` must occur (a recipe that no longer
/// has the placeholder would silently keep its own address).
fn render(recipe: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = recipe.to_string();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the recipe no longer contains `{from}`"
        );
        text = text.replace(from, to);
    }
    text
}

/// The recipe's fail-open variant: its one documented line changed, which must occur once.
fn fail_open(recipe: &str, (line, changed): (&str, &str)) -> String {
    assert_eq!(
        recipe.matches(line).count(),
        1,
        "the recipe must have exactly one `{line}`"
    );
    recipe.replace(line, changed)
}

/// A proxy process on `port`, its output in `log`; killed on drop.
struct Proxy {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Proxy {
    fn start(name: &'static str, mut command: Command, port: u16, log: PathBuf) -> Proxy {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut proxy = Proxy {
            name,
            child,
            port,
            log,
        };
        proxy.wait_listening();
        proxy
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{} exited ({status}):\n{}", self.name, self.output());
            }
            assert!(
                Instant::now() < deadline,
                "{} not listening on {} within 15 s:\n{}",
                self.name,
                self.port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx running `recipe` (rendered) as the http context of a minimal main config with every
/// path in `dir` — no root, no system paths.
fn start_nginx(binary: &Path, dir: &Path, recipe: &str, app: &str, tokenwatch: &str) -> Proxy {
    let port = free_port();
    let site = render(
        recipe,
        &[
            (RECIPE_TOKENWATCH, tokenwatch),
            (RECIPE_APP, app),
            ("listen 80;", &format!("listen 127.0.0.1:{port};")),
        ],
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tokenwatch.conf"), site).unwrap();
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
             client_body_temp_path {d}/client_body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             access_log {d}/access.log;\n\
             include {d}/tokenwatch.conf;\n\
         }}\n"
    );
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    // One process (no master): killing it on drop leaves no worker behind, as killing a
    // master with SIGKILL would.
    let mut command = Command::new(binary);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg("stderr")
        .arg("-g")
        .arg(format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log stderr;"
        ));
    Proxy::start("nginx", command, port, dir.join("nginx.out"))
}

/// Caddy running `recipe` (rendered) as its site, with admin and automatic HTTPS off and its
/// storage and home in `dir`.
fn start_caddy(binary: &Path, dir: &Path, recipe: &str, app: &str, tokenwatch: &str) -> Proxy {
    let port = free_port();
    let site = render(
        recipe,
        &[
            (RECIPE_TOKENWATCH, tokenwatch),
            (RECIPE_APP, app),
            ("app.example.com {", &format!("http://127.0.0.1:{port} {{")),
        ],
    );
    std::fs::create_dir_all(dir).unwrap();
    let d = dir.display();
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {{\n\t\troot {d}/data\n\t}}\n}}\n\n{site}"
        ),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"));
    Proxy::start("caddy", command, port, dir.join("caddy.out"))
}

// ---------------------------------------------------------------------------------------------
// The app behind the proxy

/// One request the app received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    authorization: Option<String>,
    body: Bytes,
}

/// What the app received, in order.
#[derive(Clone, Default)]
struct AppLog(Arc<Mutex<Vec<Received>>>);

impl AppLog {
    fn get(&self, path: &str) -> Option<Received> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.path == path)
            .cloned()
    }
}

/// The app: answers every request with [`APP_ANSWER`] and records it. Returns its address.
async fn start_app() -> (String, AppLog) {
    let log = AppLog::default();
    let seen = log.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let seen = seen.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20)
                .await
                .unwrap_or_default();
            seen.0.lock().unwrap().push(Received {
                path: parts.uri.path().to_string(),
                authorization: parts
                    .headers
                    .get(AUTHORIZATION.as_str())
                    .map(|v| v.to_str().unwrap_or("").to_string()),
                body,
            });
            APP_ANSWER
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

/// An app that reads each request and closes the connection without answering (the proxy
/// answers 502). Returns its address and how many requests it read.
fn start_broken_app() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if !head.is_empty() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            // Dropped: closed without an answer.
        }
    });
    (addr, requests)
}

/// The fail-open variant with tokenwatch up and an app that fails: the client gets the
/// proxy's 502 and the app is asked once — its failure is not mistaken for the check's.
async fn assert_app_failure_not_retried(
    client: &reqwest::Client,
    proxy: &Proxy,
    requests: &AtomicUsize,
    tokens: &Tokens,
    observed: &mut Observed,
) {
    let (status, _) = get(client, &proxy.url("/app-fails"), &tokens.good).await;
    observed.note("fail_open_app_fails", status);
    assert_eq!(
        status,
        502,
        "{}: the app's failure:\n{}",
        proxy.name,
        proxy.output()
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "{}: fail-open retried the app's own failure",
        proxy.name
    );
}

// ---------------------------------------------------------------------------------------------
// tokenwatch with one good, one revoked and one stepped-up token

struct Tokens {
    good: String,
    revoked: String,
    stepped_up: String,
}

/// A live `tokenwatch run` following a log: `revoked` revoked through the admin API,
/// `stepped_up` stepped up by detection (a rate jump from a new browser, as in
/// tests/replay.rs), `good` untouched.
async fn tokenwatch_with_decisions(client: &reqwest::Client) -> (Fixture, Daemon, Tokens) {
    let f = daemon_fixture("[detect]\nmode = \"enforce\"\n");
    let log = f.path("access.jsonl");
    follow(&f, &log, "");
    let daemon = Daemon::start(&f);
    wait_ready(client, &daemon).await;

    let tokens = Tokens {
        good: f.jwt("alice", now_secs()),
        revoked: f.jwt("bob", now_secs()),
        stepped_up: f.jwt("carol", recent(-300).secs()),
    };
    let r = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[("token", tokens.revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "revoke");

    // 15 minutes at 5 requests a minute from one browser, then 60 a minute from another.
    let munich = ip("Munich", NetKind::Residential, 11);
    let mut lines = String::new();
    for i in 0..75 {
        let at = recent(-300 + i * 12);
        lines += &line(at, munich, CHROME, &tokens.stepped_up, "/projects");
        lines.push('\n');
    }
    for i in 0..180 {
        let at = recent(600 + i);
        lines += &line(
            at,
            munich,
            FIREFOX_WINDOWS,
            &tokens.stepped_up,
            "/api/export",
        );
        lines.push('\n');
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, challenge) = get(client, &daemon.url("/v1/check"), &tokens.stepped_up).await;
        if status == 401 {
            assert_eq!(challenge.as_deref(), Some(STEP_UP_CHALLENGE));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never stepped up:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (f, daemon, tokens)
}

/// `GET url` with `token` as bearer: status and `WWW-Authenticate`.
async fn get(client: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>) {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    let challenge = r
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), challenge)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Status codes seen per case, printed at the end of a test.
#[derive(Default)]
struct Observed(Vec<String>);

impl Observed {
    fn note(&mut self, case: &str, status: u16) {
        self.0.push(format!("{case}={status}"));
    }

    fn print(&self, proxy: &str) {
        let _ = writeln!(
            std::io::stderr(),
            "middleware {proxy}: {}",
            self.0.join(" ")
        );
    }
}

/// The decisions through `proxy` while tokenwatch is up.
async fn assert_enforced(
    client: &reqwest::Client,
    proxy: &Proxy,
    app: &AppLog,
    tokens: &Tokens,
    observed: &mut Observed,
) {
    let name = proxy.name;

    let r = client
        .get(proxy.url("/good"))
        .bearer_auth(&tokens.good)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    observed.note("good", status);
    assert_eq!(status, 200, "{name}: good token:\n{}", proxy.output());
    assert_eq!(
        r.text().await.unwrap(),
        APP_ANSWER,
        "{name}: not the app's answer"
    );
    let seen = app.get("/good").expect("the good request reached the app");
    assert_eq!(
        seen.authorization,
        Some(format!("Bearer {}", tokens.good)),
        "{name}: the app got the request's Authorization"
    );

    // The check gets no body; the app gets all of it.
    let body = "form=payload&n=1234567890".repeat(40);
    let r = client
        .post(proxy.url("/upload"))
        .bearer_auth(&tokens.good)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    observed.note("good_post", r.status().as_u16());
    assert_eq!(r.status(), 200, "{name}: POST with a good token");
    let seen = app.get("/upload").expect("the POST reached the app");
    assert_eq!(
        seen.body,
        body.as_bytes(),
        "{name}: the app got the whole body"
    );

    let (status, challenge) = get(client, &proxy.url("/revoked"), &tokens.revoked).await;
    observed.note("revoked", status);
    assert_eq!(status, 401, "{name}: revoked bearer token");
    assert_eq!(challenge.as_deref(), Some(DENY_CHALLENGE), "{name}");
    assert!(
        app.get("/revoked").is_none(),
        "{name}: revoked reached the app"
    );

    let r = client
        .get(proxy.url("/revoked-cookie"))
        .header(COOKIE, format!("theme=dark; sid={}", tokens.revoked))
        .send()
        .await
        .unwrap();
    observed.note("revoked_cookie", r.status().as_u16());
    assert_eq!(r.status(), 401, "{name}: revoked session cookie");
    assert!(app.get("/revoked-cookie").is_none(), "{name}");

    let r = client
        .get(proxy.url(&format!("/revoked-query?access_token={}", tokens.revoked)))
        .send()
        .await
        .unwrap();
    observed.note("revoked_query", r.status().as_u16());
    assert_eq!(r.status(), 401, "{name}: revoked access_token in the query");
    assert!(app.get("/revoked-query").is_none(), "{name}");

    let (status, challenge) = get(client, &proxy.url("/stepped-up"), &tokens.stepped_up).await;
    observed.note("step_up", status);
    assert_eq!(status, 401, "{name}: stepped-up token");
    assert_eq!(
        challenge.as_deref(),
        Some(STEP_UP_CHALLENGE),
        "{name}: the step-up challenge reaches the client"
    );
    assert!(app.get("/stepped-up").is_none(), "{name}");
}

/// With tokenwatch gone: the fail-closed proxy answers `closed_status` and keeps the request
/// from the app; the fail-open one lets it through.
async fn assert_down(
    client: &reqwest::Client,
    (closed, closed_status): (&Proxy, u16),
    open: &Proxy,
    app: &AppLog,
    tokens: &Tokens,
    observed: &mut Observed,
) {
    let (status, _) = get(client, &closed.url("/down-closed"), &tokens.good).await;
    observed.note("down_fail_closed", status);
    assert_eq!(
        status,
        closed_status,
        "{}: fail-closed with tokenwatch down:\n{}",
        closed.name,
        closed.output()
    );
    assert!(app.get("/down-closed").is_none(), "{}", closed.name);

    let r = client
        .get(open.url("/down-open"))
        .bearer_auth(&tokens.good)
        .send()
        .await
        .unwrap();
    observed.note("down_fail_open", r.status().as_u16());
    assert_eq!(
        r.status(),
        200,
        "{}: fail-open with tokenwatch down:\n{}",
        open.name,
        open.output()
    );
    assert_eq!(r.text().await.unwrap(), APP_ANSWER);
    assert!(app.get("/down-open").is_some(), "{}", open.name);

    // The price of failing open: nothing is checked, so a revoked token passes too.
    let (status, _) = get(client, &open.url("/down-open-revoked"), &tokens.revoked).await;
    observed.note("down_fail_open_revoked", status);
    assert_eq!(
        status, 200,
        "{}: fail-open lets everything through",
        open.name
    );
}

// ---------------------------------------------------------------------------------------------
// Tests

/// How a proxy is started from a recipe: `(binary, folder, recipe, app, tokenwatch)`.
type StartProxy = fn(&Path, &Path, &str, &str, &str) -> Proxy;

/// One proxy's whole run: the recipe as shipped and its fail-open variant in front of the app
/// and a live tokenwatch; enforced while it is up, then `down_status` (fail-closed) or the
/// app's answer (fail-open) once it is killed.
async fn recipe_enforces_and_fails_as_documented(
    name: &str,
    binary: &Path,
    start: StartProxy,
    recipe: &str,
    fail_open_line: (&str, &str),
    down_status: u16,
) {
    let client = client();
    let (f, daemon, tokens) = tokenwatch_with_decisions(&client).await;
    let (app_addr, app) = start_app().await;
    let open_recipe = fail_open(recipe, fail_open_line);
    let folder = |what: &str| f.path(&format!("{name}-{what}"));

    let closed = start(binary, &folder("closed"), recipe, &app_addr, &daemon.addr);
    let open = start(
        binary,
        &folder("open"),
        &open_recipe,
        &app_addr,
        &daemon.addr,
    );
    let mut observed = Observed::default();
    assert_enforced(&client, &closed, &app, &tokens, &mut observed).await;
    // The fail-open variant enforces the same way while tokenwatch is up.
    let (status, challenge) = get(&client, &open.url("/open-revoked"), &tokens.revoked).await;
    observed.note("fail_open_variant_revoked", status);
    assert_eq!((status, challenge.as_deref()), (401, Some(DENY_CHALLENGE)));

    let (broken_addr, broken_requests) = start_broken_app();
    let open_broken_app = start(
        binary,
        &folder("open-broken-app"),
        &open_recipe,
        &broken_addr,
        &daemon.addr,
    );
    assert_app_failure_not_retried(
        &client,
        &open_broken_app,
        &broken_requests,
        &tokens,
        &mut observed,
    )
    .await;

    drop(daemon);
    assert_down(
        &client,
        (&closed, down_status),
        &open,
        &app,
        &tokens,
        &mut observed,
    )
    .await;
    observed.print(name);
}

#[tokio::test]
async fn nginx_auth_request_recipe_enforces_and_fails_as_documented() {
    let Some(nginx) = tool("nginx") else { return };
    recipe_enforces_and_fails_as_documented(
        "nginx",
        &nginx,
        start_nginx,
        NGINX_RECIPE,
        NGINX_FAIL_OPEN,
        500,
    )
    .await;
}

#[tokio::test]
async fn caddy_forward_auth_recipe_enforces_and_fails_as_documented() {
    let Some(caddy) = tool("caddy") else { return };
    recipe_enforces_and_fails_as_documented(
        "caddy",
        &caddy,
        start_caddy,
        CADDY_RECIPE,
        CADDY_FAIL_OPEN,
        502,
    )
    .await;
}

/// Envoy's HTTP ext_authz with `path_prefix: /v1/check` calls `/v1/check` + the original
/// path and query, with the original method: each must be the same check as `GET /v1/check`.
#[tokio::test]
async fn envoy_path_prefix_calls_are_the_check() {
    let client = client();
    let f = daemon_fixture("");
    let daemon = Daemon::start(&f);
    wait_ready(&client, &daemon).await;
    let good = f.jwt("dave", now_secs());
    let revoked = f.jwt("eve", now_secs());
    let r = client
        .post(daemon.url("/v1/revoke"))
        .bearer_auth(ADMIN_KEY)
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    for path in ["/v1/check/", "/v1/check/api/orders/17", "/v1/check/a/b?x=1"] {
        let (status, _) = get(&client, &daemon.url(path), &good).await;
        assert_eq!(status, 200, "GET {path}, good token");
        let (status, challenge) = get(&client, &daemon.url(path), &revoked).await;
        assert_eq!(status, 401, "GET {path}, revoked token");
        assert_eq!(challenge.as_deref(), Some(DENY_CHALLENGE), "GET {path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client
            .request(method.clone(), daemon.url("/v1/check/api/orders"))
            .bearer_auth(&revoked)
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{method} with a revoked token");
        assert_eq!(r.headers()[WWW_AUTHENTICATE], DENY_CHALLENGE, "{method}");
        let r = client
            .request(method.clone(), daemon.url("/v1/check/api/orders"))
            .bearer_auth(&good)
            .header("content-length", "0")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method} with a good token");
    }
    // The original query is the check's query: `access_token` there is a credential.
    let r = client
        .get(daemon.url(&format!("/v1/check/api?access_token={revoked}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "access_token in the original query");
}
