#!/usr/bin/env bash
# Makes sure the PostgreSQL that cairn-store's tests use is running, and prints its URL.
#
# - Installs Debian's `postgresql` package if no initdb/pg_ctl is found under
#   /usr/lib/postgresql/*/bin (needs root, or sudo).
# - Creates, once, a cluster in target/postgres/data (owned by the `postgres` user when run as
#   root: initdb refuses to run as root), and starts it with pg_ctl, listening on 127.0.0.1 only,
#   on a free port, with its socket in target/postgres/socket. A cluster already running is
#   reused. The data is disposable: fsync is off.
# - Creates, once, the role and database `cairn_test` (password `cairn_test`; password auth on
#   127.0.0.1, trust on the socket).
# - Writes the connection URL to target/postgres/url and prints it. The tests read it from there
#   (or from CAIRN_TEST_POSTGRES_URL).
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE="$PWD/target/postgres"
DATA="$BASE/data"
SOCKET="$BASE/socket"
LOGS="$BASE/log"
LOG="$LOGS/postgres.log"
PORT_FILE="$BASE/port"
URL_FILE="$BASE/url"
ROLE=cairn_test

say() { echo "ensure-postgres: $*" >&2; }

bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
    echo "$dir"
  fi
}

BIN=$(bin_dir)
if [ -z "$BIN" ]; then
  say "installing PostgreSQL (Debian package postgresql)"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  BIN=$(bin_dir)
  if [ -z "$BIN" ]; then
    say "initdb and pg_ctl are still missing under /usr/lib/postgresql/*/bin"
    exit 1
  fi
fi

mkdir -p "$BASE"
# One run at a time (tests started in parallel, several shells).
exec 9>"$BASE/lock"
flock 9

# Root runs the server as `postgres`; anyone else as themselves.
AS=()
if [ "$(id -u)" -eq 0 ]; then
  AS=(runuser -u postgres --)
fi
as_server() { "${AS[@]}" "$@"; }

if [ ! -s "$DATA/PG_VERSION" ]; then
  say "creating a cluster in $DATA"
  rm -rf "$DATA"
  mkdir -p "$DATA"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$DATA"
  fi
  chmod 700 "$DATA"
  if ! as_server test -w "$DATA"; then
    say "the postgres user cannot write $DATA (is every directory above it searchable?)"
    exit 1
  fi
  as_server "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    -E UTF8 --no-locale >"$BASE/initdb.log"
fi
# The server writes these.
mkdir -p "$SOCKET" "$LOGS"
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$SOCKET" "$LOGS"
fi

running() {
  [ -s "$PORT_FILE" ] && as_server "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1 &&
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$PORT_FILE")"
}

free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  say "no free port found"
  exit 1
}

start() {
  (
    # The server must not inherit this script's descriptors (the lock, a caller's pipes).
    for fd in $(ls /proc/$BASHPID/fd); do
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done 2>/dev/null
    exec "${AS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -s start \
      -o "-c listen_addresses=127.0.0.1 -p $1 -k $SOCKET -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
  ) </dev/null >&2
}

if running; then
  PORT=$(cat "$PORT_FILE")
else
  # A server left running on another port, or a stale pid file: stop it first.
  as_server "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  # Another process may take the free port first: try a few.
  for attempt in 1 2 3; do
    PORT=$(free_port)
    say "starting PostgreSQL on 127.0.0.1:$PORT"
    if start "$PORT"; then
      break
    elif [ "$attempt" -eq 3 ]; then
      say "PostgreSQL did not start; see $LOG"
      exit 1
    fi
  done
  echo "$PORT" >"$PORT_FILE"
fi

psql_admin() {
  as_server "$BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCKET" -p "$PORT" -U postgres -d postgres "$@"
}
if [ "$(psql_admin -c "SELECT count(*) FROM pg_roles WHERE rolname = '$ROLE'")" = "0" ]; then
  psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$ROLE'"
fi
if [ "$(psql_admin -c "SELECT count(*) FROM pg_database WHERE datname = '$ROLE'")" = "0" ]; then
  psql_admin -c "CREATE DATABASE $ROLE OWNER $ROLE"
fi

URL="postgresql://$ROLE:$ROLE@127.0.0.1:$PORT/$ROLE"
echo "$URL" >"$URL_FILE"
echo "$URL"
