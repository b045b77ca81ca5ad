#!/usr/bin/env bash
# Uploads to and downloads from a cluster of three nodes (git-annex
# repositories at local paths), measured in one run over HTTP with the
# same client (http-transfer, from this workspace) against:
#  - one node: our server serving one node directly (`annex p2phttp` in
#    the node), the cost of storing the object once;
#  - our gateway: `annex p2phttp` in the gateway, requests to
#    /git-annex/CLUSTERUUID/...;
#  - git-annex's gateway: `git annex p2phttp -J2` in the same gateway.
# The cluster is made with git-annex's own initcluster and updatecluster.
# Before each PUT the object is removed from every node; after it, every
# node must have it (one node for the one-node PUT). After each timed GET
# the content is fetched again and its SHA-256 checked (not timed). Best
# of 3, the servers taking turns in each round.
#
#   bash benches/scripts/cluster.sh [SIZE_MIB]    (default 1024)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
cargo build --release -q -p annex-cli -p annex-benches
annex=$PWD/target/release/annex
transfer=$PWD/target/release/http-transfer
git_annex=$(command -v git-annex)
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-cluster-bench.XXXXXX")
declare -A server_pid=()
stop_server() {
  local pid=${server_pid[$1]:-}
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  unset "server_pid[$1]"
}
cleanup() {
  for name in "${!server_pid[@]}"; do stop_server "$name"; done
  chmod -R u+w "$work"; rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
limit=$((300 + size_mib))
best() { sort -n | head -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "cluster.sh: $*" >&2; exit 1; }

nodes=(n1 n2 n3)
for r in gw "${nodes[@]}"; do
  git init -q "$work/$r"
  (cd "$work/$r" && git annex init -q "bench $r")
done
(
  cd "$work/gw"
  for n in "${nodes[@]}"; do
    git remote add "$n" "$work/$n"
    git config "remote.$n.annex-cluster-node" c
    git fetch -q "$n"
  done
  git annex initcluster c >/dev/null
  git annex updatecluster >/dev/null
)
cluster=$(git -C "$work/gw" config annex.cluster.c)
client=$(python3 -c 'import uuid; print(uuid.uuid4())')
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/object"
sum=$(sha256sum "$work/object" | cut -c1-64)
key="SHA256E-s$(stat -c %s "$work/object")--$sum"

cd "$work"
on_node() { "$annex" remote "$work/$1" "${@:2}"; }
clean_nodes() {
  for n in "${nodes[@]}"; do
    on_node "$n" remove "$key" >/dev/null 2>&1 || true
    if on_node "$n" checkpresent "$key" >/dev/null 2>&1; then fail "$n still has the object"; fi
  done
}
check_nodes() { # how many nodes must have it
  local have=0
  for n in "${nodes[@]}"; do
    if on_node "$n" checkpresent "$key" >/dev/null 2>&1; then have=$((have + 1)); fi
  done
  [ "$have" -ge "$1" ] || fail "$2: $have nodes have the object, want $1"
}

declare -A base
start_server() { # name dir uuid args...
  local name=$1 dir=$2 uuid=$3 port; shift 3
  port=$(free_port)
  (cd "$dir" && exec "$@" --bind 127.0.0.1 --port "$port" --wideopen >"$work/$name.log" 2>&1) &
  server_pid[$name]=$!
  base[$name]="http://127.0.0.1:$port/git-annex/$uuid/v4"
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    kill -0 "${server_pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "server $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
n1_uuid=$(git -C "$work/n1" config annex.uuid)
start_server one "$work/n1" "$n1_uuid" "$annex" p2phttp --log-level warn
start_server ours "$work/gw" "$cluster" "$annex" p2phttp --log-level warn
start_server theirs "$work/gw" "$cluster" "$git_annex" p2phttp -J2

declare -A put get
for _ in 1 2 3; do
  for who in one ours theirs; do
    clean_nodes
    put[$who]+="$(timeout "$limit" "$transfer" put "${base[$who]}/put?key=$key&clientuuid=$client" "$work/object") "
    if [ "$who" = one ]; then check_nodes 1 "PUT to one node"; else check_nodes 3 "PUT through $who"; fi
  done
done
# Every node has the object now, and both gateways' logs say so.
for _ in 1 2 3; do
  for who in ours theirs; do
    get[$who]+="$(timeout "$limit" "$transfer" get "${base[$who]}/key/$key?clientuuid=$client") "
    got=$(timeout "$limit" curl -sSf "${base[$who]}/key/$key?clientuuid=$client" | sha256sum | cut -c1-64)
    [ "$got" = "$sum" ] || fail "GET through $who: wrong content"
  done
done
for who in one ours theirs; do stop_server "$who"; done

bytes=$((size_mib * 1024 * 1024))
min_of() { tr ' ' '\n' <<<"$1" | grep . | best; }
cell() { awk -v t="$1" -v b="$bytes" 'BEGIN { printf "%.3f s (%.2f GB/s)", t, b / t / 1e9 }'; }
p1=$(min_of "${put[one]}"); po=$(min_of "${put[ours]}"); pt=$(min_of "${put[theirs]}")
go=$(min_of "${get[ours]}"); gt=$(min_of "${get[theirs]}")
printf 'object: %s MiB SHA256E, best of 3; a cluster of three nodes at local paths\n' "$size_mib"
printf 'runs (s): PUT one node %s/ ours %s/ git-annex %s; GET ours %s/ git-annex %s\n' \
  "${put[one]}" "${put[ours]}" "${put[theirs]}" "${get[ours]}" "${get[theirs]}"
echo
printf '| what | one node (ours) | our gateway | git-annex gateway |\n'
printf '|---|---|---|---|\n'
printf '| PUT, verified | %s | %s | %s |\n' "$(cell "$p1")" "$(cell "$po")" "$(cell "$pt")"
printf '| GET | | %s | %s |\n' "$(cell "$go")" "$(cell "$gt")"
echo
awk -v p1="$p1" -v po="$po" -v pt="$pt" -v go="$go" -v b="$bytes" 'BEGIN {
  printf "three-node PUT / one-node PUT: %.2fx (target at most 1.3x: %s)\n", po / p1, (po / p1 <= 1.3 ? "met" : "missed")
  printf "git-annex cluster PUT / ours: %.2fx (target at least 5x: %s)\n", pt / po, (pt / po >= 5 ? "met" : "missed")
  printf "GET from the cluster: %.2f GB/s (target at least 2.5 GB/s: %s)\n", b / go / 1e9, (b / go / 1e9 >= 2.5 ? "met" : "missed")
}'
