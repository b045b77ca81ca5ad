//! Standard input and output as async streams. Pipes and sockets are used
//! directly (non-blocking); anything else goes through tokio's blocking
//! stdio, which costs a thread hop per read or write.

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncWrite};

/// An async reader of standard input.
pub fn stdin() -> Box<dyn AsyncRead + Send + Unpin> {
    if let Ok(fd) = std::io::stdin().as_fd().try_clone_to_owned() {
        if let Some(r) = direct_reader(fd) {
            return r;
        }
    }
    Box::new(tokio::io::stdin())
}

/// An async writer of standard output.
pub fn stdout() -> Box<dyn AsyncWrite + Send + Unpin> {
    if let Ok(fd) = std::io::stdout().as_fd().try_clone_to_owned() {
        if let Some(w) = direct_writer(fd) {
            return w;
        }
    }
    Box::new(tokio::io::stdout())
}

/// Standard output as a [`FileOutput`](annex_protocol::FileOutput), for content moved into it by the
/// kernel: when it is a pipe or a socket already made non-blocking (by
/// [`stdout`]). Call it after `stdout`.
pub fn stdout_file_output() -> Option<annex_protocol::FileOutput> {
    let fd = fd_again(1)?;
    // SAFETY: F_GETFL reads the descriptor's status flags.
    let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFL) };
    if flags < 0 || flags & libc::O_NONBLOCK == 0 {
        return None;
    }
    annex_protocol::FileOutput::new(fd)
}

fn direct_reader(fd: OwnedFd) -> Option<Box<dyn AsyncRead + Send + Unpin>> {
    grow_pipe(&fd);
    let fd = match tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        Ok(p) => return Some(Box::new(p)),
        Err(_) => fd_again(0)?,
    };
    socket(fd).map(|s| Box::new(s) as Box<dyn AsyncRead + Send + Unpin>)
}

fn direct_writer(fd: OwnedFd) -> Option<Box<dyn AsyncWrite + Send + Unpin>> {
    grow_pipe(&fd);
    let fd = match tokio::net::unix::pipe::Sender::from_owned_fd(fd) {
        Ok(p) => return Some(Box::new(p)),
        Err(_) => fd_again(1)?,
    };
    socket(fd).map(|s| Box::new(s) as Box<dyn AsyncWrite + Send + Unpin>)
}

/// A fresh duplicate of a standard descriptor (the one handed to a failed
/// conversion is gone).
fn fd_again(n: i32) -> Option<OwnedFd> {
    // SAFETY: 0 and 1 are open for the life of the process.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(n) };
    b.try_clone_to_owned().ok()
}

fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    // Only a Unix socket answers this.
    std_stream.local_addr().ok()?;
    std_stream.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(std_stream).ok()
}

/// Asks for a 1 MiB pipe buffer (the unprivileged maximum by default), so
/// that large transfers wake the writer and reader less often. Not a pipe,
/// or not allowed: nothing changes.
fn grow_pipe(fd: &OwnedFd) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ takes an int argument and only affects pipes.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}
