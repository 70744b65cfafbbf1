//! The runtime loads its config and rejects unknown versions.

use std::process::Command;

use companion_config::*;

#[test]
fn loads_its_config_and_rejects_other_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runtime.json");
    let mut cfg = RuntimeConfig {
        format_version: FORMAT_VERSION,
        deployment: "demo".into(),
        region: "us-east-1".into(),
        secrets: vec![Secret {
            parameter: "/demo/token".into(),
            env: "TOKEN".into(),
        }],
        storage_prefix: "state/".into(),
        logging: Logging {
            level: "info".into(),
            format: "text".into(),
        },
        user: None,
        working_dir: None,
    };
    let run = |cfg: &RuntimeConfig| {
        std::fs::write(&path, cfg.to_json()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
            .args(["--check-config", "--config", path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert_eq!(run(&cfg).status.code(), Some(0));
    cfg.format_version = 9;
    let o = run(&cfg);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("format_version 9 is not supported"));
    for flag in ["--version", "--help"] {
        let o = Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}
