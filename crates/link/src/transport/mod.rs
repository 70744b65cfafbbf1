//! Transports behind one trait. A transport is one side's view of the link: `listen(port)` waits
//! for the other side to connect to `port`, `connect(port)` reaches the other side's `port`.
//!
//! | transport | listen(port) | connect(port) | used by |
//! | --- | --- | --- | --- |
//! | [`Vsock`] | AF_VSOCK `(VMADDR_CID_ANY, port)` | AF_VSOCK `(peer_cid, port)` | production, both sides |
//! | [`VhostUser`] | unix socket `PATH_port` | unix `PATH`, then `CONNECT port\n` / `OK …\n` | the parent under QEMU (vhost-device-vsock's uds backend) |
//! | [`Unix`] | unix socket `LISTEN_PREFIX_port` | unix socket `CONNECT_PREFIX_port` | tests |
//! | [`Tcp`] | `LISTEN_IP:(base + port mod 65536)` | `CONNECT_IP:(base + port mod 65536)` | tests, laptops |

mod tcp;
mod unix;
mod vhost;
mod vsock;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use tcp::Tcp;
pub use unix::Unix;
pub use vhost::VhostUser;
pub use vsock::Vsock;

/// A boxed future borrowing the transport (keeps [`Transport`] usable as a trait object).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How one side reaches the other.
pub trait Transport: std::fmt::Debug + Send + Sync {
    /// Listens for connections the other side makes to `port`.
    fn listen(&self, port: u32) -> BoxFuture<'_, io::Result<Listener>>;
    /// Connects to the other side's `port`.
    fn connect(&self, port: u32) -> BoxFuture<'_, io::Result<Stream>>;
    /// Where `port` is, for messages (`vsock 16:443`, `/run/vm.vsock_65537`).
    fn describe(&self, port: u32) -> String;
}

/// Who connected, as far as the transport can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// An AF_VSOCK peer: its CID is set by the hypervisor and cannot be forged.
    Vsock { cid: u32, port: u32 },
    /// A unix-socket peer with its kernel-reported credentials (`SO_PEERCRED`).
    Unix { uid: Option<u32>, pid: Option<i32> },
    /// A TCP peer.
    Tcp(SocketAddr),
}

/// A connected byte stream of any transport.
#[derive(Debug)]
pub enum Stream {
    Vsock(tokio_vsock::VsockStream),
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

/// A bound listener of any transport; unix socket files are removed when it is dropped.
#[derive(Debug)]
pub struct Listener {
    inner: ListenerInner,
    description: String,
}

#[derive(Debug)]
enum ListenerInner {
    Vsock(tokio_vsock::VsockListener),
    Unix(unix::BoundSocket),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        match &self.inner {
            ListenerInner::Vsock(l) => {
                let (s, addr) = l.accept().await?;
                Ok((
                    Stream::Vsock(s),
                    Peer::Vsock {
                        cid: addr.cid(),
                        port: addr.port(),
                    },
                ))
            }
            ListenerInner::Unix(l) => {
                let (s, _) = l.listener.accept().await?;
                let cred = s.peer_cred().ok();
                Ok((
                    Stream::Unix(s),
                    Peer::Unix {
                        uid: cred.map(|c| c.uid()),
                        pid: cred.and_then(|c| c.pid()),
                    },
                ))
            }
            ListenerInner::Tcp(l) => {
                let (s, addr) = l.accept().await?;
                s.set_nodelay(true)?;
                Ok((Stream::Tcp(s), Peer::Tcp(addr)))
            }
        }
    }

    /// Where the listener is bound (for logs and errors).
    pub fn description(&self) -> &str {
        &self.description
    }
}

/// Adds where it happened to an I/O error, keeping its kind.
pub(crate) fn context(e: io::Error, what: &str, place: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {place}: {e}"))
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Stream::Vsock($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            Stream::Tcp($s) => {
                let $s = Pin::new($s);
                $e
            }
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Vsock(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tcp(s) => s.is_write_vectored(),
        }
    }
}
