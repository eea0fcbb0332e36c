#!/usr/bin/env bash
# Plate-lookup latency of `plumewatch serve` under concurrent clients (issue 13, reported
# figure, not a test). Generates N passes (and plate reads) with the registry, ingests them,
# starts the server on loopback with one police token user, then runs ApacheBench (Debian
# `apache2-utils`: `ab`) with C concurrent keep-alive clients, K requests, against
# `GET /api/plates/{plate}` for P plates in turn (a plate seen often, one seen rarely, one never
# seen; each its own ab run). Prints per plate p50/p99/max latency and requests/s, the rows of
# each table, and the server's peak RSS (VmHWM) and RSS after the runs.
#
#   scripts/serve_load.sh [N]      N generated passes (default 10000000)
#
# Env: BIN (default target/release/plumewatch), C (default 200), K (default 4000), PORT
# (default 18080), WORK (scratch dir; kept when set, and its tables reused), SHARE (high-emitter
# share of the fleet, default 0.05), CHINA3 (share of trucks registered China III, default
# 0.5: about 12 % of passes become China III diesel sightings, i.e. detections), READS (plate reads, default N / 10).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
BIN=${BIN:-target/release/plumewatch}
C=${C:-200}
K=${K:-4000}
PORT=${PORT:-18080}
SHARE=${SHARE:-0.05}
CHINA3=${CHINA3:-0.5}
READS=${READS:-$(( N / 10 ))}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first (or set BIN)" >&2; exit 1; }
command -v ab >/dev/null || { echo "needs ab (apt-get install apache2-utils)" >&2; exit 1; }
BIN=$(realpath "$BIN")
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
T="$WORK/tables"
if [ ! -d "$T/rsd_passes" ]; then
  left=$N; seed=1
  while [ "$left" -gt 0 ]; do
    n=$(( left < 5000000 ? left : 5000000 ))
    r=$(( READS * n / N ))
    "$BIN" gen rsd --count "$n" --seed "$seed" --fleet-seed 1 --out "$WORK/p.ndjson" --registry "$WORK/v$seed.csv" \
      --vehicles $(( N / 20 > 100 ? N / 20 : 100 )) --high-emitter-share "$SHARE" --china3-truck-share "$CHINA3" \
      --plate-reads "$r" --plates-out "$WORK/r.ndjson" >&2
    [ "$seed" = 1 ] && "$BIN" ingest --quiet --stream vehicles --format csv --out "$T" "$WORK/v1.csv" >&2
    "$BIN" ingest --quiet --stream rsd --out "$T" "$WORK/p.ndjson" >&2
    "$BIN" ingest --quiet --stream plates --out "$T" "$WORK/r.ndjson" >&2
    rm -f "$WORK/p.ndjson" "$WORK/r.ndjson"
    left=$(( left - n )); seed=$(( seed + 1 ))
  done
fi
q() { "$BIN" query --tables "$T" --format csv "$1" | tail -n +2 | tr -d '\r\357\273\277'; }
echo "tables: $(q "SELECT count(*) FROM rsd_passes") passes, $(q "SELECT count(*) FROM plate_reads") plate reads, $(q "SELECT count(*) FROM detections") detections, $(q "SELECT count(*) FROM vehicles") vehicles, $(du -sh "$T" | cut -f1)"
often=$(q "SELECT plate FROM rsd_passes WHERE plate IS NOT NULL GROUP BY plate ORDER BY count(*) DESC, plate LIMIT 1")
rare=$(q "SELECT plate FROM rsd_passes WHERE plate IS NOT NULL GROUP BY plate ORDER BY count(*), plate LIMIT 1")
# The flagged plate of median detection count (the most flagged plate of a Zipf fleet has
# ~180,000 detections at 10 M passes, more than an answer may carry: 413).
half=$(q "SELECT count(DISTINCT plate) / 2 FROM detections")
flagged=$(q "SELECT plate FROM detections WHERE plate IS NOT NULL GROUP BY plate ORDER BY count(*), plate LIMIT 1 OFFSET $half")
never="京Z00000"

TOKEN="load-test-token"
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
cat >"$WORK/serve.toml" <<EOF
[serve]
listen = "127.0.0.1:$PORT"
instance_id = "load"
[[serve.users]]
name = "load"
role = "police"
token_sha256 = "$SHA"
EOF
"$BIN" serve --tables "$T" --config "$WORK/serve.toml" >"$WORK/serve.log" 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; [ -n "${KEEP_WORK:-}" ] || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.2
done
enc() { python3 -c 'import sys,urllib.parse;print(urllib.parse.quote(sys.argv[1]))' "$1"; }
printf '| plate | passes / detections of the plate | p50 ms | p99 ms | max ms | requests/s | failed |\n|---|---|---|---|---|---|---|\n'
for p in "$often" "$rare" "$flagged" "$never"; do
  n=$(q "SELECT count(*) FROM rsd_passes WHERE plate = '$p'")
  nd=$(q "SELECT count(*) FROM detections WHERE plate = '$p'")
  url="http://127.0.0.1:$PORT/api/plates/$(enc "$p")"
  # One warm-up request (opens the tables), then the measured run.
  curl -fsS -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  ab -q -k -c "$C" -n "$K" -H "Authorization: Bearer $TOKEN" "$url" >"$WORK/ab.txt" 2>&1 || { cat "$WORK/ab.txt" >&2; exit 1; }
  p50=$(awk '$1=="50%"{print $2}' "$WORK/ab.txt")
  p99=$(awk '$1=="99%"{print $2}' "$WORK/ab.txt")
  mx=$(awk '$1=="100%"{print $2}' "$WORK/ab.txt")
  rps=$(awk '/Requests per second/{print $4}' "$WORK/ab.txt")
  failed=$(awk '/Failed requests/{print $3}' "$WORK/ab.txt")
  non2xx=$(awk '/Non-2xx responses/{print $3}' "$WORK/ab.txt")
  printf '| %s | %s / %s | %s | %s | %s | %s | %s%s |\n' "$p" "$n" "$nd" "$p50" "$p99" "$mx" "$rps" "$failed" "${non2xx:+ ($non2xx non-2xx)}"
done
echo "server peak RSS: $(awk '/VmHWM/{print $2, $3}' /proc/$SPID/status); RSS now: $(awk '/VmRSS/{print $2, $3}' /proc/$SPID/status)"
