//! Unix sockets named `PREFIX_PORT` (the hybrid-vsock naming of Firecracker and
//! vhost-device-vsock). Used by tests on both sides, and by [`super::VhostUser`] for the sockets
//! the backend connects to on behalf of the enclave.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::{context, BoxFuture, Listener, ListenerInner, Stream, Transport};

#[derive(Debug, Clone)]
pub struct Unix {
    /// This side listens on `listen_prefix_PORT`.
    pub listen_prefix: PathBuf,
    /// The other side listens on `connect_prefix_PORT`.
    pub connect_prefix: PathBuf,
}

/// `PREFIX_PORT`.
pub fn port_path(prefix: &Path, port: u32) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("_{port}"));
    PathBuf::from(s)
}

/// A listening socket file, unlinked on drop.
#[derive(Debug)]
pub(super) struct BoundSocket {
    pub(super) listener: UnixListener,
    path: PathBuf,
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `path`, replacing a stale socket file left by a crash but never a live one (or a file
/// that is not a socket).
pub(super) fn bind(path: &Path) -> io::Result<Listener> {
    let place = path.display().to_string();
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("cannot listen on {place}: it exists and is not a socket"),
            ));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("cannot listen on {place}: another process is listening there"),
                ))
            }
            Err(_) => std::fs::remove_file(path)
                .map_err(|e| context(e, "cannot remove stale socket", &place))?,
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| context(e, "cannot listen on", &place))?;
    Ok(Listener {
        inner: ListenerInner::Unix(BoundSocket {
            listener,
            path: path.to_path_buf(),
        }),
        description: place,
    })
}

impl Transport for Unix {
    fn listen(&self, port: u32) -> BoxFuture<'_, io::Result<Listener>> {
        Box::pin(async move { bind(&port_path(&self.listen_prefix, port)) })
    }

    fn connect(&self, port: u32) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let path = port_path(&self.connect_prefix, port);
            let s = UnixStream::connect(&path)
                .await
                .map_err(|e| context(e, "cannot connect to", &path.display().to_string()))?;
            Ok(Stream::Unix(s))
        })
    }

    fn describe(&self, port: u32) -> String {
        port_path(&self.connect_prefix, port).display().to_string()
    }
}
