#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian bookworm machine:
# git-annex from bookworm-backports (10.20250416, the version the project
# is written against, as long as the suite has it; else the version the
# suite has, with a warning), cargo-nextest and s3s-fs (the local S3
# server of the S3 tests) if missing; with --bench, also wrk for the
# benchmark scripts. Says which git-annex is installed.
# The backports source is derived from the machine's own Debian apt source,
# so no mirror is named here.
#
# APT_SOURCES_DIR (default /etc/apt/sources.list.d) is where apt's sources
# are read and the backports source is written.
set -euo pipefail

want_version=10.20250416
sources=${APT_SOURCES_DIR:-/etc/apt/sources.list.d}

have_git_annex() {
  command -v git-annex >/dev/null 2>&1 &&
    git-annex version --raw 2>/dev/null | grep -q "^${want_version}"
}

# The versions of git-annex bookworm-backports has, newest first (apt
# lists them so).
backports_versions() {
  apt-cache madison git-annex |
    awk -F'|' '$3 ~ /[ \/]bookworm-backports[\/ ]/ { gsub(/ /, "", $2); print $2 }'
}

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! have_git_annex; then
  src=$sources/debian.sources
  dst=$sources/bookworm-backports.sources
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
  available=$(backports_versions)
  pick=$(printf '%s\n' "$available" | grep "^${want_version}" | sed -n 1p || true)
  if [ -z "$pick" ]; then
    pick=$(printf '%s\n' "$available" | sed -n 1p)
    if [ -z "$pick" ]; then
      echo "install-deps: bookworm-backports has no git-annex" >&2
      exit 1
    fi
    echo "install-deps: warning: bookworm-backports no longer has git-annex ${want_version}; installing ${pick}. The interop tests are written for ${want_version}'s behaviour: a difference they report may be a change in git-annex." >&2
  fi
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --allow-downgrades \
    -t bookworm-backports "git-annex=${pick}" >/dev/null
fi
installed=$(git-annex version --raw 2>/dev/null || true)
if [ -z "$installed" ]; then
  echo "install-deps: git-annex did not install" >&2
  exit 1
fi
echo "install-deps: git-annex ${installed} installed"

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# The S3 tests start s3s-fs, a local S3 server that checks signatures
# (0.14.1: later versions need a newer Rust). It takes a few minutes to
# build.
if ! command -v s3s-fs >/dev/null 2>&1 &&
  [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
  cargo install s3s-fs@0.14.1 --features binary --locked
fi

# Benchmarks only (benches/scripts/p2phttp.sh): wrk, a second HTTP load
# client. The tests do not need it.
if [ "${1:-}" = --bench ] && ! command -v wrk >/dev/null 2>&1; then
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq wrk >/dev/null
fi
