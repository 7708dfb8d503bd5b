# Shared by run.sh and test.sh: install what this machine lacks.
# Debian packages come from apt, npm packages from the npm registry; nothing
# is downloaded from anywhere else.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# apt_install CMD PACKAGE...: install PACKAGEs unless CMD is on the PATH.
apt_updated=""
apt_install() {
  local cmd="$1"; shift
  command -v "$cmd" >/dev/null 2>&1 && return 0
  log "installing $* (missing $cmd)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_rust() {
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo is missing: install the Rust toolchain (rustup) first" >&2
    exit 1
  }
}

need_node() {
  apt_install node nodejs
  apt_install npm npm
}

# Installs the client's npm packages (from the lock file) when needed.
client_deps() {
  need_node
  if [ ! -d "$ROOT/client/node_modules" ] || [ "$ROOT/client/package-lock.json" -nt "$ROOT/client/node_modules/.package-lock.json" ]; then
    log "installing client npm packages"
    (cd "$ROOT/client" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Builds the client's static export into client/out.
client_build() {
  client_deps
  log "building the client (static export)"
  (cd "$ROOT/client" && npm run build --silent)
}

# Starts `switchboard all` (binary $1) on ephemeral loopback ports, its
# stdout in $2, and waits for its READY line. Sets STACK_PID; the caller
# kills it. `stack_url NAME FILE` then prints a service's http://host:port.
start_stack() {
  local bin="$1" out="$2"
  "$bin" all --edge-listen 127.0.0.1:0 --auth-listen 127.0.0.1:0 \
    --signal-listen 127.0.0.1:0 --health-listen 127.0.0.1:0 >"$out" 2>/dev/null &
  STACK_PID=$!
  for _ in $(seq 100); do
    grep -q READY "$out" && return 0
    kill -0 "$STACK_PID" 2>/dev/null || { echo "start_stack: the stack exited" >&2; return 1; }
    sleep 0.1
  done
  echo "start_stack: the stack did not get ready" >&2
  return 1
}

stack_url() {
  grep -o "LISTEN $1 http://[0-9.:]*" "$2" | sed "s|.*LISTEN $1 ||"
}
