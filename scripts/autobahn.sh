#!/usr/bin/env bash
# WebSocket conformance: the Autobahn cases (PyPI `kosoku`, a Python runner
# of the Autobahn case files) against the edge's own WebSocket stack,
# through the echo that only the `conformance-echo` binary has
# (crates/edge/src/conformance.rs). Cases 1–7 and 10 must all pass (9 is
# the slow performance series; 12–13 are compression, which is off).
# Prints the counts docs/security.md reports; exits non-zero on any failure.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

venv="$ROOT/target/autobahn-venv"
if [ ! -x "$venv/bin/kosoku" ]; then
  log "installing kosoku (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kosoku==0.1.0
fi

cargo build --locked -q -p switchboard-edge --features conformance-echo --bin conformance-echo
out=$(mktemp -d)
target/debug/conformance-echo > "$out/listen" &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 100); do grep -q '^LISTEN' "$out/listen" 2>/dev/null && break; sleep 0.1; done
url=$(awk '/^LISTEN/ {print $3}' "$out/listen")
ws="${url/http:/ws:}/conformance/echo"
log "Autobahn cases 1-7 and 10 against $ws"
status=0
"$venv/bin/kosoku" -m fuzzingclient -p 4 -o "$out/report" \
  -i '1.*' -i '2.*' -i '3.*' -i '4.*' -i '5.*' -i '6.*' -i '7.*' -i '10.*' "$ws" \
  > "$out/kosoku.log" 2>&1 || status=$?
check=0
python3 - "$out/report/index.json" <<'PY' || check=$?
import collections, json, sys
index = json.load(open(sys.argv[1]))
counts = collections.Counter()
bad = []
for agent, cases in index.items():
    for case, result in cases.items():
        verdict = result["behavior"]
        counts[verdict] += 1
        if verdict not in ("OK", "NON-STRICT", "INFORMATIONAL"):
            bad.append((case, verdict, result["behaviorClose"]))
total = sum(counts.values())
print(f"autobahn: {total} cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
for case, verdict, close in sorted(bad):
    print(f"  case {case}: {verdict} (close: {close})")
sys.exit(1 if bad or total == 0 else 0)
PY
if [ "$check" -ne 0 ] || [ "$status" -ne 0 ]; then
  tail -20 "$out/kosoku.log" >&2
  exit 1
fi
