//! AF_VSOCK through tokio-vsock: the production transport on both sides.

use std::io;

use tokio_vsock::{VsockAddr, VsockListener, VsockStream, VMADDR_CID_ANY};

use super::{context, BoxFuture, Listener, ListenerInner, Stream, Transport};

/// Listens on `(VMADDR_CID_ANY, port)`; connects to `(peer_cid, port)`. The parent sets `peer_cid`
/// to the enclave's CID; the enclave to the parent's (3 on Nitro, 2 under QEMU).
#[derive(Debug, Clone)]
pub struct Vsock {
    pub peer_cid: u32,
}

impl Transport for Vsock {
    fn listen(&self, port: u32) -> BoxFuture<'_, io::Result<Listener>> {
        Box::pin(async move {
            let place = format!("vsock *:{port}");
            let l = VsockListener::bind(VsockAddr::new(VMADDR_CID_ANY, port))
                .map_err(|e| context(e, "cannot listen on", &place))?;
            Ok(Listener {
                inner: ListenerInner::Vsock(l),
                description: place,
            })
        })
    }

    fn connect(&self, port: u32) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let place = self.describe(port);
            let s = VsockStream::connect(VsockAddr::new(self.peer_cid, port))
                .await
                .map_err(|e| context(e, "cannot connect to", &place))?;
            // A connect can report success before the peer answered: check it really is there.
            s.peer_addr()
                .map_err(|e| context(e, "cannot connect to", &place))?;
            Ok(Stream::Vsock(s))
        })
    }

    fn describe(&self, port: u32) -> String {
        format!("vsock {}:{port}", self.peer_cid)
    }
}
