#!/usr/bin/env bash
# Server CPU per checkpresent, git-annex's p2phttp against ours, in one run:
# wrk (one thread, 16 keep-alive connections, POST checkpresent on one key,
# 5 s, best of 3 runs by rate) against each server in turn, serving the same
# repository, and the CPU ticks (user and system) of the server's process
# tree over each run, from /proc/PID/stat. Ours is run as an operator runs
# it (default logging), and again with --log-requests (a log line per
# request, as every request was logged before), and with --metrics-bind.
# Requires wrk (scripts/install-deps.sh --bench installs it). ANNEX=PATH
# measures that annex binary instead of building this checkout's, and
# BEFORE=PATH another one beside it (an older build, as "annex-before").
#
#   bash benches/scripts/checkpresent.sh [CONNECTIONS]   (default 16)
set -euo pipefail
cd "$(dirname "$0")/../.."
conns=${1:-16}
command -v wrk >/dev/null || { echo "wrk is needed: bash scripts/install-deps.sh --bench" >&2; exit 1; }
if [ -z "${ANNEX:-}" ]; then cargo build --release -q --bin annex; fi
annex=${ANNEX:-$PWD/target/release/annex}
before=${BEFORE:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-bench.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  chmod -R u+w "$work"; rm -rf "$work"
}
trap cleanup EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

git init -q "$work/repo"
(cd "$work/repo" && git annex init -q bench)
uuid=$(git -C "$work/repo" config annex.uuid)
client=$(python3 -c 'import uuid; print(uuid.uuid4())')
echo small > "$work/repo/small"
(cd "$work/repo" && git annex add -q small && git commit -qm small)
small=$(cd "$work/repo" && git annex lookupkey small)
echo 'wrk.method = "POST"' > "$work/post.lua"

# CPU ticks (user and system) of a process and its descendants.
tree_ticks() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
stats = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(d)] = (int(fields[1]), sum(map(int, fields[11:15])))
total, todo = 0, [root]
while todo:
    p = todo.pop()
    total += stats.get(p, (0, 0))[1]
    todo += [c for c, (pp, _) in stats.items() if pp == p]
print(total)
PY
}
start_server() { # name port command...
  local name=$1 port=$2; shift 2
  (cd "$work/repo" && exec "$@" >"$work/$name.log" 2>&1) &
  server_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.1
  done
  echo "server $name did not start:" >&2; cat "$work/$name.log" >&2; exit 1
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }
hz=$(getconf CLK_TCK)
measure() { # name port: prints "name rate cpu-us-per-request", best of 3 by rate
  local url="http://127.0.0.1:$2/git-annex/$uuid/v4/checkpresent?key=$small&clientuuid=$client"
  curl -sf -X POST "$url" | grep -q '"present":true' || { echo "$1: checkpresent failed" >&2; exit 1; }
  for _ in 1 2 3; do
    local before after out requests
    before=$(tree_ticks "$server_pid")
    out=$(wrk -t1 -c"$conns" -d5s -s "$work/post.lua" "$url")
    after=$(tree_ticks "$server_pid")
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    echo "$(echo "$out" | awk '/Requests\/sec/ { printf "%d", $2 }')" \
      "$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
  done | sort -n | tail -1 | sed "s/^/$1 /"
}
run() { # name command...
  local name=$1 port; shift
  port=$(free_port)
  start_server "$name" "$port" "$@" --bind 127.0.0.1 --port "$port" --wideopen
  measure "$name" "$port"
  stop_server
}
{
  run "git-annex-J2" git annex p2phttp -J2
  if [ -n "$before" ]; then run "annex-before" "$before" p2phttp; fi
  run "annex" "$annex" p2phttp
  run "annex--log-requests" "$annex" p2phttp --log-requests
  run "annex--metrics-bind" "$annex" p2phttp --metrics-bind "127.0.0.1:$(free_port)"
} > "$work/results"
git_annex_cpu=$(awk '$1 == "git-annex-J2" { print $3 }' "$work/results")
printf '%-24s %12s %16s %14s\n' server "requests/s" "CPU us/request" "CPU vs git-annex"
while read -r name rate cpu; do
  printf '%-24s %12s %16s %14s\n' "$name" "$rate" "$cpu" "$(awk -v g="$git_annex_cpu" -v c="$cpu" 'BEGIN { printf "%.1fx less", g / c }')"
done < "$work/results"
