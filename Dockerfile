# Multi-stage build of the switchboard binary and the client.
# (No Docker engine runs on the development machines; this file is kept
# buildable by reading, not by CI.)
FROM node:20-bookworm-slim AS client
WORKDIR /src
COPY proto ./proto
COPY client ./client
RUN cd client && npm ci --no-audit --no-fund && npm run build

FROM rust:1.95-bookworm AS server
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin switchboard

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 switchboard
COPY --from=server /src/target/release/switchboard /usr/local/bin/switchboard
COPY --from=client /src/client/out /srv/client
USER 10001
ENV SWITCHBOARD_STATIC_DIR=/srv/client \
    SWITCHBOARD_LOG_FORMAT=json
EXPOSE 8443 8081 50051 50052
ENTRYPOINT ["/usr/local/bin/switchboard"]
# The default is safe to expose: a production edge, TLS from mounted files
# and its service credential from SWITCHBOARD_SERVICE_KEY (it refuses to
# start without them). Production runs one service per container: `edge`,
# `auth`, `signal`, `health`, configured with SWITCHBOARD_* variables. A throwaway demo of the whole stack in dev mode
# (any identity can get a token!) must say so:
#   docker run -p 8080:8080 IMAGE all --edge-listen 0.0.0.0:8080 \
#     --allow-plaintext --dangerously-expose-dev-mode
CMD ["edge", "--listen", "0.0.0.0:8443", "--tls-cert", "/secrets/tls.crt", "--tls-key", "/secrets/tls.key"]
