#!/usr/bin/env bash
# One `annex p2phttp --directory` serving a forge's N repositories (default
# 1000, as owner/repoI.git below one directory), measured in one run:
#  - the time to answer the first request to each repository, addressed by
#    its path (a checkpresent, timed by curl: connect to last byte), and
#    the same for a second request (the repository then open): median, 99th
#    percentile and most;
#  - the server's memory (resident set, and its peak) at start and after
#    every repository was asked once;
#  - with --paths-only (repositories opened on demand) and without it
#    (git-annex's --directory: every repository found and opened at
#    start, also answering requests naming a UUID alone): how long the
#    server takes to start listening;
#  - for comparison, the resident set of one `git annex p2phttp -J2` serving
#    one of these repositories after one request (git-annex's model is one
#    such process per repository).
#
#   bash benches/scripts/forge.sh [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1000}
cargo build --release -q --bin annex
annex=$PWD/target/release/annex
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-forge.XXXXXX")
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=
}
cleanup() { stop_server; chmod -R u+w "$work"; rm -rf "$work"; }
trap cleanup EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

# A template repository holding one object, copied N times with a UUID of
# its own each (git annex init for each would take minutes).
git init -q --bare "$work/template.git"
(cd "$work/template.git" && git annex init -q template)
echo "forge content" > "$work/object"
key="SHA256E-s$(stat -c %s "$work/object")--$(sha256sum "$work/object" | cut -c1-64)"
(cd "$work/template.git" && git annex setkey "$key" "$work/object")
client=$(cat /proc/sys/kernel/random/uuid)
for i in $(seq 1 "$n"); do
  owner="user$((i % 100))"
  mkdir -p "$work/forge/$owner"
  cp -a "$work/template.git" "$work/forge/$owner/repo$i.git"
  git config --file "$work/forge/$owner/repo$i.git/config" annex.uuid "$(cat /proc/sys/kernel/random/uuid)"
done
echo "$n repositories: $(du -sh "$work/forge" | cut -f1) on disk"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# Starts the server with the given options; sets server_pid and port, and
# prints how long it took to listen.
start_server() {
  local start
  log=$(mktemp "$work/server.XXXXXX.log")
  start=$(date +%s.%N)
  "$annex" p2phttp --directory "$work/forge" --wideopen --bind 127.0.0.1 --port 0 \
    --log-level info "$@" 2>"$log" >/dev/null &
  server_pid=$!
  until grep -q "listening on http://127.0.0.1:" "$log"; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.01
  done
  port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$log" | head -1)
  awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "  listening after %.0f ms\n", (e - s) * 1000 }'
}

# The median, 99th percentile and most of the numbers on standard input
# (ms), and how many there are.
summary() {
  sort -g | awk '{ t[NR] = $1 } END {
    printf "median %.2f ms, 99th percentile %.2f ms, most %.2f ms (%d requests)",
      t[int((NR + 1) / 2)], t[int(NR * 0.99)], t[NR], NR }'
}

# Asks every repository once by its path; prints the times' summary as
# curl saw them (connect to last byte), then as the server logged them
# (request to response). Fails unless every answer says present.
ask_all() {
  local times="$work/times" i owner uuid out before
  : > "$times"
  before=$(wc -l < "$log")
  for i in $(seq 1 "$n"); do
    owner="user$((i % 100))"
    uuid=$(git config --file "$work/forge/$owner/repo$i.git/config" annex.uuid)
    out=$(curl -s -X POST -w ' %{time_total}' \
      "http://127.0.0.1:$port/$owner/repo$i/git-annex/$uuid/v4/checkpresent?clientuuid=$client&key=$key")
    case "$out" in
      '{"present":true} '*) echo "${out##* }" >> "$times" ;;
      *) echo "repository $owner/repo$i answered: $out" >&2; exit 1 ;;
    esac
  done
  echo "curl: $(awk '{ print $1 * 1000 }' "$times" | summary)"
  echo "    server: $(tail -n +"$((before + 1))" "$log" | sed -n 's/.* micros=\([0-9]*\).*/\1/p' \
    | awk '{ print $1 / 1000 }' | summary)"
}

for mode in --paths-only ""; do
  echo "annex p2phttp --directory ${mode:-(repositories found and opened at start)}"
  # shellcheck disable=SC2086
  start_server $mode
  echo "  memory at start: $(mib "$(rss_kib "$server_pid")")"
  echo "  first request to each repository, $(ask_all)"
  echo "  memory after a request to each: $(mib "$(rss_kib "$server_pid")") (peak $(mib "$(hwm_kib "$server_pid")"))"
  echo "  second request to each repository, $(ask_all)"
  stop_server
done

echo "git annex p2phttp -J2 serving one of the repositories"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work/forge/user1/repo1.git" && exec git-annex p2phttp -J2 --wideopen --bind 127.0.0.1 --port "$port" 2>/dev/null) &
server_pid=$!
uuid=$(git config --file "$work/forge/user1/repo1.git/config" annex.uuid)
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.05; done
curl -s -X POST -o /dev/null "http://127.0.0.1:$port/git-annex/$uuid/v4/checkpresent?clientuuid=$client&key=$key"
echo "  memory after one request: $(mib "$(rss_kib "$server_pid")") (one process per repository: $n of them for $n)"
stop_server
