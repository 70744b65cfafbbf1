//! The real binary against the stand-in nitro-cli: start, deaths, backoff, the stop latch,
//! adoption after SIGKILL and SIGTERM, EIF and measurement checks, scripted nitro-cli failures.
//! Every wait is for a condition (with a deadline); no assertion depends on elapsed time —
//! the timelines themselves are tested on a controllable clock (watchdog_timeline.rs).

mod common;

use common::openmetrics::value;
use common::*;
use serde_json::Value;

/// Waits for the enclave to boot, then plays its runtime: connects to the control service and
/// reports ready. The runtime stays connected until dropped.
fn ready(s: &Supervisor, env: &Env, restarts: u64) -> (Value, Runtime) {
    s.wait("booting, measurements verified", |i| {
        i["state"] == "booting" && i["measurements"]["match"] == true && i["restarts"] == restarts
    });
    let mut runtime = env.runtime();
    runtime.ready();
    (s.wait("ready", |i| i["state"] == "ready"), runtime)
}

fn kill_enclave(info: &Value) {
    let pid = info["process_id"].as_i64().unwrap() as i32;
    // SAFETY: the fake's enclave process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn starts_the_enclave_and_reports_healthy() {
    let env = Env::new();
    let s = env.spawn();
    let r = s.get("/health");
    assert_eq!(r.status, 503, "not ready before the runtime says so");
    let (info, _runtime) = ready(&s, &env, 0);
    let r = s.get("/health");
    assert_eq!(
        (r.status, r.json()),
        (200, serde_json::json!({"status": "ready"}))
    );
    assert_eq!(info["desired_state"], "running");
    assert_eq!(info["enclave_cid"], 16);
    assert_eq!(info["cpu_count"], 2);
    assert_eq!(info["memory_mib"], 512);
    assert_eq!(info["debug_mode"], false);
    assert_eq!(
        info["measurements"]["measured"],
        info["measurements"]["expected"]
    );
    assert_eq!(
        info["measurements"]["eif"],
        info["measurements"]["expected"]
    );
    assert_eq!(
        info["measurements"]["expected"]["PCR0"],
        env.measurements.pcr0.to_hex()
    );
    assert!(info["started_at"].as_str().unwrap().ends_with('Z'));
    let run = env
        .calls()
        .into_iter()
        .find(|c| c.starts_with("run-enclave"))
        .unwrap();
    assert_eq!(
        run,
        format!(
            "run-enclave --eif-path {} --cpu-count 2 --memory 512 --enclave-cid 16 --enclave-name demo",
            env.eif.display()
        )
    );
    assert_eq!(env.live_enclaves().len(), 1);
}

/// What the runtime reports over the real control service reaches the watchdog: boot stages, a
/// fatal error (acknowledged, and the enclave is no longer healthy), and the application's exit
/// status, which outlives the enclave in `last_exit`.
#[test]
fn runtime_reports_over_the_control_service_reach_enclave_info() {
    let env = Env::new();
    let s = env.spawn();
    s.wait("booting", |i| i["state"] == "booting");
    let mut runtime = env.runtime();
    runtime.stage("attestation", Some("nsm ok"));
    s.wait("stage", |i| i["boot_stage"] == "attestation");
    runtime.ready();
    s.wait("ready", |i| i["state"] == "ready");

    runtime.fatal("secrets", "KMS refused the attestation");
    let info = s.wait("fatal", |i| i["state"] == "unready");
    assert_eq!(info["last_error"]["kind"], "runtime");
    assert_eq!(
        info["last_error"]["message"],
        "secrets: KMS refused the attestation"
    );
    assert_eq!(s.get("/health").status, 503);

    // Acknowledged: the status is recorded before the runtime exits.
    runtime.app_exited(Some(3), None);
    // AWS's init reboots the enclave once its command exits; here the enclave just dies.
    kill_enclave(&info);
    drop(runtime);
    let info = s.wait("restarted", |i| i["restarts"] == 1);
    assert_eq!(info["last_exit"]["reason"], "process_dead");
    assert_eq!(info["last_exit"]["app_exit_code"], 3);
    assert!(info["last_exit"]["app_exit_signal"].is_null());
}

#[test]
fn debug_mode_is_passed_only_when_configured() {
    let mut env = Env::new();
    env.config.enclave.debug = true;
    env.write_config();
    let s = env.spawn();
    let info = s.wait("booting", |i| {
        i["state"] == "booting" && i["measurements"]["match"] == true
    });
    assert_eq!(info["debug_mode"], true);
    assert!(env
        .calls()
        .iter()
        .any(|c| c.starts_with("run-enclave") && c.ends_with("--debug-mode")));
}

#[test]
fn a_killed_enclave_is_restarted_and_the_backoff_grows_then_resets() {
    let env = Env::new();
    let s = env.spawn();
    let (mut info, runtime) = ready(&s, &env, 0);
    let mut connection = Some(runtime);
    let mut delays = Vec::new();
    for k in 1..=4u64 {
        let before = info["enclave_id"].clone();
        kill_enclave(&info);
        // Its control connection dies with it; the next boots never report ready.
        drop(connection.take());
        info = s.wait("restarted", |i| {
            i["restarts"] == k && i["state"] == "booting" && i["enclave_id"].is_string()
        });
        assert_ne!(info["enclave_id"], before);
        assert_eq!(info["last_exit"]["reason"], "process_dead");
        assert_eq!(info["last_exit"]["enclave_id"], before);
        assert_eq!(info["consecutive_failures"], k);
        delays.push(info["backoff_secs"].as_f64().unwrap());
    }
    // min 1 s, max 4 s, ±20 % jitter, never above the max.
    for (d, base) in delays.iter().zip([1.0, 2.0, 4.0, 4.0]) {
        assert!(
            *d >= base * 0.8 - 1e-9 && *d <= (base * 1.2f64).min(4.0) + 1e-9,
            "{delays:?}"
        );
    }
    assert_eq!(env.live_enclaves().len(), 1, "never two enclaves");
    // Healthy for the stable period (2 s here): the backoff resets.
    let mut runtime = env.runtime();
    runtime.ready();
    let info = s.wait("reset", |i| {
        i["state"] == "ready" && i["consecutive_failures"] == 0
    });
    assert!(info["backoff_secs"].is_null());
    kill_enclave(&info);
    drop(runtime);
    let info = s.wait("restarted", |i| {
        i["restarts"] == 5 && i["state"] == "booting"
    });
    let d = info["backoff_secs"].as_f64().unwrap();
    assert!((0.8..=1.2).contains(&d), "{d}");
    let metrics = s.metrics();
    assert_eq!(
        value(
            &metrics,
            "nitro_enclave_restarts_total",
            &[("reason", "process_dead")]
        ),
        Some(5.0)
    );
}

#[test]
fn operator_stop_survives_supervisor_restarts() {
    let env = Env::new();
    let mut s = env.spawn();
    let (_, runtime) = ready(&s, &env, 0);
    let token = env.token();
    let r = s.post("/v1/stop", &token);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["desired_state"], "stopped");
    s.wait("stopped", |i| i["state"] == "stopped");
    drop(runtime); // terminated with its enclave
    assert!(env.live_enclaves().is_empty());
    let r = s.get("/health");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["state"], "stopped");
    assert!(s.sigterm().success());

    let s = env.spawn();
    let info = s.wait("stopped after restart", |i| i["state"] == "stopped");
    assert_eq!(info["desired_state"], "stopped");
    assert_eq!(env.runs(), 1, "the latch held");
    assert!(env.live_enclaves().is_empty());
    let r = s.post("/v1/start", &token);
    assert_eq!(r.status, 202);
    let _runtime = ready(&s, &env, 0);
    assert_eq!(env.runs(), 2);
}

#[test]
fn after_sigkill_the_new_supervisor_adopts_the_enclave() {
    let env = Env::new();
    let mut s = env.spawn();
    let (before, old_connection) = ready(&s, &env, 0);
    s.sigkill();
    drop(old_connection);
    assert_eq!(
        env.live_enclaves().len(),
        1,
        "the enclave outlives its supervisor"
    );
    let s = env.spawn();
    let info = s.wait("adopted", |i| {
        i["adopted"] == true && i["state"] == "booting"
    });
    assert_eq!(info["enclave_id"], before["enclave_id"]);
    assert_eq!(
        info["started_at"], before["started_at"],
        "start time remembered"
    );
    assert_eq!(info["measurements"]["match"], true);
    // The runtime reconnects and reports again.
    let mut runtime = env.runtime();
    runtime.ready();
    s.wait("ready", |i| i["state"] == "ready");
    assert_eq!(env.runs(), 1, "no second run-enclave");
    assert_eq!(env.live_enclaves().len(), 1);
}

#[test]
fn sigterm_leaves_the_enclave_running() {
    let env = Env::new();
    let mut s = env.spawn();
    let (before, _runtime) = ready(&s, &env, 0);
    assert!(s.sigterm().success());
    assert!(
        s.logs().contains("the enclave keeps running"),
        "{}",
        s.logs()
    );
    assert_eq!(env.live_enclaves().len(), 1);
    let s = env.spawn();
    let info = s.wait("adopted", |i| i["adopted"] == true);
    assert_eq!(info["enclave_id"], before["enclave_id"]);
    assert_eq!(env.runs(), 1);
}

#[test]
fn a_modified_eif_is_refused() {
    let env = Env::new();
    // Same size, other bytes: what an attacker or a bad copy leaves.
    build_eif(&env.eif, "v2");
    let s = env.spawn();
    let info = s.wait("refused", |i| i["state"] == "failed");
    assert_eq!(env.runs(), 0, "nothing was run");
    let reason = info["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not measure as rendered") && reason.contains("PCR0"),
        "{reason}"
    );
    assert_eq!(info["last_error"]["kind"], "eif");
    assert_ne!(
        info["measurements"]["eif"]["PCR0"],
        info["measurements"]["expected"]["PCR0"]
    );
    let r = s.get("/health");
    assert_eq!(r.status, 503);
    let body = r.json();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["state"], "failed");
    assert!(body["reason"]
        .as_str()
        .unwrap()
        .contains("does not measure as rendered"));
    let metrics = s.metrics();
    assert_eq!(
        value(
            &metrics,
            "nitro_enclave_pcr_mismatches_total",
            &[("stage", "eif")]
        ),
        Some(1.0)
    );
}

#[test]
fn measurements_from_describe_that_differ_terminate_the_enclave() {
    let env = Env::new();
    let other = build_eif(&env.dir.path().join("other.eif"), "other");
    std::fs::write(
        env.fake_dir.join("measurements.json"),
        serde_json::json!({
            "HashAlgorithm": "Sha384 { ... }",
            "PCR0": other.pcr0.to_hex(),
            "PCR1": env.measurements.pcr1.to_hex(),
            "PCR2": env.measurements.pcr2.to_hex(),
        })
        .to_string(),
    )
    .unwrap();
    let s = env.spawn();
    let info = s.wait("terminated and held", |i| i["state"] == "failed");
    assert_eq!(env.runs(), 1);
    assert!(env.live_enclaves().is_empty(), "terminated");
    assert!(env
        .calls()
        .iter()
        .any(|c| c.starts_with("terminate-enclave --enclave-id")));
    assert_eq!(info["measurements"]["match"], false);
    assert_eq!(info["last_error"]["kind"], "measurements");
    assert!(info["reason"].as_str().unwrap().contains("PCR0 is"));
    assert!(
        info["next_attempt_at"].is_null(),
        "held until an operator acts"
    );
    assert_eq!(s.get("/health").status, 503);
}

#[test]
fn scripted_nitro_cli_failures_back_off_and_describe_errors_never_restart() {
    let env = Env::new();
    env.script("run-enclave", &["E29", "E36"]);
    let s = env.spawn();
    let (info, _runtime) = ready(&s, &env, 0);
    assert_eq!(env.runs(), 3);
    assert_eq!(info["consecutive_failures"], 2);
    let err = &info["last_error"];
    assert_eq!(err["kind"], "nitro_cli");
    assert_eq!(err["driver"]["codes"], serde_json::json!(["E36"]));
    assert_eq!(err["driver"]["kind"], "transient");

    // describe: two E39 failures, then two hangs (killed at the 2 s bound).
    env.script("describe-enclaves", &["E39", "E39", "hang", "hang"]);
    let info = s.wait("describe failures", |i| {
        i["last_error"]["driver"]["timed_out"] == true
    });
    assert_eq!(info["restarts"], 0);
    assert_eq!(info["state"], "ready");
    let metrics = s.metrics();
    let v = |code| {
        value(
            &metrics,
            "nitro_cli_errors_total",
            &[("command", "run"), ("code", code)],
        )
    };
    assert_eq!((v("E29"), v("E36")), (Some(1.0), Some(1.0)));
    assert!(value(
        &metrics,
        "nitro_cli_errors_total",
        &[("command", "describe"), ("code", "timeout")]
    )
    .is_some());
    s.wait("describe recovers", |i| i["describe_failures"] == 0);
    assert_eq!(env.runs(), 3);
}

#[test]
fn a_configuration_error_from_nitro_cli_waits_the_maximum() {
    let env = Env::new();
    env.script("run-enclave", &["E26"]);
    let s = env.spawn();
    let info = s.wait("failed start", |i| i["consecutive_failures"] == 1);
    assert_eq!(info["backoff_secs"], 4.0);
    assert_eq!(info["last_error"]["driver"]["kind"], "config");
    assert!(info["last_error"]["driver"]["log_excerpt"]
        .as_str()
        .unwrap()
        .contains("fake nitro-cli"));
    let _runtime = ready(&s, &env, 0);
}
