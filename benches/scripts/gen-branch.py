#!/usr/bin/env python3
"""Generates a git-annex repository whose git-annex branch holds N_KEYS
location logs spread over N_REPOS repositories, for benchmarking.

    gen-branch.py N_KEYS N_REPOS DIR [--change K]

DIR is made with `git init` and `git annex init`; then one `git fast-import`
stream adds a commit to refs/heads/git-annex with a uuid.log describing the
repositories and a location log per key (SHA256E keys with sizes, each
present in one to three repositories, chosen with a fixed seed). With
--change K, a second commit changes the logs of K keys (one more repository
each). Prints the commit ids, one per line, first commit first.
"""

import hashlib
import os
import random
import subprocess
import sys

TIME = 1_700_000_000


def hash_dir_lower(key: str) -> str:
    """git-annex's hashDirLower: two levels of the key's md5, 3 hex each."""
    digest = hashlib.md5(key.encode()).hexdigest()
    return f"{digest[:3]}/{digest[3:6]}/"


def key_of(i: int) -> str:
    digest = hashlib.sha256(str(i).encode()).hexdigest()
    size = 1000 + (i * 7919) % 10_000_000
    return f"SHA256E-s{size}--{digest}.dat"


def git(repo, *args, **kw):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True, **kw).stdout.strip()


def blob(out, data: bytes):
    out.write(b"data %d\n" % len(data))
    out.write(data)
    out.write(b"\n")


def main():
    args = sys.argv[1:]
    change = 0
    if "--change" in args:
        i = args.index("--change")
        change = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 3:
        sys.exit(__doc__)
    n_keys, n_repos, repo = int(args[0]), int(args[1]), args[2]
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    subprocess.run(["git", "init", "-q", repo], check=True, env=env)
    subprocess.run(["git", "annex", "init", "-q", "bench"], cwd=repo, check=True, env=env)
    # Check the path function against git-annex on a few keys.
    for i in range(3):
        k = key_of(i)
        theirs = subprocess.run(["git", "annex", "examinekey", "--format=${hashdirlower}", k],
                                cwd=repo, check=True, capture_output=True, text=True).stdout.strip()
        assert theirs == hash_dir_lower(k), (k, theirs, hash_dir_lower(k))
    parent = git(repo, "rev-parse", "refs/heads/git-annex")
    rng = random.Random(42)
    uuids = [f"{r:08x}-0000-4000-8000-{rng.getrandbits(48):012x}" for r in range(n_repos)]
    existing = git(repo, "cat-file", "-p", "refs/heads/git-annex:uuid.log")
    uuid_log = existing + "\n" + "".join(f"{u} repository {r} timestamp={TIME}s\n" for r, u in enumerate(uuids))
    holders = []
    proc = subprocess.Popen(["git", "-C", repo, "fast-import", "--quiet"], stdin=subprocess.PIPE, env=env)
    out = proc.stdin
    out.write(b"commit refs/heads/git-annex\n")
    out.write(b"committer bench <bench@example.invalid> %d +0000\n" % TIME)
    blob(out, b"generated location logs")
    out.write(b"from %s\n" % parent.encode())
    out.write(b"M 100644 inline uuid.log\n")
    blob(out, uuid_log.encode())
    for i in range(n_keys):
        k = key_of(i)
        where = rng.sample(range(n_repos), rng.randint(1, min(3, n_repos)))
        holders.append(where)
        log = "".join(f"{TIME}s 1 {uuids[r]}\n" for r in sorted(where))
        out.write(b"M 100644 inline %s%s.log\n" % (hash_dir_lower(k).encode(), k.encode()))
        blob(out, log.encode())
    if change:
        out.write(b"commit refs/heads/git-annex\n")
        out.write(b"committer bench <bench@example.invalid> %d +0000\n" % (TIME + 10))
        blob(out, b"changed location logs")
        for i in rng.sample(range(n_keys), change):
            k = key_of(i)
            missing = [r for r in range(n_repos) if r not in holders[i]]
            if not missing:
                continue
            added = rng.choice(missing)
            log = "".join(f"{TIME}s 1 {uuids[r]}\n" for r in sorted(holders[i]))
            log += f"{TIME + 10}s 1 {uuids[added]}\n"
            out.write(b"M 100644 inline %s%s.log\n" % (hash_dir_lower(k).encode(), k.encode()))
            blob(out, log.encode())
    out.close()
    if proc.wait() != 0:
        sys.exit("git fast-import failed")
    head = git(repo, "rev-parse", "refs/heads/git-annex")
    commits = [git(repo, "rev-parse", "refs/heads/git-annex~1"), head] if change else [head]
    # git-annex rebuilds its index of the branch from the new commit.
    index = os.path.join(repo, ".git", "annex", "index")
    if os.path.exists(index):
        os.remove(index)
    print("\n".join(commits))


if __name__ == "__main__":
    main()
