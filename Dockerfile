# syntax=docker/dockerfile:1
# The switchboard image: one binary (edge, auth, signal, health) and the
# built web client, on debian-slim, as uid 10001.
#
# No Docker engine runs on the development machines or in CI: this file is
# kept correct by reading it, not by building it. What the Kubernetes
# manifests expect of it (the binary's path, the uid, /bin/sh for the
# preStop sleep, /srv/client, the ENV below) is listed in
# docs/operations.md ("The image"); scripts/k8s-check.py reads the ENV below
# as every container's base environment.

# ---- the web client (client/ → client/out, a static export)
FROM node:20-bookworm-slim AS client
WORKDIR /src/client
# Dependencies first, so a source change does not reinstall them.
COPY client/package.json client/package-lock.json ./
RUN npm ci --no-audit --no-fund
# `npm run build` generates the protocol's TypeScript from ../proto first.
COPY proto /src/proto
COPY client ./
RUN npm run build

# ---- the binary (release, exactly the locked dependencies)
FROM rust:1.95-bookworm AS server
WORKDIR /src
# Every workspace member's manifest must be present for cargo to load the
# workspace; the client is not part of it.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY proto ./proto
COPY crates ./crates
COPY tests ./tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchboard --bin switchboard \
 && install -D -m 0755 target/release/switchboard /out/switchboard

# ---- runtime: no compiler, no package manager caches, not root
FROM debian:bookworm-slim
# ca-certificates: TLS to an external Redis (rediss://) or other services.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin switchboard
COPY --from=server /out/switchboard /usr/local/bin/switchboard
COPY --from=client /src/client/out /srv/client
USER 10001:10001
# Facts of this image, for every subcommand (the environment beats the
# config file, so set nothing here that an operator would put there).
ENV SWITCHBOARD_STATIC_DIR=/srv/client \
    SWITCHBOARD_LOG_FORMAT=json
# What the default command below binds. Every other subcommand binds
# loopback unless told otherwise; the manifests give each --listen
# 0.0.0.0:PORT (edge 8080 behind the ingress, auth 50051, signal 50052,
# health 8081), and so must `docker run IMAGE auth --listen 0.0.0.0:50051`.
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/switchboard"]
# The default is safe to expose: a production edge (never dev mode) that
# serves TLS itself from mounted files and refuses to start without them or
# without its service credential (SWITCHBOARD_SERVICE_KEY_FILE, a KEY:SECRET
# that auth and signal accept). A throwaway demo of the whole stack in dev
# mode (anyone can get a token for any identity!) must say so:
#   docker run -p 8080:8080 IMAGE all --edge-listen 0.0.0.0:8080 \
#     --allow-plaintext --dangerously-expose-dev-mode
CMD ["edge", "--listen", "0.0.0.0:8443", \
     "--tls-cert", "/var/run/secrets/switchboard/tls/tls.crt", \
     "--tls-key", "/var/run/secrets/switchboard/tls/tls.key"]
