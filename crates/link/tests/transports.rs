//! Transports on this machine: unix sockets (stale files replaced, live ones and non-sockets
//! kept), AF_VSOCK errors that name the place, a TCP round trip.

use enclave_link::transport::{Tcp, Unix, Vsock};
use enclave_link::{Peer, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn unix_replaces_stale_sockets_only() {
    let dir = tempfile::tempdir().unwrap();
    let side = |a: &str, b: &str| Unix {
        listen_prefix: dir.path().join(a),
        connect_prefix: dir.path().join(b),
    };
    let (parent, enclave) = (side("p", "e"), side("e", "p"));
    // A crashed process leaves its socket file behind (std does not unlink it).
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("p_7")).unwrap());
    let l = parent.listen(7).await.unwrap();
    let mut c = enclave.connect(7).await.unwrap();
    let (mut s, peer) = l.accept().await.unwrap();
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata(dir.path()).unwrap().uid(); // we created it
    assert!(
        matches!(peer, Peer::Unix { uid: Some(u), .. } if u == uid),
        "{peer:?}"
    );
    c.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    // A live listener is never stolen; a file that is not a socket is never removed.
    let e = parent.listen(7).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    std::fs::write(dir.path().join("p_8"), b"not a socket").unwrap();
    let e = parent.listen(8).await.unwrap_err().to_string();
    assert!(e.contains("not a socket"), "{e}");
    assert!(dir.path().join("p_8").exists());
    drop(l);
    assert!(
        !dir.path().join("p_7").exists(),
        "socket file removed with its listener"
    );
}

#[tokio::test]
async fn vsock_errors_name_the_cid_and_port() {
    // No enclave with CID 4242 exists here (nor, usually, any vsock device): the error says where.
    let e = Vsock { peer_cid: 4242 }
        .connect(0x1_0001)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("vsock 4242:65537"), "{e}");
    match (Vsock { peer_cid: 3 }).listen(0x1_0009).await {
        Ok(l) => assert_eq!(l.description(), "vsock *:65545"),
        Err(e) => assert!(e.to_string().contains("vsock *:65545"), "{e}"),
    }
}

#[tokio::test]
async fn tcp_maps_vsock_ports_and_reports_the_peer() {
    let base = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let base: std::net::SocketAddr = format!("127.0.0.1:{}", base.port() - 1).parse().unwrap();
    let t = Tcp {
        listen: base,
        connect: base,
    };
    let l = t.listen(0x1_0001).await.unwrap();
    assert!(l
        .description()
        .contains(&format!(":{} (port 65537)", base.port() + 1)));
    let _c = t.connect(0x1_0001).await.unwrap();
    let (_s, peer) = l.accept().await.unwrap();
    assert!(matches!(peer, Peer::Tcp(a) if a.ip() == base.ip()));
}
