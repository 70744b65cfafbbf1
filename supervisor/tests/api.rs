//! The management API of the real binary: every endpoint, wrong methods, paths and bodies,
//! missing or wrong tokens (401), JSON everywhere, access logs, and /metrics through a strict
//! OpenMetrics parser.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::openmetrics::{self, value};
use common::*;
use serde_json::{json, Value};

fn error_code(r: &Response) -> String {
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.text()
    );
    r.json()["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn reads_are_open_and_answer_json() {
    let env = Env::new();
    let s = env.spawn();
    // Booting with the measurements checked: before the check the reason says so instead.
    s.wait("booting, measured", |i| {
        i["state"] == "booting" && i["measurements"]["match"] == true
    });
    let r = s.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["state"], "booting");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("waiting for the runtime"));

    let mut runtime = env.runtime();
    runtime.counters(&[
        ("http_requests", 7),
        ("kms_errors", 1),
        ("unknown_thing", 5),
    ]);
    runtime.ready();
    let info = s.wait("ready", |i| {
        i["state"] == "ready" && i["metrics"]["http_requests"] == 7
    });
    for key in [
        "state",
        "desired_state",
        "enclave_id",
        "enclave_cid",
        "cpu_count",
        "memory_mib",
        "measurements",
        "debug_mode",
        "started_at",
        "restarts",
        "last_exit",
        "next_attempt_at",
        "last_error",
        "supervisor_version",
        "metrics",
    ] {
        assert!(
            info.get(key).is_some(),
            "enclave-info lacks {key}: {info:#}"
        );
    }
    let m = info["metrics"].as_object().unwrap();
    let names: Vec<&str> = m.keys().map(String::as_str).collect();
    for name in [
        "http_requests",
        "http_errors",
        "kms_operations",
        "kms_errors",
        "storage_reads",
        "storage_writes",
        "storage_deletes",
        "storage_errors",
        "secret_reads",
        "secret_writes",
        "secret_deletes",
        "log_forwarded",
        "log_dropped",
    ] {
        assert!(names.contains(&name), "metrics lacks {name}");
    }
    assert_eq!(m["kms_errors"], 1);
    assert_eq!(info["measurements"]["match"], true);
    assert_eq!(info["supervisor_version"], env!("CARGO_PKG_VERSION"));
    let r = s.get("/health");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));
    // HEAD works where GET does.
    assert_eq!(http(s.port, "HEAD", "/health", &[], b"").status, 200);
}

#[test]
fn metrics_parse_as_openmetrics_with_counters_and_help() {
    let env = Env::new();
    env.script("describe-enclaves", &["E39"]);
    let s = env.spawn();
    s.wait("booting", |i| {
        i["state"] == "booting" && i["measurements"]["match"] == true
    });
    let mut runtime = env.runtime();
    runtime.counters(&[("http_requests", 5)]);
    runtime.ready();
    s.wait("ready", |i| {
        i["state"] == "ready" && i["metrics"]["http_requests"] == 5
    });
    // The runtime restarts its counters (new boot): the exported counter keeps growing.
    runtime.counters(&[("http_requests", 3)]);
    s.wait("relayed", |i| i["metrics"]["http_requests"] == 3);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let fs = openmetrics::parse(&r.text()).unwrap_or_else(|e| panic!("{e}\n{}", r.text()));
    for (name, kind) in [
        ("nitro_enclave_up", "gauge"),
        ("nitro_enclave_ready", "gauge"),
        ("nitro_enclave_state", "gauge"),
        ("nitro_enclave_restarts", "counter"),
        ("nitro_enclave_starts", "counter"),
        ("nitro_enclave_pcr_mismatches", "counter"),
        ("nitro_enclave_backoff_seconds", "gauge"),
        ("nitro_cli_calls", "counter"),
        ("nitro_cli_errors", "counter"),
        ("nitro_cli_call_duration_seconds", "histogram"),
        ("nitro_runtime_http_requests", "counter"),
        ("nitro_runtime_secret_deletes", "counter"),
        ("nitro_supervisor_http_requests", "counter"),
        ("nitro_supervisor_build", "info"),
    ] {
        assert_eq!(fs.get(name).map(|f| f.kind.as_str()), Some(kind), "{name}");
    }
    assert_eq!(value(&fs, "nitro_enclave_up", &[]), Some(1.0));
    assert_eq!(value(&fs, "nitro_enclave_ready", &[]), Some(1.0));
    assert_eq!(
        value(&fs, "nitro_enclave_state", &[("state", "ready")]),
        Some(1.0)
    );
    assert_eq!(
        value(&fs, "nitro_enclave_state", &[("state", "booting")]),
        Some(0.0)
    );
    assert_eq!(
        value(&fs, "nitro_enclave_starts_total", &[("result", "success")]),
        Some(1.0)
    );
    assert_eq!(
        value(&fs, "nitro_runtime_http_requests_total", &[]),
        Some(8.0)
    );
    assert!(value(&fs, "nitro_cli_calls_total", &[("command", "describe")]).unwrap() >= 2.0);
    assert_eq!(
        value(
            &fs,
            "nitro_cli_errors_total",
            &[("command", "describe"), ("code", "E39")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&fs, "nitro_enclave_restarts_total", &[("reason", "exited")]),
        Some(0.0)
    );
    assert!(!fs.contains_key("nitro_runtime_unknown_thing"));
    assert_eq!(
        value(
            &fs,
            "nitro_supervisor_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert!(value(
        &fs,
        "nitro_supervisor_http_requests_total",
        &[
            ("method", "GET"),
            ("route", "/v1/enclave-info"),
            ("status", "200")
        ]
    )
    .is_some());
}

#[test]
fn actions_need_the_token_and_a_valid_body() {
    let env = Env::new();
    let s = env.spawn();
    s.wait("booting", |i| i["state"] == "booting");
    let token_file = env.config.state_dir.join("api-token");
    assert_eq!(
        std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = env.token();
    assert_eq!(token.len(), 64);
    for path in ["/v1/start", "/v1/stop", "/v1/restart"] {
        let r = http(s.port, "POST", path, &[], b"");
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(error_code(&r), "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        for auth in [
            format!("Bearer {}x", token),
            format!("Bearer {}", &token[..63]),
            format!("Basic {token}"),
            token.clone(),
            "Bearer".to_string(),
        ] {
            let r = http(s.port, "POST", path, &[("Authorization", &auth)], b"");
            assert_eq!(r.status, 401, "{path} with {auth:?}");
            assert_eq!(error_code(&r), "unauthorized");
        }
    }
    assert_eq!(env.runs(), 1, "no refused action had an effect");
    let auth = format!("Bearer {token}");
    let h = [("Authorization", auth.as_str())];
    for (body, status, code) in [
        (&b"not json"[..], 400, "bad_request"),
        (&br#"{"reason": 3}"#[..], 400, "bad_request"),
        (&br#"{"force": true}"#[..], 400, "bad_request"),
        (&[b'x'; 5000][..], 413, "body_too_large"),
    ] {
        let r = http(s.port, "POST", "/v1/restart", &h, body);
        assert_eq!((r.status, error_code(&r).as_str()), (status, code));
    }
    let r = http(
        s.port,
        "POST",
        "/v1/restart",
        &h,
        br#"{"reason": "rotating the host"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"action": "restart", "accepted": true, "desired_state": "running", "state": r.json()["state"]})
    );
    s.wait("restarted", |i| {
        i["restarts"] == 1 && i["last_exit"]["reason"] == "operator"
    });
    assert!(s.logs().contains("rotating the host"), "reason logged");
    let r = s.post("/v1/stop", &token);
    assert_eq!(
        (r.status, r.json()["action"].clone()),
        (202, Value::from("stop"))
    );
    s.wait("stopped", |i| i["state"] == "stopped");
    let r = s.post("/v1/stop", &token);
    assert_eq!(r.status, 202, "stop is idempotent");
    let r = s.post("/v1/start", &token);
    assert_eq!(r.json()["desired_state"], "running");
    s.wait("booting", |i| i["state"] == "booting");
}

#[test]
fn wrong_methods_and_paths_are_json_errors() {
    let env = Env::new();
    let s = env.spawn();
    for (method, path, status, code) in [
        ("GET", "/nope", 404, "not_found"),
        ("POST", "/v1/schedule-key-deletion", 404, "not_found"),
        ("DELETE", "/v1/key", 404, "not_found"),
        ("GET", "/v1/stop", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
        ("PUT", "/v1/enclave-info", 405, "method_not_allowed"),
        ("DELETE", "/metrics", 405, "method_not_allowed"),
    ] {
        let r = http(s.port, method, path, &[], b"");
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert_eq!(error_code(&r), code, "{method} {path}");
    }
}

#[test]
fn every_request_is_logged_as_json() {
    let env = Env::new();
    let s = env.spawn();
    s.get("/health");
    http(s.port, "POST", "/v1/stop", &[], b"");
    let deadline = std::time::Instant::now() + DEADLINE;
    let found = loop {
        let lines: Vec<Value> = s
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &Value| v["message"] == "request")
            .collect();
        if lines.len() >= 2 || std::time::Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stop = found
        .iter()
        .find(|v| v["path"] == "/v1/stop")
        .expect("access log line");
    assert_eq!(stop["method"], "POST");
    assert_eq!(stop["status"], 401);
    assert!(stop["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(found
        .iter()
        .any(|v| v["path"] == "/health" && v["status"] == 503));
}

#[test]
fn a_readable_token_file_is_refused_at_start() {
    let env = Env::new();
    std::fs::create_dir_all(&env.config.state_dir).unwrap();
    std::fs::set_permissions(
        &env.config.state_dir,
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let token = env.config.state_dir.join("api-token");
    std::fs::write(&token, "a".repeat(64)).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_enclave-supervisor"))
        .arg("--config")
        .arg(&env.config_path)
        .env("PATH", &env.bin_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by group or others"), "{err}");
}
