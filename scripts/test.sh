#!/usr/bin/env bash
# The whole test suite from a fresh checkout; CI (.ci/run) runs exactly this.
#
# Nothing is written into the checkout: the tracked and untracked (not ignored) files are
# copied into a temporary work directory, which holds the virtual environments, caches,
# the wheel and every test output, and is removed at the end. As root it installs and
# starts what the tests need from the Debian packages (a throw-away PostgreSQL server for
# the guard store tests, a Java runtime for Spark, Chromium for the console's browser
# tests) and stops the server at the end, also on failure or interruption.
#
# Steps: lint; pytest with every extra; build the wheel; install it into a fresh
# virtual environment outside the checkout and run tests/install/ and a smoke of
# `score`, `compliance matrix` and `demo` from there.
#
# Environment: KEEP_WORK=1 keeps the work directory (its path is printed).
set -euo pipefail
CHECKOUT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/solicitation-test.XXXXXX")"
PGDATA_TEST="$WORK/pg"
PG_STARTED=0

cleanup() {
  local rc=$?
  if [ "$PG_STARTED" = "1" ]; then
    local bin
    bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")"
    su postgres -s /bin/sh -c "$bin/pg_ctl -D $PGDATA_TEST -m immediate -w stop" \
      >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_WORK:-0}" = "1" ]; then
    echo "work directory kept: $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export PYTHONDONTWRITEBYTECODE=1
export SOLICITATION_CACHE_DIR="$WORK/cache"
export MPLCONFIGDIR="$WORK/mpl"
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*" >&2; }

step "copy of the checkout in $WORK/src"
# tracked and untracked files that git does not ignore, and the repository itself (the
# packaging test lists the files a wheel must hold with git)
python3 - "$CHECKOUT" "$WORK/src" <<'PY'
import shutil, subprocess, sys
from pathlib import Path
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=src,
                       check=True, capture_output=True).stdout.decode().split("\0")
for name in filter(None, names):
    if (src / name).is_file():
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / name, dst / name)
shutil.copytree(src / ".git", dst / ".git", symlinks=True)
PY
# the throw-away PostgreSQL server keeps its data here, as the postgres user
chmod 711 "$WORK"

if [ "$(id -u)" = "0" ]; then
  step "services (root): PostgreSQL, Java, Chromium"
  # a free port for the throw-away server (an earlier run's may still be in use)
  PGPORT_TEST="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  PG_STARTED=1
  SOLICITATION_TEST_POSTGRES_URL="$(PGPORT_TEST=$PGPORT_TEST PGDATA_TEST=$PGDATA_TEST \
    bash "$WORK/src/.ci/postgres.sh")"
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

step "development environment (every extra)"
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q --upgrade pip
"$WORK/venv/bin/pip" install -q -e "$WORK/src[dev]"

step "lint"
(cd "$WORK/src" && "$WORK/venv/bin/ruff" check --no-cache .)

step "test suite"
(cd "$WORK/src" && "$WORK/venv/bin/pytest" -p no:cacheprovider --basetemp="$WORK/pytest")
# the tests write nowhere in the tree they run from (the editable install's metadata aside)
WRITTEN="$(git -C "$WORK/src" status --porcelain --ignored | grep -v 'egg-info/' || true)"
if [ -n "$WRITTEN" ]; then
  echo "the test suite wrote into the checkout:" >&2
  echo "$WRITTEN" >&2
  exit 1
fi

step "wheel, installed into a fresh environment outside the checkout"
"$WORK/venv/bin/pip" wheel -q --no-deps "$WORK/src" -w "$WORK/dist"
python3 -m venv "$WORK/wheel-venv"
"$WORK/wheel-venv/bin/pip" install -q "$WORK"/dist/solicitation_classifier-*.whl pytest
mkdir -p "$WORK/install-tests" "$WORK/smoke"
cp "$WORK/src"/tests/install/*.py "$WORK/install-tests/"
# the copy of the sources goes, so that nothing can be imported from it by accident
rm -rf "$WORK/src"
(cd "$WORK/install-tests" && "$WORK/wheel-venv/bin/python" -m pytest -q -c /dev/null \
  -p no:cacheprovider --rootdir="$WORK/install-tests" .)

step "smoke from the wheel: score, compliance matrix, demo"
CLI="$WORK/wheel-venv/bin/solicitation-classifier"
cd "$WORK/smoke"
SAMPLE="$("$WORK/wheel-venv/bin/python" -c 'from classifier import sample_path; print(sample_path())')"
"$CLI" score "$SAMPLE" -o "$WORK/smoke/scores.jsonl"
test -s "$WORK/smoke/scores.jsonl"
"$CLI" compliance matrix -o "$WORK/smoke/matrix"
test -s "$WORK/smoke/matrix.md"
# the demo's evaluation needs the [train,eval] extras: the runtime-only wheel says so
"$WORK/wheel-venv/bin/pip" install -q "$(ls "$WORK"/dist/solicitation_classifier-*.whl)[train,eval,console]"
"$CLI" demo --dir "$WORK/smoke/demo"
step "all passed"
