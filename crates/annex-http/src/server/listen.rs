//! Where the server listens: addresses it binds, a Unix socket, or
//! sockets handed over by systemd (socket activation: `LISTEN_PID`,
//! `LISTEN_FDS`, from fd 3).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, RawFd};

/// The first file descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;

/// The listening sockets systemd passed to this process, if it did. The
/// variables are removed from the environment so that children do not
/// take the sockets for theirs.
pub fn systemd_listeners() -> io::Result<Option<Vec<TcpListener>>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let count: RawFd = fds.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("LISTEN_FDS is not a number: {fds}"),
        )
    })?;
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let mut listeners = Vec::new();
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START.saturating_add(count) {
        // SAFETY: systemd passed these descriptors to this process for it
        // to own (LISTEN_PID is ours), and nothing else in the process has
        // taken them: they are read once, here.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        // A descriptor that is not a listening TCP socket is refused
        // rather than served.
        listener.local_addr().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("socket-activation descriptor {fd} is not a TCP socket: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        listeners.push(listener);
    }
    Ok(Some(listeners))
}

/// Binds `addresses` (each `host:port`), as a nonblocking std listener for
/// tokio.
pub fn bind(addresses: &[SocketAddr]) -> io::Result<Vec<TcpListener>> {
    addresses
        .iter()
        .map(|a| {
            let l = TcpListener::bind(a)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {a}: {e}")))?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .collect()
}

/// Creates a Unix socket at `path` and listens on it, with permissions
/// `mode` (as `chmod`; 0o600 lets only this user connect, 0o660 its group
/// too, as a reverse proxy in that group). A socket left at `path` by a
/// server that is gone is replaced; anything else there is an error.
pub fn bind_unix(
    path: &std::path::Path,
    mode: u32,
) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::net::{UnixListener, UnixStream};
    let context = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!("--socket {}: {what}: {e}", path.display()),
        )
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("--socket {}: exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("--socket {}: a server is listening there", path.display()),
            ));
        }
        std::fs::remove_file(path).map_err(|e| context(e, "cannot remove the old socket"))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| context(e, "cannot listen"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| context(e, "cannot set its mode"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}
