//! A forge's HTTP application that serves the git-annex repositories below
//! a directory at `/git-annex/`, next to its own routes (see
//! `annex_examples::forge_http`).
//!
//! Run with `FORGE_USERS=alice:secret cargo run -p annex-examples --bin
//! forge_http -- DIRECTORY [PORT]`, then point a git-annex client at it:
//! `git config remote.origin.annexUrl annex+http://localhost:PORT/git-annex/`.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or("usage: forge_http DIRECTORY [PORT] (users in FORGE_USERS=name:password,...)")?;
    let port: u16 = args.next().map(|p| p.parse()).transpose()?.unwrap_or(8080);
    let users =
        annex_examples::forge_http::Users::parse(&std::env::var("FORGE_USERS").unwrap_or_default());
    let app = annex_examples::forge_http::router(std::path::Path::new(&dir), users);
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    println!("forge listening on http://{addr}/");
    println!("git config remote.NAME.annexUrl annex+http://{addr}/git-annex/");
    axum::serve(listener, app).await?;
    Ok(())
}
