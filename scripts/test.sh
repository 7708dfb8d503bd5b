#!/usr/bin/env bash
# Runs every test: Rust unit and cross-service tests (real gRPC, WebSockets,
# redis-server on ephemeral ports), then the client's unit tests and the
# real-browser end-to-end tests in headless Chromium.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_rust
apt_install redis-server redis-server

log "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# The benchmark harness works (a smoke run; never a speed threshold): it
# exits non-zero if a message is lost or reordered.
log "benchmark harness smoke run"
cargo build --locked -p switchboard -p switchboard-bench
target/debug/switchboard-bench relay --bin target/debug/switchboard \
  --pairs 2 --messages 50 --window 4 --rounds 1

if [ -f client/package.json ]; then
  apt_install chromium chromium
  client_build
  cargo build --locked -p switchboard --bin switchboard
  log "client unit tests"
  (cd client && npm test --silent)
  log "browser end-to-end tests"
  (cd client && SWITCHBOARD_BIN="$ROOT/target/debug/switchboard" npm run e2e --silent)
fi
log "all tests passed"
