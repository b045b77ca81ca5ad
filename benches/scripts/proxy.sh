#!/usr/bin/env bash
# GET and PUT of one SHA256E object to a node through a gateway, measured
# in one run with the same clients against three servers:
#  - direct: our server serving the node itself (`annex p2phttp` in the
#    node; `annex shell p2pstdio NODE`);
#  - our gateway: a repository proxying the node, a git-annex repository
#    at a local path (`remote.node.annex-proxy true`, `annex updateproxy`),
#    served by `annex p2phttp` (requests to /git-annex/NODEUUID/...) and by
#    `annex shell p2pstdio GW CLIENT --uuid NODEUUID`;
#  - git-annex's gateway: the same repository served by
#    `git annex p2phttp -J2 --wideopen` and by
#    `git-annex-shell p2pstdio GW CLIENT --uuid NODEUUID`.
# HTTP with http-transfer (from this workspace: 1 MiB reads and writes, the
# length checked); p2pstdio through a pipe with `annex remote --shell`
# (the content sent to /dev/null), as p2pstdio.sh does. Best of 3 for each
# figure, the three servers taking turns in each round. Before each PUT the
# object is removed from the node and its absence checked, after it its
# presence; after each timed GET the content is fetched again the same way
# and its SHA-256 checked (not timed; over p2pstdio into a file, as
# `annex remote get -o -` prints its report after the content).
#
#   bash benches/scripts/proxy.sh [SIZE_MIB]    (default 1024)
set -euo pipefail
shopt -s inherit_errexit # a client failing in $(...) fails the run
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
cargo build --release -q -p annex-cli -p annex-benches
# Other work on the machine moves the figures: the load is printed with them.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
annex=$PWD/target/release/annex
transfer=$PWD/target/release/http-transfer
git_annex=$(command -v git-annex)
git_annex_shell=$(command -v git-annex-shell)
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-bench.XXXXXX")
declare -A server_pid=()
stop_server() { # name
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
# A client that hangs fails the run instead of stopping it.
limit=$((300 + size_mib / 2))

best() { sort -n | head -1; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "proxy.sh: $*" >&2; exit 1; }

# The node and the gateway proxying it.
for r in node gw; do
  git init -q "$work/$r"
  (cd "$work/$r" && git annex init -q "bench $r")
done
node_uuid=$(git -C "$work/node" config annex.uuid)
proxied=$(
  cd "$work/gw"
  git remote add node "$work/node"
  git config remote.node.annex-uuid "$node_uuid"
  git config remote.node.annex-proxy true
  git fetch -q node
  git annex merge -q
  "$annex" updateproxy
)
grep -q 'Started proxying for node' <<<"$proxied" || fail "annex updateproxy did not proxy the node: $proxied"
client=$(python3 -c 'import uuid; print(uuid.uuid4())')

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/object"
sum=$(sha256sum "$work/object" | cut -c1-64)
key="SHA256E-s$(stat -c %s "$work/object")--$sum"

# p2pstdio: `annex remote --shell PROGRAM TARGET` runs
# `PROGRAM p2pstdio TARGET CLIENT`; each server is reached through a
# two-line wrapper, the same cost for all three.
mkdir "$work/bin"
printf '#!/bin/sh\nexec %q shell "$@"\n' "$annex" > "$work/bin/direct"
printf '#!/bin/sh\nexec %q shell "$@" --uuid %s\n' "$annex" "$node_uuid" > "$work/bin/ours"
printf '#!/bin/sh\nexec %q "$@" --uuid %s\n' "$git_annex_shell" "$node_uuid" > "$work/bin/theirs"
chmod +x "$work/bin/direct" "$work/bin/ours" "$work/bin/theirs"
declare -A target=([direct]="$work/node" [ours]="$work/gw" [theirs]="$work/gw")
servers=(direct ours theirs)
# Run from a directory outside any repository: `annex remote` then offers
# a fresh client UUID.
cd "$work"
remote() { # server args...: annex remote through that server
  local who=$1; shift
  timeout "$limit" "$annex" remote --shell "$work/bin/$who" "${target[$who]}" "$@"
}
node() { "$annex" remote --shell "$work/bin/direct" "$work/node" "$@"; }
clean_node() {
  node remove "$key" >/dev/null 2>&1 || true
  if node checkpresent "$key" >/dev/null 2>&1; then fail "the node still has the object after remove"; fi
}
check_stored() { # who how
  node checkpresent "$key" >/dev/null || fail "$2 PUT through $1: the node does not have the object"
}
check_sum() { # who how sha256
  [ "$3" = "$sum" ] || fail "$2 GET through $1: wrong content (sha256 $3, want $sum)"
}

declare -A get_http put_http get_stdio put_stdio

# p2pstdio.
for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    clean_node
    put_stdio[$who]+="$(timeit remote "$who" put "$key" "$work/object") "
    check_stored "$who" p2pstdio
  done
done
for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    get_stdio[$who]+="$(timeit remote "$who" get "$key" -o -) "
    rm -f "$work/got"
    remote "$who" get "$key" -o "$work/got" >/dev/null
    check_sum "$who" p2pstdio "$(sha256sum "$work/got" | cut -c1-64)"
  done
done

# HTTP: the three servers listen at once, on 127.0.0.1.
declare -A base
start_server() { # name dir args...
  local name=$1 dir=$2 port; shift 2
  port=$(free_port)
  (cd "$dir" && exec "$@" --bind 127.0.0.1 --port "$port" --wideopen >"$work/$name.log" 2>&1) &
  server_pid[$name]=$!
  base[$name]="http://127.0.0.1:$port/git-annex/$node_uuid/v4"
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    kill -0 "${server_pid[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "server $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
start_server direct "$work/node" "$annex" p2phttp --log-level warn
start_server ours "$work/gw" "$annex" p2phttp --log-level warn
start_server theirs "$work/gw" "$git_annex" p2phttp -J2

for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    clean_node
    put_http[$who]+="$(timeout "$limit" "$transfer" put "${base[$who]}/put?key=$key&clientuuid=$client" "$work/object") "
    check_stored "$who" HTTP
  done
done
for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    get_http[$who]+="$(timeout "$limit" "$transfer" get "${base[$who]}/key/$key?clientuuid=$client") "
    check_sum "$who" HTTP "$(timeout "$limit" curl -sSf "${base[$who]}/key/$key?clientuuid=$client" | sha256sum | cut -c1-64)"
  done
done
for who in "${servers[@]}"; do stop_server "$who"; done

# The table.
bytes=$((size_mib * 1024 * 1024))
min_of() { tr ' ' '\n' <<<"$1" | grep . | best; }
cell() { awk -v t="$1" -v b="$bytes" 'BEGIN { printf "%.3f s (%.2f GB/s)", t, b / t / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
declare -A verdicts
row() { # label array gateway-target
  local -n a=$2
  local d o t
  d=$(min_of "${a[direct]}"); o=$(min_of "${a[ours]}"); t=$(min_of "${a[theirs]}")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(cell "$d")" "$(cell "$o")" "$(cell "$t")" \
    "$(ratio "$o" "$d")" "$(ratio "$t" "$o")"
  verdicts[$1]=$(awk -v d="$d" -v o="$o" -v t="$t" -v g="$3" 'BEGIN {
    printf "ours/direct %.2fx (target at most 1.15x: %s), git-annex/ours %.2fx (target at least %dx: %s)",
      o / d, (o / d <= 1.15 ? "met" : "missed"), t / o, g, (t / o >= g ? "met" : "missed") }')
}
printf 'object: %s MiB SHA256E, best of 3; a node at a local path proxied by the gateway\n' "$size_mib"
printf 'load average (1, 5, 15 min) at the start: %s; at the end: %s\n' "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'runs (s), direct / ours / git-annex:\n'
for a in get_http put_http get_stdio put_stdio; do
  declare -n arr=$a
  printf '  %-9s %s/ %s/ %s\n' "$a" "${arr[direct]}" "${arr[ours]}" "${arr[theirs]}"
  unset -n arr
done
echo
printf '| what | direct | our gateway | git-annex gateway | ours/direct | git-annex/ours |\n'
printf '|---|---|---|---|---|---|\n'
row "GET over HTTP" get_http 3
row "PUT over HTTP, verified" put_http 5
row "GET over p2pstdio" get_stdio 3
row "PUT over p2pstdio, verified" put_stdio 5
echo
for k in "GET over HTTP" "PUT over HTTP, verified" "GET over p2pstdio" "PUT over p2pstdio, verified"; do
  printf '%s: %s\n' "$k" "${verdicts[$k]}"
done
