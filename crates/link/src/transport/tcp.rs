//! TCP for tests and laptops. vsock ports are 32-bit and TCP ports 16-bit, so port P maps to
//! `base + (P mod 65536)`: the control service (0x1_0001) to `base + 1`, ingress 443 to
//! `base + 443`. One side listens from its own base and connects to the other side's.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

use super::{context, BoxFuture, Listener, ListenerInner, Stream, Transport};

#[derive(Debug, Clone)]
pub struct Tcp {
    /// This side's address and base port.
    pub listen: SocketAddr,
    /// The other side's address and base port.
    pub connect: SocketAddr,
}

/// `base + (port mod 65536)`, or an error when that leaves the TCP port range.
pub fn map_port(base: SocketAddr, port: u32) -> io::Result<SocketAddr> {
    let tcp = u32::from(base.port()) + (port & 0xffff);
    let tcp = u16::try_from(tcp).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("vsock port {port} does not map to a TCP port from base {base}"),
        )
    })?;
    Ok(SocketAddr::new(base.ip(), tcp))
}

impl Transport for Tcp {
    fn listen(&self, port: u32) -> BoxFuture<'_, io::Result<Listener>> {
        Box::pin(async move {
            let addr = map_port(self.listen, port)?;
            let place = format!("tcp {addr} (port {port})");
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| context(e, "cannot listen on", &place))?;
            Ok(Listener {
                inner: ListenerInner::Tcp(l),
                description: place,
            })
        })
    }

    fn connect(&self, port: u32) -> BoxFuture<'_, io::Result<Stream>> {
        Box::pin(async move {
            let addr = map_port(self.connect, port)?;
            let s = TcpStream::connect(addr)
                .await
                .map_err(|e| context(e, "cannot connect to", &self.describe(port)))?;
            s.set_nodelay(true)?;
            Ok(Stream::Tcp(s))
        })
    }

    fn describe(&self, port: u32) -> String {
        match map_port(self.connect, port) {
            Ok(a) => format!("tcp {a} (port {port})"),
            Err(_) => format!("tcp {} + port {port}", self.connect),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn maps_ports_from_the_base() {
        let base = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            super::map_port(base, crate::ports::CONTROL).unwrap(),
            "127.0.0.1:40001".parse().unwrap()
        );
        assert_eq!(
            super::map_port(base, 443).unwrap(),
            "127.0.0.1:40443".parse().unwrap()
        );
        assert!(super::map_port(base, 30000).is_err());
    }
}
