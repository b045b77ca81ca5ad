#!/usr/bin/env bash
# Repository sizes from a git-annex branch of N_KEYS location logs over 10
# repositories (benches/scripts/gen-branch.py), measured in one run:
#  - from scratch: `annex info --json` (its saved state deleted first)
#    against `git annex info --bytes --json` (its repository-size database
#    deleted first), best of 3 each, checking both find the same sizes;
#  - the incremental update after 1,000 changed keys: `annex info` with the
#    state saved at the first commit, the branch moved to the second;
#  - one key's locations: `annex whereis`-style lookups, timed by the
#    criterion bench `cargo bench -p annex-benches --bench branch`.
#
#   bash benches/scripts/branch_sizes.sh [N_KEYS]    (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
n_keys=${1:-1000000}
cargo build --release -q --bin annex
annex=$PWD/target/release/annex
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
repo=$work/repo

best() { sort -n | head -1; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "generating $n_keys location logs..." >&2
mapfile -t commits < <(python3 benches/scripts/gen-branch.py "$n_keys" 10 "$repo" --change 1000)
first=${commits[0]} second=${commits[1]}
cd "$repo"
git update-ref refs/heads/git-annex "$first"

ours_full() { rm -f .git/annex/repo-sizes; "$annex" info --json; }
theirs_full() { rm -rf .git/annex/reposize*; git annex info --bytes --json; }

# Same sizes?
sizes() { # JSON-FIELD: "UUID SIZE" lines of repositories holding something
  python3 -c '
import json, sys
rows = json.load(sys.stdin)[sys.argv[1]]
for line in sorted("%s %s" % (r["uuid"], r["size"]) for r in rows if int(r["size"])):
    print(line)' "$1"
}
ours_full | sizes repositories > "$work/ours"
theirs_full | sizes "annex sizes of repositories" > "$work/theirs"
if ! diff -q "$work/ours" "$work/theirs" >/dev/null; then
  echo "the sizes differ:" >&2; diff "$work/ours" "$work/theirs" >&2; exit 1
fi

theirs=$(for _ in 1 2 3; do timeit theirs_full; done | best)
ours=$(for _ in 1 2 3; do timeit ours_full; done | best)
incremental=$(for _ in 1 2 3; do
    git update-ref refs/heads/git-annex "$first"
    ours_full >/dev/null
    git update-ref refs/heads/git-annex "$second"
    timeit "$annex" info --json
  done | best)
# What `annex info` costs when nothing changed (the floor under the
# incremental figure: reading logs and writing the answer).
unchanged=$(for _ in 1 2 3; do timeit "$annex" info --json; done | best)

printf '%-44s %10s\n' "what ($n_keys keys, 10 repositories)" seconds
printf '%-44s %10s\n' "git annex info --bytes --json, from scratch" "$theirs"
printf '%-44s %10s\n' "annex info --json, from scratch" "$ours"
printf '%-44s %10s\n' "annex info --json, 1,000 keys changed" "$incremental"
printf '%-44s %10s\n' "annex info --json, nothing changed" "$unchanged"
echo "full pass: annex is $(echo "scale=1; $theirs / $ours" | bc)x faster than git annex info"
