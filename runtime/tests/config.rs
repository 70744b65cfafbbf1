//! The runtime loads its config: production defaults for omitted fields, unknown fields and
//! versions refused with their position, production rules checked by `--check-config`.

use std::process::{Command, Output};

use serde_json::{json, Value};

fn minimal() -> Value {
    json!({
        "format_version": 1,
        "deployment": "demo",
        "region": "us-east-1",
        "secrets": [{"parameter": "/demo/token", "env": "TOKEN"}],
        "storage_prefix": "state/",
        "logging": {"level": "info", "format": "text"},
        "kms_key": "alias/demo"
    })
}

fn check(config: &Value) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runtime.json");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
        .args(["--check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn omitted_fields_are_production_defaults() {
    let c: companion_config::RuntimeConfig = serde_json::from_value(minimal()).unwrap();
    assert!(c.production);
    assert!(c.log_forwarding);
    assert_eq!(c.nsm, nitro_nsm::Backend::Device {});
    assert_eq!(c.platform, companion_config::Platform::Nitro);
    assert_eq!(c.link.parent_cid, 3);
    assert_eq!(c.api.port, companion_config::DEFAULT_API_PORT);
    assert!(c.aws_test_endpoint.is_none());
    assert_eq!(check(&minimal()).status.code(), Some(0));
}

#[test]
fn unknown_fields_and_versions_are_refused_with_their_position() {
    let mut v = minimal();
    v["format_version"] = json!(9);
    let o = check(&v);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("format_version 9 is not supported"),
        "{}",
        stderr(&o)
    );
    let cases = [
        ("app", json!({"usr": "app"}), "unknown field `usr`"),
        (
            "platform",
            json!({"kind": "laptop"}),
            "unknown variant `laptop`",
        ),
        (
            "platform",
            json!({"kind": "simulated", "hwrng": "x"}),
            "missing field `clocksource`",
        ),
        (
            "nsm",
            json!({"kind": "device", "path": "/dev/nsm"}),
            "unknown field `path`",
        ),
        ("link", json!({"cid": 3}), "unknown field `cid`"),
        ("api", json!({"port": 70000}), "invalid value"),
        (
            "app",
            json!({"readiness": {"kind": "tcp"}}),
            "missing field `port`",
        ),
        (
            "storage",
            json!({"bucket": "b", "region": "x"}),
            "unknown field `region`",
        ),
        ("surprise", json!(1), "unknown field `surprise`"),
    ];
    for (field, value, expected) in cases {
        let mut v = minimal();
        v[field] = value.clone();
        let o = check(&v);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{field}: {value}");
        assert!(err.contains(expected), "{field}: {value}: {err}");
        assert!(err.contains("line ") && err.contains("column "), "{err}");
    }
}

#[test]
fn production_refuses_every_test_only_choice() {
    let mut v = minimal();
    v["nsm"] = json!({"kind": "simulator", "pki_dir": "/x", "measurements": "/y"});
    v["platform"] = json!({"kind": "simulated", "hwrng": "nsm-hwrng", "clocksource": "kvm-clock"});
    v["link"] =
        json!({"transport": {"type": "tcp", "listen": "127.0.0.1:1", "connect": "127.0.0.1:2"}});
    v["aws_test_endpoint"] = json!({"endpoint_url": "https://localhost:1", "root_pem": ""});
    let o = check(&v);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for what in ["nsm", "platform", "link.transport", "aws_test_endpoint"] {
        assert!(err.contains(what), "{err}");
    }
    v["production"] = json!(false);
    assert_eq!(check(&v).status.code(), Some(0), "{}", stderr(&check(&v)));
}

#[test]
fn needs_a_command_unless_checking() {
    let o = Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
        .args(["--config", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<COMMAND>"), "{}", stderr(&o));
    for flag in ["--version", "--help"] {
        let o = Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
            .arg(flag)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}
