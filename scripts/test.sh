#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what they need
# first (git-annex 10.20250416 among them). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

# The interop tests run the real git-annex; they fail rather than skip when
# it is missing. They are written for 10.20250416's behaviour.
ran=$(git-annex version --raw)
echo "git-annex ${ran}"
case $ran in
  10.20250416*) ;;
  *) echo "test.sh: warning: git-annex ${ran} is not 10.20250416, whose behaviour the interop tests expect" >&2 ;;
esac
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# The ci profile of .config/nextest.toml: a test stuck for five minutes is
# killed and fails.
cargo nextest run --workspace --locked --profile ci
