#!/usr/bin/env bash
# plumewatch `ingest --stream rsd` against DuckDB on the same job (bench/duckdb/rsd_job.sql:
# every input column, reduction, validity, verdict, flags, Parquet by date), from NDJSON and
# from CSV, alternating, R runs each. Prints a Markdown table of medians, MB/s, the ratio and
# peak RSS. Not a test (issue 12 item 1).
#
#   scripts/compare_duckdb.sh [N]          N generated passes (default 1000000, ~380 MB NDJSON)
#
# Env:
#   BIN          plumewatch binary (default target/release/plumewatch; build it first)
#   R            runs of each program on each input (default 3)
#   WORK         scratch dir (default a new temp dir, removed at the end unless KEEP=1); needs
#                about 2 × the NDJSON size plus the output tables
#   VENV         Python venv for DuckDB (default target/duckdb-venv; created when absent)
#   DUCKDB_SPEC  pip requirement (default duckdb==2.0.1)
#   VALIDATE_N   first check DuckDB's output against plumewatch's on this many passes of each
#                input, column by column (bench/duckdb/validate.py; default 10000, 0 skips)
#   DECODE_BASELINE  path to the arrow-json decode baseline binary (benches/arrow_json_decode.rs,
#                    built by `cargo bench --bench arrow_json_decode --no-run`); adds a row
#                    for decoding the NDJSON alone when set
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-1000000}
BIN=${BIN:-target/release/plumewatch}
R=${R:-3}
VENV=${VENV:-target/duckdb-venv}
DUCKDB_SPEC=${DUCKDB_SPEC:-duckdb==2.0.1}
VALIDATE_N=${VALIDATE_N:-10000}
KEEP=${KEEP:-0}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first (or set BIN)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 1; }
BIN=$(realpath "$BIN")
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  [ "$KEEP" = 1 ] || trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet "$DUCKDB_SPEC" >&2
fi
PY="$(cd "$VENV" && pwd)/bin/python"  # not realpath: the venv python is a symlink
DDVER=$("$PY" -c 'import duckdb; print(duckdb.__version__)')

to_csv() { # NDJSON → CSV with canonical column names (as scripts/rss_report.sh)
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

nd="$WORK/passes.ndjson"
csv="$WORK/passes.csv"
[ -s "$nd" ] || "$BIN" gen rsd --count "$N" --seed 7 --out "$nd" --registry "$WORK/vehicles.csv" >&2
[ -s "$csv" ] || to_csv <"$nd" >"$csv"

# Same job, same numbers: both programs on the first VALIDATE_N passes, compared column by column.
if [ "$VALIDATE_N" -gt 0 ]; then
  head -n "$VALIDATE_N" "$nd" >"$WORK/sample.ndjson"
  head -n "$(( VALIDATE_N + 1 ))" "$csv" >"$WORK/sample.csv"
  for fmt in ndjson csv; do
    rm -rf "$WORK/v_pw" "$WORK/v_dd"
    (cd "$WORK" && "$BIN" ingest --quiet --stream rsd --format "$fmt" "sample.$fmt" --out v_pw >/dev/null)
    (cd "$WORK" && "$PY" "$ROOT/bench/duckdb/run_job.py" --format "$fmt" "sample.$fmt" v_dd 2>/dev/null)
    echo "### Validation, $fmt, $VALIDATE_N passes" >&2
    "$PY" "$ROOT/bench/duckdb/validate.py" "$BIN" "$WORK/v_pw" "$WORK/v_dd" >"$WORK/validate_$fmt.md" \
      || { cat "$WORK/validate_$fmt.md" >&2; echo "validation FAILED ($fmt)" >&2; exit 1; }
    grep -E '^rows:|float \|' "$WORK/validate_$fmt.md" \
      | awk -F'|' '/^rows/ {print; next} {if ($6+0 > m) m = $6+0; if ($5+0 > 0) d++} END {printf "float columns: max abs diff %g, columns with any difference %d; every other column identical\n", m, d}' >&2
  done
  rm -rf "$WORK/v_pw" "$WORK/v_dd" "$WORK/sample.ndjson" "$WORK/sample.csv"
fi

# run LABEL CMD… → appends "seconds peak_kb" to $WORK/LABEL.times
run() {
  local label=$1; shift
  local out="$WORK/out_$label"
  rm -rf "$out"
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" "$out" >/dev/null 2>"$WORK/err.txt" \
    || { cat "$WORK/err.txt" >&2; echo "$label failed" >&2; exit 1; }
  cat "$WORK/time.txt" >>"$WORK/$label.times"
  rm -rf "$out"
}

rm -f "$WORK"/*.times
for i in $(seq "$R"); do
  for fmt in ndjson csv; do
    echo "run $i/$R $fmt" >&2
    (cd "$WORK" && run "pw_$fmt" "$BIN" ingest --quiet --stream rsd --format "$fmt" "passes.$fmt" --out)
    (cd "$WORK" && run "dd_$fmt" "$PY" "$ROOT/bench/duckdb/run_job.py" --format "$fmt" "passes.$fmt")
  done
done

med() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mb() { awk -v b="$(stat -c %s "$1")" 'BEGIN {printf "%.0f", b/1e6}'; }

echo
echo "$N generated passes (seed 7), $R runs each, alternating; median wall time (MB/s of input); peak RSS is the largest of the runs. Ratio = DuckDB time / plumewatch time (> 1: plumewatch faster)."
echo
echo "| input | plumewatch \`ingest\` | DuckDB $DDVER (Python) | ratio | peak RSS plumewatch | peak RSS DuckDB |"
echo "|---|---|---|---|---|---|"
for fmt in ndjson csv; do
  f="$WORK/passes.$fmt"
  size=$(mb "$f")
  pw=$(cut -d' ' -f1 "$WORK/pw_$fmt.times" | med)
  dd=$(cut -d' ' -f1 "$WORK/dd_$fmt.times" | med)
  pwm=$(cut -d' ' -f2 "$WORK/pw_$fmt.times" | sort -n | tail -1)
  ddm=$(cut -d' ' -f2 "$WORK/dd_$fmt.times" | sort -n | tail -1)
  awk -v fmt="$fmt" -v size="$size" -v pw="$pw" -v dd="$dd" -v pwm="$pwm" -v ddm="$ddm" 'BEGIN {
    name = (fmt == "ndjson") ? "NDJSON" : "CSV";
    printf "| %s, %d MB | %.2f s (%.0f MB/s) | %.2f s (%.0f MB/s) | %.2f× | %.0f MB | %.0f MB |\n",
      name, size, pw, size/pw, dd, size/dd, dd/pw, pwm/1024, ddm/1024 }'
done
if [ -n "${DECODE_BASELINE:-}" ]; then
  for i in $(seq "$R"); do
    /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$DECODE_BASELINE" "$nd" >/dev/null 2>&1
    cat "$WORK/time.txt" >>"$WORK/decode.times"
  done
  t=$(cut -d' ' -f1 "$WORK/decode.times" | med)
  m=$(cut -d' ' -f2 "$WORK/decode.times" | sort -n | tail -1)
  awk -v size="$(mb "$nd")" -v t="$t" -v m="$m" 'BEGIN {
    printf "| NDJSON decode only, arrow-json Decoder (baseline) | %.2f s (%.0f MB/s) | | | %.0f MB | |\n", t, size/t, m/1024 }'
fi
echo
echo "plumewatch: $BIN; DuckDB: bench/duckdb/rsd_job.sql via bench/duckdb/run_job.py ($(nproc) cores)"
