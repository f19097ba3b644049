#!/usr/bin/env bash
# Every check CI runs, in the order that fails fastest: formatting, lints, then the whole
# test suite (unit tests, the binary's integration tests and snapshot tests).
# Usage: scripts/test-all.sh
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

step "cargo test"
# Snapshots are compared, never written, so a changed message fails the run.
INSTA_UPDATE=no cargo test --locked --all-targets
cargo test --locked --doc
