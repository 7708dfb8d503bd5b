#!/usr/bin/env bash
# The Grafana dashboard and the PrometheusRule (deploy/monitoring) against a
# real scrape: `switchboard all` is started, its /metrics scraped once its
# health aggregator has made gRPC calls, and scripts/monitoring-check.py
# checks that both files parse and that every metric they name is exposed.
# PYTHON: an interpreter with PyYAML (k8s-validate.sh passes its venv's).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

apt_install curl curl
bin="${SWITCHBOARD_BIN:-$ROOT/target/debug/switchboard}"
python="${PYTHON:-python3}"
out="$(mktemp)"
scrape="$(mktemp)"
trap 'kill "${STACK_PID:-}" 2>/dev/null; rm -f "$out" "$scrape"' EXIT
start_stack "$bin" "$out"
health="$(stack_url health "$out")"
# The aggregator's first health calls put gRPC series in the scrape.
for _ in $(seq 100); do
  curl -fsS "$health/metrics" >"$scrape" || true
  grep -q 'switchboard_grpc_server_requests_total{method="/grpc.health' "$scrape" && break
  sleep 0.1
done
"$python" scripts/monitoring-check.py --selftest "$scrape" \
  deploy/monitoring/grafana-dashboard.json deploy/monitoring/prometheus-rules.yaml
log "dashboard and alert rules name only exposed metrics"
