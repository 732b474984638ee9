# syntax=docker/dockerfile:1
# tokenwatch's container image: the daemon-only build (no `lab` feature: no simulator, trainer
# or demo) with distributed mode (`kafka`), on Debian slim, as a non-root user. Used by
# deploy/kubernetes/ and deploy/compose/. Build from the repository root:
#   docker build -t tokenwatch:0.1.0 .
# No docker here: CI does not build this image. tests/deploy.rs checks what it can without
# docker (the features it builds exist, the user is not root, the port and paths match the
# Kubernetes manifests, and the HEALTHCHECK command works against a live daemon).

FROM rust:1.89-bookworm AS builder
# cmake and a C toolchain build the librdkafka that rdkafka bundles and aws-lc; OpenSSL for
# librdkafka's TLS/SASL; libcurl's header only (librdkafka's CMake build includes it).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
COPY models ./models
RUN cargo build --locked --release --no-default-features --features kafka \
 && install -m 0755 target/release/tokenwatch /usr/local/bin/tokenwatch

FROM debian:bookworm-slim
# libssl3: librdkafka links the system OpenSSL; ca-certificates: TLS to brokers.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tokenwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tokenwatch \
      --shell /usr/sbin/nologin tokenwatch \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/tokenwatch \
 && install -d -m 0755 /etc/tokenwatch /usr/share/tokenwatch/models
COPY --from=builder /usr/local/bin/tokenwatch /usr/local/bin/tokenwatch
COPY models/session-risk.json models/session-risk.md /usr/share/tokenwatch/models/
# The shipped example config as a starting point; mount your own at
# /etc/tokenwatch/config.toml (the Kubernetes manifests mount a ConfigMap instead). Its
# model path is made absolute; listen on every interface inside the container.
COPY config/default.toml /etc/tokenwatch/config.toml
RUN sed -i \
      -e 's|^model = .*|model = "/usr/share/tokenwatch/models/session-risk.json"|' \
      -e 's|^listen = .*|listen = "0.0.0.0:8080"|' \
      /etc/tokenwatch/config.toml

# State (denylist journal, embedded mode): a volume owned by the non-root user.
VOLUME ["/var/lib/tokenwatch"]
USER 10001:10001
WORKDIR /var/lib/tokenwatch
EXPOSE 8080
# No curl in the image: bash's /dev/tcp asks GET /readyz and expects a 200 status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/tokenwatch"]
CMD ["run", "--config", "/etc/tokenwatch/config.toml"]
