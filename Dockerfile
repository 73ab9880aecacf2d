# syntax=docker/dockerfile:1
#
# icbridge container image.
#
#   docker build -t icbridge .
#   docker run -d --name icbridge -p 8080:8080 -v icbridge-data:/data \
#     -e ICB_WEBEX_TOKEN=... -e ICB_CONNECT_WEBHOOK_TOKEN=... -e ICB_EXPERT_ROOM_ID=... icbridge
#
# The database migrations (migrations/) are embedded into the binary at compile time by
# sqlx::migrate! and the console's HTML templates (templates/) by askama, SQLite is
# compiled in (bundled) and TLS roots are built in (rustls + webpki-roots), so the
# runtime image needs nothing but the binary and ca-certificates.

# ---- build ------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, against stub sources, so that they are cached in their own layer and
# only rebuilt when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
COPY bench/loadgen/Cargo.toml bench/loadgen/Cargo.toml
RUN mkdir -p src bench/loadgen/src \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > bench/loadgen/src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked -p icbridge \
    && rm -rf src

# Then the real sources. `touch` makes sure cargo sees them as newer than the stubs
# (COPY keeps the files' original modification times).
COPY build.rs ./
COPY src ./src
# The console's HTML templates, compiled into the binary by askama.
COPY templates ./templates
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p icbridge \
    && cp target/release/icbridge /usr/local/bin/icbridge

# ---- run --------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system icbridge \
    && useradd --system --gid icbridge --home-dir /data --no-create-home \
         --shell /usr/sbin/nologin icbridge \
    && mkdir /data \
    && chown icbridge:icbridge /data

COPY --from=builder /usr/local/bin/icbridge /usr/local/bin/icbridge

# Listen on every interface inside the container; keep the SQLite file on the volume.
ENV ICB_LISTEN=0.0.0.0:8080 \
    ICB_DATABASE_URL=sqlite:///data/icbridge.db

USER icbridge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# No HEALTHCHECK: the image has no curl or wget. Point your orchestrator's HTTP probes at
# GET /healthz (liveness) and GET /readyz (database reachable).

ENTRYPOINT ["icbridge"]
CMD ["serve"]
