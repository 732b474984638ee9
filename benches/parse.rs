//! Criterion bench for the `parse` stage: `Parser::parse` on realistic access-log lines.
//!
//! One group per preset shape that matters for throughput: the flat `json` preset (≈ 400-byte
//! lines with an HS256-sized JWT, the DESIGN target case), the same line without a credential
//! (the anonymous early exit), a `json` line whose token needs JSON unescaping, and Caddy's
//! nested JSON access log (≈ 1 KB, headers as arrays, most of it skipped). Throughput is reported
//! per line (`elem/s` = lines per second on one core). Tokens here are fixtures, not secrets.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use tokenwatch::config::{FieldOverrides, InputFormat};
use tokenwatch::parse::Parser;

/// Fixture: JWT-shaped, HS256-sized, signed by nothing.
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjIwMjYtMTEifQ.\
                   eyJpc3MiOiJodHRwczovL2lkLmV4YW1wbGUuY29tIiwic3ViIjoidXNlci0xMjMiLCJleHAiOjE3MDAwMDM2MDB9.\
                   Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE";

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                      (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36";

fn json_line() -> String {
    format!(
        r#"{{"time":"2023-11-14T22:13:20.123Z","client_ip":"203.0.113.7","method":"GET","path":"/api/v1/orders?page=2","status":200,"user_agent":"{CHROME}","authorization":"Bearer {JWT}","bytes":5120}}"#
    )
}

fn json_anonymous_line() -> String {
    format!(
        r#"{{"time":1700000000.123,"client_ip":"203.0.113.7","method":"GET","path":"/static/app.3f9a1c.js","status":304,"user_agent":"{CHROME}","authorization":"","cookie":"_ga=GA1.2.1234567890.1700000000; theme=dark; consent=all","bytes":0}}"#
    )
}

fn json_escaped_line() -> String {
    // `\/` forces serde_json to unescape into an owned string (some loggers escape slashes).
    let escaped = JWT.replacen('.', "\\u002e", 1);
    format!(
        r#"{{"time":1700000000123,"client_ip":"2001:db8::7","method":"POST","path":"\/api\/v1\/orders","status":"201","user_agent":"{CHROME}","authorization":"Bearer {escaped}"}}"#
    )
}

fn caddy_line() -> String {
    format!(
        r#"{{"level":"info","ts":1700000000.1234567,"logger":"http.log.access.log0","msg":"handled request","request":{{"remote_ip":"10.0.0.2","remote_port":"41342","client_ip":"198.51.100.23","proto":"HTTP/2.0","method":"GET","host":"app.example.com","uri":"/api/v1/orders?page=2&sort=desc","headers":{{"Sec-Fetch-Mode":["cors"],"User-Agent":["{CHROME}"],"Accept":["application/json"],"Authorization":["Bearer {JWT}"],"Accept-Language":["en-US,en;q=0.9"],"Accept-Encoding":["gzip, deflate, br"],"Referer":["https://app.example.com/orders"]}},"tls":{{"resumed":false,"version":772,"cipher_suite":4865,"proto":"h2","server_name":"app.example.com"}}}},"bytes_read":0,"user_id":"","duration":0.004123,"size":5120,"status":200,"resp_headers":{{"Server":["Caddy"],"Content-Type":["application/json"],"Content-Length":["5120"]}}}}"#
    )
}

fn bench(c: &mut Criterion, name: &str, format: InputFormat, line: &str) {
    let parser = Parser::new(format, &FieldOverrides::default(), "sid", 64 * 1024).expect("preset");
    // A bench that measures the reject path by mistake would look splendid: check first.
    parser.parse(line.as_bytes()).expect("bench line parses");
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("{name}/{}B", line.len()), |b| {
        b.iter(|| parser.parse(black_box(line.as_bytes())))
    });
    group.finish();
}

fn parse_benches(c: &mut Criterion) {
    bench(c, "json_bearer", InputFormat::Json, &json_line());
    bench(
        c,
        "json_anonymous",
        InputFormat::Json,
        &json_anonymous_line(),
    );
    bench(c, "json_escaped", InputFormat::Json, &json_escaped_line());
    bench(c, "caddy_bearer", InputFormat::Caddy, &caddy_line());
}

/// `criterion_group!` defines a `pub fn`; inside a private module it needs no doc of its own.
mod group {
    use super::parse_benches;
    criterion::criterion_group!(benches, parse_benches);
}

criterion_main!(group::benches);
