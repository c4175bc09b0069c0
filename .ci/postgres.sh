#!/usr/bin/env bash
# Start a throw-away PostgreSQL server for the store tests (Debian packages), as the
# postgres user, on a local socket and port; prints the SQLAlchemy URL on stdout.
set -euo pipefail
PORT="${PGPORT_TEST:-55432}"
DATA="${PGDATA_TEST:-/tmp/solicitation-pg}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq postgresql) >&2
fi
BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")"
if ! su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
  rm -rf "$DATA" && mkdir -p "$DATA" && chown postgres "$DATA"
  su postgres -s /bin/sh -c "$BIN/initdb -D $DATA -A trust -U postgres" >&2
  su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA -l $DATA/server.log -w \
    -o '-p $PORT -k /tmp -c listen_addresses=127.0.0.1' start" >&2
fi
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres"
