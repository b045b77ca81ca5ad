#!/usr/bin/env bash
# PUT and GET of one SHA256E object to an S3 special remote (made by
# git-annex's own initremote, type=S3 encryption=none, unchunked) on a
# local S3 server (s3s-fs, checking signatures), measured in one run over
# HTTP against three servers:
#  - direct: the S3 server itself, with curl signing SigV4 (the cost of
#    moving the bytes to and from the bucket at all);
#  - our gateway: `annex p2phttp` in a repository proxying the S3 remote
#    (`remote.s3.annex-proxy true`, `annex updateproxy`), requests to
#    /git-annex/S3UUID/...;
#  - git-annex's gateway: `git-annex p2phttp -J2` in the same repository.
# The gateways are driven by http-transfer (from this workspace: 1 MiB
# reads and writes, the length checked). For each gateway PUT and GET,
# the gateway process's own disk writes (write_bytes of /proc/PID/io:
# page cache it dirtied, temp files included) and its peak resident
# memory (VmHWM of /proc/PID/status, reset before each transfer) are
# taken; the largest of the runs is printed. Best of 3 for each time, the
# servers taking turns in each round. Before each PUT the object is
# deleted from the bucket (and the gateway's location log told); after
# it, the object in the bucket is fetched directly and its SHA-256
# checked (not timed). After each timed GET the content is fetched again
# the same way and its SHA-256 checked (not timed).
#
#   bash benches/scripts/s3.sh [SIZE_MIB]    (default 1024)
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
s3s_fs=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
[ -x "$s3s_fs" ] || { echo "s3.sh: s3s-fs is not installed (scripts/install-deps.sh)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-s3-bench.XXXXXX")
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
limit=$((300 + size_mib))

best() { sort -n | head -1; }
most() { sort -n | tail -1; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f\n", e - s }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fail() { echo "s3.sh: $*" >&2; exit 1; }
wait_port() { # name port
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$2/" && return 0
    kill -0 "${server_pid[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "server $1 did not start:" >&2; cat "$work/$1.log" >&2; exit 1
}

# The S3 server.
access_key=benchkey secret_key=benchsecret bucket=bench
s3_port=$(free_port)
mkdir "$work/s3"
"$s3s_fs" --host 127.0.0.1 --port "$s3_port" --access-key "$access_key" \
  --secret-key "$secret_key" "$work/s3" >"$work/s3s.log" 2>&1 &
server_pid[s3]=$!
wait_port s3 "$s3_port"
# curl signs SigV4; s3s-fs wants the payload's hash header, which curl
# then signs as it is.
s3_signed=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$access_key:$secret_key"
  -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
s3() { curl -sS "${s3_signed[@]}" "$@"; }

# The gateway, with the S3 remote made by git-annex.
git init -q "$work/gw"
proxied=$(
  cd "$work/gw"
  git annex init -q "bench gateway"
  git config annex.security.allowed-ip-addresses all
  AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key \
    git annex initremote -q s3 type=S3 encryption=none host=127.0.0.1 \
    port="$s3_port" protocol=http requeststyle=path bucket=$bucket
  git config remote.s3.annex-proxy true
  "$annex" updateproxy
)
grep -q 'Started proxying for s3' <<<"$proxied" || fail "annex updateproxy did not proxy s3: $proxied"
s3_uuid=$(git -C "$work/gw" config remote.s3.annex-uuid)
client=$(python3 -c 'import uuid; print(uuid.uuid4())')

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/object"
sum=$(sha256sum "$work/object" | cut -c1-64)
key="SHA256E-s$(stat -c %s "$work/object")--$sum"
object_url="http://127.0.0.1:$s3_port/$bucket/$key"

clean_bucket() {
  s3 -o /dev/null -X DELETE "$object_url"
  git -C "$work/gw" annex setpresentkey "$key" "$s3_uuid" 0 >/dev/null 2>&1 || true
  [ "$(s3 -o /dev/null -w '%{http_code}' -I "$object_url")" = 404 ] || fail "the object is still in the bucket after DELETE"
}
check_stored() { # who
  local got
  got=$(timeout "$limit" curl -sS "${s3_signed[@]}" --fail "$object_url" | sha256sum | cut -c1-64)
  [ "$got" = "$sum" ] || fail "PUT through $1: the bucket holds wrong content or none (sha256 $got, want $sum)"
}
check_sum() { # who sha256
  [ "$2" = "$sum" ] || fail "GET through $1: wrong content (sha256 $2, want $sum)"
}

# The gateways listen at once, on 127.0.0.1.
declare -A base
start_server() { # name args...
  local name=$1 port; shift
  port=$(free_port)
  (cd "$work/gw" && exec "$@" --bind 127.0.0.1 --port "$port" --wideopen >"$work/$name.log" 2>&1) &
  server_pid[$name]=$!
  base[$name]="http://127.0.0.1:$port/git-annex/$s3_uuid/v4"
  wait_port "$name" "$port"
}
start_server ours "$annex" p2phttp --log-level warn
start_server theirs "$git_annex" p2phttp -J2

# The gateway's disk writes and peak memory during one transfer.
write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"; }
peak_kib() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }
# Run in $(...): the figures go to files, one line per transfer.
measured() { # who op command...: times the command, recording the gateway's writes and peak memory
  local who=$1 op=$2 pid before t; shift 2
  pid=${server_pid[$who]}
  echo 5 > "/proc/$pid/clear_refs" # resets VmHWM
  before=$(write_bytes "$pid")
  t=$("$@")
  echo "$(($(write_bytes "$pid") - before))" >> "$work/disk.$who.$op"
  echo "$(($(peak_kib "$pid") * 1024))" >> "$work/peak.$who.$op"
  echo "$t"
}

declare -A get_t put_t
servers=(direct ours theirs)
for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    clean_bucket
    if [ "$who" = direct ]; then
      put_t[$who]+="$(timeit s3 --max-time "$limit" --fail -T "$work/object" "$object_url") "
    else
      put_t[$who]+="$(measured "$who" put timeout "$limit" "$transfer" put "${base[$who]}/put?key=$key&clientuuid=$client" "$work/object") "
    fi
    check_stored "$who"
  done
done
for _ in 1 2 3; do
  for who in "${servers[@]}"; do
    if [ "$who" = direct ]; then
      get_t[$who]+="$(timeit s3 --max-time "$limit" --fail -o /dev/null "$object_url") "
    else
      get_t[$who]+="$(measured "$who" get timeout "$limit" "$transfer" get "${base[$who]}/key/$key?clientuuid=$client") "
      check_sum "$who" "$(timeout "$limit" curl -sSf "${base[$who]}/key/$key?clientuuid=$client" | sha256sum | cut -c1-64)"
    fi
  done
done
for who in ours theirs s3; do stop_server "$who"; done

# The table.
bytes=$((size_mib * 1024 * 1024))
min_of() { tr ' ' '\n' <<<"$1" | grep . | best; }
most_in() { most < "$work/$1"; }
cell() { awk -v t="$1" -v b="$bytes" 'BEGIN { printf "%.3f s (%.2f GB/s)", t, b / t / 1e9 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
declare -A verdicts
row() { # label array op target
  local -n a=$2
  local d o t
  d=$(min_of "${a[direct]}"); o=$(min_of "${a[ours]}"); t=$(min_of "${a[theirs]}")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(cell "$d")" "$(cell "$o")" "$(cell "$t")" \
    "$(ratio "$o" "$d")" "$(ratio "$t" "$d")"
  verdicts[$1]=$(awk -v d="$d" -v o="$o" -v g="$4" 'BEGIN {
    printf "ours/direct %.2fx (target at most %.1fx: %s)", o / d, g, (o / d <= g ? "met" : "missed") }')
}
printf 'object: %s MiB SHA256E, best of 3; an unchunked S3 remote on s3s-fs, proxied by the gateway, over HTTP\n' "$size_mib"
printf 'load average (1, 5, 15 min) at the start: %s; at the end: %s\n' "$load_start" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'runs (s), direct / ours / git-annex:\n'
for a in put_t get_t; do
  declare -n arr=$a
  printf '  %-6s %s/ %s/ %s\n' "$a" "${arr[direct]}" "${arr[ours]}" "${arr[theirs]}"
  unset -n arr
done
echo
printf '| what | direct | our gateway | git-annex gateway | ours/direct | git-annex/direct |\n'
printf '|---|---|---|---|---|---|\n'
row "PUT, verified" put_t put 1.3
row "GET" get_t get 1.2
echo
printf '| gateway, most of 3 runs | disk written in a PUT | peak memory in a PUT | disk written in a GET | peak memory in a GET |\n'
printf '|---|---|---|---|---|\n'
for who in ours theirs; do
  label=$([ "$who" = ours ] && echo "our gateway" || echo "git-annex's gateway")
  printf '| %s | %s | %s | %s | %s |\n' "$label" \
    "$(mib "$(most_in "disk.$who.put")")" "$(mib "$(most_in "peak.$who.put")")" \
    "$(mib "$(most_in "disk.$who.get")")" "$(mib "$(most_in "peak.$who.get")")"
done
echo
for k in "PUT, verified" "GET"; do
  printf '%s: %s\n' "$k" "${verdicts[$k]}"
done
ours_put_disk=$(most_in disk.ours.put)
printf 'disk written by our gateway in a PUT: %s (target under 16 MiB: %s)\n' "$(mib "$ours_put_disk")" \
  "$([ "$ours_put_disk" -lt $((16 * 1048576)) ] && echo met || echo missed)"
