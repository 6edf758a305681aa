#!/usr/bin/env bash
# Webhook delivery benchmark: events emitted and delivered per second to a
# local receiver, against the receiver's own rate measured by wrk at the
# same concurrency in the same run.
#
#   scripts/bench-webhooks.sh             # about a minute after the build
#   DURATION=5s EVENTS=20000 scripts/bench-webhooks.sh
#
# 1. Emission: contacts created through the API for DURATION with one
#    endpoint subscribed to everything (each create commits one event).
# 2. Delivery: a backlog of EVENTS events (written while no server
#    delivers) drained by a server to 1 endpoint, then to 8 endpoints, with
#    the receiver (`maveraa dev-provider`, answering 204) on loopback.
# 3. The receiver's own limit: wrk posting the same body to it with 1
#    connection (one endpoint gets one delivery at a time) and with 8.
#
# Prints a Markdown table and writes it to docs/benchmark-webhooks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
EVENTS=${EVENTS:-20000}
PORT=${BENCH_PORT:-18080}
PG_PORT=${BENCH_PG_PORT:-55434}
PROVIDER_PORT=${BENCH_PROVIDER_PORT:-18090}

command -v wrk >/dev/null || {
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
}
command -v psql >/dev/null || { echo "psql (postgresql-client) is needed"; exit 1; }

echo "== building the release binary"
cargo build --release -p maveraa-server --quiet
BIN=target/release/maveraa

export MAVERAA__DATABASE__URL=""
export MAVERAA__DATABASE__LOCAL__DIR=.data/bench-postgres
export MAVERAA__DATABASE__LOCAL__PORT=$PG_PORT
export MAVERAA__DATABASE__LOCAL__DATABASE=maveraa_bench_hooks
export MAVERAA__SERVER__PORT=$PORT
export MAVERAA__RATE_LIMITS__REQUESTS_PER_SEC=0
export MAVERAA__RATE_LIMITS__SENDS_PER_SEC=0
export MAVERAA__METRICS__ADDRESS=
export MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE=false
# The receiver is on loopback.
export MAVERAA__WEBHOOKS__ALLOW_PRIVATE_TARGETS=true
export RUST_LOG=warn

echo "== preparing PostgreSQL on port $PG_PORT"
DB_URL=$($BIN local-db start | sed -E 's/.*"url":"([^"]+)".*/\1/')
ADMIN_URL="${DB_URL%/*}/postgres"
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS maveraa_bench_hooks WITH (FORCE)" -c "CREATE DATABASE maveraa_bench_hooks"
$BIN migrate >/dev/null
WS=$($BIN workspace create --name bench | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$($BIN api-key create --workspace "$WS" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')
BASE="http://127.0.0.1:$PORT"
HOOKS="http://127.0.0.1:$PROVIDER_PORT"

SERVER=""
cleanup() {
  set +e
  [ -n "$SERVER" ] && { kill "$SERVER"; wait "$SERVER"; } 2>/dev/null
  [ -n "${PROVIDER:-}" ] && { kill "$PROVIDER"; wait "$PROVIDER"; } 2>/dev/null
  $BIN local-db stop >/dev/null 2>&1
}
trap cleanup EXIT

start_server() {
  if curl -fs "$BASE/health" >/dev/null 2>&1; then
    echo "port $PORT is taken (a leftover server?); refusing to measure it"; exit 1
  fi
  env "$@" $BIN serve >> /tmp/maveraa-bench-hooks.log 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/ready" >/dev/null && break; sleep 0.1; done
  curl -fs "$BASE/ready" >/dev/null || { cat /tmp/maveraa-bench-hooks.log; exit 1; }
}
stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=""; }
sql() { psql -At "$DB_URL" -c "$1"; }
hooks_taken() { curl -fs "$HOOKS/count" | sed -E 's/.*"hooks":([0-9]+).*/\1/'; }
endpoint() {
  curl -fs -X POST "$BASE/api/public/webhooks" -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d "{\"url\": \"$HOOKS/hooks/$1\", \"events\": [\"*\"]}" >/dev/null
}

if curl -fs "$HOOKS/count" >/dev/null 2>&1; then
  echo "port $PROVIDER_PORT is taken (a leftover dev-provider?); its counts would be wrong"; exit 1
fi
$BIN dev-provider --port "$PROVIDER_PORT" >/dev/null 2>&1 &
PROVIDER=$!
for _ in $(seq 1 50); do curl -fs "$HOOKS/count" >/dev/null && break; sleep 0.1; done

declare -a ROWS

echo "== emission: contacts created for $DURATION, one endpoint taking every event"
start_server
endpoint emission
CREATE_LUA=$(mktemp --suffix=.lua)
cat > "$CREATE_LUA" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
math.randomseed(os.time())
request = function()
  local n = string.format("6281%09d", math.random(0, 999999999))
  return wrk.format(nil, nil, nil, '{"name":"Bench ' .. n .. '","phone":"' .. n .. '","labels":"Lead"}')
end
LUA
E0=$(sql "SELECT pos FROM event_log_head")
T0=$(date +%s.%N)
OUT=$(wrk -t2 -c20 -d"$DURATION" -s "$CREATE_LUA" -H "X-API-Key: $KEY" "$BASE/api/public/contacts")
T1=$(date +%s.%N)
CREATES=$(echo "$OUT" | awk '/Requests\/sec/ {printf "%.0f", $2}')
# Everything emitted, delivered: wait for the receiver to have it all.
sleep 0.3
E1=$(sql "SELECT pos FROM event_log_head")
EMITTED=$((E1 - E0))
while [ "$(hooks_taken)" -lt "$EMITTED" ]; do sleep 0.05; done
T2=$(date +%s.%N)
EMIT_RATE=$(awk -v n="$EMITTED" -v a="$T0" -v b="$T1" 'BEGIN {printf "%.0f", n/(b-a)}')
LAG=$(awk -v a="$T1" -v b="$T2" 'BEGIN {printf "%.2f", b-a}')
echo "   $EMITTED events in $DURATION ($EMIT_RATE/s, $CREATES creates/s); all delivered $LAG s after the last create"
ROWS+=("| live: contacts created through the API, 1 endpoint | $EMITTED | $EMIT_RATE emitted/s | delivered $LAG s after the load ended |")
stop_server
rm -f "$CREATE_LUA"

# drain ENDPOINTS: a backlog of $EVENTS events written with no server
# running, then a server delivering it to ENDPOINTS endpoints.
drain() {
  local endpoints=$1
  sql "DELETE FROM webhook_endpoints" >/dev/null
  start_server MAVERAA__WEBHOOKS__WORKERS=0
  for i in $(seq 1 "$endpoints"); do endpoint "drain$endpoints-$i"; done
  stop_server
  local before; before=$(hooks_taken)
  # One contact per event, in one statement; the sequencer places them and
  # the fan-out makes the deliveries when the server starts.
  sql "INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at)
       SELECT gen_random_uuid(), '$WS', 'Backlog ' || i, (629000000000 + $endpoints * 1000000 + i)::text,
              ARRAY['Lead'], now(), now() FROM generate_series(1, $EVENTS) AS i" >/dev/null
  local want=$((before + EVENTS * endpoints))
  local t0; t0=$(date +%s.%N)
  start_server MAVERAA__WEBHOOKS__WORKERS=8
  while [ "$(hooks_taken)" -lt "$want" ]; do sleep 0.05; done
  local t1; t1=$(date +%s.%N)
  stop_server
  local n=$((EVENTS * endpoints))
  local rate; rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n/(b-a)}')
  local dup; dup=$(sql "SELECT count(*) - count(DISTINCT (endpoint_id, event_pos)) FROM webhook_deliveries")
  echo "   $endpoints endpoint(s): $n deliveries in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}') s (server start included): $rate/s"
  DRAIN_RATE=$rate
  DRAIN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b-a}')
  DUPES=$dup
}

echo "== delivery: a backlog of $EVENTS events"
drain 1
ROWS+=("| backlog, 1 endpoint | $EVENTS | $DRAIN_RATE delivered/s | $DRAIN_SECS s, server start included |")
ONE=$DRAIN_RATE
drain 8
ROWS+=("| backlog, 8 endpoints | $((EVENTS * 8)) | $DRAIN_RATE delivered/s | $DRAIN_SECS s, server start included |")
EIGHT=$DRAIN_RATE

echo "== the receiver alone (wrk, the same body, $DURATION)"
BODY_LUA=$(mktemp --suffix=.lua)
SAMPLE=$(sql "SELECT '{\"id\":\"evt_' || pos || '\",\"type\":\"' || type || '\",\"createdAt\":\"2026-12-06T10:00:00.000000Z\",\"workspaceId\":\"' || workspace_id || '\",\"data\":' || data::text || '}' FROM events WHERE pos IS NOT NULL ORDER BY pos DESC LIMIT 1")
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [[%s]]\n' "$SAMPLE" > "$BODY_LUA"
R1=$(wrk -t1 -c1 -d"$DURATION" -s "$BODY_LUA" "$HOOKS/hooks/wrk" | awk '/Requests\/sec/ {printf "%.0f", $2}')
R8=$(wrk -t2 -c8 -d"$DURATION" -s "$BODY_LUA" "$HOOKS/hooks/wrk" | awk '/Requests\/sec/ {printf "%.0f", $2}')
rm -f "$BODY_LUA"
echo "   1 connection: $R1/s; 8 connections: $R8/s"

CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU); server, PostgreSQL, receiver and wrk share the machine. Release build."
  echo
  echo "| run | events or deliveries | rate | note |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "| the receiver alone (wrk posting the same body) | requests/s |"
  echo "|---|---|"
  echo "| 1 connection (as one endpoint is delivered to: one at a time) | $R1 |"
  echo "| 8 connections (as 8 endpoints) | $R8 |"
  echo
  echo "- 1 endpoint: $ONE delivered/s, $(awk -v a="$ONE" -v b="$R1" 'BEGIN {printf "%.0f", 100*a/b}')% of the receiver's rate on one connection"
  echo "- 8 endpoints: $EIGHT delivered/s, $(awk -v a="$EIGHT" -v b="$R8" 'BEGIN {printf "%.0f", 100*a/b}')% of the receiver's rate on 8 connections"
  echo "- deliveries made twice for one endpoint and event: $DUPES"
} | tee docs/benchmark-webhooks.md
