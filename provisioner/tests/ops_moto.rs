//! Operating a deployment against moto: `logs` (interleaved by time, filters, JSON, `--follow`
//! ended by Ctrl-C with exit 0) over records shipped by the supervisor's shipping library, and
//! `status` exit codes for missing, stale, unhealthy, PCR-mismatched and healthy health records.

mod moto_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudwatch_log_shipping::{Bounds, Buffer, Record, Shipper, ShipperConfig, Source, TokioClock};
use companion_config::health::{DesiredState, EnclaveState, HealthRecord, HealthReport};
use companion_config::Measurements;
use harness::Moto;
use moto_support::{aws, existing_network, np, text};
use nitro_provision::aws::{stack, Aws};

const GROUP: &str = "/nitro-provision/hello-enclave";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Ships `records` as the supervisor of `instance` does.
fn ship(rt: &tokio::runtime::Runtime, aws: &Aws, instance: &str, records: Vec<Record>) {
    let buffer = Buffer::new(Bounds {
        records: 1000,
        bytes: 1 << 20,
    });
    let count = records.len() as u64;
    for r in records {
        buffer.push(r);
    }
    let mut shipper = Shipper::new(
        aws.logs.clone(),
        buffer.clone(),
        ShipperConfig::new(GROUP, instance),
        Arc::new(TokioClock),
    );
    rt.block_on(shipper.flush()).expect("ship");
    assert_eq!(buffer.snapshot().shipped, count);
}

fn rec(ts: i64, source: Source, message: &str) -> Record {
    Record {
        timestamp_ms: ts,
        source,
        message: message.into(),
    }
}

fn stdout_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn logs_interleave_instances_and_sources_by_time_and_follow_until_ctrl_c() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    rt.block_on(aws.logs.create_log_group().log_group_name(GROUP).send())
        .unwrap();
    let t0 = now_ms() - 60_000;
    ship(
        &rt,
        &aws,
        "i-0aaaaaaaaaaaaaaaa",
        vec![
            rec(t0, Source::Supervisor, "a: supervisor started"),
            rec(t0 + 20, Source::Enclave, "a: listening on 8443"),
            rec(t0 + 30, Source::Health, "{\"not\":\"shown by default\"}"),
        ],
    );
    ship(
        &rt,
        &aws,
        "i-0bbbbbbbbbbbbbbbb",
        vec![
            rec(t0 + 10, Source::Enclave, "b: listening on 8443"),
            rec(t0 + 40, Source::Supervisor, "b: enclave healthy"),
        ],
    );

    let o = np(&moto, &config, &["logs", "--since", "10m"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines = stdout_lines(&o);
    // "TIME INSTANCE SOURCE MESSAGE…"
    let messages: Vec<String> = lines
        .iter()
        .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        messages,
        [
            "a: supervisor started",
            "b: listening on 8443",
            "a: listening on 8443",
            "b: enclave healthy"
        ],
        "{lines:#?}"
    );
    assert!(
        lines[1].contains(" i-0bbbbbbbbbbbbbbbb enclave "),
        "{}",
        lines[1]
    );
    assert!(
        lines[0].contains(" i-0aaaaaaaaaaaaaaaa supervisor "),
        "{}",
        lines[0]
    );

    let o = np(&moto, &config, &["logs", "--source", "enclave"]);
    assert_eq!(stdout_lines(&o).len(), 2, "{}", text(&o));
    let o = np(
        &moto,
        &config,
        &["logs", "--instance", "i-0bbbbbbbbbbbbbbbb", "--json"],
    );
    let json: Vec<serde_json::Value> = stdout_lines(&o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json.len(), 2);
    assert_eq!(json[0]["instance"], "i-0bbbbbbbbbbbbbbbb");
    assert_eq!(json[0]["source"], "enclave");
    assert_eq!(json[0]["timestamp"], t0 + 10);
    assert_eq!(json[1]["message"], "b: enclave healthy");
    let o = np(&moto, &config, &["logs", "--since", "1s"]);
    assert!(stdout_lines(&o).is_empty(), "nothing in the last second");

    // --follow: the old lines, then a new one as it arrives, then Ctrl-C ends it with 0.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .arg("-f")
        .arg(&config)
        .args(["logs", "--follow"])
        .envs(moto.env())
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let wait = Duration::from_secs(30);
    for _ in 0..4 {
        rx.recv_timeout(wait).expect("the existing lines");
    }
    ship(
        &rt,
        &aws,
        "i-0aaaaaaaaaaaaaaaa",
        vec![rec(now_ms(), Source::Enclave, "a: a new line")],
    );
    let line = rx.recv_timeout(wait).expect("the new line");
    assert!(line.ends_with("a: a new line"), "{line}");
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "Ctrl-C exits 0");
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "no repeats"
    );
}

fn health(instance: &str, ts: i64, state: EnclaveState, pcr0: &str, error: Option<&str>) -> Record {
    let m = |pcr0: &str| Measurements {
        pcr0: pcr0.into(),
        pcr1: "11".repeat(48),
        pcr2: "22".repeat(48),
        pcr8: None,
    };
    let line = HealthRecord::new(HealthReport {
        deployment: "hello-enclave".into(),
        instance_id: instance.into(),
        timestamp_ms: ts,
        state,
        desired_state: DesiredState::Running,
        measured_pcrs: Some(m(pcr0)),
        expected_pcrs: m(pcr0),
        restarts: 3,
        last_error: error.map(str::to_string),
        supervisor_version: "0.1.0".into(),
    })
    .to_line();
    rec(ts, Source::Health, &line)
}

fn status_json(moto: &Moto, config: &Path) -> (Option<i32>, serde_json::Value) {
    let o = np(moto, config, &["status", "--json"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    (o.status.code(), v)
}

#[test]
fn status_judges_each_instances_latest_health_record() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    existing_network(&rt, &aws, &config);
    let o = np(&moto, &config, &["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let resources = rt
        .block_on(stack::resources(&aws, "hello-enclave"))
        .unwrap();
    let instance = resources["Instance"].1.clone();

    let (code, v) = status_json(&moto, &config);
    assert_eq!(code, Some(1), "no health record yet: {v:#}");
    assert_eq!(v["instances"][0]["instance_id"], instance.as_str());
    assert_eq!(v["instances"][0]["verdict"], "no_record");
    let planned = v["planned_pcr0"]
        .as_str()
        .expect("planned PCR0")
        .to_string();

    let now = now_ms();
    let cases = [
        (
            now - 600_000,
            EnclaveState::Healthy,
            planned.clone(),
            None,
            Some(1),
            "stale",
        ),
        (
            now - 3_000,
            EnclaveState::Healthy,
            "ef".repeat(48),
            None,
            Some(1),
            "pcr_mismatch",
        ),
        (
            now - 2_000,
            EnclaveState::Unhealthy,
            planned.clone(),
            Some("health check: connection refused"),
            Some(1),
            "unhealthy",
        ),
        (
            now - 1_000,
            EnclaveState::Healthy,
            planned.clone(),
            None,
            Some(0),
            "healthy",
        ),
    ];
    for (ts, state, pcr0, error, want_code, want_verdict) in cases {
        ship(
            &rt,
            &aws,
            &instance,
            vec![health(&instance, ts, state, &pcr0, error)],
        );
        let (code, v) = status_json(&moto, &config);
        assert_eq!(code, want_code, "{want_verdict}: {v:#}");
        assert_eq!(v["instances"][0]["verdict"], want_verdict, "{v:#}");
        assert_eq!(v["healthy"], want_code == Some(0));
        assert_eq!(v["instances"][0]["record"]["EnclaveRestarts"], 3);
    }
    // The text form names the running and planned PCR0 and the last error.
    ship(
        &rt,
        &aws,
        &instance,
        vec![health(
            &instance,
            now_ms(),
            EnclaveState::Failed,
            &planned,
            Some("E36: enclave did not boot"),
        )],
    );
    let o = np(&moto, &config, &["status"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o);
    assert!(
        out.contains(&format!("Planned release: PCR0 {planned}")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{instance}: NOT OK: enclave failed; last error: E36: enclave did not boot"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("PCR0 running {planned}")), "{out}");
}
