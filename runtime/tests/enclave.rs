//! The real runtime binary against the real host side (see `common`).

mod common;

use common::*;
use enclave_supervisor::services::EnclaveEvent;

fn is_exit(e: &EnclaveEvent) -> bool {
    matches!(
        e,
        EnclaveEvent::AppExited { .. } | EnclaveEvent::Fatal { .. }
    )
}

fn stages(events: &[EnclaveEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            EnclaveEvent::Stage { stage, .. } => Some(stage.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_reach_the_app_env_only_and_the_exit_status_reaches_the_supervisor() {
    let mut w = World::start().await;
    w.put_secret("/demo/db-password", b"hunter2-db").await;
    w.put_secret("/demo/api-key", b"k3y with spaces").await;
    let config = w.runtime_config(
        &[
            ("/demo/db-password", "DB_PASSWORD"),
            ("/demo/api-key", "API_KEY"),
        ],
        ADMITTED_PCR2,
    );
    let out = w.path("app-env.txt");
    let child = w.spawn(
        &config,
        &format!("env > {}; echo hello from the app; exit 3", out.display()),
    );
    let events = w.events_until(120, is_exit).await;
    let (code, stderr) = wait_exit(child, 30);

    assert_eq!(
        stages(&events),
        [
            "control",
            "config",
            "logs",
            "loopback",
            "entropy",
            "clock",
            "attestation",
            "credentials",
            "secrets",
            "api",
            "ingress",
            "app",
            "ready"
        ],
        "{events:#?}"
    );
    assert_eq!(
        events.last(),
        Some(&EnclaveEvent::AppExited {
            code: Some(3),
            signal: None
        })
    );
    assert_eq!(code, Some(3), "{stderr}");
    let env = read_env(&out);
    assert_eq!(env["DB_PASSWORD"], "hunter2-db");
    assert_eq!(env["API_KEY"], "k3y with spaces");
    assert_eq!(env["SEEN_BY_APP"], "from-image-env");
    assert!(env["NITRO_API_URL"].starts_with("http://127.0.0.1:"));
    assert_eq!(env["NITRO_API_TOKEN"].len(), 64);
    // Never in the runtime's own output (which the console and log service see).
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("k3y with"),
        "{stderr}"
    );
    // Every attested call carried a Recipient and was allowed by the PCR statement.
    let log = w.awsim.log();
    let decrypts: Vec<_> = log
        .iter()
        .filter(|e| e["target"] == "TrentService.Decrypt")
        .collect();
    assert_eq!(decrypts.len(), 2, "{log:#?}");
    assert!(decrypts
        .iter()
        .all(|e| e["recipient"] == true && e["decision"] == "allow"));
    // The app's stdout went through the log service.
    w.services.take().unwrap().shutdown().await;
    assert!(w.metric("nitro_enclave_log_events_forwarded_total") >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_the_policy_does_not_admit_is_denied_and_the_app_never_starts() {
    let mut w = World::start().await;
    w.put_secret("/demo/db-password", b"hunter2-db").await;
    let config = w.runtime_config(&[("/demo/db-password", "DB_PASSWORD")], 0x99);
    let marker = w.path("app-ran");
    let child = w.spawn(&config, &format!("touch {}", marker.display()));
    let events = w.events_until(120, is_exit).await;
    let (code, stderr) = wait_exit(child, 30);
    match events.last() {
        Some(EnclaveEvent::Fatal { stage, message }) => {
            assert_eq!(stage, "secrets");
            assert!(message.contains("/demo/db-password"), "{message}");
            assert!(
                message.contains("denied") || message.contains("AccessDenied"),
                "{message}"
            );
        }
        other => panic!("expected fatal, got {other:?}\n{stderr}"),
    }
    assert_eq!(code, Some(1));
    assert!(!stages(&events).contains(&"app".to_string()));
    assert!(!marker.exists(), "the app ran without its secrets");
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_the_simulator_and_test_endpoints() {
    let mut w = World::start().await;
    let mut config = w.runtime_config(&[], ADMITTED_PCR2);
    config.production = true;
    let marker = w.path("app-ran");
    let child = w.spawn(&config, &format!("touch {}", marker.display()));
    let events = w.events_until(60, is_exit).await;
    let (code, _) = wait_exit(child, 30);
    match events.last() {
        Some(EnclaveEvent::Fatal { stage, message }) => {
            assert_eq!(stage, "config");
            for what in ["nsm", "platform", "link.transport", "aws_test_endpoint"] {
                assert!(message.contains(what), "{message}");
            }
        }
        other => panic!("expected fatal, got {other:?}"),
    }
    assert_eq!(code, Some(1));
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_is_forwarded_and_sigkill_follows_the_grace() {
    let mut w = World::start().await;
    let config = w.runtime_config(&[], ADMITTED_PCR2);
    // Graceful: the app exits on TERM with its own code.
    let armed = w.path("armed");
    let child = w.spawn(
        &config,
        &format!(
            "trap 'exit 7' TERM; touch {}; while :; do sleep 0.1; done",
            armed.display()
        ),
    );
    w.events_until(120, |e| matches!(e, EnclaveEvent::Ready))
        .await;
    wait_for_file(&armed);
    let pid = child.id() as i32;
    unsafe { libc_kill(pid, 15) };
    let events = w.events_until(30, is_exit).await;
    assert_eq!(
        events.last(),
        Some(&EnclaveEvent::AppExited {
            code: Some(7),
            signal: None
        })
    );
    assert_eq!(wait_exit(child, 30).0, Some(7));

    // Stubborn: TERM ignored, SIGKILL after the 2 s grace.
    std::fs::remove_file(&armed).unwrap();
    let child = w.spawn(
        &config,
        &format!(
            "trap '' TERM; touch {}; while :; do sleep 0.1; done",
            armed.display()
        ),
    );
    w.events_until(120, |e| matches!(e, EnclaveEvent::Ready))
        .await;
    wait_for_file(&armed);
    unsafe { libc_kill(child.id() as i32, 15) };
    let events = w.events_until(30, is_exit).await;
    assert_eq!(
        events.last(),
        Some(&EnclaveEvent::AppExited {
            code: None,
            signal: Some(9)
        })
    );
    assert_eq!(wait_exit(child, 30).0, Some(128 + 9));
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_drops_and_counts_without_blocking_the_app() {
    let mut w = World::start().await;
    let config = w.runtime_config(&[], ADMITTED_PCR2);
    // ~400k lines as fast as sh can write them.
    let child = w.spawn(&config, "i=0; while [ $i -lt 20000 ]; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; echo b; echo c; echo d; echo e; echo f; echo g; echo h; echo i; echo j; echo k; echo l; echo m; echo n; echo o; echo p; echo q; echo r; echo s; echo t; i=$((i+1)); done; exit 0");
    let events = w.events_until(300, is_exit).await;
    assert_eq!(
        events.last(),
        Some(&EnclaveEvent::AppExited {
            code: Some(0),
            signal: None
        })
    );
    assert_eq!(wait_exit(child, 30).0, Some(0));
    let forwarded = w.metric("nitro_enclave_log_events_forwarded_total");
    let dropped = w.metric("nitro_enclave_log_events_dropped_total{side=\"enclave\"}")
        + w.metric("nitro_enclave_log_events_dropped_total{side=\"host\"}");
    assert!(forwarded > 0.0);
    assert!(
        dropped > 0.0,
        "400k lines and no drop: forwarded {forwarded}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_and_dynamic_secrets_round_trip_and_tampering_is_refused() {
    let mut w = World::start().await;
    let config = w.runtime_config(&[], ADMITTED_PCR2);
    let out = w.path("app-env.txt");
    let child = w.spawn(
        &config,
        &format!("env > {0}.tmp; mv {0}.tmp {0}; sleep 60", out.display()),
    );
    w.events_until(120, |e| matches!(e, EnclaveEvent::Ready))
        .await;
    wait_for_file(&out);
    let env = read_env(&out);
    let port: u16 = env["NITRO_API_URL"]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = env["NITRO_API_TOKEN"].clone();
    let api = |m: &str, p: &str, b: &[u8]| http(port, m, p, &token, b);

    assert_eq!(http(port, "GET", "/v1/storage", "wrong", b"").0, 401);
    assert_eq!(api("PUT", "/v1/storage/users/a", b"alice's state").0, 204);
    assert_eq!(api("PUT", "/v1/storage/users/b", b"bob's state").0, 204);
    assert_eq!(
        api("GET", "/v1/storage/users/a", b""),
        (200, b"alice's state".to_vec())
    );
    let (status, list) = api("GET", "/v1/storage", b"");
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&list).unwrap();
    assert_eq!(list["keys"], serde_json::json!(["users/a", "users/b"]));
    assert_eq!(api("GET", "/v1/storage/users/nobody", b"").0, 404);
    assert_eq!(api("GET", "/v1/storage/../x", b"").0, 400);

    assert_eq!(api("PUT", "/v1/secrets/signing-key", b"dyn-secret").0, 204);
    assert_eq!(
        api("GET", "/v1/secrets/signing-key", b""),
        (200, b"dyn-secret".to_vec())
    );
    // Same name, other kind: not the secret.
    assert_eq!(api("GET", "/v1/storage/signing-key", b"").0, 404);
    assert_eq!(
        api("PUT", "/v1/secrets/too-big", &vec![0u8; 64 * 1024 + 1]).0,
        413
    );

    // At rest it is sealed.
    let s3 = s3(&w.admin);
    let get = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            s3.get_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec()
        }
    };
    let put = |key: &'static str, body: Vec<u8>| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key(key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        }
    };
    let a = get("enclave/data/users/a").await;
    assert!(!a.windows(5).any(|w| w == b"alice"));
    // A copy under another name does not open (AAD and KMS context bind the name).
    put("enclave/data/users/b", a.clone()).await;
    assert_eq!(api("GET", "/v1/storage/users/b", b"").0, 422);
    // One flipped ciphertext byte does not open.
    let mut tampered = a.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    put("enclave/data/users/a", tampered).await;
    assert_eq!(api("GET", "/v1/storage/users/a", b"").0, 422);
    put("enclave/data/users/a", a).await;
    assert_eq!(
        api("GET", "/v1/storage/users/a", b""),
        (200, b"alice's state".to_vec())
    );

    assert_eq!(api("DELETE", "/v1/storage/users/a", b"").0, 204);
    assert_eq!(api("GET", "/v1/storage/users/a", b"").0, 404);
    assert_eq!(api("DELETE", "/v1/secrets/signing-key", b"").0, 204);
    assert_eq!(api("GET", "/v1/secrets/signing-key", b"").0, 404);

    // Attestation for the app, NSM limits enforced.
    let (status, doc) = api("POST", "/v1/attestation", br#"{"nonce":"AAECAw=="}"#);
    assert_eq!(status, 200);
    assert_eq!(doc[0], 0x84, "a COSE_Sign1 array");
    let big = "A".repeat(700);
    assert_eq!(
        api(
            "POST",
            "/v1/attestation",
            format!(r#"{{"nonce":"{big}"}}"#).as_bytes()
        )
        .0,
        400
    );

    unsafe { libc_kill(child.id() as i32, 15) };
    let events = w.events_until(30, is_exit).await;
    // sh -c ... sleep: TERM ends it (by signal, as sh does not trap).
    assert!(matches!(
        events.last(),
        Some(EnclaveEvent::AppExited { .. })
    ));
    wait_exit(child, 30);
    let counters = events.iter().rev().find_map(|e| match e {
        EnclaveEvent::Counters(c) => Some(c.clone()),
        _ => None,
    });
    let counters = counters.expect("final counters relayed");
    assert!(
        counters["storage_writes"] >= 2 && counters["secret_reads"] >= 2,
        "{counters:?}"
    );
    assert!(
        counters["storage_errors"] >= 2 && counters["http_errors"] >= 5,
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_reaches_the_app_and_the_http_readiness_probe_gates_ready() {
    let app_port = free_port();
    let mut w = World::start_with_ingress(&[app_port]).await;
    let mut config = w.runtime_config(&[], ADMITTED_PCR2);
    config.ingress_ports = vec![app_port];
    config.app.readiness = Some(companion_config::Readiness::Http {
        port: app_port,
        path: "/".into(),
        timeout_secs: 60,
    });
    let site = w.path("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("index.html"), "served from the enclave").unwrap();
    // The app listens a second after it starts: ready must wait for it.
    let child = w.spawn(
        &config,
        &format!(
            "cd {} && sleep 1 && exec python3 -m http.server {app_port} --bind 127.0.0.1",
            site.display()
        ),
    );
    let events = w
        .events_until(120, |e| matches!(e, EnclaveEvent::Ready))
        .await;
    let ready = events.iter().find_map(|e| match e {
        EnclaveEvent::Stage { stage, detail } if stage == "ready" => detail.clone(),
        _ => None,
    });
    assert!(ready.unwrap().contains("answered 200"), "{events:#?}");
    let host = w.services.as_ref().unwrap().ingress_ports()[0].local_addr;
    let (status, body) =
        tokio::task::spawn_blocking(move || http(host.port(), "GET", "/index.html", "", b""))
            .await
            .unwrap();
    assert_eq!((status, body), (200, b"served from the enclave".to_vec()));
    unsafe { libc_kill(child.id() as i32, 15) };
    w.events_until(30, is_exit).await;
    wait_exit(child, 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_reported_and_the_app_runs_as_the_image_user_in_its_workdir() {
    let mut w = World::start().await;
    let mut config = w.runtime_config(&[], ADMITTED_PCR2);
    let work = w.path("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    config.app.user = Some("65534:65533".into());
    config.app.working_dir = Some(work.to_str().unwrap().into());
    let child = w.spawn(
        &config,
        "echo \"$(id -u):$(id -g):$(id -G):$(pwd)\" > who; kill -SEGV $$",
    );
    let events = w.events_until(120, is_exit).await;
    assert_eq!(
        events.last(),
        Some(&EnclaveEvent::AppExited {
            code: None,
            signal: Some(11)
        })
    );
    assert_eq!(wait_exit(child, 30).0, Some(128 + 11));
    let who = std::fs::read_to_string(work.join("who")).unwrap();
    assert_eq!(who.trim(), format!("65534:65533:65533:{}", work.display()));
}
