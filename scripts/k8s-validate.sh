#!/usr/bin/env bash
# Validates the Kubernetes manifests (k8s/):
#   1. renders k8s/base and every overlay with `kubectl kustomize`;
#   2. validates every object strictly (unknown fields are errors) against
#      the Kubernetes 1.30 schemas bundled with kubernetes-validate (offline);
#   3. tests the checker of step 4 against a stand-in binary
#      (scripts/k8s-check-selftest.py: it must catch what it claims to);
#   4. checks every overlay against the binary itself (scripts/k8s-check.py:
#      `switchboard --check-config` with each container's args, env and
#      config file; ports, probes, mounted files, secrets, network policies).
# SWITCHBOARD_BIN names the binary for step 4 (default target/debug/switchboard,
# built if missing). Python packages go into a venv under target/.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

KUBERNETES_VERSION=1.30.0
venv="$ROOT/target/k8s-venv"
out="$ROOT/target/k8s"

apt_install kubectl kubectl
apt_install python3 python3
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  # Debian's python3 makes venvs only with python3-venv, which has no
  # command of its own for apt_install to look for.
  python3 -c 'import ensurepip' 2>/dev/null || apt_install /nonexistent/python3-venv python3-venv
  log "installing kubernetes-validate and PyYAML into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate pyyaml
fi

mkdir -p "$out"
dirs=(k8s/base k8s/overlays/*/)
rendered=()
for dir in "${dirs[@]}"; do
  dir="${dir%/}"
  name="$(basename "$dir")"
  file="$out/$name.yaml"
  log "rendering $dir"
  kubectl kustomize "$dir" >"$file"
  log "validating $dir against Kubernetes $KUBERNETES_VERSION (strict)"
  result="$("$venv/bin/kubernetes-validate" --strict --kubernetes-version "$KUBERNETES_VERSION" --quiet "$file")" || {
    printf '%s\n' "$result" >&2
    echo "k8s-validate: $dir does not validate" >&2
    exit 1
  }
  # A kind without a schema is only a warning to kubernetes-validate: here
  # it is a failure (nothing would have checked it).
  if [ -n "$result" ]; then
    printf '%s\n' "$result" >&2
    echo "k8s-validate: $dir has objects without a schema" >&2
    exit 1
  fi
  echo "$dir: $(grep -c '^kind:' "$file") objects valid against Kubernetes $KUBERNETES_VERSION (strict)"
  [ "$name" = base ] || rendered+=("$file")
done

log "testing the checker against a stand-in binary"
"$venv/bin/python" scripts/k8s-check-selftest.py "${rendered[@]}"

if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  bin="$SWITCHBOARD_BIN"
  [ -x "$bin" ] || { echo "k8s-validate: SWITCHBOARD_BIN=$bin is not an executable" >&2; exit 1; }
else
  bin="$ROOT/target/debug/switchboard"
  if [ ! -x "$bin" ]; then
    need_rust
    log "building switchboard (debug) for --check-config"
    cargo build --locked -p switchboard --bin switchboard
  fi
fi
log "checking the overlays against $bin --check-config"
"$venv/bin/python" scripts/k8s-check.py --bin "$bin" --dockerfile Dockerfile "${rendered[@]}"
log "k8s manifests valid"
