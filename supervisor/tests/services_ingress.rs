//! Ingress (host TCP → enclave vsock) against a fake enclave app listening through
//! `enclave_link`'s unix transport: 1,000 concurrent connections, half-close both ways, the
//! connection limit, idle connections (slowloris) closed without starving anyone else. Every
//! scenario runs over both ways of moving the bytes (`link.proxy_copy`: splice and buffered).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use companion_config::{Proxy, ProxyCopy, SupervisorConfig};
use enclave_link::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

const APP_PORT: u32 = 8080;

/// Lets the test hold ~4 descriptors per proxied connection.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
    assert!(
        l.rlim_cur >= 5000,
        "RLIMIT_NOFILE hard limit {} too low",
        l.rlim_max
    );
}

/// The enclave app: echoes until EOF, then sends `bye` and closes — only possible when the
/// client's half-close arrived while the way back stayed open.
async fn enclave_app(transport: Arc<dyn Transport>) {
    let listener = transport.listen(APP_PORT).await.unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = s.write_all(b"bye").await;
                let _ = s.shutdown().await;
            });
        }
    });
}

/// Each scenario, once per way of moving the bytes.
macro_rules! scenarios {
    ($copy_path:ident, $copy:expr) => {
        mod $copy_path {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_connections_each_get_their_own_bytes_back() {
                thousand_concurrent_connections($copy).await
            }

            #[tokio::test]
            async fn half_close_passes_through_in_both_directions() {
                half_close($copy).await
            }

            #[tokio::test]
            async fn slowloris_clients_do_not_starve_others_and_the_limit_refuses_the_excess() {
                slowloris_and_limit($copy).await
            }

            #[tokio::test]
            async fn idle_connections_are_closed_and_give_their_slots_back() {
                idle_connections($copy).await
            }
        }
    };
}

scenarios!(splice, ProxyCopy::Splice);
scenarios!(buffered, ProxyCopy::Buffered);

/// The supervisor's config for one ingress port to the enclave's `APP_PORT`.
fn ingress_config(dir: &std::path::Path, copy: ProxyCopy) -> SupervisorConfig {
    let mut config = common::config(dir);
    config.proxies = vec![Proxy {
        protocol: "tcp".into(),
        host_port: 0,
        vsock_port: APP_PORT,
    }];
    config.link.proxy_copy = copy;
    config
}

async fn setup(
    copy: ProxyCopy,
    config_edit: impl FnOnce(&mut SupervisorConfig),
) -> (common::Running, SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    enclave_app(common::enclave_side(dir.path())).await;
    let mut config = ingress_config(dir.path(), copy);
    config_edit(&mut config);
    let run = common::start(&config).await;
    let addr = run.services.ingress_ports()[0].local_addr;
    (run, addr, dir)
}

/// Sends `payload`, half-closes, and returns everything the enclave sent back.
async fn round_trip(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(payload).await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).await.unwrap();
    back
}

async fn thousand_concurrent_connections(copy: ProxyCopy) {
    raise_fd_limit();
    let (run, addr, _dir) = setup(copy, |c| c.link.ingress.max_connections = 1100).await;
    const N: usize = 1000;
    let all_open = Arc::new(Barrier::new(N));
    let mut tasks = Vec::new();
    for i in 0..N {
        let all_open = all_open.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            // Prove the path to the enclave is up before waiting for the others.
            c.write_all(b"?").await.unwrap();
            let mut one = [0u8; 1];
            c.read_exact(&mut one).await.unwrap();
            all_open.wait().await;
            let payload = format!("connection {i} ").repeat(100);
            c.write_all(payload.as_bytes()).await.unwrap();
            c.shutdown().await.unwrap();
            let mut back = Vec::new();
            c.read_to_end(&mut back).await.unwrap();
            assert_eq!(
                back,
                [payload.as_bytes(), b"bye"].concat(),
                "connection {i}"
            );
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("no connection hangs")
            .unwrap();
    }
    run.wait_metric(
        "nitro_proxy_connections_total{proxy=\"ingress:0\",result=\"ok\"}",
        N as f64,
    )
    .await;
    assert_eq!(
        run.metric("nitro_proxy_connections_total{proxy=\"ingress:0\",result=\"limit\"}"),
        0.0
    );
    assert_eq!(
        run.metric("nitro_proxy_active_connections{proxy=\"ingress:0\"}"),
        0.0
    );
    run.services.shutdown().await;
}

async fn half_close(copy: ProxyCopy) {
    let (run, addr, _dir) = setup(copy, |_| {}).await;
    // Client → enclave EOF: the enclave still answers afterwards.
    assert_eq!(round_trip(addr, b"hello").await, b"hellobye");
    // 1 MiB each way with the half-close at the end: backpressure, no loss.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let back = round_trip(addr, &big).await;
    assert_eq!(back.len(), big.len() + 3);
    assert!(back[..big.len()] == big[..]);
    // Enclave → client EOF first: the client keeps sending and the enclave still reads.
    let dir = tempfile::tempdir().unwrap();
    let enclave = common::enclave_side(dir.path());
    let listener = enclave.listen(APP_PORT).await.unwrap();
    let run2 = common::start(&ingress_config(dir.path(), copy)).await;
    let addr2 = run2.services.ingress_ports()[0].local_addr;
    let app = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        s.write_all(b"greeting").await.unwrap();
        s.shutdown().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        got
    });
    let mut c = TcpStream::connect(addr2).await.unwrap();
    let mut greeting = Vec::new();
    c.read_to_end(&mut greeting).await.unwrap();
    assert_eq!(greeting, b"greeting");
    c.write_all(b"still talking").await.unwrap();
    c.shutdown().await.unwrap();
    assert_eq!(app.await.unwrap(), b"still talking");
    run.services.shutdown().await;
    run2.services.shutdown().await;
}

/// A client that sends one byte every `every` until dropped.
fn dribble(mut c: TcpStream, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while c.write_all(b"G").await.is_ok() {
            tokio::time::sleep(every).await;
        }
    })
}

const ACTIVE: &str = "nitro_proxy_active_connections{proxy=\"ingress:0\"}";

async fn slowloris_and_limit(copy: ProxyCopy) {
    let (run, addr, _dir) = setup(copy, |c| c.link.ingress.max_connections = 20).await;
    // Ten clients that say nothing, five that dribble a byte every 100 ms.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut dribblers = Vec::new();
    for _ in 0..5 {
        dribblers.push(dribble(
            TcpStream::connect(addr).await.unwrap(),
            Duration::from_millis(100),
        ));
    }
    run.wait_metric(ACTIVE, 15.0).await;
    // Everyone else is served, five at a time (the remaining slots), many times over.
    for round in 0..20 {
        let mut batch = Vec::new();
        for i in 0..5 {
            batch.push(tokio::spawn(round_trip(
                addr,
                format!("{round}/{i}").into_bytes().leak(),
            )));
        }
        for (i, t) in batch.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), format!("{round}/{i}bye").into_bytes());
        }
    }
    // Over the limit: closed at once and counted.
    for _ in 0..5 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    run.wait_metric(ACTIVE, 20.0).await;
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), refused.read_to_end(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "a connection over the limit was served"
    );
    run.wait_metric(
        "nitro_proxy_connections_total{proxy=\"ingress:0\",result=\"limit\"}",
        1.0,
    )
    .await;
    dribblers.iter().for_each(|d| d.abort());
    run.services.shutdown().await;
}

async fn idle_connections(copy: ProxyCopy) {
    let (run, addr, _dir) = setup(copy, |c| {
        c.link.ingress.max_connections = 3;
        c.link.ingress.idle_timeout_secs = 1;
    })
    .await;
    let mut silent = vec![
        TcpStream::connect(addr).await.unwrap(),
        TcpStream::connect(addr).await.unwrap(),
    ];
    // Sends more often than the idle timeout: never idle, keeps its slot.
    let busy = dribble(
        TcpStream::connect(addr).await.unwrap(),
        Duration::from_millis(200),
    );
    run.wait_metric(ACTIVE, 3.0).await;
    for s in &mut silent {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "an idle client was not closed"
        );
    }
    run.wait_metric(
        "nitro_proxy_connections_total{proxy=\"ingress:0\",result=\"idle_timeout\"}",
        2.0,
    )
    .await;
    // Two slots free again; the busy client is still connected.
    assert_eq!(round_trip(addr, b"after").await, b"afterbye");
    assert!(!busy.is_finished());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while run.metric(ACTIVE) != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            run.metrics_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    busy.abort();
    run.services.shutdown().await;
}
