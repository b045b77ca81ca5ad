//! `http-load`: many keep-alive HTTP/1.1 connections sending the same
//! request back to back for a while; prints the requests per second.
//!
//!     http-load --connections 16 --seconds 5 --method POST URL
//!
//! Like wrk, it writes a request prepared once and reads each answer with
//! a minimal parser, so that as much of the machine as possible is left
//! to the server being measured. Every answer must have the expected
//! status (200 unless `--status`) and a length or chunks, or the run fails:
//! a benchmark of errors measures nothing.
//!
//! With `--cpu-of PID` it also prints the CPU time (user and system) that
//! the process PID and its descendants spent per request over the same
//! window, in microseconds: a server's cost per request, which unlike its
//! rate does not depend on how many cores it shares with this client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use annex_benches::split_url;

struct Options {
    connections: usize,
    seconds: f64,
    method: String,
    status: u16,
    threads: usize,
    cpu_of: Option<u32>,
    url: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: http-load [--connections N] [--seconds S] [--method M] [--status CODE] [--threads T] [--cpu-of PID] http://HOST:PORT/PATH"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        connections: 16,
        seconds: 5.0,
        method: "GET".into(),
        status: 200,
        threads: 1,
        cpu_of: None,
        url: String::new(),
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--connections" => o.connections = value().parse().unwrap_or_else(|_| usage()),
            "--seconds" => o.seconds = value().parse().unwrap_or_else(|_| usage()),
            "--method" => o.method = value(),
            "--status" => o.status = value().parse().unwrap_or_else(|_| usage()),
            "--threads" => o.threads = value().parse().unwrap_or_else(|_| usage()),
            "--cpu-of" => o.cpu_of = Some(value().parse().unwrap_or_else(|_| usage())),
            _ if url.is_none() && !a.starts_with("--") => url = Some(a),
            _ => usage(),
        }
    }
    o.url = url.unwrap_or_else(|| usage());
    if o.connections == 0 || o.method.is_empty() || o.method.contains(char::is_whitespace) {
        usage()
    }
    o
}

/// How the body of an answer is delimited.
#[derive(Debug, PartialEq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// The parts of one answer that matter here.
struct Head {
    status: u16,
    framing: Framing,
    head_len: usize,
}

/// Parses the head of an answer at the start of `buf`; None when more
/// bytes are needed.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf).map_err(|e| format!("answer: {e}"))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let status = resp.code.unwrap_or(0);
    let mut framing = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or("a bad Content-Length")?;
            framing = Some(Framing::Length(length));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !h.value.eq_ignore_ascii_case(b"chunked") {
                return Err("a transfer encoding other than chunked".into());
            }
            framing = Some(Framing::Chunked);
        }
    }
    let framing = framing.ok_or("an answer without Content-Length or chunks")?;
    Ok(Some(Head {
        status,
        framing,
        head_len,
    }))
}

/// Where the answer whose body starts at `start` of `buf` ends; None when
/// more bytes are needed. Chunked bodies have no trailers here.
fn body_end(buf: &[u8], start: usize, framing: &Framing) -> Result<Option<usize>, String> {
    match framing {
        Framing::Length(n) => Ok((buf.len() >= start + n).then_some(start + n)),
        Framing::Chunked => {
            let mut at = start;
            loop {
                let (size_len, size) =
                    match httparse::parse_chunk_size(&buf[at..]).map_err(|_| "a bad chunk size")? {
                        httparse::Status::Complete(c) => c,
                        httparse::Status::Partial => return Ok(None),
                    };
                let size = usize::try_from(size).map_err(|_| "a chunk too large")?;
                let data_end = at + size_len + size;
                if buf.len() < data_end + 2 {
                    return Ok(None);
                }
                if &buf[data_end..data_end + 2] != b"\r\n" {
                    return Err("a chunk not followed by CRLF".into());
                }
                at = data_end + 2;
                if size == 0 {
                    return Ok(Some(at));
                }
            }
        }
    }
}

/// CPU time, in clock ticks, spent by process `root` and its descendants
/// (with the children they have already waited for); None once `root` is
/// gone.
fn tree_cpu_ticks(root: u32) -> Option<u64> {
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name, in parentheses, may hold spaces: the fields
        // counted here start after its closing parenthesis.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        // ppid, then utime, stime, cutime and cstime (fields 4 and 14-17).
        if let (Some(ppid), Some(u), Some(s), Some(cu), Some(cs)) =
            (number(1), number(11), number(12), number(13), number(14))
        {
            processes.push((pid, ppid as u32, u + s + cu + cs));
        }
    }
    let mut tree = vec![root];
    let mut total = None;
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(pid, ppid, ticks) in &processes {
            if pid == parent {
                total = Some(total.unwrap_or(0) + ticks);
            } else if ppid == parent && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        i += 1;
    }
    total
}

async fn connection(
    o: Arc<Options>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), String> {
    let (authority, path) = split_url(&o.url).ok_or("not an http:// URL")?;
    let mut stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    stream.set_nodelay(true).ok();
    let request = format!(
        "{} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n",
        o.method
    );
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    while !stop.load(Ordering::Relaxed) {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        // Read until one whole answer is in; keep what follows it.
        loop {
            if let Some(head) = parse_head(&buf[..filled])? {
                if let Some(end) = body_end(&buf[..filled], head.head_len, &head.framing)? {
                    if head.status != o.status {
                        return Err(format!("status {}, expected {}", head.status, o.status));
                    }
                    buf.copy_within(end..filled, 0);
                    filled -= end;
                    break;
                }
            }
            if filled == buf.len() {
                return Err("an answer too long for this tool".into());
            }
            let n = stream
                .read(&mut buf[filled..])
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Err("the server closed the connection".into());
            }
            filled += n;
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main() {
    let o = Arc::new(options());
    let rt = if o.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let result = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..o.connections)
            .map(|_| tokio::spawn(connection(o.clone(), stop.clone(), done.clone())))
            .collect();
        // Let every connection get going before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start_cpu = o.cpu_of.map(tree_cpu_ticks);
        let start_count = done.load(Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
        let count = done.load(Ordering::Relaxed) - start_count;
        let elapsed = start.elapsed().as_secs_f64();
        let end_cpu = o.cpu_of.map(tree_cpu_ticks);
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(e.to_string()),
            }
        }
        let cpu_micros = match (o.cpu_of, start_cpu.flatten(), end_cpu.flatten()) {
            (None, ..) => None,
            (Some(_), Some(a), Some(b)) if count > 0 => {
                // SAFETY: sysconf reads a constant of the system.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
                Some(b.saturating_sub(a) as f64 * 1e6 / hz / count as f64)
            }
            (Some(pid), ..) => return Err(format!("no CPU time measured for process {pid}")),
        };
        Ok((count as f64 / elapsed, cpu_micros))
    });
    match result {
        Ok((rate, None)) => println!("{rate:.0}"),
        Ok((rate, Some(micros))) => println!("{rate:.0} {micros:.1}"),
        Err(e) => {
            eprintln!("http-load: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_a_process_tree() {
        assert_eq!(tree_cpu_ticks(u32::MAX), None);
        let before = tree_cpu_ticks(std::process::id()).unwrap();
        // Burn CPU until the count moves; a second is dozens of ticks even
        // on a busy machine.
        let start = Instant::now();
        let mut x = 0u64;
        let mut after = before;
        while after == before && start.elapsed() < Duration::from_secs(10) {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            after = tree_cpu_ticks(std::process::id()).unwrap();
        }
        assert!(after > before, "{before} ticks, still {after} after 10 s");
    }

    #[test]
    fn heads_parse_in_pieces() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"present\":true}";
        assert!(parse_head(&answer[..20]).unwrap().is_none());
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.framing, Framing::Length(16));
        assert_eq!(head.head_len, answer.len() - 16);
        assert_eq!(
            body_end(&answer[..answer.len() - 1], head.head_len, &head.framing).unwrap(),
            None
        );
        assert_eq!(
            body_end(answer, head.head_len, &head.framing).unwrap(),
            Some(answer.len())
        );
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_end_after_the_last_chunk() {
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let body = b"10\r\n{\"present\":true}\r\n0\r\n\r\nHTTP/1.1";
        let mut answer = head.to_vec();
        answer.extend_from_slice(body);
        let parsed = parse_head(&answer).unwrap().unwrap();
        assert_eq!(parsed.framing, Framing::Chunked);
        let whole = answer.len() - "HTTP/1.1".len();
        for cut in head.len()..whole {
            assert_eq!(
                body_end(&answer[..cut], parsed.head_len, &parsed.framing).unwrap(),
                None
            );
        }
        assert_eq!(
            body_end(&answer, parsed.head_len, &parsed.framing).unwrap(),
            Some(whole)
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY";
        assert!(body_end(bad, head.len(), &Framing::Chunked).is_err());
    }
}
