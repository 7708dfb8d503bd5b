#!/usr/bin/env bash
# Reruns every benchmark of BENCHMARKS.md side by side, in one run, on this
# machine: the bare relay, matchbox_server, the PeerJS server, `switchboard
# all` and the same stack as separate processes ("split"), each started
# fresh per round and pinned to CPU 0, the load generator pinned to CPU 1.
# Writes JSON to target/bench-results/ and prints BENCHMARKS.md's tables
# (scripts/bench-tables.py). Takes about 10 minutes.
#
#   ./scripts/bench.sh            # everything
#   ROUNDS=1 ./scripts/bench.sh   # a quicker pass
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

need_rust
need_node
apt_install taskset util-linux
apt_install redis-server redis-server
apt_install python3 python3

ROUNDS="${ROUNDS:-3}"
OUT="$ROOT/target/bench-results"
mkdir -p "$OUT"

log "building (release)"
cargo build --release --locked -p switchboard -p switchboard-bench
log "installing the peers (matchbox_server, PeerJS server)"
eval "$(scripts/bench-peers.sh)"

BENCH=(taskset -c 1 target/release/switchboard-bench)
PEERS=(--server-cpu 0 --matchbox "$MATCHBOX" --peerjs "$PEERJS")
ALL=bare,matchbox,peerjs,switchboard,split

{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with local changes)')"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

log "relay, saturation, 1 KiB offers"
"${BENCH[@]}" relay "${PEERS[@]}" --compare "$ALL" --pairs 100 --messages 2000 \
  --window 32 --size 1024 --rounds "$ROUNDS" --json "$OUT/relay-1k.json"
log "relay, saturation, 4 KiB offers"
"${BENCH[@]}" relay "${PEERS[@]}" --compare "$ALL" --pairs 100 --messages 1000 \
  --window 32 --size 4096 --rounds "$ROUNDS" --json "$OUT/relay-4k.json"
log "relay, 5,000 msg/s fixed rate, 1 KiB offers"
"${BENCH[@]}" relay "${PEERS[@]}" --compare "$ALL" --pairs 100 --messages 400 \
  --window 32 --size 1024 --rate 5000 --rounds "$ROUNDS" --json "$OUT/latency-5k.json"
log "idle hold, 10,000 connections, a busy pair meanwhile"
"${BENCH[@]}" hold "${PEERS[@]}" --compare "$ALL" --connections 10000 \
  --json "$OUT/hold-10k.json"
log "100,000 idle sessions: 6 edges as separate processes, 6 generator processes"
"${BENCH[@]}" hold-many --server-cpu 0 --sessions 100000 --edges 6 \
  --json "$OUT/hold-100k.json"
log "join storm, 10,000 sessions in rooms of 4"
"${BENCH[@]}" joins --server-cpu 0 --sessions 10000 --room-size 4 \
  --json "$OUT/joins.json"

log "reconnect storm: 20,000 sessions lose their edges (SIGKILL) and resume through others"
"${BENCH[@]}" storm --server-cpu 0 --sessions 20000 --json "$OUT/storm.json"

log "Redis mode: 2 edges + 2 signal replicas on one Redis (pinned with the stack) vs memory mode"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/redis.pid" ] && break; sleep 0.1; done
REDIS=(--redis-url "redis://127.0.0.1:$port" --redis-pid "$(cat "$OUT/redis.pid")")
"${BENCH[@]}" relay --server-cpu 0 --compare switchboard,split,split-redis "${REDIS[@]}" \
  --pairs 100 --messages 1000 --window 32 --size 1024 --rounds "$ROUNDS" --json "$OUT/redis-1k.json"
"${BENCH[@]}" relay --server-cpu 0 --compare switchboard,split,split-redis "${REDIS[@]}" \
  --pairs 100 --messages 400 --window 32 --size 1024 --rate 5000 --rounds "$ROUNDS" \
  --json "$OUT/redis-latency-5k.json"

log "tables"
python3 scripts/bench-tables.py "$OUT"
