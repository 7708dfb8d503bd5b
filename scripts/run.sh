#!/usr/bin/env bash
# Builds and runs the whole stack (edge, auth, signal, health and the client)
# in one process on the embedded in-memory default. Prints where to connect.
# Extra arguments go to `switchboard all` (see `switchboard all --help`).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_rust
if [ -f client/package.json ]; then
  client_build
fi
log "building switchboard (release)"
cargo build --release --locked -p switchboard --bin switchboard
log "starting: edge http://127.0.0.1:8080 (Ctrl-C stops everything)"
exec ./target/release/switchboard all --static-dir client/out "$@"
