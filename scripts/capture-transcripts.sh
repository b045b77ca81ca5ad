#!/usr/bin/env bash
# Makes the real git-annex run P2P sessions over a (fake, local) ssh remote
# and writes what it said and heard, one message a line, as test data for
# crates/annex-protocol/tests/transcripts.rs.
#
#   bash scripts/capture-transcripts.sh [OUTDIR]
#
# Lines are `> MESSAGE` (sent by the logging side) or `< MESSAGE`
# (received); `#` starts a comment. With --debug, git-annex also turns on
# debugging in the git-annex-shell it runs, so client and server lines are
# interleaved: most messages appear once as sent and once as received.
# UUIDs and timestamps vary between runs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/crates/annex-protocol/tests/transcripts}
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/annex-transcripts.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
export GIT_AUTHOR_NAME=capture GIT_AUTHOR_EMAIL=capture@example.invalid
export GIT_COMMITTER_NAME=capture GIT_COMMITTER_EMAIL=capture@example.invalid
export GIT_CONFIG_GLOBAL=$work/gitconfig GIT_CONFIG_NOSYSTEM=1
: > "$GIT_CONFIG_GLOBAL"

# ssh [options] host [options] command: run the command here.
mkdir "$work/bin"
cat > "$work/bin/ssh" <<'EOF'
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
EOF
chmod +x "$work/bin/ssh"
export PATH=$work/bin:$PATH

# Keeps the P2P lines of git-annex's --debug output.
p2p() { sed -n 's/^.*\] P2P \([<>]\) /\1 /p'; }

record() { # record NAME "description" command...
  local name=$1 desc=$2; shift 2
  { echo "# $desc"; "$@" 2>&1 >/dev/null | p2p; } > "$out/$name.log"
}

repo() { git init -q "$1"; (cd "$1" && git annex init -q "$(basename "$1")"); }

repo "$work/srv"
repo "$work/client"
cd "$work/client"
git config annex.sshcaching false
git remote add srv "localhost:$work/srv"
printf '' > empty
printf 'x' > onebyte
printf 'hello world\n' > 'name with spaces 100%.txt'
head -c 3000000 /dev/urandom > big.bin
git annex add -q .
printf 'worm content' > wormfile
git annex add -q --backend=WORM wormfile
git commit -qm files
# A URL key (with '/' and ':' in its name) and its content.
printf 'url content' > "$work/urlcontent"
urlkey='URL-s11--http://127.0.0.1/some/path?q=1&x=%41'
git annex setkey "$urlkey" "$work/urlcontent"

record copy-to "git annex copy --to srv, files of 0, 1 and 3000000 bytes, one with spaces and % in its name" \
  git annex copy --debug --to srv .
# Content the remote got by other means: the client's location log does
# not know, so with --fast it sends PUT and hears ALREADY-HAVE.
printf 'same content\n' > dup.txt
git annex add -q dup.txt && git commit -qm dup
printf 'same content\n' > "$work/srv/dup.txt"
(cd "$work/srv" && git annex add -q dup.txt && git commit -qm dup)
record copy-to-already-have "git annex copy --fast --to srv of content the remote already has (ALREADY-HAVE)" \
  git annex copy --fast --debug --to srv dup.txt
record copy-url-key "git annex copy --to srv of a URL key" \
  git annex copy --debug --to srv --key "$urlkey"
git annex drop -q --force .
record get-from "git annex get --from srv" \
  git annex get --debug --from srv .
record drop-here "git annex drop here, locking the remote's copy as proof (LOCKCONTENT)" \
  git annex drop --debug onebyte
git annex get -q --from srv onebyte
record drop-from "git annex drop --from srv while the local copy satisfies numcopies" \
  git annex drop --debug --from srv onebyte
record move-to "git annex move --to srv" \
  git annex move --debug --to srv onebyte
record move-from "git annex move --from srv" \
  git annex move --debug --from srv onebyte
record fsck-from "git annex fsck --from srv" \
  git annex fsck --debug --from srv big.bin

# Dropping from one remote with a copy locked in another as proof: the
# proof's end time goes over as GETTIMESTAMP and REMOVE-BEFORE.
repo "$work/srv2"
git remote add srv2 "localhost:$work/srv2"
git annex copy -q --to srv2 wormfile
git annex copy -q --to srv wormfile
git annex drop -q wormfile
record drop-from-with-proof "git annex drop --from srv, locking the copy in srv2 as proof (LOCKCONTENT, GETTIMESTAMP, REMOVE-BEFORE)" \
  git annex drop --debug --from srv wormfile

# An interrupted copy, resumed: kill the client once part has arrived.
head -c 200000000 /dev/urandom > huge.bin
git annex add -q huge.bin && git commit -qm huge
key=$(git annex lookupkey huge.bin)
git-annex copy --to srv huge.bin >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 5000); do
  size=$(stat -c %s "$work/srv/.git/annex/tmp/$key" 2>/dev/null || echo 0)
  [ "$size" -gt 1000000 ] && break
  sleep 0.002
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
sleep 0.5
record copy-resumed "git annex copy --to srv resuming an interrupted transfer (PUT-FROM with an offset)" \
  git annex copy --debug --to srv huge.bin

# A cluster behind a gateway: fan-out upload and drop from all nodes.
repo "$work/gw"
repo "$work/node1"
repo "$work/node2"
cd "$work/gw"
for n in node1 node2; do
  git remote add "$n" "$work/$n"
  git config "remote.$n.annex-cluster-node" mycluster
done
git annex initcluster mycluster >/dev/null 2>&1
git annex updatecluster >/dev/null 2>&1
git annex updateproxy >/dev/null 2>&1 || true
cd "$work/client"
git remote add gw "localhost:$work/gw"
git annex sync -q --no-content gw >/dev/null 2>&1 || true
record cluster-copy "git annex copy --to the cluster through its gateway (SUCCESS-PLUS with the nodes' UUIDs)" \
  git annex copy --debug --to gw-mycluster 'name with spaces 100%.txt'
record cluster-drop "git annex drop --from the cluster through its gateway" \
  git annex drop --force --debug --from gw-mycluster 'name with spaces 100%.txt'

for f in "$out"/*.log; do
  n=$(grep -c '^[<>]' "$f" || true)
  echo "$(basename "$f"): $n messages"
done
