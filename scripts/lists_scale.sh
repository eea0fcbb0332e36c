#!/usr/bin/env bash
# Lists at scale (issue 12 item 5): generates N passes, ingests them (with the registry) into
# Parquet tables, then times `plumewatch list rsd-repeat-exceeders` and DuckDB's answer to the
# same question over the same files (bench/duckdb/lists/rsd_repeat_exceeders.sql), R runs
# each, alternating, and checks that both name the same plates. Also times `plumewatch list
# china3-diesel` (no DuckDB twin yet). Prints a Markdown table: median seconds, peak RSS.
# Not a test.
#
#   scripts/lists_scale.sh [N]     N generated passes (default 10000000; 50000000 for the goal)
#
# Env: BIN (default target/release/plumewatch), R (default 3), WORK (scratch dir; kept when
# set; needs ~0.5 GB per million passes while generating), VENV / DUCKDB_SPEC as in
# scripts/compare_duckdb.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${1:-10000000}
BIN=${BIN:-target/release/plumewatch}
R=${R:-3}
VENV=${VENV:-target/duckdb-venv}
DUCKDB_SPEC=${DUCKDB_SPEC:-duckdb==2.0.1}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release first (or set BIN)" >&2; exit 1; }
BIN=$(realpath "$BIN")
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet "$DUCKDB_SPEC" >&2
fi
PY="$(cd "$VENV" && pwd)/bin/python"
T="$WORK/tables"
if [ ! -d "$T/rsd_passes" ]; then
  # Generated in chunks of at most 5 M passes (bounded scratch space), each ingested and removed.
  left=$N; seed=1
  while [ "$left" -gt 0 ]; do
    n=$(( left < 5000000 ? left : 5000000 ))
    # 30 days from 2026-10-01 (the generator's span; later days would lie in the future).
    "$BIN" gen rsd --count "$n" --seed "$seed" --fleet-seed 1 --out "$WORK/p.ndjson" --registry "$WORK/v$seed.csv" \
      --vehicles $(( N / 20 > 100 ? N / 20 : 100 )) >&2
    [ "$seed" = 1 ] && "$BIN" ingest --quiet --stream vehicles --format csv --out "$T" "$WORK/v1.csv" >&2
    "$BIN" ingest --quiet --stream rsd --out "$T" "$WORK/p.ndjson" >&2
    rm -f "$WORK/p.ndjson"
    left=$(( left - n )); seed=$(( seed + 1 ))
  done
fi
rows=$("$BIN" query --tables "$T" --format csv "SELECT count(*) AS n FROM rsd_passes" | tail -1)
fails=$("$BIN" query --tables "$T" --format csv "SELECT count(*) AS n FROM rsd_passes WHERE verdict = 'fail'" | tail -1)
sql="$WORK/repeat.sql"
sed "s|TABLES|$T|g" "$ROOT/bench/duckdb/lists/rsd_repeat_exceeders.sql" >"$sql"

timed() { # LABEL OUT CMD… → appends "seconds peak_kb" to $WORK/LABEL.times, stdout to OUT
  local label=$1 out=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$WORK/time.txt" "$@" >"$out" 2>"$WORK/err.txt" \
    || { cat "$WORK/err.txt" >&2; echo "$label failed" >&2; exit 1; }
  cat "$WORK/time.txt" >>"$WORK/$label.times"
}
rm -f "$WORK"/*.times
for i in $(seq "$R"); do
  echo "run $i/$R" >&2
  timed pw_repeat "$WORK/pw_repeat.csv" "$BIN" list rsd-repeat-exceeders --tables "$T" --format csv
  timed dd_repeat "$WORK/dd_repeat.csv" "$PY" -c '
import duckdb, sys
con = duckdb.connect()
rows = con.execute(open(sys.argv[1]).read()).fetchall()
print("plate")
for r in rows: print(r[0])
' "$sql"
  timed pw_china3 "$WORK/pw_china3.csv" "$BIN" list china3-diesel --tables "$T" --format csv
done
# The same plates (plumewatch CSV: plate is the first column; BOM and header dropped).
cut -d, -f1 "$WORK/pw_repeat.csv" | tail -n +2 | sed 's/^\xEF\xBB\xBF//' | sort >"$WORK/a"
tail -n +2 "$WORK/dd_repeat.csv" | sort >"$WORK/b"
if ! cmp -s "$WORK/a" "$WORK/b"; then
  echo "plate sets differ: plumewatch $(wc -l <"$WORK/a"), DuckDB $(wc -l <"$WORK/b")" >&2
  diff "$WORK/a" "$WORK/b" | head >&2
  exit 1
fi
med() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
line() { # LABEL NAME
  local t m
  t=$(cut -d' ' -f1 "$WORK/$1.times" | med)
  m=$(cut -d' ' -f2 "$WORK/$1.times" | sort -n | tail -1)
  awk -v n="$2" -v t="$t" -v m="$m" 'BEGIN {printf "| %s | %.2f s | %.0f MB |\n", n, t, m/1024}'
}
echo
echo "$rows passes ($fails failing) over $(du -sh "$T/rsd_passes" | cut -f1) of Parquet; $(wc -l <"$WORK/a") repeat exceeders, the same plates in both; $R runs each, median time, largest peak RSS."
echo
echo "| list | time | peak RSS |"
echo "|---|---|---|"
line pw_repeat "plumewatch \`list rsd-repeat-exceeders\`"
line dd_repeat "DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)'), the same question (bench/duckdb/lists/rsd_repeat_exceeders.sql)"
line pw_china3 "plumewatch \`list china3-diesel\`"
