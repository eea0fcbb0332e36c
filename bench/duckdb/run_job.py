#!/usr/bin/env python3
"""Runs bench/duckdb/rsd_job.sql over one RSD input file with the `duckdb` Python package.

    run_job.py --format ndjson|csv INPUT OUT_DIR [--threads N]

Defines the view `rsd_input` with every input field of schemas/rsd_pass.schema.json, typed
as plumewatch reads them (text ids and words VARCHAR, measurements DOUBLE, `passed_at` VARCHAR
so that both Unix milliseconds and RFC 3339 text pass), plus `filename` as given on the command
line (plumewatch's `source_file`). NDJSON: a key absent from a line is NULL. CSV: a column
absent from the header is NULL; empty cells are NULL except an empty `plate` (empty text, as
plumewatch reads it). Then runs the job, which writes
OUT_DIR/date=YYYY-MM-DD/*.parquet. Prints the row count and seconds on stderr.
"""

import argparse
import pathlib
import sys
import time

import duckdb

# schemas/rsd_pass.schema.json, in src/decode/fields.rs order.
TEXT = ["pass_id", "passed_at", "site_id", "instrument", "plate", "plate_color", "fuel",
        "vehicle_category"]
NUMS = ["lane", "speed_kmh", "accel_mps2", "road_grade_pct", "co_co2_ratio", "hc_co2_ratio",
        "no_co2_ratio", "no2_co2_ratio", "nh3_co2_ratio", "opacity_pct", "ringelmann",
        "co2_plume_pct_m", "wind_mps", "ambient_temp_c", "humidity_pct", "pressure_kpa",
        "vsp_reported_kw_t", "lon_deg", "lat_deg", "plate_confidence_pct"]
TYPES = {**{c: "VARCHAR" for c in TEXT}, **{c: "DOUBLE" for c in NUMS}}


def q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def source(fmt: str, path: str) -> str:
    if fmt == "ndjson":
        cols = "{" + ", ".join(f"{q(c)}: {q(t)}" for c, t in TYPES.items()) + "}"
        return (f"SELECT * FROM read_json({q(path)}, format = 'newline_delimited', "
                f"columns = {cols}, filename = true)")
    # CSV: type the header's columns; fill the absent ones with NULL.
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(",")
    unknown = [c for c in header if c not in TYPES]
    if unknown:
        sys.exit(f"{path}: columns not in schemas/rsd_pass.schema.json: {unknown}")
    cols = "{" + ", ".join(f"{q(c)}: {q(TYPES[c])}" for c in header) + "}"
    fill = ", ".join(c if c in header else f"NULL::{t} AS {c}" for c, t in TYPES.items())
    # plumewatch reads an empty cell as NULL, except `plate`: an empty plate cell is a plate
    # read as empty text (plate_raw '', status no_plate), as in NDJSON "plate": "".
    keep = ", force_not_null = ['plate']" if "plate" in header else ""
    return (f"SELECT {fill}, filename FROM read_csv({q(path)}, header = true, "
            f"columns = {cols}, filename = true{keep})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--format", choices=["ndjson", "csv"], required=True)
    ap.add_argument("--threads", type=int, default=0, help="0: DuckDB's default (all cores)")
    ap.add_argument("input")
    ap.add_argument("out_dir")
    a = ap.parse_args()
    sql = (pathlib.Path(__file__).with_name("rsd_job.sql")).read_text(encoding="utf-8")
    t0 = time.perf_counter()
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    con.execute(f"CREATE TEMP VIEW rsd_input AS {source(a.format, a.input)}")
    rows = None
    for stmt in [s for s in sql.replace(":out_dir", a.out_dir.replace("'", "''")).split(";\n")
                 if s.strip() and not all(l.startswith("--") or not l.strip()
                                          for l in s.splitlines())]:
        r = con.execute(stmt).fetchall()
        if stmt.lstrip().startswith("COPY") or "\nCOPY (" in stmt:
            rows = r[0][0] if r else None
    print(f"duckdb {duckdb.__version__}: {rows} rows in {time.perf_counter() - t0:.2f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
