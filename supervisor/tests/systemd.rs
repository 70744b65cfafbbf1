//! systemd's notify protocol from the real binary: READY=1 once the API is bound, STATUS= on
//! state changes, WATCHDOG=1 keepalives, on a path socket and on an abstract one.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use common::*;

/// Collects datagrams until `done` holds for the collection (deadline: failure).
fn collect(sock: &UnixDatagram, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !done(&got) {
        assert!(Instant::now() < deadline, "notifications so far: {got:?}");
        if let Ok(n) = sock.recv(&mut buf) {
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    got
}

fn check(got: &[String], s: &Supervisor) {
    assert!(got[0].starts_with("READY=1"), "READY comes first: {got:?}");
    // READY is only sent once the API answers.
    assert_eq!(s.get("/health").status, 503);
    assert!(got.iter().any(|m| m == "WATCHDOG=1"));
    assert!(
        got.iter()
            .any(|m| m.starts_with("STATUS=booting enclave i-")),
        "{got:?}"
    );
}

fn done(got: &[String]) -> bool {
    got.iter().any(|m| m == "WATCHDOG=1") && got.iter().any(|m| m.starts_with("STATUS=booting"))
}

#[test]
fn ready_status_and_watchdog_on_a_path_socket() {
    let env = Env::new();
    let path = env.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let p = path.to_str().unwrap();
    let s = env.spawn_with(&[("NOTIFY_SOCKET", p), ("WATCHDOG_USEC", "300000")]);
    let got = collect(&sock, done);
    check(&got, &s);
}

#[test]
fn abstract_socket_and_watchdog_meant_for_another_pid() {
    let env = Env::new();
    let name = format!("nitro-provision-test-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    let notify = format!("@{name}");
    let s = env.spawn_with(&[
        ("NOTIFY_SOCKET", &notify),
        ("WATCHDOG_USEC", "300000"),
        ("WATCHDOG_PID", "1"),
    ]);
    let got = collect(&sock, |g| g.iter().any(|m| m.starts_with("STATUS=booting")));
    assert!(got[0].starts_with("READY=1"));
    // WATCHDOG_PID names another process: no keepalives from us, over many loop iterations
    // (ten polls of 100 ms span several 150 ms keepalive periods).
    s.wait("ten polls", |_| {
        env.calls()
            .iter()
            .filter(|c| c.starts_with("describe-enclaves"))
            .count()
            >= 10
    });
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut more = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        more.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        !got.iter().chain(&more).any(|m| m == "WATCHDOG=1"),
        "{got:?} {more:?}"
    );
}
