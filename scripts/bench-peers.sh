#!/usr/bin/env bash
# Installs the two competitor signaling servers used for side-by-side
# benchmarks into target/bench-peers (idempotent: skips what is present).
#   matchbox_server  from crates.io -> target/bench-peers/bin/matchbox_server
#   peer (PeerJS)    from npm       -> target/bench-peers/peerjs/node_modules/.bin/peerjs
# Needs cargo and node/npm; prints MATCHBOX=<path> and PEERJS=<path> at the end.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/target/bench-peers"
MATCHBOX_VERSION=0.15.0
PEERJS_VERSION=1.0.2

MATCHBOX="$DEST/bin/matchbox_server"
PEERJS="$DEST/peerjs/node_modules/.bin/peerjs"

for cmd in cargo npm node; do
  command -v "$cmd" >/dev/null || { echo "missing $cmd" >&2; exit 1; }
done

# matchbox_server: build in a scratch target dir so the repo's target/ lock
# (held by a concurrent cargo build) is never touched.
if [ ! -x "$MATCHBOX" ]; then
  echo "==> installing matchbox_server $MATCHBOX_VERSION" >&2
  CARGO_TARGET_DIR="${TMPDIR:-/tmp}/matchbox-build" \
    cargo install matchbox_server --version "$MATCHBOX_VERSION" --locked --root "$DEST" >&2
fi

# PeerJS server: a private npm prefix with exactly peer@$PEERJS_VERSION.
installed="$(node -p "require('$DEST/peerjs/node_modules/peer/package.json').version" 2>/dev/null || true)"
if [ "$installed" != "$PEERJS_VERSION" ] || [ ! -x "$PEERJS" ]; then
  echo "==> installing peer@$PEERJS_VERSION" >&2
  mkdir -p "$DEST/peerjs"
  npm install --prefix "$DEST/peerjs" --no-audit --no-fund --save-exact "peer@$PEERJS_VERSION" >&2
fi

echo "MATCHBOX=$MATCHBOX"
echo "PEERJS=$PEERJS"
