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
PROVIDER_PORT=${BENCH_PROVIDER_PORT:-18090}
SEED=${SEED_CONTACTS:-10000}
SEED_CONVERSATIONS=${SEED_CONVERSATIONS:-10000}

if ! command -v wrk >/dev/null; then
  echo "== installing wrk (Debian package)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; fi
fi
command -v psql >/dev/null || { echo "psql (postgresql-client) is needed to seed"; exit 1; }
if [ ! -e "$(pg_config --includedir 2>/dev/null)/libpq-fe.h" ]; then
  echo "== installing libpq's headers (Debian package libpq-dev), for scripts/pg-statement-cost.c"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libpq-dev >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq libpq-dev >/dev/null; fi
fi

echo "== building the release binary"
cargo build --release -p maveraa-server --quiet
BIN=target/release/maveraa
cc -O2 -o target/pg-statement-cost scripts/pg-statement-cost.c -I"$(pg_config --includedir)" -lpq

export MAVERAA__DATABASE__URL=""
export MAVERAA__DATABASE__LOCAL__DIR=.data/bench-postgres
export MAVERAA__DATABASE__LOCAL__PORT=$PG_PORT
export MAVERAA__DATABASE__LOCAL__DATABASE=maveraa_bench
export MAVERAA__SERVER__PORT=$PORT
# One key drives all the load: no per-key rate limit, and no metrics port.
export MAVERAA__RATE_LIMITS__REQUESTS_PER_SEC=0
export MAVERAA__RATE_LIMITS__SENDS_PER_SEC=0
export MAVERAA__METRICS__ADDRESS=
export MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE=false
export MAVERAA__WHATSAPP__CLOUD_API_BASE_URL=http://127.0.0.1:$PROVIDER_PORT
export RUST_LOG=warn

echo "== preparing PostgreSQL on port $PG_PORT"
DB_URL=$($BIN local-db start | sed -E 's/.*"url":"([^"]+)".*/\1/')
# The URL carries the local server's generated password (.data/bench-postgres/password).
ADMIN_URL="${DB_URL%/*}/postgres"
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS maveraa_bench WITH (FORCE)" -c "CREATE DATABASE maveraa_bench"
$BIN migrate >/dev/null
# EVENTS_AUTOVACUUM=off: no autovacuum of the event log during the run (an
# experiment: how much of the log's cost is vacuuming what it leaves).
if [ "${EVENTS_AUTOVACUUM:-on}" = off ]; then
  psql -q "$DB_URL" -c "ALTER TABLE events SET (autovacuum_enabled = false)"
fi

WS=$($BIN workspace create --name bench | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$($BIN api-key create --workspace "$WS" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')

# Sends go to a Cloud API session whose provider is `maveraa dev-provider`,
# a local stand-in that accepts every message at once.
$BIN session create --workspace "$WS" --id bench --provider cloud-api --phone-number-id 1234567890 \
  --access-token bench --app-secret bench --verify-token bench >/dev/null
SESSION_UUID=$(psql -At "$DB_URL" -c "SELECT id FROM sessions WHERE name = 'bench'")

echo "== seeding $SEED contacts and $SEED_CONVERSATIONS conversations"
psql -q "$DB_URL" <<SQL
INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at)
SELECT gen_random_uuid(), '$WS', 'Contact ' || i, (628120000000 + i)::text,
       CASE WHEN i % 3 = 0 THEN ARRAY['VIP','Customer'] ELSE ARRAY['Lead'] END,
       now() - make_interval(secs => $SEED - i), now()
FROM generate_series(1, $SEED) AS i;
INSERT INTO conversations (session_id, remote, workspace_id, push_name, last_message, last_message_at, unread_count)
SELECT '$SESSION_UUID', (628130000000 + i)::text, '$WS', 'Customer ' || i, 'Hello there! #' || i,
       now() - make_interval(secs => $SEED_CONVERSATIONS - i), i % 4
FROM generate_series(1, $SEED_CONVERSATIONS) AS i;
VACUUM ANALYZE;
SQL

RSS_LOG=$(mktemp)
SERVER=""
cleanup() {
  set +e
  [ -n "$SERVER" ] && { kill "$SERVER"; wait "$SERVER"; } 2>/dev/null
  [ -n "${PROVIDER:-}" ] && { kill "$PROVIDER"; wait "$PROVIDER"; } 2>/dev/null
  [ -n "${SAMPLER:-}" ] && kill "$SAMPLER" 2>/dev/null
  $BIN local-db stop >/dev/null 2>&1
}
trap cleanup EXIT

# start_server [ENV=VALUE...]: the server in the background, sampled for RSS.
start_server() {
  if curl -fs "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "port $PORT is taken (a leftover server?); refusing to measure it"; exit 1
  fi
  env "$@" $BIN serve >> /tmp/maveraa-bench.log 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null || { cat /tmp/maveraa-bench.log; exit 1; }
  ( while kill -0 "$SERVER" 2>/dev/null; do
      awk '/VmRSS/ {print $2}' "/proc/$SERVER/status" 2>/dev/null >> "$RSS_LOG"; sleep 0.2
    done ) &
  SAMPLER=$!
}
stop_server() {
  kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=""
  kill "$SAMPLER" 2>/dev/null || true
}

echo "== starting the server on port $PORT (dispatch off: sends stay queued)"
start_server MAVERAA__DISPATCHER__WORKERS=0

BASE="http://127.0.0.1:$PORT"
declare -a ROWS
SEND_LUA=$(mktemp --suffix=.lua)
# OTP-style traffic: each send to one of 100,000 recipients. (All sends to
# one recipient serialise on that conversation's row: about 1,600/s here.)
cat > "$SEND_LUA" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  local n = 628120000000 + math.random(1, 100000)
  return wrk.format(nil, nil, nil, '{"sessionId":"bench","targetNumber":"' .. n .. '","message":"Your OTP code is 4567"}')
end
LUA
# CPU time (clock ticks) used so far by the server, and by the benchmark's
# PostgreSQL (postmaster and its children), for the CPU per request columns.
TICKS_PER_SEC=$(getconf CLK_TCK)
PG_DIR=$MAVERAA__DATABASE__LOCAL__DIR/data
ticks_of() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
server_ticks() { ticks_of "$SERVER"; }
pg_ticks() { local pm; pm=$(head -1 "$PG_DIR/postmaster.pid" 2>/dev/null || true); [ -n "$pm" ] || { echo 0; return; }; ticks_of "$pm" $(pgrep -P "$pm"); }
# run NAME CONNECTIONS URL HEADER VAR [wrk args...]
run() {
  local name=$1 conns=$2 url=$3 header=${4:-} var=$5; shift 5
  local args=(-t"$THREADS" -c"$conns" -d"$DURATION" --latency "$@")
  [ -n "$header" ] && args+=(-H "$header")
  [ $# -eq 0 ] && { curl -fs ${header:+-H "$header"} "$url" >/dev/null || { echo "$url failed"; exit 1; }; }
  local s0 p0; s0=$(server_ticks); p0=$(pg_ticks)
  local out; out=$(wrk "${args[@]}" "$url")
  local s1 p1; s1=$(server_ticks); p1=$(pg_ticks)
  local rps p50 p99 non2xx n srv_us pg_us
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  srv_us=$(awk -v t=$((s1 - s0)) -v n="$n" -v hz="$TICKS_PER_SEC" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')
  pg_us=$(awk -v t=$((p1 - p0)) -v n="$n" -v hz="$TICKS_PER_SEC" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); non2xx=${non2xx:-0}
  echo "   $name: $rps req/s, p50 $p50, p99 $p99, non-2xx $non2xx, CPU per request: server ${srv_us} us, PostgreSQL ${pg_us} us"
  ROWS+=("| $name | $conns | $rps | $p50 | $p99 | $non2xx | $srv_us | $pg_us |")
  eval "RPS_$var=$rps"; eval "P99_$var=$p99"
}

echo "== loading ($DURATION each, $THREADS wrk threads)"
run "GET /health" "$CONNECTIONS" "$BASE/health" "" HEALTH
run "GET /ready (1 DB round trip)" "$CONNECTIONS" "$BASE/ready" "" READY
run "GET /api/public/contacts?limit=50" "$CONNECTIONS" "$BASE/api/public/contacts?limit=50" "X-API-Key: $KEY" PAGE
run "GET /api/public/contacts (all $SEED)" 4 "$BASE/api/public/contacts" "X-API-Key: $KEY" ALL
# Before the sends, which add conversations: the list is measured on the
# workspace's $SEED_CONVERSATIONS, as the target is set.
run "GET /api/public/inbox/conversations ($SEED_CONVERSATIONS in the workspace)" "$CONNECTIONS" "$BASE/api/public/inbox/conversations" "X-API-Key: $KEY" CONV

# PostgreSQL alone: the statement behind each of these endpoints, run
# back to back in libpq's pipeline mode with no server in between (the
# statements as the server sends them, as PostgreSQL logs them with
# log_statement = all; its read connections plan once).
# This is the database's share that no server code can remove.
SEP="?"; [[ $DB_URL == *\?* ]] && SEP="&"
STATEMENT_CONNINFO="$DB_URL${SEP}options=-c%20plan_cache_mode%3Dforce_generic_plan%20-c%20enable_seqscan%3Doff"
declare -a PG_ROWS
# statement NAME SQL [PARAM...]
statement() {
  local name=$1; shift
  local out; out=$(target/pg-statement-cost "$STATEMENT_CONNINFO" 50000 "$@") || exit 1
  echo "   $name: ${out#* } us of PostgreSQL CPU per execution (${out%% *} rows)"
  PG_ROWS+=("| $name | ${out%% *} | ${out#* } |")
}
# The two pages' statements as the server sends them (PostgreSQL's log,
# log_statement = all): the contact page with the workspace's count (the
# counter row and the changes kept beside it, see migration
# contact_count_deltas), and a page of conversations and one more.
CONTACT_PAGE_SQL='SELECT "contacts"."id", "contacts"."name", "contacts"."phone", "contacts"."labels", "contacts"."created_at", nullif("contacts"."updated_at", "contacts"."created_at"), (SELECT w.contact_count + coalesce((SELECT sum(d.delta) FROM contact_count_deltas d WHERE d.workspace_id = w.id), 0) FROM workspaces w WHERE w.id = $1) FROM "contacts" WHERE ("contacts"."workspace_id" = $2) ORDER BY "contacts"."created_at" DESC, "contacts"."id" DESC LIMIT $3 OFFSET $4'
CONVERSATION_PAGE_SQL='SELECT "conversations"."session_id", "conversations"."remote", "conversations"."push_name", "conversations"."last_message", "conversations"."last_message_at", "conversations"."unread_count" FROM "conversations" WHERE ("conversations"."workspace_id" = $1) ORDER BY "conversations"."last_message_at" DESC, "conversations"."session_id" ASC, "conversations"."remote" ASC LIMIT $2'

# pgbench_tps SQL PARAM...: pgbench running SQL alone, prepared, planned
# once as the server's read connections plan it, with wrk's concurrency
# ($CONNECTIONS clients on $THREADS threads) for DURATION, on the same
# machine: the rate at which the database does the page's work with no
# server in front of it. $1.. in SQL are the PARAMs.
declare -a ANCHOR_ROWS
pgbench_tps() {
  local sql=$1; shift
  local script i=1 p defines=()
  for p in "$@"; do defines+=(-D "p$i=$p"); sql=${sql//\$$i/:p$i}; i=$((i + 1)); done
  script=$(mktemp --suffix=.sql)
  printf '%s;\n' "$sql" > "$script"
  PGOPTIONS="-c plan_cache_mode=force_generic_plan" pgbench -n -M prepared -c "$CONNECTIONS" \
    -j "$THREADS" -T "${DURATION%s}" "${defines[@]}" -f "$script" "$DB_URL" 2>/dev/null |
    awk '/^tps/ {printf "%.0f", $3}'
  rm -f "$script"
}
echo "== the same pages' statements in pgbench ($CONNECTIONS clients, $DURATION each)"
PGB_PAGE=$(pgbench_tps "$CONTACT_PAGE_SQL" "$WS" "$WS" 51 0)
PGB_CONV=$(pgbench_tps "$CONVERSATION_PAGE_SQL" "$WS" 51)
[ -n "$PGB_PAGE" ] && [ -n "$PGB_CONV" ] || { echo "pgbench failed"; exit 1; }
echo "   contact page: $PGB_PAGE/s; conversation page: $PGB_CONV/s"
ANCHOR_ROWS+=("| contacts?limit=50 | $RPS_PAGE | $PGB_PAGE | $(awk -v a="$RPS_PAGE" -v b="$PGB_PAGE" 'BEGIN {printf "%.0f", 100*a/b}')% |")
ANCHOR_ROWS+=("| inbox/conversations | $RPS_CONV | $PGB_CONV | $(awk -v a="$RPS_CONV" -v b="$PGB_CONV" 'BEGIN {printf "%.0f", 100*a/b}')% |")

echo "== PostgreSQL alone (pipelined, no server)"
statement "/ready: SELECT \$1" 'SELECT $1' 1
statement "contacts?limit=50: the page and the workspace's count" "$CONTACT_PAGE_SQL" "$WS" "$WS" 51 0
statement "conversations: a page of 50 and one more" "$CONVERSATION_PAGE_SQL" "$WS" 51

# What the event log costs a send (issue 16: at most 15%): the same sends
# with the message events' triggers on and off, in EVENT_PAIRS pairs run
# alternately on-off, off-on... (the tables grow through the runs, and a
# run measured later measures more data: alternating gives neither side
# the advantage). The ratio reported is the median pair's.
events_off() {
  psql -q "$DB_URL" -c "ALTER TABLE messages DISABLE TRIGGER messages_events_insert" \
    -c "ALTER TABLE messages DISABLE TRIGGER messages_events_status"
}
events_on() {
  psql -q "$DB_URL" -c "ALTER TABLE messages ENABLE TRIGGER messages_events_insert" \
    -c "ALTER TABLE messages ENABLE TRIGGER messages_events_status"
}
# Each send run starts right after a checkpoint: one falling inside a run
# (every 5 minutes or 1 GB of WAL) would charge that run alone for it and
# the full pages it makes the next writes log.
checkpoint() { psql -q "$DB_URL" -c CHECKPOINT; }
send_on() { checkpoint; run "POST /api/public/inbox/send (durably queued)$1" "$CONNECTIONS" "$BASE/api/public/inbox/send" "X-API-Key: $KEY" "$2" -s "$SEND_LUA"; }
send_off() { events_off; checkpoint; run "POST /api/public/inbox/send (message events off)$1" "$CONNECTIONS" "$BASE/api/public/inbox/send" "X-API-Key: $KEY" "$2" -s "$SEND_LUA"; events_on; }
EVENT_PAIRS=${EVENT_PAIRS:-5}
declare -a EVENT_RATIOS
for pair in $(seq 1 "$EVENT_PAIRS"); do
  label=""; [ "$pair" -gt 1 ] && label=" [pair $pair]"
  on=SEND; off=SEND_NOEVENTS; [ "$pair" -gt 1 ] && { on=SEND_$pair; off=SEND_NOEVENTS_$pair; }
  if [ $((pair % 2)) = 1 ]; then send_on "$label" "$on"; send_off "$label" "$off"
  else send_off "$label" "$off"; send_on "$label" "$on"; fi
  eval "a=\$RPS_$on; b=\$RPS_$off"
  EVENT_RATIOS+=("$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f", 100*a/b}')")
done
EVENT_MEDIAN=$(printf '%s\n' "${EVENT_RATIOS[@]}" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
echo "   sends with events / without, by pair: ${EVENT_RATIOS[*]} (median $EVENT_MEDIAN%)"
# Where the log's cost is: the same sends with the events written but the
# sequencer (which gives them their positions) paused for the run.
stop_server
start_server MAVERAA__DISPATCHER__WORKERS=0 MAVERAA__EVENTS__SEQUENCE_EVERY_MS=3600000
run "POST /api/public/inbox/send (events written, sequencer paused)" "$CONNECTIONS" "$BASE/api/public/inbox/send" "X-API-Key: $KEY" SEND_NOSEQ -s "$SEND_LUA"
stop_server
# The same question without the noise of a loaded machine: PostgreSQL's
# CPU for a message's INSERT (what a send writes, its event included) with
# the message events on and off, one backend, pipelined, three times each
# alternately (medians); then the sequencer's time per event it places.
MSG_INSERT_SQL="INSERT INTO messages (id, workspace_id, session_id, remote, direction, type, body, status, created_at, updated_at) VALUES (gen_random_uuid(), \$1, \$2, '6281200001', 'outbound', 'text', 'Hello from the benchmark', 'queued', now(), now())"
insert_cost() { target/pg-statement-cost "$STATEMENT_CONNINFO" 50000 "$MSG_INSERT_SQL" "$WS" "$SESSION_UUID" | cut -d' ' -f2; }
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
psql -q "$DB_URL" -c "SELECT sequence_events(10000000)" >/dev/null
declare -a INS_ON INS_OFF
for _ in 1 2 3; do
  events_off; INS_OFF+=("$(insert_cost)"); events_on; INS_ON+=("$(insert_cost)")
done
INSERT_ON=$(median3 "${INS_ON[@]}"); INSERT_OFF=$(median3 "${INS_OFF[@]}")
PENDING=$(psql -At "$DB_URL" -c "SELECT count(*) FROM events WHERE pos IS NULL")
SEQ_MS=$(psql -At "$DB_URL" -c '\timing on' -c "SELECT sequence_events(10000000)" | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p')
SEQ_US=$(awk -v ms="$SEQ_MS" -v n="$PENDING" 'BEGIN {printf "%.1f", 1000*ms/n}')
echo "   message INSERT: ${INS_ON[*]} us of PostgreSQL CPU with message events, ${INS_OFF[*]} without; the sequencer placed $PENDING events in $SEQ_MS ms ($SEQ_US us each)"
start_server MAVERAA__DISPATCHER__WORKERS=0
# And again on what the sends left: many more conversations, just written
# and not yet vacuumed (shown for information; no target).
CONVERSATIONS_NOW=$(psql -At "$DB_URL" -c "SELECT count(*) FROM conversations")
run "GET /api/public/inbox/conversations (after the sends: $CONVERSATIONS_NOW)" "$CONNECTIONS" "$BASE/api/public/inbox/conversations" "X-API-Key: $KEY" CONV_AFTER
stop_server

# The dispatch is measured on at most DISPATCH_MAX queued messages (the
# send runs above leave more with more EVENT_PAIRS): the newest beyond it
# leave the queue unsent.
DISPATCH_MAX=${DISPATCH_MAX:-200000}
psql -q "$DB_URL" -c "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM outbox ORDER BY next_attempt_at DESC OFFSET $DISPATCH_MAX)"
QUEUED=$(psql -At "$DB_URL" -c "SELECT count(*) FROM outbox")
echo "== dispatching $QUEUED queued messages to a local provider that answers at once"
if curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" >/dev/null 2>&1; then
  echo "port $PROVIDER_PORT is taken (a leftover dev-provider?); its counts would be wrong"; exit 1
fi
$BIN dev-provider --port "$PROVIDER_PORT" >/dev/null 2>&1 &
PROVIDER=$!
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" >/dev/null && break; sleep 0.1; done
T0=$(date +%s.%N)
# DISPATCH_ENV: settings for this phase only (VAR=value ...), for experiments.
# shellcheck disable=SC2086
start_server ${DISPATCH_ENV:-}
while [ "$(psql -At "$DB_URL" -c "SELECT count(*) FROM outbox")" != 0 ]; do sleep 0.2; done
T1=$(date +%s.%N)
stop_server
SENT=$(psql -At "$DB_URL" -c "SELECT count(*) FROM messages WHERE status = 'sent'")
ACCEPTED=$(curl -fs "http://127.0.0.1:$PROVIDER_PORT/count" | sed -E 's/.*"accepted":([0-9]+).*/\1/')
DISPATCH_RATE=$(awk -v n="$QUEUED" -v a="$T0" -v b="$T1" 'BEGIN {printf "%.0f", n/(b-a)}')
echo "   $QUEUED messages queued -> sent in $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f", b-a}') s (server start included): $DISPATCH_RATE messages/s; provider received $ACCEPTED, messages sent $SENT"

MAX_RSS_KB=$(sort -n "$RSS_LOG" | tail -1)
MAX_RSS_MB=$(awk -v k="$MAX_RSS_KB" 'BEGIN {printf "%.1f", k/1024}')
PAGE_RATIO=$(awk -v a="$RPS_PAGE" -v b="$RPS_READY" 'BEGIN {printf "%.0f", 100*a/b}')
SEND_RATIO=$(awk -v a="$RPS_SEND" -v b="$RPS_READY" 'BEGIN {printf "%.0f", 100*a/b}')
CONV_RATIO=$(awk -v a="$RPS_CONV" -v b="$RPS_READY" 'BEGIN {printf "%.0f", 100*a/b}')

CPU=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU), $(free -g | awk '/Mem/ {print $2}') GiB; server, PostgreSQL and wrk share the machine."
  echo "wrk -t$THREADS -d$DURATION; release build; $SEED contacts in the workspace."
  echo
  echo "| endpoint | connections | requests/s | p50 | p99 | non-2xx | server CPU µs/request | PostgreSQL CPU µs/request |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "CPU per request: user and system time of the server process, and of PostgreSQL (postmaster and backends), over the run, divided by the requests completed; wrk and the kernel's network work outside these processes take the rest of the cores."
  echo
  echo "PostgreSQL alone: the statement behind each endpoint, 50,000 executions back to back in libpq's pipeline mode with binary results and no server (\`scripts/pg-statement-cost.c\`); the backend's CPU per execution, without the wake-ups and socket calls a round trip adds to every statement alike."
  echo
  echo "| statement | rows | PostgreSQL CPU µs/execution |"
  echo "|---|---|---|"
  printf '%s\n' "${PG_ROWS[@]}"
  echo
  echo "The anchor: each page against \`pgbench\` running the same statement, prepared and planned once as the server's read connections plan it, with the same $CONNECTIONS clients, for $DURATION, on the same machine: the rate at which PostgreSQL does the page's work with nothing in front of it. The server's rate also pays for the HTTP request, the key check, decoding the rows and writing the JSON, on the same two cores."
  echo
  echo "| page | server requests/s | pgbench transactions/s | server / pgbench |"
  echo "|---|---|---|---|"
  printf '%s\n' "${ANCHOR_ROWS[@]}"
  echo
  echo "| dispatch (queued to sent, local provider answering at once) | messages | seconds | messages/s | provider received |"
  echo "|---|---|---|---|---|"
  echo "| 2 dispatch loops, batch 100 | $QUEUED | $(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.2f", b-a}') | $DISPATCH_RATE | $ACCEPTED |"
  echo
  echo "- contact page / pgbench on its statement: $(awk -v a="$RPS_PAGE" -v b="$PGB_PAGE" 'BEGIN {printf "%.0f", 100*a/b}')% (target at least 75%)"
  echo "- conversation page / pgbench on its statement: $(awk -v a="$RPS_CONV" -v b="$PGB_CONV" 'BEGIN {printf "%.0f", 100*a/b}')% (target at least 75%)"
  echo "- authenticated page / \`/ready\`: ${PAGE_RATIO}% (the earlier anchor, kept for comparison)"
  echo "- send / \`/ready\`: ${SEND_RATIO}% (target at least 30%), send p99 ${P99_SEND} (target under 50 ms)"
  echo "- sends with message events / without: ${EVENT_MEDIAN}%, the median of $EVENT_PAIRS alternating pairs (${EVENT_RATIOS[*]}) (events may cost sends at most 15%)"
  echo "- PostgreSQL alone, one backend: a message's INSERT costs ${INSERT_ON} µs of CPU with its event and ${INSERT_OFF} µs without (medians of ${INS_ON[*]} and ${INS_OFF[*]}), and placing an event in the log ${SEQ_US} µs ($PENDING in $SEQ_MS ms)"
  echo "- sends with events written but not yet sequenced / without: $(awk -v a="$RPS_SEND_NOSEQ" -v b="$RPS_SEND_NOEVENTS" 'BEGIN {printf "%.0f", 100*a/b}')% (the triggers' share of the cost)"
  echo "- conversation list / \`/ready\`: ${CONV_RATIO}% (the earlier anchor)"
  echo "- dispatch: ${DISPATCH_RATE} messages/s (target at least 1,000)"
  echo "- server peak RSS over the whole run: ${MAX_RSS_MB} MB (target under 100 MB)"
} | tee docs/benchmark-latest.md
