//! The supervisor loads the config nitro-provision renders and refuses unsafe ones.

use std::process::Command;

use companion_config::*;

fn sample(listen: &str) -> SupervisorConfig {
    SupervisorConfig {
        format_version: FORMAT_VERSION,
        deployment: "demo".into(),
        region: "us-east-1".into(),
        eif_path: "/var/lib/nitro-provision/enclave.eif".into(),
        enclave: EnclaveResources {
            cpu_count: 2,
            memory_mib: 1024,
            cid: 16,
            debug: false,
        },
        listen: listen.into(),
        watchdog: Watchdog {
            backoff_min_secs: 1,
            backoff_max_secs: 60,
            boot_grace_secs: 30,
        },
        proxies: vec![],
        log_group: "/nitro-provision/demo".into(),
        logging: Logging {
            level: "info".into(),
            format: "json".into(),
        },
        link: Link::default(),
    }
}

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
    let (code, out) = check(&sample("127.0.0.1:8443"));
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(&sample("0.0.0.0:8443"));
    assert_eq!(code, Some(1));
    assert!(out.contains("not a loopback address"), "{out}");
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
