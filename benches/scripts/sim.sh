#!/bin/bash
# Measures `annex sim run` against `git annex sim run` (git-annex
# 10.20250416) in one run:
#  1. a balanced sim of 300 files over 4 repositories (one repository
#     holding the files, three sharing them by balanced=, each with a
#     maxsize), run to stable by both (ours best of 3);
#  2. a balanced sim of FILES files (default 100,000) over 21
#     repositories: one holding the files and 20 in 4 groups of 5, each
#     group sharing them by balanced= with a maxsize, run to stable by
#     ours only (git-annex would take hours).
# Usage: bash benches/scripts/sim.sh [FILES]
set -euo pipefail
files=${1:-100000}
root=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release --quiet --bin annex --manifest-path "$root/Cargo.toml"
annex="$root/target/release/annex"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
git init -q repo
cd repo
git annex init -q bench

cat > small.sim <<'SIM'
seed 1
init origin
init a
init b
init c
connect origin <-> a
connect origin <-> b
connect origin <-> c
group a g
group b g
group c g
wanted a balanced=g:1
wanted b balanced=g:1
wanted c balanced=g:1
maxsize a 1gb
maxsize b 1gb
maxsize c 1gb
numcopies 1
addmulti 300 .bin 1mb 5mb origin
stepstable 2000
SIM

{
  echo "seed 1"
  echo "init origin"
  echo "numcopies 2"
  echo "wanted origin nothing"
  for g in 0 1 2 3; do
    for m in 0 1 2 3 4; do
      n="g${g}m${m}"
      echo "init $n"
      echo "connect origin <-> $n"
      echo "group $n grp$g"
      echo "wanted $n balanced=grp$g:1"
      echo "maxsize $n $(( files * 600 / 1000 / 5 * 3 / 2 ))mb"
    done
  done
  echo "addmulti $files .bin 1kb 1mb origin"
  echo "stepstable $(( files * 10 ))"
} > big.sim

secs() { # run a command; print its wall-clock seconds, and in cpu_secs
  # its CPU seconds (user and system, the figure that does not depend on
  # what else the machine is running)
  local t
  t=$( { TIMEFORMAT='%R %U %S'; time "$@" > /dev/null 2>&1; } 2>&1 ) \
    || { echo "failed: $*" >&2; exit 1; }
  read -r wall user sys <<< "$t"
  cpu_secs=$(echo "$user + $sys" | bc)
  echo "$wall"
}

secs git annex sim run small.sim > "$work/t"; theirs=$(cat "$work/t"); theirs_cpu=$cpu_secs
best=""
for _ in 1 2 3; do
  secs "$annex" sim run small.sim > "$work/t"; t=$(cat "$work/t")
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; fi
done

echo "300 files, 4 repositories, balanced, to stable:"
printf "  git annex sim run: %.3f s (%.2f s of CPU)\n" "$theirs" "$theirs_cpu"
printf "  annex sim run:     %.3f s (best of 3)\n" "$best"
printf "  ratio:             %.0fx\n" "$(echo "$theirs / $best" | bc -l)"
"$annex" sim run small.sim | tail -6

secs "$annex" sim run big.sim > "$work/t"; big=$(cat "$work/t")
echo "$files files, 21 repositories (20 in 4 balanced groups with maxsize), to stable:"
printf "  annex sim run:     %.2f s (%.2f s of CPU; load: %s)\n" "$big" "$cpu_secs" "$(cut -d' ' -f1-3 /proc/loadavg)"
"$annex" sim run big.sim | grep -E "stabilized|files:|balanced group"
