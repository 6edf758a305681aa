#!/usr/bin/env bash
# Maveraa's benchmark: builds the release binary, runs it against a local
# PostgreSQL seeded with 10,000 contacts, and loads it with wrk.
#
#   scripts/bench.sh            # full run (about 1 minute after the build)
#   DURATION=5s scripts/bench.sh
#
# Prints a Markdown table and writes it to docs/benchmark-latest.md.
# Everything runs on loopback; nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
PORT=${BENCH_PORT:-18080}
PG_PORT=${BENCH_PG_PORT:-55434}
SEED=${SEED_CONTACTS:-10000}

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v psql >/dev/null || { echo "psql (postgresql-client) is needed to seed"; exit 1; }

echo "== building the release binary"
cargo build --release -p maveraa-server --quiet
BIN=target/release/maveraa

export MAVERAA__DATABASE__URL=""
export MAVERAA__DATABASE__LOCAL__DIR=.data/bench-postgres
export MAVERAA__DATABASE__LOCAL__PORT=$PG_PORT
export MAVERAA__DATABASE__LOCAL__DATABASE=maveraa_bench
export MAVERAA__SERVER__PORT=$PORT
export MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE=false
export RUST_LOG=warn

echo "== preparing PostgreSQL on port $PG_PORT"
DB_URL=$($BIN local-db start | sed -E 's/.*"url":"([^"]+)".*/\1/')
ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS maveraa_bench WITH (FORCE)" -c "CREATE DATABASE maveraa_bench"
$BIN migrate >/dev/null

WS=$($BIN workspace create --name bench | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$($BIN api-key create --workspace "$WS" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')

echo "== seeding $SEED contacts"
psql -q "$DB_URL" <<SQL
INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at)
SELECT gen_random_uuid(), '$WS', 'Contact ' || i, (628120000000 + i)::text,
       CASE WHEN i % 3 = 0 THEN ARRAY['VIP','Customer'] ELSE ARRAY['Lead'] END,
       now() - make_interval(secs => $SEED - i), now()
FROM generate_series(1, $SEED) AS i;
ANALYZE;
SQL

echo "== starting the server on port $PORT"
$BIN serve > /tmp/maveraa-bench.log 2>&1 &
SERVER=$!
RSS_LOG=$(mktemp)
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  kill "${SAMPLER:-}" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $BIN local-db stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null || { cat /tmp/maveraa-bench.log; exit 1; }

# Resident memory of the server, sampled every 200 ms for the whole run.
( while kill -0 "$SERVER" 2>/dev/null; do
    awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null >> "$RSS_LOG"; sleep 0.2
  done ) &
SAMPLER=$!

BASE="http://127.0.0.1:$PORT"
declare -a ROWS
# run NAME CONNECTIONS URL [HEADER]
run() {
  local name=$1 conns=$2 url=$3 header=${4:-}
  local args=(-t"$THREADS" -c"$conns" -d"$DURATION" --latency)
  [ -n "$header" ] && args+=(-H "$header")
  curl -fs ${header:+-H "$header"} "$url" >/dev/null  # warm, and fail fast on an error status
  local out; out=$(wrk "${args[@]}" "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  echo "   $name: $rps req/s, p50 $p50, p99 $p99, non-2xx $non2xx"
  ROWS+=("| $name | $conns | $rps | $p50 | $p99 | $non2xx |")
  eval "RPS_$5=$rps"
}

echo "== loading ($DURATION each, $THREADS wrk threads)"
run "GET /health" "$CONNECTIONS" "$BASE/health" "" HEALTH
run "GET /ready (1 DB round trip)" "$CONNECTIONS" "$BASE/ready" "" READY
run "GET /api/public/contacts?limit=50" "$CONNECTIONS" "$BASE/api/public/contacts?limit=50" "X-API-Key: $KEY" PAGE
run "GET /api/public/contacts (all $SEED)" 4 "$BASE/api/public/contacts" "X-API-Key: $KEY" ALL

kill "$SAMPLER" 2>/dev/null || true
MAX_RSS_KB=$(sort -n "$RSS_LOG" | tail -1)
MAX_RSS_MB=$(awk -v k="$MAX_RSS_KB" 'BEGIN {printf "%.1f", k/1024}')
PAGE_RATIO=$(awk -v a="$RPS_PAGE" -v b="$RPS_READY" 'BEGIN {printf "%.0f", 100*a/b}')

CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU), $(free -g | awk '/Mem/ {print $2}') GiB; server, PostgreSQL and wrk share the machine."
  echo "wrk -t$THREADS -d$DURATION; release build; $SEED contacts in the workspace."
  echo
  echo "| endpoint | connections | requests/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- authenticated page / \`/ready\`: ${PAGE_RATIO}% (target at least 50%)"
  echo "- server peak RSS over the whole run: ${MAX_RSS_MB} MB (target under 100 MB)"
} | tee docs/benchmark-latest.md
