//! Raw P2P protocol sessions with a server that speaks on its standard
//! input and output (`annex shell p2pstdio`, `git-annex-shell p2pstdio`),
//! connected by pipes or by a Unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};

/// How the server's standard input and output are connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    /// Two pipes.
    Pipe,
    /// Both ends of one Unix socket.
    Socket,
}

/// Reads one protocol line, without its line end.
pub fn read_line(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

/// One session of protocol version 1 on `out` and `input`: `check_auth`
/// looks at the server's first line (the server is authenticated
/// already), then `key` is got from each of `offsets`; the content each
/// GET brought.
pub fn get_session(
    out: &mut impl BufRead,
    input: &mut impl Write,
    check_auth: impl FnOnce(&str),
    key: &str,
    offsets: &[u64],
) -> Vec<Vec<u8>> {
    check_auth(&read_line(out));
    writeln!(input, "VERSION 1").unwrap();
    assert_eq!(read_line(out), "VERSION 1");
    let mut got = Vec::new();
    for offset in offsets {
        writeln!(input, "GET {offset} file {key}").unwrap();
        input.flush().unwrap();
        let data = read_line(out);
        let len: usize = data.strip_prefix("DATA ").unwrap().parse().unwrap();
        let mut buf = vec![0u8; len];
        out.read_exact(&mut buf).unwrap();
        assert_eq!(read_line(out), "VALID");
        writeln!(input, "SUCCESS").unwrap();
        input.flush().unwrap();
        got.push(buf);
    }
    got
}

/// Starts `server` connected `through` pipes or a socket, runs
/// [`get_session`] with it, ends its input and checks that it exits
/// successfully; the content each GET brought.
pub fn get_from(
    mut server: Command,
    through: Through,
    check_auth: impl FnOnce(&str),
    key: &str,
    offsets: &[u64],
) -> Vec<Vec<u8>> {
    match through {
        Through::Pipe => {
            let mut child = server
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut input = child.stdin.take().unwrap();
            let mut out = BufReader::new(child.stdout.take().unwrap());
            let got = get_session(&mut out, &mut input, check_auth, key, offsets);
            drop(input);
            assert!(child.wait().unwrap().success());
            got
        }
        Through::Socket => {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let theirs_out = theirs.try_clone().unwrap();
            let mut child = server
                .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
                .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs_out)))
                .spawn()
                .unwrap();
            let mut input = ours.try_clone().unwrap();
            let mut out = BufReader::new(ours);
            let got = get_session(&mut out, &mut input, check_auth, key, offsets);
            input.shutdown(std::net::Shutdown::Write).unwrap();
            assert!(child.wait().unwrap().success());
            got
        }
    }
}

/// Checks that what arrived from each of `offsets` (`got`, as
/// [`get_from`] returns it) is `content` from that offset on.
pub fn check_from_offsets(got: Vec<Vec<u8>>, content: &[u8], offsets: &[u64]) {
    for (offset, bytes) in offsets.iter().zip(got) {
        assert!(bytes == content[*offset as usize..], "from offset {offset}");
    }
}
