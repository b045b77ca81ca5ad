//! `http-load`: many keep-alive HTTP/1.1 connections sending the same
//! request back to back for a while; prints the requests per second.
//!
//!     http-load --connections 16 --seconds 5 --method POST URL
//!
//! Every answer must have the expected status (200 unless `--status`), or
//! the run fails: a benchmark of errors measures nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

struct Options {
    connections: usize,
    seconds: f64,
    method: Method,
    status: u16,
    threads: usize,
    uri: Uri,
}

fn usage() -> ! {
    eprintln!(
        "usage: http-load [--connections N] [--seconds S] [--method M] [--status CODE] [--threads T] URL"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        connections: 16,
        seconds: 5.0,
        method: Method::GET,
        status: 200,
        threads: 1,
        uri: Uri::default(),
    };
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--connections" => o.connections = value().parse().unwrap_or_else(|_| usage()),
            "--seconds" => o.seconds = value().parse().unwrap_or_else(|_| usage()),
            "--method" => o.method = value().parse().unwrap_or_else(|_| usage()),
            "--status" => o.status = value().parse().unwrap_or_else(|_| usage()),
            "--threads" => o.threads = value().parse().unwrap_or_else(|_| usage()),
            _ if url.is_none() && !a.starts_with("--") => url = Some(a),
            _ => usage(),
        }
    }
    o.uri = url
        .unwrap_or_else(|| usage())
        .parse()
        .unwrap_or_else(|_| usage());
    if o.uri.scheme_str() != Some("http") || o.connections == 0 {
        usage()
    }
    o
}

async fn connection(
    o: Arc<Options>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> Result<(), String> {
    let host = o.uri.host().ok_or("no host")?.to_string();
    let port = o.uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let authority = o.uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let path = o
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    while !stop.load(Ordering::Relaxed) {
        let req = Request::builder()
            .method(o.method.clone())
            .uri(path.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = resp.status().as_u16();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        if status != o.status {
            return Err(format!("status {status}, expected {}", o.status));
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

fn main() {
    let o = Arc::new(options());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..o.connections)
            .map(|_| tokio::spawn(connection(o.clone(), stop.clone(), done.clone())))
            .collect();
        // Let every connection get going before counting.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start_count = done.load(Ordering::Relaxed);
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
        let count = done.load(Ordering::Relaxed) - start_count;
        let elapsed = start.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(count as f64 / elapsed)
    });
    match result {
        Ok(rate) => println!("{rate:.0}"),
        Err(e) => {
            eprintln!("http-load: {e}");
            std::process::exit(1)
        }
    }
}
