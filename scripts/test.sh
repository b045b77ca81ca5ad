#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what they need
# first (git-annex 10.20250416 among them). This is what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

# The interop tests run the real git-annex; they fail rather than skip when
# it is missing.
git-annex version --raw
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo nextest run --workspace --locked --no-fail-fast
