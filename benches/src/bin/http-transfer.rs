//! `http-transfer`: one timed transfer of content over HTTP/1.1, with
//! large reads and writes, so that the server is what is measured:
//!
//!     http-transfer get URL           downloads, prints seconds
//!     http-transfer put URL FILE      uploads FILE (p2phttp put), prints seconds
//!
//! A GET must answer 200 with a body of its X-git-annex-data-length (sent
//! with a Content-Length or in chunks); a PUT must answer 200 with
//! `"stored":true`. Anything else fails the run: a benchmark of errors
//! measures nothing.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use annex_benches::split_url;

const BUF: usize = 1 << 20;

fn usage() -> ! {
    eprintln!("usage: http-transfer get http://HOST:PORT/PATH | http-transfer put http://HOST:PORT/PATH FILE");
    std::process::exit(2)
}

/// The head of an answer.
struct Head {
    status: u16,
    content_length: Option<u64>,
    chunked: bool,
    data_length: Option<u64>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads the head of an answer, leaving the body in `r`.
fn read_head(r: &mut impl BufRead) -> io::Result<Head> {
    let mut raw = Vec::new();
    while !raw.ends_with(b"\r\n\r\n") {
        if r.read_until(b'\n', &mut raw)? == 0 {
            return Err(bad("the connection closed before an answer"));
        }
        if raw.len() > 64 * 1024 {
            return Err(bad("an answer's head is too long"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&raw).map_err(|e| bad(format!("answer: {e}")))?;
    let number = |v: &[u8]| -> io::Result<u64> {
        std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("a bad number in a header"))
    };
    let mut head = Head {
        status: resp.code.unwrap_or(0),
        content_length: None,
        chunked: false,
        data_length: None,
    };
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(number(h.value)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("x-git-annex-data-length") {
            head.data_length = Some(number(h.value)?);
        }
    }
    Ok(head)
}

/// Reads and discards exactly `n` bytes of `r`.
fn skip(r: &mut impl BufRead, mut n: u64) -> io::Result<()> {
    while n > 0 {
        let available = r.fill_buf()?.len();
        if available == 0 {
            return Err(bad("the body ended early"));
        }
        let take = available.min(n.min(usize::MAX as u64) as usize);
        r.consume(take);
        n -= take as u64;
    }
    Ok(())
}

/// Reads a chunked body to its end, returning the length of its content.
fn skip_chunks(r: &mut impl BufRead) -> io::Result<u64> {
    let mut total = 0u64;
    let mut line = Vec::new();
    loop {
        line.clear();
        r.read_until(b'\n', &mut line)?;
        let size = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.trim_end().split(';').next())
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| bad("a bad chunk size"))?;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                line.clear();
                if r.read_until(b'\n', &mut line)? == 0 || line == b"\r\n" {
                    return Ok(total);
                }
            }
        }
        skip(r, size)?;
        total += size;
        line.clear();
        r.read_until(b'\n', &mut line)?;
        if line != b"\r\n" {
            return Err(bad("a chunk not followed by CRLF"));
        }
    }
}

fn connect(authority: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect(authority)?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn get(url: &str) -> io::Result<()> {
    let (authority, path) = split_url(url).ok_or_else(|| bad("not an http:// URL"))?;
    let mut s = connect(authority)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::with_capacity(BUF, s);
    let head = read_head(&mut r)?;
    if head.status != 200 {
        return Err(bad(format!("status {}", head.status)));
    }
    let got = match (head.content_length, head.chunked) {
        (_, true) => skip_chunks(&mut r)?,
        (Some(n), false) => {
            skip(&mut r, n)?;
            n
        }
        (None, false) => io::copy(&mut r, &mut io::sink())?,
    };
    match head.data_length {
        Some(n) if n == got => Ok(()),
        Some(n) => Err(bad(format!("{got} bytes of content, {n} announced"))),
        None => Err(bad("no X-git-annex-data-length")),
    }
}

fn put(url: &str, file: &str) -> io::Result<()> {
    let (authority, path) = split_url(url).ok_or_else(|| bad("not an http:// URL"))?;
    let mut f = File::open(file)?;
    let len = f.metadata()?.len();
    let mut s = connect(authority)?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {len}\r\nX-git-annex-data-length: {len}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; BUF];
    let mut sent = 0u64;
    while sent < len {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Err(bad("the file shrank while sent"));
        }
        s.write_all(&buf[..n])?;
        sent += n as u64;
    }
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    let mut r = &answer[..];
    let head = read_head(&mut r)?;
    let stored = b"\"stored\":true";
    if head.status != 200 || !r.windows(stored.len()).any(|w| w == stored) {
        return Err(bad(format!(
            "status {}: {}",
            head.status,
            String::from_utf8_lossy(r)
        )));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let start = Instant::now();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["get", url] => get(url),
        ["put", url, file] => put(url, file),
        _ => usage(),
    };
    match result {
        Ok(()) => println!("{:.3}", start.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("http-transfer: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_measured() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        let mut r = &body[..];
        assert_eq!(skip_chunks(&mut r).unwrap(), 11);
        assert!(r.is_empty());
        let mut short = &b"5\r\nhel"[..];
        assert!(skip_chunks(&mut short).is_err());
        let mut bad_size = &b"zz\r\n"[..];
        assert!(skip_chunks(&mut bad_size).is_err());
    }

    #[test]
    fn heads_give_lengths() {
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-git-annex-data-length: 3\r\n\r\nabc";
        let mut r = &answer[..];
        let head = read_head(&mut r).unwrap();
        assert_eq!(
            (head.status, head.content_length, head.data_length),
            (200, Some(3), Some(3))
        );
        assert!(!head.chunked);
        assert_eq!(r, b"abc");
    }
}
