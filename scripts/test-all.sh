#!/usr/bin/env bash
# Every check CI runs, in the order that fails fastest: formatting, lints, then the whole
# test suite (unit tests, the binary's integration tests, snapshot tests, and the Flink
# runbooks end to end against a real Apache Flink cluster).
# Usage: scripts/test-all.sh
#
# Prerequisites: Rust (cargo, rustfmt, clippy), a C compiler (cc) for the SQLite and TLS
# crates, and for the Flink tests (tests/flink/, tests/operator/, and tests/vendors/, which also
# needs kubectl) java and javac 17+, python3 with pip (Flink comes from PyPI, cached in
# $RUNBOOK_FLINK_CACHE, default ~/.cache/runbook/flink) and curl; for the PostgreSQL store,
# initdb, pg_ctl and psql (Debian's postgresql, installed here when missing); for the report tests
# Debian's chromium and libxml2-utils (xmllint), and for the web pages' browser tests
# chromium-driver, installed here when missing. This script
# starts one sandbox cluster for them and stops it when it exits, however it exits; a
# cluster that cannot start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust from https://rustup.rs first" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

# The report tests render HTML pages in a headless Chromium and validate JUnit XML with
# xmllint; the vendor tests read a secret with kubectl; the PostgreSQL store's tests need a
# PostgreSQL server: install the Debian packages that give
# them when they are missing.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The web pages' browser tests (tests/web/browser.rs) drive Chromium through WebDriver.
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
# The PostgreSQL store's tests start a throwaway cluster (scripts/pg-sandbox.sh); Debian puts
# the server's programs in /usr/lib/postgresql/*/bin.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ((${#missing[@]} > 0)); then
  step "apt-get install ${missing[*]} (for the report, vendor and PostgreSQL store tests)"
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update
  "${as_root[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "Flink sandbox for the Flink runbook tests"
FLINK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/runbook-flink.XXXXXX")"
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/runbook-pg.XXXXXX")"
stop_sandboxes() {
  local rc=$?
  scripts/flink-sandbox.sh stop "$FLINK_DIR" >/dev/null 2>&1 || true
  scripts/pg-sandbox.sh stop "$PG_DIR" >/dev/null 2>&1 || true
  if ((rc == 0)); then
    rm -rf "$FLINK_DIR" "$PG_DIR"
  else
    echo "Flink sandbox logs kept in $FLINK_DIR/log" >&2
    echo "PostgreSQL sandbox log kept in $PG_DIR/server.log" >&2
  fi
  exit "$rc"
}
trap stop_sandboxes EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/flink-sandbox.sh fetch >/dev/null
scripts/flink-sandbox.sh start "$FLINK_DIR"
# tests/flink, tests/operator and tests/vendors (the BAI and Ververica doubles) share it.
export RUNBOOK_FLINK_ENV="$FLINK_DIR/env"

step "PostgreSQL sandbox for the PostgreSQL store's tests"
scripts/pg-sandbox.sh start "$PG_DIR" >/dev/null
# tests/postgres and the store's conformance suite against PostgreSQL read it.
RUNBOOK_TEST_POSTGRES_URL="$(. "$PG_DIR/env" && echo "$RUNBOOK_TEST_POSTGRES_URL")"
export RUNBOOK_TEST_POSTGRES_URL

# Every test binary runs even when one fails (one failing binary must not hide the Flink
# or Kubernetes suites), and every failure is listed at the end.
failures=()
skipped=()
run() {
  local label=$1
  shift
  step "$label"
  if ! "$@"; then
    failures+=("$label")
  fi
}

# Snapshots are compared, never written, so a changed message fails the run.
export INSTA_UPDATE=no
run "cargo test (every test binary)" cargo test --locked --all-targets --no-fail-fast
run "cargo test --doc" cargo test --locked --doc --no-fail-fast
if [ "$(id -u)" -eq 0 ]; then
  # The full-disk tests mount a small tmpfs: they are ignored by a plain `cargo test`.
  run "cargo test --test cli -- --ignored (full-disk tests, as root)" \
    cargo test --locked --test cli --no-fail-fast -- --ignored
else
  skipped+=("the full-disk tests of tests/cli/reliability.rs: they mount a tmpfs and need root")
fi

step "summary"
for what in "${skipped[@]}"; do
  echo "SKIPPED: $what"
done
if ((${#failures[@]} > 0)); then
  for what in "${failures[@]}"; do
    echo "FAILED: $what (its failing tests are listed above, under \"failures:\")"
  done
  exit 1
fi
echo "all checks passed"
