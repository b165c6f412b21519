# syntax=docker/dockerfile:1
# The scimflow binary, for docker-compose.yml and deploy/kubernetes (real
# Apache Kafka). One image; the command picks the role: ingress, processor,
# migrate, or an ops command.
FROM rust:1-bookworm AS build
WORKDIR /src
# libpq for diesel; librdkafka and OpenSSL are built from source by cargo.
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
# Dependencies are downloaded in their own layer, redone only when the
# manifests or the lock file change; compiled dependencies and the registry
# live in cache mounts, so a source change recompiles scimflow alone.
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml crates/core/
COPY crates/shared/Cargo.toml crates/shared/
COPY crates/bus/Cargo.toml crates/bus/
COPY crates/ingress/Cargo.toml crates/ingress/
COPY crates/processor/Cargo.toml crates/processor/
COPY crates/admin/Cargo.toml crates/admin/
RUN mkdir -p src crates/core/src crates/core/benches crates/shared/src crates/bus/src crates/ingress/src \
       crates/processor/src crates/admin/src \
    && touch src/main.rs crates/core/src/lib.rs crates/core/benches/hot_path.rs crates/shared/src/lib.rs \
       crates/bus/src/lib.rs crates/ingress/src/lib.rs crates/processor/src/lib.rs crates/admin/src/lib.rs \
    && cargo fetch --locked
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin scimflow \
    && cp target/release/scimflow /usr/local/bin/scimflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/scimflow /usr/local/bin/scimflow
# glibc gives each thread its own arena; with tokio, its blocking pool and
# librdkafka's threads the ingress's memory swung by a fifth during a
# 1,000,000-user push, and by 7% with two arenas (docs/PERFORMANCE.md).
ENV MALLOC_ARENA_MAX=2
USER nobody
# Whichever role runs answers /healthz on its admin listener: the ingress
# on SCIMFLOW_ADMIN_ADDR (9090), the processor on
# SCIMFLOW_PROCESSOR_ADMIN_ADDR (9091). One-shot commands (migrate) exit
# before the first check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9090/healthz >/dev/null || curl -fsS http://127.0.0.1:9091/healthz >/dev/null || exit 1
ENTRYPOINT ["scimflow"]
