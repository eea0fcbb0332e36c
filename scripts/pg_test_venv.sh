#!/usr/bin/env bash
# Installs psycopg (PyPI `psycopg[binary]`, the PostgreSQL driver pandas and most Python tools
# use) into its own virtual environment for tests/serve_pg.rs, which looks for
# ${CARGO_TARGET_DIR:-target}/pg-venv/bin/python and says "skipped" without it.
# Usage: scripts/pg_test_venv.sh   (needs python3 with the venv module; network for pip)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${CARGO_TARGET_DIR:-target}/pg-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check 'psycopg[binary]>=3.1,<4'
"$VENV/bin/python" -c 'import psycopg; print("psycopg", psycopg.__version__, "in", __import__("sys").prefix)'
