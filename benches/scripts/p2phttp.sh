#!/usr/bin/env bash
# p2phttp on loopback: `git annex p2phttp` against `annex p2phttp`, serving
# the same repository, measured in one run with the same tools:
#  - checkpresent requests per second at 16 and 256 keep-alive connections,
#    best of 3 runs of 5 s, with the server's CPU time per request in that
#    run (the server process and its children, user and system), by two
#    clients: http-load (from this workspace: one client thread) and wrk
#    (one thread; installed by scripts/install-deps.sh --bench);
#  - GET of one SIZE_MIB object, best of 5, by three clients: http-transfer
#    (from this workspace: 1 MiB reads, the content's length checked),
#    `curl -o /dev/null` (with the server's CPU time per GET), and `git
#    annex get --from` a remote whose annexUrl
#    is the server (best of 3, the client's verification of the content
#    turned off so that the transfer is what is timed);
#  - PUT of that object, verified by the server, best of 3 (http-transfer:
#    1 MiB writes, `"stored":true` checked).
# git-annex's server is run with -J2 (it needs at least 2) and with -J16,
# and its better figure is the one compared.
#
#   bash benches/scripts/p2phttp.sh [SIZE_MIB]    (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
command -v wrk >/dev/null || bash scripts/install-deps.sh --bench
cargo build --release -q --bin annex --bin http-load --bin http-transfer
annex=$PWD/target/release/annex
load=$PWD/target/release/http-load
transfer=$PWD/target/release/http-transfer
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-bench.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  chmod -R u+w "$work"; rm -rf "$work"
}
trap cleanup EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

best() { sort -n | head -1; }
most() { sort -n | tail -1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

git init -q "$work/repo"
(cd "$work/repo" && git annex init -q bench)
uuid=$(git -C "$work/repo" config annex.uuid)
client=$(python3 -c 'import uuid; print(uuid.uuid4())')
echo small > "$work/repo/small"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/object"
(cd "$work/repo" && git annex add -q small && git commit -qm small)
small=$(cd "$work/repo" && git annex lookupkey small)
big="SHA256E-s$(stat -c %s "$work/object")--$(sha256sum "$work/object" | cut -c1-64)"

# A git-annex client whose remote srv reaches the server by annexUrl only,
# with a file pointing at the big object.
git init -q "$work/client"
(cd "$work/client" && git annex init -q client \
  && git config annex.security.allowed-ip-addresses all \
  && git remote add srv http://127.0.0.1:9/nothing.git \
  && git config remote.srv.annex-verify false \
  && git config remote.srv.annex-uuid "$uuid" \
  && git annex fromkey -q --force "$big" bigfile \
  && git annex setpresentkey "$big" "$uuid" 1)

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

bytes=$((size_mib * 1024 * 1024))
start_server() { # name port args...
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

declare -A rps16 rps256 cpu16 cpu256 get put wrps16 wrps256 wcpu16 wcpu256 curlget curlcpu annexget
load_runs() { # base connections: "rate cpu-per-request" of the fastest of 3 runs
  for _ in 1 2 3; do "$load" --connections "$2" --seconds 5 --method POST \
    --cpu-of "$server_pid" "$1/checkpresent?key=$small&clientuuid=$client"; done | most
}
wrk_runs() { # url connections: "rate cpu-per-request" of the fastest of 3 runs
  local hz; hz=$(getconf CLK_TCK)
  for _ in 1 2 3; do
    local before after out requests
    before=$(tree_ticks "$server_pid")
    out=$(wrk -t1 -c"$2" -d5s -s "$work/post.lua" "$1")
    after=$(tree_ticks "$server_pid")
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    echo "$(echo "$out" | awk '/Requests\/sec/ { printf "%d", $2 }')" \
      "$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
  done | most
}
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); printf '%.3f\n' "$(echo "$e - $s" | bc)"; }
measure() { # name port
  local name=$1 port=$2 base="http://127.0.0.1:$2/git-annex/$uuid/v4" line
  line=$(load_runs "$base" 16); rps16[$name]=${line% *}; cpu16[$name]=${line#* }
  line=$(load_runs "$base" 256); rps256[$name]=${line% *}; cpu256[$name]=${line#* }
  put[$name]=$(for _ in 1 2 3; do
      curl -sf -X POST -o /dev/null "$base/remove?key=$big&clientuuid=$client"
      "$transfer" put "$base/put?key=$big&clientuuid=$client" "$work/object"
    done | best)
  curl -sf -X POST "$base/checkpresent?key=$big&clientuuid=$client" | grep -q '"present":true' \
    || { echo "$name: the PUT did not store the object" >&2; exit 1; }
  get[$name]=$(for _ in 1 2 3 4 5; do
      "$transfer" get "$base/key/$big?clientuuid=$client"; done | best)
  local before after
  before=$(tree_ticks "$server_pid")
  curlget[$name]=$(for _ in 1 2 3 4 5; do
      curl -sf -o /dev/null -w '%{time_total}\n' "$base/key/$big?clientuuid=$client"; done | best)
  after=$(tree_ticks "$server_pid")
  curlcpu[$name]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz / 5 }')
  git -C "$work/client" config remote.srv.annexUrl "annex+http://127.0.0.1:$port/git-annex/"
  annexget[$name]=$(for _ in 1 2 3; do
      (cd "$work/client" && git annex drop -q --force bigfile >/dev/null 2>&1 || true)
      timeit git -C "$work/client" annex get -q --from srv bigfile
      [ "$(stat -L -c %s "$work/client/bigfile")" = "$bytes" ] \
        || { echo "$name: git annex get did not get the object" >&2; exit 1; }
    done | best)
  line=$(wrk_runs "$base/checkpresent?key=$small&clientuuid=$client" 16); wrps16[$name]=${line% *}; wcpu16[$name]=${line#* }
  line=$(wrk_runs "$base/checkpresent?key=$small&clientuuid=$client" 256); wrps256[$name]=${line% *}; wcpu256[$name]=${line#* }
}

for jobs in 2 16; do
  port=$(free_port)
  start_server "git-annex-J$jobs" "$port" git annex p2phttp --bind 127.0.0.1 --port "$port" --wideopen -J"$jobs"
  measure "git-annex-J$jobs" "$port"
  stop_server
done
port=$(free_port)
start_server annex "$port" "$annex" p2phttp --bind 127.0.0.1 --port "$port" --wideopen --log-level warn
measure annex "$port"
stop_server

pick() { # array: git-annex's better figure (higher is better unless $2=low)
  local -n a=$1
  if [ "${2:-high}" = low ]; then printf '%s\n' "${a[git-annex-J2]}" "${a[git-annex-J16]}" | best
  else printf '%s\n' "${a[git-annex-J2]}" "${a[git-annex-J16]}" | most; fi
}
gbps() { echo "scale=2; $bytes / $1 / 1000000000" | bc; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
printf '%-28s %14s %14s %14s %8s\n' what "git-annex -J2" "git-annex -J16" "annex" ratio
printf '%-28s %14s %14s %14s %8s\n' "checkpresent/s, 16 conns" "${rps16[git-annex-J2]}" "${rps16[git-annex-J16]}" "${rps16[annex]}" "$(ratio "${rps16[annex]}" "$(pick rps16)")x"
printf '%-28s %14s %14s %14s %8s\n' "checkpresent/s, 256 conns" "${rps256[git-annex-J2]}" "${rps256[git-annex-J16]}" "${rps256[annex]}" "$(ratio "${rps256[annex]}" "$(pick rps256)")x"
printf '%-28s %14s %14s %14s %8s\n' "  server CPU us/req, 16" "${cpu16[git-annex-J2]}" "${cpu16[git-annex-J16]}" "${cpu16[annex]}" "$(ratio "$(pick cpu16 low)" "${cpu16[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "  server CPU us/req, 256" "${cpu256[git-annex-J2]}" "${cpu256[git-annex-J16]}" "${cpu256[annex]}" "$(ratio "$(pick cpu256 low)" "${cpu256[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "GET ${size_mib} MiB, s (GB/s)" "${get[git-annex-J2]} ($(gbps "${get[git-annex-J2]}"))" "${get[git-annex-J16]} ($(gbps "${get[git-annex-J16]}"))" "${get[annex]} ($(gbps "${get[annex]}"))" "$(ratio "$(pick get low)" "${get[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "GET ${size_mib} MiB, curl, s" "${curlget[git-annex-J2]}" "${curlget[git-annex-J16]}" "${curlget[annex]}" "$(ratio "$(pick curlget low)" "${curlget[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "  server CPU s per curl GET" "${curlcpu[git-annex-J2]}" "${curlcpu[git-annex-J16]}" "${curlcpu[annex]}" "$(ratio "$(pick curlcpu low)" "${curlcpu[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "GET ${size_mib} MiB, git annex, s" "${annexget[git-annex-J2]}" "${annexget[git-annex-J16]}" "${annexget[annex]}" "$(ratio "$(pick annexget low)" "${annexget[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "PUT ${size_mib} MiB, s" "${put[git-annex-J2]}" "${put[git-annex-J16]}" "${put[annex]}" "$(ratio "$(pick put low)" "${put[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "wrk checkpresent/s, 16" "${wrps16[git-annex-J2]}" "${wrps16[git-annex-J16]}" "${wrps16[annex]}" "$(ratio "${wrps16[annex]}" "$(pick wrps16)")x"
printf '%-28s %14s %14s %14s %8s\n' "wrk checkpresent/s, 256" "${wrps256[git-annex-J2]}" "${wrps256[git-annex-J16]}" "${wrps256[annex]}" "$(ratio "${wrps256[annex]}" "$(pick wrps256)")x"
printf '%-28s %14s %14s %14s %8s\n' "  server CPU us/req, 16" "${wcpu16[git-annex-J2]}" "${wcpu16[git-annex-J16]}" "${wcpu16[annex]}" "$(ratio "$(pick wcpu16 low)" "${wcpu16[annex]}")x"
printf '%-28s %14s %14s %14s %8s\n' "  server CPU us/req, 256" "${wcpu256[git-annex-J2]}" "${wcpu256[git-annex-J16]}" "${wcpu256[annex]}" "$(ratio "$(pick wcpu256 low)" "${wcpu256[annex]}")x"
