//! The parent's side of vhost-device-vsock's unix-socket backend (QEMU's `nitro-enclave` machine;
//! the same convention as Firecracker's hybrid vsock):
//! - enclave → parent: the backend connects to the unix socket `PATH_PORT`, where we listen;
//! - parent → enclave: we connect to `PATH`, send `CONNECT PORT\n`, and the backend answers
//!   `OK <port>\n` once the enclave accepted (it closes the socket when nobody listens there);
//!   after that line the socket carries the stream.

use std::io;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::unix::{bind, port_path};
use super::{context, BoxFuture, Listener, Stream, Transport};

/// The answer line is `OK <u32>\n`: never longer than this.
const MAX_REPLY: usize = 32;

#[derive(Debug, Clone)]
pub struct VhostUser {
    /// The backend's `uds-path`.
    pub path: PathBuf,
}

impl Transport for VhostUser {
    fn listen(&self, port: u32) -> BoxFuture<'_, io::Result<Listener>> {
        Box::pin(async move { bind(&port_path(&self.path, port)) })
    }

    fn connect(&self, port: u32) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let place = self.describe(port);
            let mut s = UnixStream::connect(&self.path)
                .await
                .map_err(|e| context(e, "cannot connect to", &place))?;
            s.write_all(format!("CONNECT {port}\n").as_bytes())
                .await
                .map_err(|e| context(e, "cannot connect to", &place))?;
            read_ok_line(&mut s)
                .await
                .map_err(|e| context(e, "cannot connect to", &place))?;
            Ok(Stream::Unix(s))
        })
    }

    fn describe(&self, port: u32) -> String {
        format!("{} port {port}", self.path.display())
    }
}

/// Reads the backend's answer byte by byte, so no byte of the stream after it is consumed.
async fn read_ok_line(s: &mut UnixStream) -> io::Result<()> {
    let mut line = Vec::with_capacity(MAX_REPLY);
    loop {
        let b = match s.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "the enclave is not listening (the backend closed the connection)",
                ))
            }
            Err(e) => return Err(e),
        };
        if b == b'\n' {
            break;
        }
        if line.len() == MAX_REPLY {
            return Err(bad_reply(&line));
        }
        line.push(b);
    }
    let text = std::str::from_utf8(&line).map_err(|_| bad_reply(&line))?;
    match text.strip_prefix("OK ") {
        Some(n) if n.trim().parse::<u32>().is_ok() => Ok(()),
        _ => Err(bad_reply(&line)),
    }
}

fn bad_reply(line: &[u8]) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "unexpected answer from the vsock backend: {:?}",
            String::from_utf8_lossy(line)
        ),
    )
}
