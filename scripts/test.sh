#!/usr/bin/env bash
# Runs every test: Rust unit and cross-service tests (real gRPC, WebSockets,
# redis-server on ephemeral ports), then the client's unit tests and the
# real-browser end-to-end tests in headless Chromium.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_rust
apt_install redis-server redis-server
apt_install python3 python3

log "dependency floors and licenses"
python3 scripts/dependency-check.py --selftest
python3 scripts/dependency-check.py

log "rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# The benchmark harness works (a smoke run of every scenario; never a speed
# threshold): relay and storm exit non-zero if a message is lost,
# duplicated or reordered. The peers (matchbox, PeerJS) are the benchmark
# script's, not CI's.
log "benchmark harness smoke run"
cargo build --locked -p switchboard -p switchboard-bench
bench=target/debug/switchboard-bench
stack=(--bin target/debug/switchboard)
"$bench" relay "${stack[@]}" --compare bare,switchboard,split \
  --pairs 2 --messages 50 --window 4 --rounds 1
"$bench" hold "${stack[@]}" --compare bare,switchboard --connections 20 \
  --busy-messages 20 --busy-rate 200
"$bench" joins "${stack[@]}" --sessions 40 --signing hs256,eddsa
"$bench" storm "${stack[@]}" --sessions 20
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis_pid_file=$(mktemp)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$redis_pid_file" --logfile /dev/null
for _ in $(seq 50); do [ -s "$redis_pid_file" ] && break; sleep 0.1; done
"$bench" relay "${stack[@]}" --compare split-redis --redis-url "redis://127.0.0.1:$redis_port" \
  --redis-pid "$(cat "$redis_pid_file")" --pairs 2 --messages 50 --window 4 --rounds 1
kill "$(cat "$redis_pid_file")"
rm -f "$redis_pid_file"

# The Kubernetes manifests render, validate strictly against the 1.30
# schemas (offline), and match what the binary serves and accepts.
log "kubernetes manifests"
SWITCHBOARD_BIN="$ROOT/target/debug/switchboard" ./scripts/k8s-validate.sh
log "reflection and grpc.health.v1 through grpcurl"
SWITCHBOARD_BIN="$ROOT/target/debug/switchboard" ./scripts/grpcurl-check.sh
log "dashboard and alert rules against a real scrape"
SWITCHBOARD_BIN="$ROOT/target/debug/switchboard" PYTHON="$ROOT/target/k8s-venv/bin/python" \
  ./scripts/monitoring-check.sh
log "fuzzing every parser of untrusted input, briefly (FUZZ_SECONDS, 20 each)"
./scripts/fuzz.sh
log "websocket conformance (Autobahn cases 1-7, 10)"
./scripts/autobahn.sh
log "webhook verification snippets (docs/api.md)"
python3 docs/examples/verify-webhook.py

if [ -f client/package.json ]; then
  apt_install chromium chromium
  client_build
  cargo build --locked -p switchboard --bin switchboard
  log "client unit tests"
  node docs/examples/verify-webhook.mjs
  (cd client && npm test --silent)
  log "browser end-to-end tests"
  (cd client && SWITCHBOARD_BIN="$ROOT/target/debug/switchboard" npm run e2e --silent)
fi
log "all tests passed"
