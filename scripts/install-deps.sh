#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine:
# git-annex 10.20250416 from bookworm-backports, and cargo-nextest if missing;
# with --bench, also wrk for the benchmark scripts.
# The backports source is derived from the machine's own Debian apt source,
# so no mirror is named here.
set -euo pipefail

want_version=10.20250416

have_git_annex() {
  command -v git-annex >/dev/null 2>&1 &&
    git-annex version --raw 2>/dev/null | grep -q "^${want_version}"
}

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! have_git_annex; then
  src=/etc/apt/sources.list.d/debian.sources
  dst=/etc/apt/sources.list.d/bookworm-backports.sources
  if [ ! -f "$dst" ]; then
    if [ ! -f "$src" ]; then
      echo "install-deps: $src not found; add a bookworm-backports apt source by hand" >&2
      exit 1
    fi
    # Keep the first deb822 stanza whose Suites field names bookworm, with
    # Suites rewritten to bookworm-backports.
    awk '
      BEGIN { RS = ""; ORS = "\n\n" }
      {
        n = split($0, lines, "\n"); suites = 0
        for (i = 1; i <= n; i++)
          if (lines[i] ~ /^Suites:/ && lines[i] ~ /(^|[ \t])bookworm([ \t]|$)/) suites = 1
        if (suites && !done) {
          for (i = 1; i <= n; i++) {
            if (lines[i] ~ /^Suites:/) print "Suites: bookworm-backports"
            else if (lines[i] !~ /^#/) print lines[i]
          }
          done = 1
        }
      }
    ' ORS="\n" "$src" | sudo_if_needed tee "$dst" >/dev/null
    if ! grep -q '^Suites: bookworm-backports' "$dst"; then
      echo "install-deps: no stanza for bookworm in $src" >&2
      sudo_if_needed rm -f "$dst"
      exit 1
    fi
  fi
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq \
    -t bookworm-backports "git-annex=${want_version}*" >/dev/null
fi
have_git_annex || { echo "install-deps: git-annex ${want_version} did not install" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# Benchmarks only (benches/scripts/p2phttp.sh): wrk, a second HTTP load
# client. The tests do not need it.
if [ "${1:-}" = --bench ] && ! command -v wrk >/dev/null 2>&1; then
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq wrk >/dev/null
fi
