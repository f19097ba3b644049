#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests of the PostgreSQL store. See usage() below.
set -euo pipefail

START_TIMEOUT="${PG_START_TIMEOUT:-60}"
# The cluster's role and database for the tests; the role may create databases, so that a
# test run can work in a database of its own.
TEST_ROLE=runbook
TEST_DATABASE=runbook

usage() {
  cat <<EOF
Usage: scripts/pg-sandbox.sh COMMAND DIR

A local PostgreSQL cluster on 127.0.0.1 and a free port, for the tests of the PostgreSQL store.

Commands:
  start DIR   initdb into DIR/data, start the server (pg_ctl) on a free port with its socket
              in DIR, create the role and database "$TEST_ROLE" (password in DIR/password),
              write DIR/env and print the URL. Does nothing but print the URL when DIR's
              cluster already runs.
  stop DIR    Stop DIR's server through pg_ctl (by the pid in its postmaster.pid, never by
              name). Idempotent.
  restart DIR Stop DIR's server if it runs (fast: connections are cut) and start it again
              on the same port: what a database restart looks like to its clients.
  help        This text.

DIR/env (after start) can be sourced: it exports RUNBOOK_TEST_POSTGRES_URL
(postgres://$TEST_ROLE:PASSWORD@127.0.0.1:PORT/$TEST_DATABASE?sslmode=disable), PGHOST, PGPORT
and PGDATA.

The binaries (initdb, pg_ctl, postgres, psql) are taken from PATH, else from Debian's
/usr/lib/postgresql/*/bin (package postgresql). PostgreSQL refuses to run as root: as root,
the cluster runs as the user PG_SANDBOX_USER (default postgres), which then owns DIR.

Environment:
  PG_START_TIMEOUT   Seconds start waits for the server (default 60).
  PG_SANDBOX_USER    The user the server runs as when this script runs as root.
EOF
}

log() { printf 'pg-sandbox: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Debian installs the server's programs outside PATH.
find_bin() {
  if ! command -v initdb >/dev/null 2>&1 || ! command -v pg_ctl >/dev/null 2>&1; then
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
      if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        PATH="$dir:$PATH"
        break
      fi
    done
  fi
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 &&
    command -v psql >/dev/null 2>&1 ||
    die "initdb, pg_ctl and psql are not installed: install Debian's postgresql package (apt-get install postgresql)"
}

# Runs a command as the cluster's user: this one, or PG_SANDBOX_USER when this is root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "${PG_SANDBOX_USER:-postgres}" -- env PATH="$PATH" "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

is_running() {
  local dir=$1
  [ -f "$dir/data/postmaster.pid" ] && as_owner pg_ctl status -D "$dir/data" >/dev/null 2>&1
}

start() {
  local dir=$1
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  find_bin
  if is_running "$dir"; then
    # shellcheck disable=SC1091
    (source "$dir/env" && echo "$RUNBOOK_TEST_POSTGRES_URL")
    return
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown "${PG_SANDBOX_USER:-postgres}" "$dir"
  fi
  chmod 0700 "$dir"
  local password port
  password="$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
  port="$(free_port)"
  if [ ! -d "$dir/data" ]; then
    printf '%s\n' "$password" >"$dir/password"
    chmod 0600 "$dir/password"
    if [ "$(id -u)" -eq 0 ]; then
      chown "${PG_SANDBOX_USER:-postgres}" "$dir/password"
    fi
    log "initdb into $dir/data"
    # Local (socket) connections trust the cluster's own user, for this script; TCP asks
    # for a password, as a real server does.
    as_owner initdb -D "$dir/data" --auth-local=trust --auth-host=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 --username=postgres >"$dir/initdb.log" 2>&1 ||
      die "initdb failed; see $dir/initdb.log"
  else
    password="$(cat "$dir/password")"
  fi
  log "starting PostgreSQL on 127.0.0.1:$port"
  as_owner pg_ctl start -D "$dir/data" -l "$dir/server.log" -w -t "$START_TIMEOUT" \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=on" \
    >/dev/null || die "the server did not start; see $dir/server.log"
  local psql=(as_owner psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$TEST_ROLE'")" != 1 ]; then
    "${psql[@]}" -c "CREATE ROLE $TEST_ROLE LOGIN CREATEDB PASSWORD '$password'"
    "${psql[@]}" -c "CREATE DATABASE $TEST_DATABASE OWNER $TEST_ROLE"
  fi
  local url="postgres://$TEST_ROLE:$password@127.0.0.1:$port/$TEST_DATABASE?sslmode=disable"
  cat >"$dir/env" <<EOF
export RUNBOOK_TEST_POSTGRES_URL='$url'
export PGHOST='127.0.0.1'
export PGPORT='$port'
export PGDATA='$dir/data'
EOF
  chmod 0600 "$dir/env"
  echo "$url"
}

stop() {
  local dir=$1
  [ -d "$dir/data" ] || return 0
  find_bin
  if [ -f "$dir/data/postmaster.pid" ]; then
    # pg_ctl stops the server whose pid postmaster.pid names, and waits for it.
    as_owner pg_ctl stop -D "$dir/data" -m fast -w -t 30 >/dev/null 2>&1 || {
      local pid
      pid="$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)"
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "pg_ctl could not stop pid $pid: sending SIGQUIT"
        kill -QUIT "$pid" 2>/dev/null || true
      fi
    }
  fi
}

restart() {
  local dir=$1
  [ -d "$dir/data" ] || die "no cluster in $dir: start it first"
  find_bin
  # pg_ctl starts it again with the options of its last start (postmaster.opts).
  as_owner pg_ctl restart -D "$dir/data" -l "$dir/server.log" -m fast -w -t "$START_TIMEOUT" \
    >/dev/null || die "the server did not start again; see $dir/server.log"
}

case "${1:-help}" in
  start)
    [ $# -eq 2 ] || die "usage: scripts/pg-sandbox.sh start DIR"
    start "$2"
    ;;
  stop)
    [ $# -eq 2 ] || die "usage: scripts/pg-sandbox.sh stop DIR"
    stop "$2"
    ;;
  restart)
    [ $# -eq 2 ] || die "usage: scripts/pg-sandbox.sh restart DIR"
    restart "$2"
    ;;
  help | -h | --help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
