//! The supervisor loads the config nitro-provision renders and refuses unsafe ones.

mod common;

use std::process::Command;

use companion_config::*;

fn check(cfg: &SupervisorConfig) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("supervisor.json");
    std::fs::write(&path, cfg.to_json()).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_enclave-supervisor"))
        .args(["--check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

#[test]
fn accepts_loopback_and_refuses_public_listen_addresses() {
    let env = common::Env::new();
    let mut c = env.config.clone();
    c.listen = "127.0.0.1:8443".into();
    let (code, out) = check(&c);
    assert_eq!(code, Some(0), "{out}");
    c.listen = "0.0.0.0:8443".into();
    let (code, out) = check(&c);
    assert_eq!(code, Some(1));
    assert!(out.contains("not a loopback address"), "{out}");
}

type Change = Box<dyn Fn(&mut SupervisorConfig)>;

#[test]
fn refuses_bad_lifecycle_settings() {
    let env = common::Env::new();
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.expected_measurements = None),
            "expected_measurements is null",
        ),
        (
            Box::new(|c| c.expected_measurements.as_mut().unwrap().pcr0 = "ab".into()),
            "PCR0 is not 96 hex digits",
        ),
        (
            Box::new(|c| c.expected_measurements.as_mut().unwrap().pcr1 = "0".repeat(96)),
            "PCR1 is all zeros",
        ),
        (
            Box::new(|c| c.watchdog.backoff_max_secs = 0),
            "below backoff_min_secs",
        ),
        (
            Box::new(|c| c.watchdog.backoff_min_secs = 0),
            "backoff_min_secs must be at least 1",
        ),
        (
            Box::new(|c| c.watchdog.poll_interval_ms = 10),
            "poll_interval_ms",
        ),
        (Box::new(|c| c.enclave.cid = 3), "reserved"),
        (
            Box::new(|c| c.nitro_cli.run_timeout_secs = Some(0)),
            "timeouts",
        ),
    ];
    refuses(&env, cases);
}

/// `--check-config` runs the link services' checks too: what `Services::start` would refuse.
#[test]
fn refuses_bad_link_settings() {
    let env = common::Env::new();
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|c| c.link.credentials.token_ttl_secs = 0),
            "token_ttl_secs must be 1–21600",
        ),
        (
            Box::new(|c| {
                c.link.egress.allowlist = vec![EgressTarget {
                    host: "*.amazonaws.com".into(),
                    port: 443,
                }]
            }),
            "`*.amazonaws.com:443` is not a host name",
        ),
        (
            Box::new(|c| {
                c.proxies = vec![Proxy {
                    protocol: "udp".into(),
                    host_port: 53,
                    vsock_port: 53,
                }]
            }),
            "only TCP is carried over vsock",
        ),
        (
            Box::new(|c| c.link.ingress.listen = "anywhere".into()),
            "link.ingress.listen `anywhere` is not an IP address",
        ),
    ];
    refuses(&env, cases);
}

fn refuses(env: &common::Env, cases: Vec<(Change, &str)>) {
    for (change, expected) in cases {
        let mut c = env.config.clone();
        change(&mut c);
        let (code, out) = check(&c);
        assert_eq!(code, Some(1), "{expected}: {out}");
        assert!(out.contains(expected), "{expected}: {out}");
    }
}

#[test]
fn refuses_unknown_fields_with_their_position() {
    let env = common::Env::new();
    let text = env.config.to_json().replacen(
        "\"stable_secs\"",
        "\"restart_always\": true,\n    \"stable_secs\"",
        1,
    );
    std::fs::write(&env.config_path, text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_enclave-supervisor"))
        .args([
            "--check-config",
            "--config",
            env.config_path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown field `restart_always`") && err.contains("line "),
        "{err}"
    );
}

#[test]
fn version_and_help() {
    for flag in ["--version", "--help"] {
        let o = Command::new(env!("CARGO_BIN_EXE_enclave-supervisor"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("enclave-supervisor"));
    }
}
