//! The zero-copy path (Linux): each direction splices socket → pipe → socket, so the proxied
//! bytes stay in kernel pages instead of being copied into the supervisor and back. The rules
//! are the buffered copy's: a chunk is written out in full before the next is read
//! (backpressure: the pipe is empty whenever the source is read), and EOF shuts down writing on
//! the other side (half-close).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use prometheus_client::metrics::counter::Counter;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{Activity, Counters};

/// A pipe starts at one page: Linux charges a pipe's capacity, used or not, to the user's pipe
/// quota (`fs.pipe-user-pages-soft`, 64 MiB by default; beyond it new pipes get two pages), so a
/// thousand quiet connections must not hold 64 KiB pipes.
const MIN_PIPE: libc::c_int = 4096;
/// A pipe grows, by doubling, to this many bytes while splices bring more than a quarter of its
/// capacity (bulk traffic; each slot of a pipe holds one packet fragment, so a pipe rarely fills
/// byte for byte). Linux's default `pipe-max-size`, the most an unprivileged process may ask for.
const MAX_PIPE: usize = 1 << 20;

/// One pipe per direction, made before the sockets are taken over so that a refusal (the
/// descriptor limit) can still fall back to the buffered copy.
pub(super) struct Pipes {
    inbound: Pipe,
    outbound: Pipe,
}

impl Pipes {
    pub(super) fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            inbound: Pipe::new()?,
            outbound: Pipe::new()?,
        })
    }
}

/// Splices both ways until both directions reached EOF.
pub(super) async fn transfer(
    outer: OwnedFd,
    enclave: OwnedFd,
    pipes: Pipes,
    activity: &Activity,
    counters: &Counters,
) -> io::Result<()> {
    // SAFETY: each `AsyncFd` owns its descriptor, which stays open and unchanged until the
    // `AsyncFd` is dropped.
    let (outer, enclave) = unsafe { (AsyncFd::register(outer)?, AsyncFd::register(enclave)?) };
    tokio::try_join!(
        forward(
            &outer,
            &enclave,
            pipes.inbound,
            activity,
            &counters.to_enclave
        ),
        forward(
            &enclave,
            &outer,
            pipes.outbound,
            activity,
            &counters.from_enclave
        ),
    )?;
    Ok(())
}

/// One direction: splice what is readable into the empty pipe, splice all of it out, repeat; on
/// EOF shut down writing on `to`.
async fn forward(
    from: &AsyncFd<OwnedFd>,
    to: &AsyncFd<OwnedFd>,
    mut pipe: Pipe,
    activity: &Activity,
    counter: &Counter,
) -> io::Result<()> {
    loop {
        let n = from
            .async_io(Interest::READABLE, |fd| {
                splice(fd.as_fd(), pipe.write.as_fd(), pipe.capacity)
            })
            .await?;
        if n == 0 {
            return shutdown_write(to.get_ref().as_fd());
        }
        activity.record();
        counter.inc_by(n as u64);
        let mut left = n;
        while left > 0 {
            let m = to
                .async_io(Interest::WRITABLE, |fd| {
                    splice(pipe.read.as_fd(), fd.as_fd(), left)
                })
                .await?;
            if m == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= m;
        }
        if n > pipe.capacity / 4 {
            pipe.grow();
        }
    }
}

/// A non-blocking pipe and how many bytes it holds.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two new descriptors into the array when it succeeds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nothing else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe we own; it returns the new size (rounded up to a page).
        let capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, MIN_PIPE) };
        let capacity = usize::try_from(capacity).map_err(|_| io::Error::last_os_error())?;
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Doubles the capacity up to [`MAX_PIPE`]; a refusal (the per-user pipe quota) keeps the
    /// current size. Only called while the pipe is empty.
    fn grow(&mut self) {
        if self.capacity >= MAX_PIPE {
            return;
        }
        let wanted = (self.capacity * 2).min(MAX_PIPE) as libc::c_int;
        // SAFETY: F_SETPIPE_SZ on a pipe we own; it returns the new size or -1.
        let got = unsafe { libc::fcntl(self.write.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
        if let Ok(got) = usize::try_from(got) {
            self.capacity = got;
        }
    }
}

/// Moves up to `len` bytes without blocking; `WouldBlock` when `from` has nothing or `to` no
/// room.
fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: both descriptors stay open for the call; null offsets mean the descriptors'
        // own positions (sockets and pipes have none).
        let n = unsafe {
            libc::splice(
                from.as_raw_fd(),
                std::ptr::null_mut(),
                to.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if let Ok(n) = usize::try_from(n) {
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown on a socket we hold open.
    if unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::pump::Socket;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream, UnixStream};

    fn counters() -> Counters {
        Counters {
            to_enclave: Counter::default(),
            from_enclave: Counter::default(),
        }
    }

    /// (client, enclave app, the proxy's descriptors for both): a loopback TCP connection, as
    /// ingress accepts, and a unix socket pair, as the unix transport connects.
    async fn ends() -> (TcpStream, UnixStream, OwnedFd, OwnedFd) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let outer = l.accept().await.unwrap().0;
        let (enclave, app) = UnixStream::pair().unwrap();
        let enclave = enclave_link::Stream::Unix(enclave).into_fd().unwrap();
        (client, app, outer.into_fd().unwrap(), enclave)
    }

    #[tokio::test]
    async fn moves_bulk_bytes_both_ways_and_passes_each_half_close() {
        let (mut client, mut app, outer, enclave) = ends().await;
        let (counters, activity) = (counters(), Activity::new());
        let proxy = transfer(outer, enclave, Pipes::new().unwrap(), &activity, &counters);
        let payload: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let ends = async {
            let send = async {
                client.write_all(&payload).await.unwrap();
                client.shutdown().await.unwrap();
                let mut back = Vec::new();
                client.read_to_end(&mut back).await.unwrap();
                back
            };
            let app = async {
                let mut got = Vec::new();
                app.read_to_end(&mut got).await.unwrap();
                // The client's EOF arrived; the way back is still open.
                app.write_all(b"bye").await.unwrap();
                app.shutdown().await.unwrap();
                got
            };
            tokio::join!(send, app)
        };
        let (r, (back, got)) = tokio::join!(proxy, ends);
        r.unwrap();
        assert!(got == payload, "the enclave got other bytes");
        assert_eq!(back, b"bye");
        assert_eq!(counters.to_enclave.get(), payload.len() as u64);
        assert_eq!(counters.from_enclave.get(), 3);
    }

    #[tokio::test]
    async fn reads_nothing_ahead_while_the_far_side_does_not_read() {
        let (mut client, mut app, outer, enclave) = ends().await;
        let (counters, activity) = (counters(), Activity::new());
        let proxy = transfer(outer, enclave, Pipes::new().unwrap(), &activity, &counters);
        let total = 64usize << 20;
        let chunk = vec![7u8; 64 << 10];
        let stalled = async {
            let mut sent = 0;
            // The app reads nothing: writes stop once the socket buffers and one pipe are full.
            while tokio::time::timeout(Duration::from_secs(1), client.write_all(&chunk))
                .await
                .is_ok()
            {
                sent += chunk.len();
                assert!(sent < total, "64 MiB went in while nobody read");
            }
            let in_flight = counters.to_enclave.get();
            assert!(in_flight < 16 << 20, "{in_flight} bytes taken in");
            // Once the app reads, everything arrives.
            let (mut rest, mut got) = (vec![0u8; 1 << 20], 0u64);
            let drain = async {
                while let Ok(n @ 1..) = app.read(&mut rest).await {
                    got += n as u64;
                }
            };
            let finish = async {
                client.write_all(&chunk).await.unwrap();
                client.shutdown().await.unwrap();
            };
            tokio::join!(drain, finish);
            assert_eq!(got, counters.to_enclave.get());
            drop(app);
            drop(client);
        };
        tokio::select! {
            _ = proxy => panic!("the proxy ended first"),
            () = stalled => {}
        }
    }

    #[test]
    fn pipes_grow_by_doubling_up_to_the_maximum() {
        let mut pipe = Pipe::new().unwrap();
        let first = pipe.capacity;
        assert!((4096..MAX_PIPE / 2).contains(&first), "{first}");
        pipe.grow();
        assert_eq!(pipe.capacity, (first * 2).min(MAX_PIPE));
        while pipe.capacity < MAX_PIPE {
            let before = pipe.capacity;
            pipe.grow();
            assert!(pipe.capacity > before, "stuck at {before}");
        }
        pipe.grow();
        assert_eq!(pipe.capacity, MAX_PIPE);
    }
}
