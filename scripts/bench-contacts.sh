#!/usr/bin/env bash
# Contact search at scale: builds the release binary, seeds one workspace
# with SEED contacts (default 1,000,000) in its own local PostgreSQL, and
# times name-substring, phone-part and label-filter searches: the median of
# REQUESTS requests sent one after another by one client (curl), beside
# pgbench running the same statements (prepared, one client) for the
# database's own cost of the same work.
#
#   scripts/bench-contacts.sh
#   SEED=100000 REQUESTS=51 scripts/bench-contacts.sh
#
# Then streams the unpaged list of all of them and imports as many from a
# CSV through the API, with the server's peak RSS during each.
#
# Prints Markdown tables. Nothing is left running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

SEED=${SEED:-1000000}
REQUESTS=${REQUESTS:-101}
PGBENCH_SECS=${PGBENCH_SECS:-10}
PORT=${BENCH_PORT:-18081}
PG_PORT=${BENCH_PG_PORT:-55435}

for tool in psql pgbench curl; do
  command -v $tool >/dev/null || { echo "$tool is needed (Debian: postgresql-client, curl)"; exit 1; }
done

echo "== building the release binary"
cargo build --release -p maveraa-server --quiet
BIN=target/release/maveraa

export MAVERAA__DATABASE__URL=""
export MAVERAA__DATABASE__LOCAL__DIR=.data/bench-contacts-postgres
export MAVERAA__DATABASE__LOCAL__PORT=$PG_PORT
export MAVERAA__DATABASE__LOCAL__DATABASE=maveraa_bench_contacts
export MAVERAA__SERVER__PORT=$PORT
# One key drives all the load: no per-key rate limit, and no metrics port.
export MAVERAA__RATE_LIMITS__REQUESTS_PER_SEC=0
export MAVERAA__RATE_LIMITS__SENDS_PER_SEC=0
export MAVERAA__METRICS__ADDRESS=
export MAVERAA__BOOTSTRAP__DEFAULT_WORKSPACE=false
export MAVERAA__DISPATCHER__WORKERS=0
export RUST_LOG=warn

SERVER=""
cleanup() {
  set +e
  [ -n "$SERVER" ] && { kill "$SERVER"; wait "$SERVER"; } 2>/dev/null
  $BIN local-db stop >/dev/null 2>&1
}
trap cleanup EXIT

echo "== preparing PostgreSQL on port $PG_PORT"
DB_URL=$($BIN local-db start | sed -E 's/.*"url":"([^"]+)".*/\1/')
# The local server takes only its password: the admin URL is the same one, on the postgres database.
ADMIN_URL="${DB_URL%/*}/postgres"
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS maveraa_bench_contacts WITH (FORCE)" \
  -c "CREATE DATABASE maveraa_bench_contacts"
$BIN migrate >/dev/null
WS=$($BIN workspace create --name bench | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY=$($BIN api-key create --workspace "$WS" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')

# Names "Contact <8 hex digits>", phones 6281200000001.., 2% labelled VIP,
# a third Lead. One statement: the count is kept once for all of it.
echo "== seeding $SEED contacts (one INSERT, with the indexes in place)"
SEED_START=$(date +%s.%N)
psql -q "$DB_URL" <<SQL
INSERT INTO contacts (id, workspace_id, name, phone, labels, created_at, updated_at)
SELECT gen_random_uuid(), '$WS', 'Contact ' || substr(md5(i::text), 1, 8), (6281200000000 + i)::text,
       CASE WHEN i % 50 = 0 THEN ARRAY['VIP', 'Lead'] WHEN i % 3 = 0 THEN ARRAY['Lead'] ELSE ARRAY[]::text[] END,
       now() - make_interval(secs => $SEED - i), now()
FROM generate_series(1, $SEED) AS i;
SQL
SEED_SECS=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
psql -q "$DB_URL" -c "VACUUM ANALYZE contacts"
STORED=$(psql -At "$DB_URL" -c "SELECT contact_count FROM workspaces WHERE id = '$WS'")
[ "$STORED" = "$SEED" ] || { echo "stored count $STORED, expected $SEED"; exit 1; }
echo "   seeded in $SEED_SECS s; stored count $STORED"

# Part of one contact's name (5 of its 8 hex digits), and of a phone.
NAME_PART=$(psql -At "$DB_URL" -c "SELECT substr(md5('12345'), 2, 5)")
PHONE_PART=81200012345

echo "== starting the server on port $PORT"
$BIN serve >> /tmp/maveraa-bench-contacts.log 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null || { cat /tmp/maveraa-bench-contacts.log; exit 1; }

BASE="http://127.0.0.1:$PORT/api/public/contacts"
declare -a ROWS
# median_ms QUERY: the median of REQUESTS sequential requests, in ms.
median_ms() {
  local url="$BASE?$1"
  curl -fs -H "X-API-Key: $KEY" "$url" >/dev/null || { echo "$url failed" >&2; exit 1; }
  for _ in $(seq 1 "$REQUESTS"); do
    curl -s -o /dev/null -H "X-API-Key: $KEY" -w '%{time_total}\n' "$url"
  done | sort -n | awk '{a[NR] = $1} END {printf "%.2f", a[int((NR + 1) / 2)] * 1000}'
}
# pgbench_ms SQL: pgbench's average latency for SQL (one client, prepared).
pgbench_ms() {
  local script; script=$(mktemp --suffix=.sql)
  printf '%s\n' "$1" > "$script"
  pgbench -n -M prepared -c 1 -T "$PGBENCH_SECS" -f "$script" "$DB_URL" 2>/dev/null |
    awk '/latency average/ {print $4}'
  rm -f "$script"
}
# The list's statements as the server runs a filtered page: planned for
# the search's own text (see ContactRepository::list), the total (a count,
# or a label's kept count), the page.
statements() {
  local count=$1 where=$2 offset=$3
  cat <<SQL
BEGIN READ ONLY;
SET LOCAL plan_cache_mode = force_custom_plan;
$count;
SELECT id, name, phone, labels, created_at, nullif(updated_at, created_at) FROM contacts
 WHERE workspace_id = '$WS' AND $where ORDER BY created_at DESC, id DESC LIMIT 51 OFFSET $offset;
COMMIT;
SQL
}
# measure NAME QUERY COUNT WHERE OFFSET
measure() {
  local server pg matches
  server=$(median_ms "$2")
  pg=$(pgbench_ms "$(statements "$3" "$4" "$5")")
  matches=$(curl -fs -H "X-API-Key: $KEY" "$BASE?$2" | sed -E 's/.*"total":([0-9]+).*/\1/')
  echo "   $1: $matches matches, server median $server ms, pgbench $pg ms"
  ROWS+=("| $1 | \`${2:0:60}\` | $matches | $server | $pg |")
}
counted() { echo "SELECT count(*) FROM contacts WHERE workspace_id = '$WS' AND $1"; }
label_count() { echo "SELECT coalesce(sum(n), 0) FROM contact_label_counts WHERE workspace_id = '$WS' AND label = lower('$1')"; }

# A phone part is looked up by its groups of 4 digits (contacts_phone_grams_idx).
PHONE_GRAMS=$(awk -v d="$PHONE_PART" 'BEGIN {for (i = 1; i + 3 <= length(d); i++) g[substr(d, i, 4)]; s = ""; for (k in g) s = s (s == "" ? "" : ",") "\"" k "\""; print s}')
NAME_WHERE="name ILIKE '%$NAME_PART%'"
PHONE_WHERE="(name ILIKE '%$PHONE_PART%' OR (contact_phone_grams(phone) @> '{$PHONE_GRAMS}'::text[] AND phone LIKE '%$PHONE_PART%'))"
LABEL_WHERE="contact_labels_lower(labels) @> ARRAY[lower('VIP')]"
# A page 300 pages deep (the 15,000th VIP contact on), read by cursor:
# walk there with each page's "next", as a client would.
AFTER=""
for _ in $(seq 1 300); do
  AFTER=$(curl -fs -H "X-API-Key: $KEY" "$BASE?label=VIP&limit=50${AFTER:+&after=$AFTER}" | sed -E 's/.*"next":"([^"]+)".*/\1/')
done
IFS='|' read -r AFTER_AT AFTER_ID < <(psql -At -F '|' "$DB_URL" -c "SELECT created_at, id FROM contacts WHERE workspace_id = '$WS' AND $LABEL_WHERE ORDER BY created_at DESC, id DESC OFFSET 14999 LIMIT 1")
AFTER_WHERE="$LABEL_WHERE AND (created_at, id) < ('$AFTER_AT', '$AFTER_ID')"
echo "== measuring ($REQUESTS requests each, pgbench ${PGBENCH_SECS}s each)"
measure "name part" "search=$NAME_PART&limit=50" "$(counted "$NAME_WHERE")" "$NAME_WHERE" 0
measure "phone part" "search=$PHONE_PART&limit=50" "$(counted "$PHONE_WHERE")" "$PHONE_WHERE" 0
measure "label" "label=VIP&limit=50" "$(label_count VIP)" "$LABEL_WHERE" 0
measure "label, page 301 by cursor" "label=VIP&limit=50&after=$AFTER" "$(label_count VIP)" "$AFTER_WHERE" 0
measure "label, page 301 by offset" "label=VIP&limit=50&offset=15000" "$(label_count VIP)" "$LABEL_WHERE" 15000
measure "label, common" "label=lead&limit=50" "$(label_count lead)" "contact_labels_lower(labels) @> ARRAY[lower('lead')]" 0

# The server's peak RSS from here on: clear_refs 5 resets VmHWM (Linux,
# the process's owner or root).
reset_peak() { echo 5 > "/proc/$SERVER/clear_refs"; }
peak_mb() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }

echo "== the unpaged list of all $SEED contacts (streamed)"
reset_peak
read -r LIST_SECS LIST_BYTES < <(curl -s -o /dev/null -H "X-API-Key: $KEY" -w '%{time_total} %{size_download}\n' "$BASE")
LIST_RSS=$(peak_mb)
LIST_MB=$(awk -v b="$LIST_BYTES" 'BEGIN {printf "%.0f", b / 1e6}')
echo "   $LIST_MB MB in $LIST_SECS s; server peak RSS meanwhile $LIST_RSS MB"

# An import of SEED new contacts through the API, into a workspace of its
# own (no duplicates), beside the database's own cost for as many rows (the
# seed above: one INSERT .. SELECT, the same indexes, nothing to parse).
echo "== importing $SEED contacts from a CSV through the API"
WS2=$($BIN workspace create --name bench-import | sed -E 's/.*"id":"([^"]+)".*/\1/')
KEY2=$($BIN api-key create --workspace "$WS2" --name bench | sed -E 's/.*"key":"([^"]+)".*/\1/')
CSV=$(mktemp --suffix=.csv)
REPORT=$(mktemp)
awk -v n="$SEED" 'BEGIN {
  print "name,phone,labels"
  for (i = 1; i <= n; i++) printf "Imported %08x,%.0f,\"Lead, Import\"\n", i * 2654435761 % 4294967296, 6281200000000 + i
}' > "$CSV"
CSV_MB=$(du -m "$CSV" | cut -f1)
reset_peak
IMPORT_START=$(date +%s.%N)
STATUS=$(curl -s -o "$REPORT" -w '%{http_code}' -H "X-API-Key: $KEY2" -H 'Content-Type: text/csv' \
  --data-binary @"$CSV" "$BASE/import")
IMPORT_SECS=$(awk -v a="$IMPORT_START" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
IMPORT_RSS=$(peak_mb)
[ "$STATUS" = 200 ] || { echo "import answered $STATUS: $(head -c 600 "$REPORT")"; exit 1; }
CREATED=$(sed -E 's/.*"created":([0-9]+).*/\1/' "$REPORT")
[ "$CREATED" = "$SEED" ] || { echo "import created $CREATED of $SEED: $(head -c 600 "$REPORT")"; exit 1; }
STORED2=$(psql -At "$DB_URL" -c "SELECT count(*) FROM contacts WHERE workspace_id = '$WS2'")
echo "   $CREATED created ($STORED2 stored) from $CSV_MB MB in $IMPORT_SECS s; server peak RSS meanwhile $IMPORT_RSS MB"
rm -f "$CSV" "$REPORT"

CPU=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($CPU); server, PostgreSQL and the client share the machine."
echo "$SEED contacts in one workspace (seeded by one INSERT in $SEED_SECS s); release build; median of $REQUESTS sequential requests from one client; pgbench -M prepared -c 1 -T $PGBENCH_SECS, average latency."
echo
echo "| search | query | matches | server median ms | pgbench ms |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "| work | size | seconds | server peak RSS MB |"
echo "|---|---|---|---|"
echo "| unpaged list, streamed | $SEED contacts, $LIST_MB MB of JSON | $LIST_SECS | $LIST_RSS |"
echo "| import through the API (CSV, one transaction) | $SEED rows, $CSV_MB MB | $IMPORT_SECS | $IMPORT_RSS |"
echo "| the same number of rows in one INSERT .. SELECT (psql, the seed) | $SEED rows | $SEED_SECS | - |"
