#!/usr/bin/env bash
# What the event log costs the dispatch (issue 16: events may cost sends at
# most 15%): queued messages sent to a local provider that answers at once,
# with the message events' triggers on and off, in PAIRS pairs run
# alternately (on-off, off-on, ...), each on MESSAGES freshly queued
# messages after a checkpoint. Reports each pair's ratio and the median.
#
#   scripts/bench-dispatch-events.sh      # about 10 minutes after the build
#   MESSAGES=10000 PAIRS=3 scripts/bench-dispatch-events.sh
#
# Writes docs/benchmark-dispatch-events.md. Nothing is left running.
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${MESSAGES:-30000}
PAIRS=${PAIRS:-3}
PORT=${BENCH_PORT:-18080}
PG_PORT=${BENCH_PG_PORT:-55434}
PROVIDER_PORT=${BENCH_PROVIDER_PORT:-18090}

echo "== building the release binary"
cargo build --release -p maveraa-server --quiet
BIN=target/release/maveraa

export MAVERAA__DATABASE__URL=""
export MAVERAA__DATABASE__LOCAL__DIR=.data/bench-postgres
export MAVERAA__DATABASE__LOCAL__PORT=$PG_PORT
export MAVERAA__DATABASE__LOCAL__DATABASE=maveraa_bench_dispatch
export MAVERAA__SERVER__PORT=$PORT
export MAVERAA__RATE_LIMITS__REQUESTS_PER_SEC=0
export MAVERAA__RATE_LIMITS__SENDS_PER_SEC=0
export MAVERAA__METRICS__ADDRESS=
export MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE=false
export MAVERAA__WHATSAPP__CLOUD_API_BASE_URL=http://127.0.0.1:$PROVIDER_PORT
export RUST_LOG=warn

echo "== preparing PostgreSQL on port $PG_PORT"
DB_URL=$($BIN local-db start | sed -E 's/.*"url":"([^"]+)".*/\1/')
ADMIN_URL="${DB_URL%/*}/postgres"
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS maveraa_bench_dispatch WITH (FORCE)" \
  -c "CREATE DATABASE maveraa_bench_dispatch"
$BIN migrate >/dev/null

SERVER=""
PROVIDER=""
cleanup() {
  set +e
  [ -n "$SERVER" ] && { kill "$SERVER"; wait "$SERVER"; } 2>/dev/null
  [ -n "$PROVIDER" ] && { kill "$PROVIDER"; wait "$PROVIDER"; } 2>/dev/null
  $BIN local-db stop >/dev/null 2>&1
}
trap cleanup EXIT

WS=$($BIN workspace create --name bench | sed -E 's/.*"id":"([^"]+)".*/\1/')
$BIN session create --workspace "$WS" --id bench --provider cloud-api --phone-number-id 1234567890 \
  --access-token bench --app-secret bench --verify-token bench >/dev/null
SESSION_UUID=$(psql -At "$DB_URL" -c "SELECT id FROM sessions WHERE name = 'bench'")

if curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" >/dev/null 2>&1; then
  echo "port $PROVIDER_PORT is taken (a leftover dev-provider?)"; exit 1
fi
# One provider for the whole run: its message ids never repeat.
$BIN dev-provider --port "$PROVIDER_PORT" >/dev/null 2>&1 &
PROVIDER=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" >/dev/null && break; sleep 0.1; done

triggers() {
  psql -q "$DB_URL" -c "ALTER TABLE messages $1 TRIGGER messages_events_insert" \
    -c "ALTER TABLE messages $1 TRIGGER messages_events_status"
}
# dispatch on|off: queues MESSAGES messages as the send route would (to one
# of 100,000 recipients each; each stamped with its own time and a UUIDv7
# id of that time, so the queue's order is the order of arrival), then
# times a server draining the queue. (Ids at random and one time for all
# made a recipient's later message come first in the due scan, to be
# skipped by every claim until the earlier one left: claims of 3-11 ms and
# a third of the rate, from the set-up alone.)
dispatch() {
  psql -q "$DB_URL" <<SQL
WITH g AS (SELECT clock_timestamp() AS t FROM generate_series(1, $MESSAGES)),
m AS (
  INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, status, created_at, updated_at)
  SELECT uuid(lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
              || lpad(to_hex((floor(extract(epoch FROM t) * 1000000)::bigint % 1000) * 4), 3, '0')
              || '8' || substr(md5(random()::text), 1, 15)),
         '$WS', '$SESSION_UUID', (628120000000 + (random() * 100000)::int)::text,
         'outbound', 'text', 'Your OTP code is 4567', 'queued', t, t
  FROM g RETURNING id, created_at)
INSERT INTO outbox (message_id, next_attempt_at) SELECT id, created_at FROM m;
SQL
  # Each run starts from a vacuumed outbox: the index entries of the last
  # run's 30,000 deleted entries lie before the new ones, and until a vacuum
  # every claim steps over them (1.8 ms a claim in a run after an
  # unvacuumed one, against 0.1).
  psql -q "$DB_URL" -c "SELECT sequence_events(100000000)" -c "VACUUM ANALYZE outbox" -c CHECKPOINT >/dev/null
  [ "$1" = off ] && triggers DISABLE
  local t0 t1
  t0=$(date +%s.%N)
  $BIN serve >> /tmp/maveraa-bench-dispatch.log 2>&1 &
  SERVER=$!
  while [ "$(psql -At "$DB_URL" -c "SELECT count(*) FROM outbox")" != 0 ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  [ "$1" = off ] && triggers ENABLE
  awk -v n="$MESSAGES" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n/(b-a)}'
}

# One run first, not counted: the first run on a fresh database measured
# 68% of the next ones (cold caches, tables and indexes growing from empty).
echo "   warm-up: $(dispatch on) messages/s (not counted)"
declare -a ROWS RATIOS
for pair in $(seq 1 "$PAIRS"); do
  if [ $((pair % 2)) = 1 ]; then on=$(dispatch on); off=$(dispatch off)
  else off=$(dispatch off); on=$(dispatch on); fi
  ratio=$(awk -v a="$on" -v b="$off" 'BEGIN {printf "%.1f", 100*a/b}')
  echo "   pair $pair: $on messages/s with message events, $off without: $ratio%"
  ROWS+=("| $pair | $on | $off | $ratio% |")
  RATIOS+=("$ratio")
done
MEDIAN=$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
SENT=$(psql -At "$DB_URL" -c "SELECT count(*) FROM messages WHERE status = 'sent'")
ACCEPTED=$(curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" | sed -E 's/.*"accepted":([0-9]+).*/\1/')

CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU); server, PostgreSQL and the provider share the machine. Release build."
  echo
  echo "Dispatch of $MESSAGES queued messages per run (server start included) to \`maveraa dev-provider\`, answering at once; pairs alternated, after one warm-up run not counted."
  echo
  echo "| pair | messages/s, message events on | messages/s, off | on / off |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "- dispatch with message events / without: ${MEDIAN}%, the median of $PAIRS pairs (events may cost sends at most 15%)"
  echo "- messages sent $SENT, received by the provider $ACCEPTED (each exactly once when equal)"
} | tee docs/benchmark-dispatch-events.md
