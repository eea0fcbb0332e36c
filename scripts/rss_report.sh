#!/usr/bin/env bash
# Peak RSS (and wall time) of `plumewatch ingest` on generated NDJSON and CSV RSD inputs of
# growing size, and on one endless line from stdin. Not a test: prints a Markdown table.
#
#   scripts/rss_report.sh [SIZES_MB...]     (default: 100 1000; add 10000 for 10 GB)
#
# Env: BIN (default target/debug/plumewatch — the numbers in the README were taken with the
# debug build), WORK (scratch dir, default a new temp dir; needs about 2.2 × the largest size),
# LINE_MB (single stdin line, default 2000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/plumewatch}
WORK=${WORK:-$(mktemp -d)}
LINE_MB=${LINE_MB:-2000}
SIZES=("${@:-100 1000}")
read -r -a SIZES <<<"${SIZES[*]}"
[ -x "$BIN" ] || { echo "no $BIN: cargo build first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }

max=0
for s in "${SIZES[@]}"; do [ "$s" -gt "$max" ] && max=$s; done

# One NDJSON file of the largest size (about 400 bytes a pass), cut by lines for the others.
big="$WORK/passes_${max}MB.ndjson"
if [ ! -s "$big" ]; then
  count=$(( max * 1000000 / 380 ))
  "$BIN" gen rsd --count "$count" --seed 7 --out "$big" --registry "$WORK/vehicles.csv" >&2
fi

to_csv() { # NDJSON → CSV with canonical column names
  python3 -c '
import json, sys
cols = ["pass_id","passed_at","site_id","lane","plate","plate_color","fuel","speed_kmh","accel_mps2",
        "road_grade_pct","co_co2_ratio","hc_co2_ratio","no_co2_ratio","wind_mps","ambient_temp_c",
        "lon_deg","lat_deg","opacity_pct","ringelmann"]
out = sys.stdout
out.write(",".join(cols) + "\n")
for line in sys.stdin:
    d = json.loads(line)
    out.write(",".join("" if d.get(c) is None else str(d[c]) for c in cols) + "\n")
'
}

measure() { # label, input description, command…
  local label=$1; shift
  local log="$WORK/time.log"
  local t; t=$(mktemp -d -p "$WORK")
  set +e
  /usr/bin/time -v "$@" --out "$t" >"$WORK/out.log" 2>"$log"
  local rc=$?
  set -e
  local rss wall recs
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.0f", $2/1024}' "$log")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  recs=$(awk '/records in:/ {print $3}' "$WORK/out.log")
  printf '| %s | %s | %s MB | %s | exit %s |\n' "$label" "${recs:-?}" "$rss" "$wall" "$rc"
  rm -rf "$t"
}

echo "| input | records | peak RSS | wall | exit |"
echo "|---|---|---|---|---|"
for s in "${SIZES[@]}"; do
  nd="$WORK/passes_${s}MB.ndjson"
  if [ ! -s "$nd" ]; then
    head -c "$(( s * 1000000 ))" "$big" | head -n -1 >"$nd"
  fi
  csv="$WORK/passes_${s}MB.csv"
  [ -s "$csv" ] || to_csv <"$nd" >"$csv"
  measure "NDJSON $(du -m "$nd" | cut -f1) MB (file)" "$BIN" ingest --quiet --stream rsd "$nd"
  measure "CSV $(du -m "$csv" | cut -f1) MB (file)" "$BIN" ingest --quiet --stream rsd --format csv "$csv"
  measure "NDJSON $(du -m "$nd" | cut -f1) MB (stdin)" sh -c "cat '$nd' | \"\$0\" ingest --quiet --stream rsd - \"\$@\"" "$BIN"
done
measure "one ${LINE_MB} MB line of NUL bytes (stdin)" sh -c "head -c $(( LINE_MB * 1000000 )) /dev/zero | \"\$0\" ingest --quiet --stream rsd - \"\$@\"" "$BIN"
echo
echo "binary: $BIN; inputs in $WORK"
