#!/usr/bin/env bash
# Every check CI runs, in the order that fails fastest: formatting, lints, then the whole
# test suite (unit tests, the binary's integration tests, snapshot tests, and the Flink
# runbooks end to end against a real Apache Flink cluster).
# Usage: scripts/test-all.sh
#
# The Flink tests (tests/flink/) need java and javac 17+, python3 with pip (Flink comes from
# PyPI, cached in $RUNBOOK_FLINK_CACHE, default ~/.cache/runbook/flink) and curl. This script
# starts one sandbox cluster for them and stops it when it exits, however it exits; a
# cluster that cannot start fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust from https://rustup.rs first" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "Flink sandbox for the Flink runbook tests"
FLINK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/runbook-flink.XXXXXX")"
stop_flink() {
  local rc=$?
  scripts/flink-sandbox.sh stop "$FLINK_DIR" >/dev/null 2>&1 || true
  if ((rc == 0)); then
    rm -rf "$FLINK_DIR"
  else
    echo "Flink sandbox logs kept in $FLINK_DIR/log" >&2
  fi
  exit "$rc"
}
trap stop_flink EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
scripts/flink-sandbox.sh fetch >/dev/null
scripts/flink-sandbox.sh start "$FLINK_DIR"
export RUNBOOK_FLINK_ENV="$FLINK_DIR/env"

step "cargo test"
# Snapshots are compared, never written, so a changed message fails the run.
INSTA_UPDATE=no cargo test --locked --all-targets
cargo test --locked --doc
