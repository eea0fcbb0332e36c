#!/usr/bin/env python3
"""Checks that bench/duckdb/rsd_job.sql computes what plumewatch computes.

    validate.py PLUMEWATCH_BIN PW_TABLES DUCKDB_OUT_DIR

Reads plumewatch's `rsd_passes` with `plumewatch query --format json` (the documented way to
read the tables) and DuckDB's output with DuckDB, joins the rows on `pass_id` and compares
every column of plumewatch's table plus the `date` partition: for floats the largest absolute
and relative difference, for everything else the number of rows that differ. Prints a
Markdown table and exits 1 when a row is missing on either side or a non-float column differs
(`source_offset` excepted: DuckDB's readers do not expose it, the job writes NULL).
"""

import json
import math
import subprocess
import sys

import duckdb

SKIP = {"source_offset"}


def main() -> None:
    pw_bin, pw_tables, dd_dir = sys.argv[1:4]
    out = subprocess.run([pw_bin, "query", "--tables", pw_tables, "--format", "json",
                          "SELECT * FROM rsd_passes"], check=True, capture_output=True).stdout
    pw = {r["pass_id"]: r for r in json.loads(out)}

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(
        f"SELECT *, epoch_ms(passed_at) AS passed_at_ms, strftime(date, '%Y-%m-%d') AS date_s "
        f"FROM read_parquet('{dd_dir}/*/*.parquet', hive_partitioning = true)")
    names = [d[0] for d in cur.description]
    dd = {r[0]: dict(zip(names, r)) for r in cur.fetchall()}

    missing_dd = pw.keys() - dd.keys()
    missing_pw = dd.keys() - pw.keys()
    keys = sorted(pw.keys() & dd.keys())
    cols = list(next(iter(pw.values())).keys()) if pw else []
    print(f"rows: plumewatch {len(pw)}, DuckDB {len(dd)}, joined {len(keys)}, "
          f"only plumewatch {len(missing_dd)}, only DuckDB {len(missing_pw)}\n")
    print("| column | kind | rows compared | rows differing | max abs diff | max rel diff |")
    print("|---|---|---|---|---|---|")
    bad = bool(missing_dd or missing_pw)
    for c in cols:
        if c in SKIP:
            print(f"| {c} | skipped (NULL in DuckDB) | | | | |")
            continue
        kind, n, ndiff, max_abs, max_rel, example = "text", 0, 0, 0.0, 0.0, None
        nonnull = 0
        for k in keys:
            a = pw[k].get(c)
            if c == "passed_at":
                b = dd[k]["passed_at_ms"]
                from datetime import datetime
                a = None if a is None else int(round(datetime.fromisoformat(
                    a.replace("Z", "+00:00")).timestamp() * 1000))
                kind = "time (ms)"
            elif c == "date":
                b = dd[k]["date_s"]
            else:
                b = dd[k].get(c)
            if isinstance(b, list):
                b = "[" + ", ".join(b) + "]"
                kind = "list"
            n += 1
            nonnull += a is not None or b is not None
            if isinstance(a, float) or isinstance(b, float):
                kind = "float"
                if a is None or b is None:
                    if (a is None) != (b is None):
                        ndiff += 1
                        example = example or (k, a, b)
                    continue
                d = abs(a - b)
                if d > 0 or (math.isnan(a) != math.isnan(b)):
                    ndiff += 1
                    example = example or (k, a, b)
                max_abs = max(max_abs, d)
                if d > 0:
                    max_rel = max(max_rel, d / max(abs(a), abs(b)))
            else:
                if isinstance(b, bool) or isinstance(a, bool):
                    kind = "bool"
                if a != b:
                    ndiff += 1
                    example = example or (k, a, b)
        if nonnull == 0:
            kind = "NULL on both sides"
        if kind in ("float",):
            print(f"| {c} | {kind} | {n} | {ndiff} | {max_abs:.3g} | {max_rel:.3g} |")
        else:
            print(f"| {c} | {kind} | {n} | {ndiff} | | |")
            bad |= ndiff > 0
        if ndiff and example:
            print(f"|  | e.g. {example[0]}: plumewatch {example[1]!r}, DuckDB {example[2]!r} | | | | |")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
