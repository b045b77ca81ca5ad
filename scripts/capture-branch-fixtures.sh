#!/usr/bin/env bash
# Makes the real git-annex write every non-location log of the git-annex
# branch, and records what git-annex itself reports about them, as test
# data for crates/annex-branch/tests/logs_fixtures.rs.
#
#   bash scripts/capture-branch-fixtures.sh [OUTDIR]
#
# Two repositories change the same settings concurrently: "gw" (a cluster
# gateway with three node repositories and two directory special remotes)
# and "laptop", a clone of it. Then gw merges laptop's git-annex branch,
# which union merges the logs both sides wrote. OUTDIR receives:
#
#   FILE              each log as it is on gw's git-annex branch after the
#                     merge (merged logs hold superseded lines)
#   side-gw/FILE      gw's log just before the merge
#   side-laptop/FILE  laptop's log just before the merge
#   expected.tsv      what git-annex reports after the merge, one fact a
#                     line: KIND<TAB>SUBJECT<TAB>VALUE
#   reuse/            a merge where one side already holds every line of
#                     the other, not in sorted order: side-x/, side-y/ and
#                     the merged maxsize.log
#
# Repository UUIDs are fixed; the cluster UUID and the clocks vary between
# runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/crates/annex-branch/tests/fixtures/branch}
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
git annex version --raw >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/annex-branch-fixtures.XXXXXX")
trap "chmod -R u+w \"$work\" 2>/dev/null; [ -n \"${KEEP:-}\" ] || rm -rf \"$work\"" EXIT
export GIT_AUTHOR_NAME=capture GIT_AUTHOR_EMAIL=capture@example.invalid
export GIT_COMMITTER_NAME=capture GIT_COMMITTER_EMAIL=capture@example.invalid
export GIT_CONFIG_GLOBAL=$work/gitconfig GIT_CONFIG_NOSYSTEM=1
printf '[init]\n\tdefaultBranch = main\n' > "$GIT_CONFIG_GLOBAL"
unset GIT_ANNEX_VECTOR_CLOCK

GW=aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa
LAPTOP=bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb
N1=11111111-1111-4111-8111-111111111111
N2=22222222-2222-4222-8222-222222222222
N3=33333333-3333-4333-8333-333333333333
P1=44444444-4444-4444-8444-444444444444
DIR1=dddddddd-dddd-4ddd-8ddd-dddddddddddd

q() { "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; "$@"; exit 1; }; }

# init DIR UUID DESCRIPTION [clone-of]
init() {
  if [ -n "${4:-}" ]; then git clone -q "$4" "$1" 2>/dev/null; else git init -q "$1"; fi
  git -C "$1" config annex.uuid "$2"
  (cd "$1" && q git annex init "$3")
}

# Logs are written with whole-second clocks; a pause makes the next change
# surely newer.
tick() { sleep 1.1; }

init "$work/gw" $GW "gateway"
for n in 1 2 3; do
  u=$(eval echo "\$N$n")
  init "$work/node$n" "$u" "node $n" "$work/gw"
done
init "$work/plain" $P1 "plain repository" "$work/gw"

cd "$work/gw"
for r in node1 node2 node3 plain; do
  git remote add $r "$work/$r"
  q git fetch $r
done
# The nodes' git-annex branches diverge from each other: this merges their
# uuid.log lines.
q git annex merge

q git annex describe here "gateway repository"
q git annex describe node1 "first node"
tick
q git annex describe node1 "first node (disk 1)"

q git annex group here archive
q git annex group here backup
q git annex ungroup here archive
for r in node1 node2 node3; do q git annex group $r nodes; done
q git annex group node3 spare
q git annex group plain transfer
q git annex ungroup plain transfer

q git annex wanted here "exclude=*"
q git annex wanted node1 groupwanted
q git annex wanted node2 "include=*.mp3 and (exclude=old/* or largerthan=1mb)"
q git annex wanted node3 standard
q git annex required node1 "include=important/*"
q git annex groupwanted nodes "balanced=nodes"
q git annex groupwanted archive "anything"
tick
q git annex groupwanted archive "not copies=archive:3"

q git annex numcopies 2
tick
q git annex numcopies 3
q git annex mincopies 1
tick
q git annex mincopies 2

q git annex trust --force node1
q git annex untrust node2
tick
q git annex semitrust node2
q git annex untrust plain

mkdir "$work/dir1" "$work/dir2"
q git annex initremote dir1 type=directory "directory=$work/dir1" \
  encryption=none uuid=$DIR1 "preferreddir=first dir"
# A sameas remote shares dir1's UUID; its config is stored under a config
# UUID of its own, without the fields it inherits (chunk among them).
q git annex initremote dir2 --sameas=dir1 type=directory \
  "directory=$work/dir2" chunk=1MiB "preferreddir=my dir&more	tabbed"
tick
q git annex enableremote dir1 "directory=$work/dir1" "preferreddir=other dir"

q git annex initcluster mycluster "the cluster"
CLUSTER=$(git config annex.cluster.mycluster)
git config remote.node1.annex-cluster-node mycluster
git config remote.node2.annex-cluster-node mycluster
q git annex updatecluster
tick
git config remote.node3.annex-cluster-node mycluster
q git annex updatecluster
q git annex dead node3
git config remote.plain.annex-proxy true
q git annex updateproxy

q git annex maxsize node1 1tb
q git annex maxsize node2 500gb
tick
q git annex maxsize node1 2tb
q git annex maxsize here 123456789

# A second repository changes the same settings at the same time.
init "$work/laptop" $LAPTOP "laptop" "$work/gw"
cd "$work/laptop"
q git annex describe $N2 "second node"
q git annex group here laptop
q git annex group $N2 fast
q git annex wanted here present
q git annex wanted $N2 "include=*.flac"
q git annex groupwanted laptop "present"
q git annex numcopies 4
q git annex mincopies 3
q git annex untrust $N1
q git annex maxsize $N2 100gb
q git annex enableremote dir1 "directory=$work/dir1" "preferreddir=laptop dir"
tick
cd "$work/gw"
q git annex numcopies 5
q git annex group node1 fast
q git annex maxsize node2 200gb
q git annex trust --force node1

rm -rf "$out"
mkdir -p "$out/side-gw" "$out/side-laptop"
git -C "$work/laptop" ls-tree --name-only git-annex | grep '\.log$' |
  while read -r f; do git -C "$work/laptop" cat-file -p "git-annex:$f" > "$out/side-laptop/$f"; done
git ls-tree --name-only git-annex | grep '\.log$' |
  while read -r f; do git cat-file -p "git-annex:$f" > "$out/side-gw/$f"; done

git remote add laptop "$work/laptop"
q git fetch laptop
q git annex merge
git ls-tree --name-only git-annex | grep '\.log$' |
  while read -r f; do git cat-file -p "git-annex:$f" > "$out/$f"; done

# What git-annex reports about the merged logs.
exp=$out/expected.tsv
: > "$exp"
row() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >> "$exp"; }
row here "" $GW
row cluster mycluster "$CLUSTER"
row cluster-nodes-configured mycluster "node1 node2 node3"
row remote laptop $LAPTOP
for r in node1 node2 node3 plain dir1 dir2; do
  row remote $r "$(git config remote.$r.annex-uuid)"
done
row config-uuid dir2 "$(git config remote.dir2.annex-config-uuid)"
all="$GW $LAPTOP $N1 $N2 $N3 $P1 $DIR1 $CLUSTER"
for u in $all; do
  info=$(git annex info --fast --json "$u")
  row trust "$u" "$(jq -r .trust <<<"$info")"
  row group "$u" "$(git annex group "$u")"
  row wanted "$u" "$(git annex wanted "$u")"
  row required "$u" "$(git annex required "$u")"
  row maxsize "$u" "$(git annex maxsize "$u" --bytes)"
done
git annex info --fast --json |
  jq -r '.["trusted repositories","semitrusted repositories","untrusted repositories"][] | [.uuid, .description] | @tsv' |
  while IFS=$'\t' read -r u d; do row description "$u" "$d"; done
for g in nodes archive laptop spare fast; do
  row groupwanted $g "$(git annex groupwanted $g)"
done
row numcopies "" "$(git annex numcopies)"
row mincopies "" "$(git annex mincopies)"
for r in dir1 dir2; do
  info=$(git annex info --fast --json $r)
  row remote-type $r "$(jq -r .type <<<"$info")"
  row remote-encryption $r "$(jq -r .encryption <<<"$info")"
done
# The gateway as another repository sees it: what it proxies, and for
# which clusters it is a gateway.
cd "$work/laptop"
q git fetch origin
q git annex merge
info=$(git annex info --fast --json origin)
row proxying $GW "$(jq -r '.proxying // ""' <<<"$info")"
row gateway-to-cluster $GW "$(jq -r '.["gateway to cluster"] // ""' <<<"$info")"
# Last, as it changes the logs: updatecluster compares the nodes configured
# in git config (node1, node2, node3) with the nodes it reads from
# cluster.log, leaving out dead nodes, and says what it adds or removes.
cd "$work/gw"
row updatecluster mycluster "$(git annex updatecluster 2>&1 | paste -sd'|')"

# git-annex keeps a version that already holds every line as it is, even
# when its lines are not sorted (new-form logs are sorted by UUID, not by
# their first word, the clock).
init "$work/x" $N1 "x"
init "$work/y" $N2 "y" "$work/x"
cd "$work/x"
git remote add y "$work/y"
q git fetch y
q git annex merge
q git annex maxsize y 5
cd "$work/y"
q git fetch origin
q git annex merge
q git annex numcopies 3
cd "$work/x"
tick
q git annex maxsize here 7
mkdir -p "$out/reuse/side-x" "$out/reuse/side-y"
git cat-file -p git-annex:maxsize.log > "$out/reuse/side-x/maxsize.log"
cd "$work/y"
git cat-file -p git-annex:maxsize.log > "$out/reuse/side-y/maxsize.log"
q git fetch origin
q git annex merge
git cat-file -p git-annex:maxsize.log > "$out/reuse/maxsize.log"
echo "wrote $out"
