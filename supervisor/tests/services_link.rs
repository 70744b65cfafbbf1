//! The supervisor's link services against a fake enclave peer that speaks through
//! `enclave_link`'s own enclave-side clients: control, credentials (against the IMDSv2
//! simulator), egress, the TCP and vhost-device-vsock transports, peer checks, bad frames.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use companion_config::{EgressTarget, LinkTransport, Proxy, ProxyCopy};
use enclave_link::control::ControlClient;
use enclave_link::credentials::CredentialsClient;
use enclave_link::transport::{Tcp, Unix};
use enclave_link::{egress, ports, LinkError, Transport};
use enclave_supervisor::services::{EnclaveEvent, ServiceError, Services};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

const ACK: Duration = Duration::from_secs(5);

#[tokio::test]
async fn control_reports_arrive_as_events_and_final_ones_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = common::start(&common::config(dir.path())).await;
    let enclave = common::enclave_side(dir.path());

    let mut control = ControlClient::connect(&*enclave).await.unwrap();
    assert_eq!(run.next_event().await, EnclaveEvent::Connected);
    control.stage("attestation", Some("nsm ok")).await.unwrap();
    control.ready().await.unwrap();
    let counters = BTreeMap::from([
        ("http_requests".to_string(), 7),
        ("kms_operations".into(), 2),
    ]);
    control.counters(counters.clone()).await.unwrap();
    control.fatal("secrets", "KMS refused", ACK).await.unwrap();
    assert_eq!(
        run.next_event().await,
        EnclaveEvent::Stage {
            stage: "attestation".into(),
            detail: Some("nsm ok".into())
        }
    );
    assert_eq!(run.next_event().await, EnclaveEvent::Ready);
    assert_eq!(run.next_event().await, EnclaveEvent::Counters(counters));
    assert_eq!(
        run.next_event().await,
        EnclaveEvent::Fatal {
            stage: "secrets".into(),
            message: "KMS refused".into()
        }
    );
    // The acknowledgement comes after the event is queued for the watchdog: it is there already.
    control.app_exited(Some(3), None, ACK).await.unwrap();
    assert_eq!(
        run.events.try_recv().unwrap(),
        EnclaveEvent::AppExited {
            code: Some(3),
            signal: None
        }
    );
    control.app_exited(None, Some(9), ACK).await.unwrap();
    assert_eq!(
        run.next_event().await,
        EnclaveEvent::AppExited {
            code: None,
            signal: Some(9)
        }
    );
    drop(control);
    assert_eq!(run.next_event().await, EnclaveEvent::Disconnected);
    assert_eq!(
        run.metric("nitro_link_connections_total{service=\"control\"}"),
        1.0
    );
    run.services.shutdown().await;
}

#[tokio::test]
async fn malformed_oversized_and_unknown_frames_close_the_connection_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = common::start(&common::config(dir.path())).await;
    let cases: [(&[u8], &str); 4] = [
        (&[2, 0x11, 0, 0, 0, 0, 0, 2, b'{', b'}'], "version"),
        (&[1, 0x11, 0, 0, 0xff, 0xff, 0xff, 0xff], "oversized"),
        (&[1, 0x77, 0, 0, 0, 0, 0, 2, b'{', b'}'], "unknown_kind"),
        (&[1, 0x11, 0, 0, 0, 0, 0, 3, b'{', b'x', b'}'], "malformed"),
    ];
    for (bytes, reason) in cases {
        let mut s = UnixStream::connect(dir.path().join(format!("parent_{}", ports::CONTROL)))
            .await
            .unwrap();
        assert_eq!(run.next_event().await, EnclaveEvent::Connected);
        s.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(ACK, s.read_to_end(&mut rest)).await;
        assert!(matches!(n, Ok(Ok(0))), "{reason}: connection not closed");
        assert_eq!(run.next_event().await, EnclaveEvent::Disconnected);
        let sample =
            format!("nitro_link_frames_rejected_total{{service=\"control\",reason=\"{reason}\"}}");
        assert_eq!(run.metric(&sample), 1.0, "{}", run.metrics_text());
    }
    // The service still works for the next, well-behaved connection.
    let mut control = ControlClient::connect(&*common::enclave_side(dir.path()))
        .await
        .unwrap();
    control.app_exited(Some(0), None, ACK).await.unwrap();
    run.services.shutdown().await;
}

#[tokio::test]
async fn a_bind_failure_names_the_port_and_a_live_socket_is_never_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path());
    let first = common::start(&config).await;
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = Services::start(&config, tx, Arc::default())
        .await
        .err()
        .expect("second start fails");
    let text = err.to_string();
    assert!(matches!(err, ServiceError::Bind { .. }), "{text}");
    assert!(
        text.contains(&format!("parent_{}", ports::CONTROL)) && text.contains("another process"),
        "{text}"
    );
    first.services.shutdown().await;
    // After shutdown the socket files are gone and a new start binds again.
    let again = common::start(&config).await;
    again.services.shutdown().await;

    let mut udp = common::config(dir.path());
    udp.proxies = vec![Proxy {
        protocol: "udp".into(),
        host_port: 53,
        vsock_port: 53,
    }];
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let err = Services::start(&udp, tx, Arc::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("only TCP"), "{err}");
}

#[tokio::test]
async fn credentials_come_from_imdsv2_and_are_refreshed_before_they_expire() {
    // Credentials valid for 120 s, the host refreshes what expires within 300 s: every request
    // reaches IMDS although the previous credentials still work.
    let sim = harness::ImdsSim::start(&["--expiry-secs", "120"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.link.credentials.imds_endpoint = sim.endpoint();
    let run = common::start(&config).await;
    let enclave = common::enclave_side(dir.path());

    let fresh = CredentialsClient::new(enclave.clone(), Duration::from_secs(200));
    let a = fresh.get().await.unwrap();
    assert_eq!(a.access_key_id, "ASIASIM0000000000001");
    assert!(!a.expires_within(std::time::SystemTime::now(), Duration::from_secs(60)));
    let b = fresh.get().await.unwrap();
    assert_eq!(
        b.access_key_id, "ASIASIM0000000000002",
        "enclave refreshes within 200 s of expiry"
    );
    // An enclave client with a shorter margin keeps what it has: no request at all.
    let cached = CredentialsClient::new(enclave.clone(), Duration::from_secs(60));
    let c = cached.get().await.unwrap();
    let d = cached.get().await.unwrap();
    assert_eq!(c.access_key_id, d.access_key_id);
    assert_eq!(
        run.metric("nitro_credentials_requests_total{result=\"served\"}"),
        3.0
    );
    let stats = sim.stats();
    assert!(stats.contains("\"credential_gets\": 3"), "{stats}");
    assert!(
        stats.contains("\"token_puts\": 1"),
        "one session token for all: {stats}"
    );

    // IMDS fails: the host still serves credentials that have not expired yet.
    sim.configure(r#"{"fail_credentials": 1}"#);
    let e = fresh.fetch().await.unwrap();
    assert_eq!(e.access_key_id, c.access_key_id);
    assert_eq!(
        run.metric("nitro_credentials_refreshes_total{result=\"error\"}"),
        1.0
    );

    // The session token expired: one 401, a new token, the request repeated.
    sim.configure(r#"{"expire_tokens": true}"#);
    let f = fresh.fetch().await.unwrap();
    assert_ne!(f.access_key_id, e.access_key_id);
    let stats = sim.stats();
    assert!(
        stats.contains("\"token_puts\": 2") && stats.contains("\"unauthorized\": 1"),
        "{stats}"
    );
    run.services.shutdown().await;
}

#[tokio::test]
async fn long_lived_credentials_are_cached_by_the_host_and_failures_reach_the_enclave() {
    let sim = harness::ImdsSim::start(&["--expiry-secs", "3600", "--fail-credentials", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.link.credentials.imds_endpoint = sim.endpoint();
    let run = common::start(&config).await;
    let client = CredentialsClient::new(common::enclave_side(dir.path()), Duration::from_secs(300));
    match client.get().await {
        Err(LinkError::Refused(message)) => assert!(message.contains("HTTP 500"), "{message}"),
        other => panic!("expected the IMDS failure, got {other:?}"),
    }
    let a = client.fetch().await.unwrap();
    let b = client.fetch().await.unwrap();
    assert_eq!(a.access_key_id, b.access_key_id);
    assert!(
        sim.stats().contains("\"credential_gets\": 2"),
        "{}",
        sim.stats()
    );
    assert_eq!(
        run.metric("nitro_credentials_requests_total{result=\"error\"}"),
        1.0
    );
    run.services.shutdown().await;
}

async fn echo_server() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn egress_passes_allowlisted_targets_and_refuses_and_counts_the_rest() {
    egress_allowlist(ProxyCopy::Splice).await
}

#[tokio::test]
async fn egress_with_the_buffered_copy_passes_allowlisted_targets_and_refuses_the_rest() {
    egress_allowlist(ProxyCopy::Buffered).await
}

async fn egress_allowlist(copy: ProxyCopy) {
    let (echo, _task) = echo_server().await;
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.link.proxy_copy = copy;
    config.link.egress.allowlist = vec![
        EgressTarget {
            host: "127.0.0.1".into(),
            port: echo,
        },
        EgressTarget {
            host: "LocalHost".into(),
            port: echo,
        },
        EgressTarget {
            host: "127.0.0.1".into(),
            port: closed,
        },
    ];
    let run = common::start(&config).await;
    let enclave = common::enclave_side(dir.path());
    let t = Duration::from_secs(5);

    for host in ["127.0.0.1", "localhost"] {
        let mut s = egress::connect(&*enclave, host, echo, t).await.unwrap();
        // Arbitrary bytes (a TLS ClientHello would be just as opaque to the host).
        let payload: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        s.write_all(&payload).await.unwrap();
        s.shutdown().await.unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).await.unwrap();
        assert!(back == payload, "{host}: echoed bytes differ");
    }
    for (host, port) in [
        ("kms.us-east-1.amazonaws.com.evil", 443),
        ("127.0.0.1", echo + 1),
    ] {
        match egress::connect(&*enclave, host, port, t).await {
            Err(LinkError::Refused(reason)) => assert!(reason.contains("allowlist"), "{reason}"),
            other => panic!("{host}:{port} should be refused, got {other:?}"),
        }
    }
    match egress::connect(&*enclave, "127.0.0.1", closed, t).await {
        Err(LinkError::DialFailed(m)) => assert!(m.contains("cannot connect"), "{m}"),
        other => panic!("expected a dial failure, got {other:?}"),
    }
    run.wait_metric(
        "nitro_proxy_connections_total{proxy=\"egress\",result=\"ok\"}",
        2.0,
    )
    .await;
    assert_eq!(
        run.metric("nitro_proxy_denied_total{proxy=\"egress\"}"),
        2.0
    );
    assert_eq!(
        run.metric("nitro_proxy_connections_total{proxy=\"egress\",result=\"refused\"}"),
        2.0
    );
    assert_eq!(
        run.metric("nitro_proxy_connections_total{proxy=\"egress\",result=\"dial_failed\"}"),
        1.0
    );
    assert_eq!(
        run.metric("nitro_proxy_bytes_total{proxy=\"egress\",direction=\"from_enclave\"}"),
        200_000.0
    );
    assert_eq!(
        run.metric("nitro_proxy_bytes_total{proxy=\"egress\",direction=\"to_enclave\"}"),
        200_000.0
    );
    run.services.shutdown().await;
}

/// A free-looking TCP base port (its service ports base + 1..4 may still be taken: callers
/// retry with another).
fn tcp_base() -> std::net::SocketAddr {
    let p = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{}", p - 1).parse().unwrap()
}

/// Starts the services on a TCP transport listening from a free base, retrying when one of its
/// ports is taken. Returns the running services and the host's base address.
async fn start_tcp(
    config: &mut companion_config::SupervisorConfig,
    connect: &str,
) -> (common::Running, std::net::SocketAddr) {
    for _ in 0..20 {
        let host = tcp_base();
        config.link.transport = LinkTransport::Tcp {
            listen: host.to_string(),
            connect: connect.into(),
        };
        let (tx, events) = tokio::sync::mpsc::channel(64);
        let metrics = Arc::new(enclave_supervisor::services::ServiceMetrics::new());
        match Services::start(config, tx, metrics.clone()).await {
            Ok(services) => {
                return (
                    common::Running {
                        services,
                        events,
                        metrics,
                    },
                    host,
                )
            }
            Err(ServiceError::Bind { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free TCP base port in 20 tries");
}

#[tokio::test]
async fn tcp_transport_serves_its_configured_peer_only() {
    let dir = tempfile::tempdir().unwrap();
    let enclave = tcp_base();
    let mut config = common::config(dir.path());
    let (mut run, host) = start_tcp(&mut config, &enclave.to_string()).await;
    let side = Tcp {
        listen: enclave,
        connect: host,
    };
    let mut control = ControlClient::connect(&side).await.unwrap();
    assert_eq!(run.next_event().await, EnclaveEvent::Connected);
    control.app_exited(Some(0), None, ACK).await.unwrap();
    run.services.shutdown().await;

    // The enclave is said to be 127.0.0.2: a peer on 127.0.0.1 is turned away and counted.
    let (run, host) = start_tcp(&mut config, "127.0.0.2:40000").await;
    let side = Tcp {
        listen: enclave,
        connect: host,
    };
    let mut control = ControlClient::connect(&side).await.unwrap();
    assert!(control.app_exited(Some(0), None, ACK).await.is_err());
    assert_eq!(
        run.metric("nitro_link_peers_refused_total{service=\"control\"}"),
        1.0
    );
    run.services.shutdown().await;
}

/// A stand-in for vhost-device-vsock's unix backend: answers `CONNECT PORT` on `path` for
/// `port` only (then bridges to an in-test echo "enclave app"), closing other requests as the
/// backend does when nothing listens in the guest.
async fn vhost_stand_in(path: std::path::PathBuf, port: u32) {
    let l = UnixListener::bind(&path).unwrap();
    loop {
        let (s, _) = l.accept().await.unwrap();
        tokio::spawn(async move {
            let mut s = BufReader::new(s);
            let mut line = String::new();
            s.read_line(&mut line).await.unwrap();
            if line != format!("CONNECT {port}\n") {
                return; // dropped: "the enclave is not listening"
            }
            let mut s = s.into_inner();
            s.write_all(format!("OK {port}\n").as_bytes())
                .await
                .unwrap();
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
    }
}

#[tokio::test]
async fn vhost_user_transport_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm4.vsock");
    let mut config = common::config(dir.path());
    config.link.transport = LinkTransport::VhostUser { path: path.clone() };
    config.proxies = vec![
        Proxy {
            protocol: "tcp".into(),
            host_port: 0,
            vsock_port: 5005,
        },
        Proxy {
            protocol: "tcp".into(),
            host_port: 0,
            vsock_port: 5006,
        },
    ];
    tokio::spawn(vhost_stand_in(path.clone(), 5005));
    let mut run = common::start(&config).await;

    // Enclave → parent: the backend connects to PATH_PORT on the enclave's behalf.
    let backend = Unix {
        listen_prefix: dir.path().join("unused"),
        connect_prefix: path.clone(),
    };
    let mut control = ControlClient::connect(&backend).await.unwrap();
    assert_eq!(run.next_event().await, EnclaveEvent::Connected);
    control.ready().await.unwrap();
    assert_eq!(run.next_event().await, EnclaveEvent::Ready);

    // Parent → enclave: ingress goes through `CONNECT 5005` on PATH.
    let ports = run.services.ingress_ports().to_vec();
    let mut c = TcpStream::connect(ports[0].local_addr).await.unwrap();
    c.write_all(b"through the backend").await.unwrap();
    c.shutdown().await.unwrap();
    let mut back = String::new();
    c.read_to_string(&mut back).await.unwrap();
    assert_eq!(back, "through the backend");
    // Nobody listens on 5006 in the "enclave": the client is closed, the failure counted.
    let mut c = TcpStream::connect(ports[1].local_addr).await.unwrap();
    let mut buf = Vec::new();
    assert_eq!(c.read_to_end(&mut buf).await.unwrap(), 0);
    run.wait_metric(
        "nitro_proxy_connections_total{proxy=\"ingress:0\",result=\"dial_failed\"}",
        1.0,
    )
    .await;
    run.services.shutdown().await;
}

#[tokio::test]
async fn vhost_user_connect_reports_a_closed_or_garbled_backend() {
    use enclave_link::transport::VhostUser;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm.vsock");
    let l = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        for answer in [&b""[..], b"NOPE\n", b"OK 5\nhello"] {
            let (mut s, _) = l.accept().await.unwrap();
            let mut line = [0u8; 10];
            s.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"CONNECT 5\n");
            s.write_all(answer).await.unwrap();
        }
    });
    let t = VhostUser { path };
    let e = t.connect(5).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let e = t.connect(5).await.unwrap_err();
    assert!(e.to_string().contains("NOPE"), "{e}");
    // Bytes right after the OK line belong to the stream.
    let mut s = t.connect(5).await.unwrap();
    let mut first = [0u8; 5];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"hello");
}
