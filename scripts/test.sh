#!/usr/bin/env bash
# The whole test suite from a fresh checkout: a virtual environment with every extra,
# a throw-away PostgreSQL server for the guard store tests (Debian packages; needs root),
# lint, then pytest. CI (.ci/run) runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = "0" ]; then
  SOLICITATION_TEST_POSTGRES_URL="$(bash .ci/postgres.sh)"
  export SOLICITATION_TEST_POSTGRES_URL
  # the Spark tests need a Java runtime (Spark 4 wants Java 17 or newer)
  if ! command -v java >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends openjdk-17-jre-headless >/dev/null
  fi
  export SOLICITATION_TEST_REQUIRE_SPARK=1
  # the console's browser tests drive Debian's Chromium (Playwright cannot download one)
  if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends chromium >/dev/null
  fi
else
  echo "not root: the guard store tests run on SQLite only (set SOLICITATION_TEST_POSTGRES_URL)" >&2
fi
python3 -m venv .venv
.venv/bin/pip install -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/pytest
