#!/usr/bin/env bash
# GET and PUT of one SHA256E object over p2pstdio through a pipe: the same
# client (annex remote) against `git-annex-shell p2pstdio` and against
# `annex shell p2pstdio`, in one run; and GET by an ordinary client, `git
# annex get` through an ssh remote (a local stand-in for ssh that runs the
# command with pipes, as sshd does), best of 3, the client's verification
# of the content turned off so that the transfer is what is timed. Also
# times SHA-256 alone over the file (Python's hashlib), the floor for a
# verified PUT.
#
#   bash benches/scripts/p2pstdio.sh [SIZE_MIB]    (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
size_mib=${1:-1024}
cargo build --release -q --bin annex
annex=$PWD/target/release/annex
work=$(mktemp -d "${TMPDIR:-/tmp}/annex-bench.XXXXXX")
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid

head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/object"
key="SHA256E-s$(stat -c %s "$work/object")--$(sha256sum "$work/object" | cut -c1-64)"
mkdir "$work/bin"
ln -s "$annex" "$work/bin/git-annex-shell"
ours="$work/bin/git-annex-shell"
theirs=$(command -v git-annex-shell)
# ssh HOST COMMAND, run here: options and host dropped.
mkdir "$work/ssh"
cat > "$work/ssh/ssh" <<'SH'
#!/bin/bash
host=
while [ $# -gt 0 ]; do
  case "$1" in
    -o|-p|-F|-i|-l|-S) shift 2;;
    -*) shift;;
    *) if [ -z "$host" ]; then host=$1; shift; else break; fi;;
  esac
done
exec bash -c "$*"
SH
chmod +x "$work/ssh/ssh"

best() { sort -n | head -1; }
timeit() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }

new_repo() {
  rm -rf "$work/repo"; git init -q "$work/repo"
  (cd "$work/repo" && git annex init -q bench)
}

hash_time=$(for _ in 1 2 3; do timeit python3 -c "
import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],'rb') as f:
    while b:=f.read(1<<20): h.update(b)
" "$work/object"; done | best)

# A git-annex client of $work/repo over ssh, with a file of the object.
git init -q "$work/client"
(cd "$work/client" && git annex init -q client \
  && git config annex.sshcaching false \
  && git remote add srv "localhost:$work/repo" \
  && git config remote.srv.annex-verify false \
  && git annex fromkey -q --force "$key" bigfile)

declare -A get put annexget
for who in theirs ours; do
  shell=${!who}
  new_repo
  put[$who]=$(for _ in 1 2 3; do
      "$annex" remote --shell "$shell" "$work/repo" remove "$key" >/dev/null
      timeit "$annex" remote --shell "$shell" "$work/repo" put "$key" "$work/object"
    done | best)
  get[$who]=$(for _ in 1 2 3; do
      timeit "$annex" remote --shell "$shell" "$work/repo" get "$key" -o - ; done | best)
  # git-annex-shell as the ssh side finds it on PATH: ours in $work/bin.
  path="$work/ssh:$PATH"
  [ "$who" = ours ] && path="$work/ssh:$work/bin:$PATH"
  srv_uuid=$(git -C "$work/repo" config annex.uuid)
  git -C "$work/client" config remote.srv.annex-uuid "$srv_uuid"
  git -C "$work/client" annex setpresentkey "$key" "$srv_uuid" 1
  annexget[$who]=$(for _ in 1 2 3; do
      (cd "$work/client" && git annex drop -q --force bigfile >/dev/null 2>&1 || true)
      PATH=$path timeit git -C "$work/client" annex get -q --from srv bigfile
      [ "$(stat -L -c %s "$work/client/bigfile")" = "$(stat -c %s "$work/object")" ] \
        || { echo "$who: git annex get did not get the object" >&2; exit 1; }
    done | best)
done

gbs() { echo "scale=2; $size_mib * 1.048576 / 1000 / $1" | bc; }
printf 'object: %s MiB\n' "$size_mib"
printf 'SHA-256 alone:              %.2f s\n' "$hash_time"
printf 'GET  git-annex-shell:       %.2f s  (%s GB/s)\n' "${get[theirs]}" "$(gbs "${get[theirs]}")"
printf 'GET  annex shell:           %.2f s  (%s GB/s)\n' "${get[ours]}" "$(gbs "${get[ours]}")"
printf 'GET  git annex get, git-annex-shell: %.2f s  (%s GB/s)\n' "${annexget[theirs]}" "$(gbs "${annexget[theirs]}")"
printf 'GET  git annex get, annex shell:     %.2f s  (%s GB/s)\n' "${annexget[ours]}" "$(gbs "${annexget[ours]}")"
printf 'PUT  git-annex-shell:       %.2f s\n' "${put[theirs]}"
printf 'PUT  annex shell:           %.2f s  (%.2fx SHA-256 alone)\n' "${put[ours]}" "$(echo "${put[ours]} / $hash_time" | bc -l)"
