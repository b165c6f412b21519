# The scimflow binary, for docker-compose.yml (real Apache Kafka).
FROM rust:1-bookworm AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --bin scimflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/scimflow /usr/local/bin/scimflow
# glibc gives each thread its own arena; with tokio, its blocking pool and
# librdkafka's threads the ingress's memory swung by a fifth during a
# 1,000,000-user push, and by 7% with two arenas (docs/PERFORMANCE.md).
ENV MALLOC_ARENA_MAX=2
USER nobody
ENTRYPOINT ["scimflow"]
