//! External special remotes for tests: git-annex's own example (the
//! shell script its Debian package ships with the protocol's
//! documentation) and one of ours that misbehaves on request.

use std::path::{Path, PathBuf};

/// Where git-annex's Debian package ships its example external special
/// remote: a directory remote in shell that asks for credentials
/// (MYLOGIN, MYPASSWORD) at `initremote`.
pub const EXAMPLE: &str = "/usr/share/doc/git-annex/html/special_remotes/external/example.sh.gz";

fn set_exec(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Installs git-annex's example as `dir/git-annex-remote-directory`, as
/// its documentation says (`zcat example.sh.gz >
/// git-annex-remote-directory; chmod +x`); its path.
pub fn install_example(dir: &Path) -> PathBuf {
    let out = std::process::Command::new("zcat")
        .arg(EXAMPLE)
        .output()
        .unwrap_or_else(|e| panic!("cannot run zcat {EXAMPLE}: {e}"));
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "git-annex's example external special remote is missing ({EXAMPLE}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("git-annex-remote-directory");
    std::fs::write(&p, out.stdout).unwrap();
    set_exec(&p);
    p
}

/// A directory special remote (`directory=` in its configuration) that
/// misbehaves for keys whose name (a SHA256E key's extension) says so:
///
/// - `*.crashstore`: exits in the middle of TRANSFER STORE, saying
///   `crashing on purpose` on its stderr;
/// - `*.crashget`: exits in the middle of TRANSFER RETRIEVE, having
///   written 1000 bytes;
/// - `*.hang`: never answers CHECKPRESENT;
/// - `*.garbage`: answers CHECKPRESENT with a line that is not the
///   protocol's;
/// - `*.error`: answers CHECKPRESENT with ERROR;
/// - `*.gated`: TRANSFER RETRIEVE writes the first half of the file, sends
///   PROGRESS, then waits until the file `DIR/KEY.go` exists before writing
///   the rest; a retrieve into a file that already holds some of the
///   content continues it (a remote able to resume);
/// - `*.probe`: CHECKPRESENT asks GETCONFIG directory, GETCREDS mycreds,
///   GETUUID, GETGITDIR, GETGITREMOTENAME, DIRHASH, DIRHASH-LOWER and
///   GETSTATE, logging `ANSWER REQUEST => REPLY` for each; then sends
///   SETSTATE with the content of `DIR/KEY.setstate` and SETURLPRESENT
///   with that of `DIR/KEY.seturl` when they exist, DEBUG and INFO, and
///   answers CHECKPRESENT-FAILURE;
/// - `*.wrongget`: TRANSFER RETRIEVE writes content of the right size
///   that is not the key's (every byte one more), and reports success.
///
/// With `exporttree=yes` it serves the export requests (EXPORTSUPPORTED,
/// EXPORT, TRANSFEREXPORT, CHECKPRESENTEXPORT, REMOVEEXPORT,
/// RENAMEEXPORT) as a directory remote: each exported file at its path
/// below `DIR`, stored through a temporary file `DIR/.tmp-PID`, and the
/// directories a removal or a rename leaves empty removed. A retrieve
/// writes `FILE.part` and renames it to the file asked for, so that the
/// file appears whole: git-annex 10.20250416 hashes an exported file
/// while the remote writes it (`tailVerify`, following the file with
/// inotify), and with a remote writing the file in place its `fsck
/// --from` intermittently reports "verification of content failed" for
/// correct content (measured: 3 failures in about 12 runs of the
/// exporttree scenario, behind either gateway).
///
/// At INITREMOTE it stores the credentials `mycreds` from MYLOGIN and
/// MYPASSWORD when they are set (SETCREDS). It answers GETORDERED with
/// ORDERED (UNSUPPORTED-REQUEST when installed under a name holding
/// `unordered`) and GETCOST with 150. Installed under a name holding
/// `async`, it takes the ASYNC extension (answering one job at a time).
/// It appends `PID LINE` for each line it reads to
/// `DIR.log`, and `PID RESUME N` when it continues a file of N bytes.
pub const MISBEHAVING: &str = r#"#!/bin/bash
set -u
set -f
async=
case "$0" in *async*) async=1;; esac
unordered=
case "$0" in *unordered*) unordered=1;; esac
dir=
job=
say () {
	if [ -n "$job" ]; then echo "J $job $*"; else echo "$*"; fi
}
ask () {
	say "$@"
	IFS= read -r resp
	if [ -n "$async" ]; then resp=${resp#J }; resp=${resp#* }; fi
	RET=${resp#VALUE }
}
log () {
	if [ -n "$dir" ]; then printf '%s %s\n' "$$" "$*" >> "$dir.log"; fi
}
# Removes the directories of the exported path $1 left empty, up to
# the remote's directory, as git-annex's directory remote does.
tidy () {
	d=$(dirname "$1")
	while [ "$d" != "$dir" ] && [ "${#d}" -gt "${#dir}" ] && rmdir "$d" 2>/dev/null; do
		d=$(dirname "$d")
	done
}
echo VERSION 2
while IFS= read -r line; do
	job=
	if [ -n "$async" ] && [ "${line%% *}" = J ]; then
		rest=${line#J }
		job=${rest%% *}
		line=${rest#* }
	fi
	log "$line"
	set -- $line
	case "${1:-}" in
	EXTENSIONS)
		if [ -n "$async" ]; then echo "EXTENSIONS INFO GETGITREMOTENAME ASYNC"; else echo "EXTENSIONS INFO GETGITREMOTENAME"; fi
		;;
	PREPARE)
		ask GETCONFIG directory
		dir=$RET
		log PREPARE
		if [ -d "$dir" ]; then say PREPARE-SUCCESS; else say "PREPARE-FAILURE no directory $dir"; fi
		;;
	INITREMOTE)
		if [ -n "${MYLOGIN:-}" ]; then say SETCREDS mycreds "$MYLOGIN" "${MYPASSWORD:-}"; fi
		say INITREMOTE-SUCCESS
		;;
	GETORDERED) if [ -n "$unordered" ]; then say UNSUPPORTED-REQUEST; else say ORDERED; fi ;;
	GETCOST) say COST 150 ;;
	CHECKPRESENT)
		key=$2
		case "$key" in
		*.hang) exec sleep 3600 ;;
		*.garbage) echo "HELLO this is not the protocol"; continue ;;
		*.error) echo "ERROR something broke"; continue ;;
		*.probe)
			for q in "GETCONFIG directory" "GETCREDS mycreds" GETUUID GETGITDIR GETGITREMOTENAME "DIRHASH $key" "DIRHASH-LOWER $key" "GETSTATE $key"; do
				ask $q
				log "ANSWER $q => $RET"
			done
			if [ -e "$dir/$key.setstate" ]; then say SETSTATE "$key" "$(cat "$dir/$key.setstate")"; fi
			if [ -e "$dir/$key.seturl" ]; then say SETURLPRESENT "$key" "$(cat "$dir/$key.seturl")"; fi
			say DEBUG probing "$key"
			say INFO probing "$key"
			say CHECKPRESENT-FAILURE "$key"
			continue
			;;
		esac
		if [ -e "$dir/$key" ]; then say CHECKPRESENT-SUCCESS "$key"; else say CHECKPRESENT-FAILURE "$key"; fi
		;;
	TRANSFER)
		op=$2
		key=$3
		shift 3
		file="$*"
		case "$op:$key" in
		STORE:*.crashstore)
			head -c 1000 "$file" > "$dir/$key.part"
			echo "crashing on purpose" >&2
			exit 3
			;;
		RETRIEVE:*.crashget)
			head -c 1000 "$dir/$key" > "$file"
			exit 3
			;;
		STORE:*)
			if cp "$file" "$dir/$key.tmp" && mv "$dir/$key.tmp" "$dir/$key"; then
				say TRANSFER-SUCCESS STORE "$key"
			else
				say TRANSFER-FAILURE STORE "$key" cannot store
			fi
			;;
		RETRIEVE:*.wrongget)
			LC_ALL=C tr '\000-\377' '\001-\377\000' < "$dir/$key" > "$file"
			say TRANSFER-SUCCESS RETRIEVE "$key"
			;;
		RETRIEVE:*.gated)
			size=$(stat -c %s "$dir/$key")
			have=0
			if [ -e "$file" ]; then have=$(stat -c %s "$file"); fi
			if [ "$have" -gt 0 ]; then
				log "RESUME $have"
				tail -c +$((have + 1)) "$dir/$key" >> "$file"
			else
				half=$((size / 2))
				head -c "$half" "$dir/$key" > "$file"
				say PROGRESS "$half"
				while [ ! -e "$dir/$key.go" ]; do sleep 0.05; done
				tail -c +$((half + 1)) "$dir/$key" >> "$file"
			fi
			say PROGRESS "$size"
			say TRANSFER-SUCCESS RETRIEVE "$key"
			;;
		RETRIEVE:*)
			if [ -e "$dir/$key" ] && cp "$dir/$key" "$file"; then
				say TRANSFER-SUCCESS RETRIEVE "$key"
			else
				say TRANSFER-FAILURE RETRIEVE "$key" not here
			fi
			;;
		esac
		;;
	REMOVE)
		rm -f "$dir/$2"
		say REMOVE-SUCCESS "$2"
		;;
	EXPORTSUPPORTED) say EXPORTSUPPORTED-SUCCESS ;;
	EXPORT)
		shift
		loc="$dir/$*"
		;;
	TRANSFEREXPORT)
		op=$2
		key=$3
		shift 3
		file="$*"
		case "$op" in
		STORE)
			if mkdir -p "$(dirname "$loc")" && cp "$file" "$dir/.tmp-$$" && mv -f "$dir/.tmp-$$" "$loc"; then
				say TRANSFER-SUCCESS STORE "$key"
			else
				say TRANSFER-FAILURE STORE "$key" cannot store
			fi
			;;
		RETRIEVE)
			if [ -f "$loc" ] && cp "$loc" "$file.part" && mv -f "$file.part" "$file"; then
				say TRANSFER-SUCCESS RETRIEVE "$key"
			else
				say TRANSFER-FAILURE RETRIEVE "$key" not here
			fi
			;;
		esac
		;;
	CHECKPRESENTEXPORT)
		if [ -f "$loc" ]; then say CHECKPRESENT-SUCCESS "$2"; else say CHECKPRESENT-FAILURE "$2"; fi
		;;
	REMOVEEXPORT)
		rm -f "$loc"
		tidy "$loc"
		say REMOVE-SUCCESS "$2"
		;;
	RENAMEEXPORT)
		key=$2
		shift 2
		new="$dir/$*"
		# git-annex's gateway asks to rename files never exported:
		# a failure, not a message on stderr.
		if [ -f "$loc" ] && mkdir -p "$(dirname "$new")" && mv -f "$loc" "$new"; then
			tidy "$loc"
			say RENAMEEXPORT-SUCCESS "$key"
		else
			say RENAMEEXPORT-FAILURE "$key"
		fi
		;;
	*) say UNSUPPORTED-REQUEST ;;
	esac
done
"#;

/// Installs [`MISBEHAVING`] as `dir/git-annex-remote-NAME`; its path.
pub fn install_misbehaving(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(format!("git-annex-remote-{name}"));
    std::fs::write(&p, MISBEHAVING).unwrap();
    set_exec(&p);
    p
}

/// The lines `DIR.log` of a [`MISBEHAVING`] remote at `dir` holds:
/// `(pid, line)`.
pub fn misbehaving_log(dir: &Path) -> Vec<(u32, String)> {
    let mut log = dir.as_os_str().to_owned();
    log.push(".log");
    std::fs::read_to_string(PathBuf::from(log))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, rest) = l.split_once(' ')?;
            Some((pid.parse().ok()?, rest.to_owned()))
        })
        .collect()
}
