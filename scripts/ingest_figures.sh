#!/usr/bin/env bash
# The ingest rows of the README's "Measured figures" table, for one or more builds side by
# side: each row's input is generated once (by the first binary), then every binary ingests it
# into a fresh tables directory, alternating binaries, R runs each. Prints per row and binary
# the median, min and max wall time, the rate, and the largest peak RSS (GNU time).
#
#   scripts/ingest_figures.sh NAME=BIN [NAME=BIN ...]
#   e.g. scripts/ingest_figures.sh new=target/release/plumewatch old=/tmp/pw-old
#
# Env: R (runs per binary and row, default 3), WORK (scratch dir, default a temp dir removed at
# the end), ROWS (subset of "rsd conox obd frames", default all). Needs ../shared/data for the
# CONOX row (skipped without it). Release builds; nothing else should run meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
R=${R:-3}
ROWS=${ROWS:-rsd conox obd frames}
names=(); bins=()
for a in "$@"; do
  names+=("${a%%=*}"); b="${a#*=}"
  [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
  bins+=("$(realpath "$b")")
done
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK"
G=${bins[0]}
CONOX=../shared/data/rsd/conox_uk_sample5000.csv

# row name → input file, record count, unit, ingest arguments (before --out)
prepare() {
  case $1 in
    rsd)
      [ -f "$WORK/p.ndjson" ] || "$G" gen rsd --count 1000000 --seed 7 --out "$WORK/p.ndjson" >/dev/null
      IN="$WORK/p.ndjson"; N=1000000; UNIT=records; ARGS=(ingest --quiet --stream rsd) ;;
    conox)
      [ -f "$CONOX" ] || { echo "conox: skipped ($CONOX absent)"; return 1; }
      IN="$CONOX"; N=5000; UNIT=records
      ARGS=(ingest --quiet --stream rsd --format csv --mapping fixtures/mappings/conox.toml) ;;
    obd)
      [ -f "$WORK/o.ndjson" ] || "$G" gen obd --vehicles 300 --minutes 30 --seed 9 --out "$WORK/o.ndjson" >/dev/null
      IN="$WORK/o.ndjson"; N=$(wc -l <"$IN"); UNIT=samples; ARGS=(ingest --quiet --stream obd) ;;
    frames)
      [ -f "$WORK/f.hj1239" ] || "$G" gen frames --vehicles 300 --minutes 30 --seed 9 --out "$WORK/f.hj1239" >/dev/null
      IN="$WORK/f.hj1239"; N=54000; UNIT=frames; ARGS=(ingest --quiet --stream obd --format hj1239) ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

printf '%-7s %-8s %9s %9s %9s %14s %10s\n' row build median_s min_s max_s rate/s peak_MB
for row in $ROWS; do
  prepare "$row" || continue
  declare -A T=() M=()
  for r in $(seq 1 "$R"); do
    for i in "${!bins[@]}"; do
      out="$WORK/t-${names[$i]}"
      rm -rf "$out"
      sync
      /usr/bin/time -f "%e %M" -o "$WORK/time" "${bins[$i]}" "${ARGS[@]}" --out "$out" "$IN" >/dev/null
      read -r s kb <"$WORK/time"
      T[$i]="${T[$i]:-} $s"
      M[$i]=$(( ${M[$i]:-0} > kb ? ${M[$i]:-0} : kb ))
    done
  done
  for i in "${!bins[@]}"; do
    # shellcheck disable=SC2086
    read -r med min max < <(printf '%s\n' ${T[$i]} | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)], a[1], a[NR]}')
    printf '%-7s %-8s %9s %9s %9s %14s %10s\n' "$row" "${names[$i]}" "$med" "$min" "$max" \
      "$(awk -v n="$N" -v s="$med" 'BEGIN {printf "%d %s", n / s, "'"$UNIT"'"}')" $(( M[$i] / 1024 ))
  done
  unset T M
done
