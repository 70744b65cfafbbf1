//! A local run's dev secrets through the real runtime binary and the real host services: plain
//! values from the supervisor's file reach the app's environment only when both the measured
//! config and the supervisor ask for them (see `common`).

mod common;

use common::*;
use companion_config::{DevSecretsService, SecretsSource};
use enclave_supervisor::services::EnclaveEvent;

fn is_exit(e: &EnclaveEvent) -> bool {
    matches!(
        e,
        EnclaveEvent::AppExited { .. } | EnclaveEvent::Fatal { .. }
    )
}

fn stage_detail<'a>(events: &'a [EnclaveEvent], name: &str) -> Option<&'a str> {
    events.iter().find_map(|e| match e {
        EnclaveEvent::Stage { stage, detail } if stage == name => detail.as_deref(),
        _ => None,
    })
}

/// A world whose supervisor serves `contents` as its dev secrets file.
async fn world_with_file(contents: &str) -> World {
    World::start_with(|s| {
        let file = s.state_dir.with_file_name("secrets.local.env");
        std::fs::write(&file, contents).unwrap();
        s.link.dev_secrets = Some(DevSecretsService { file });
    })
    .await
}

/// An admitted runtime config declaring DB_PASSWORD, asking for dev secrets.
fn local_dev_config(w: &World) -> companion_config::RuntimeConfig {
    let mut config = w.runtime_config(&[("/demo/db-password", "DB_PASSWORD")], ADMITTED_PCR2);
    config.secrets_source = SecretsSource::LocalDev;
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_secrets_reach_the_app_env_without_credentials_or_kms() {
    let mut w = world_with_file("# local only\nDB_PASSWORD=dev-hunter2\nUNUSED=x\n").await;
    let config = local_dev_config(&w);
    let out = w.path("app-env.txt");
    let child = w.spawn(&config, &format!("env > {}; exit 0", out.display()));
    let events = w.events_until(120, is_exit).await;
    let (code, stderr) = wait_exit(child, 30);
    assert_eq!(code, Some(0), "{stderr}\n{events:#?}");
    let env = read_env(&out);
    assert_eq!(env["DB_PASSWORD"], "dev-hunter2");
    assert!(!env.contains_key("UNUSED"), "only the declared secrets");
    let detail = stage_detail(&events, "secrets").expect("a secrets stage");
    assert!(detail.contains("LOCAL DEV"), "{detail}");
    assert_eq!(stage_detail(&events, "credentials"), None, "{events:#?}");
    assert!(!stderr.contains("dev-hunter2"), "{stderr}");
    let log = w.awsim.log();
    assert!(
        !log.iter().any(|e| {
            let target = e["target"].as_str().unwrap_or_default();
            target.ends_with(".Decrypt") || target.ends_with(".GetParameter")
        }),
        "a local run never asks SSM or KMS: {log:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_value_or_a_supervisor_without_the_file_stops_the_boot() {
    let mut w = world_with_file("OTHER=1\n").await;
    let config = local_dev_config(&w);
    let marker = w.path("app-ran");
    let child = w.spawn(&config, &format!("touch {}", marker.display()));
    let events = w.events_until(60, is_exit).await;
    wait_exit(child, 30);
    match events.last() {
        Some(EnclaveEvent::Fatal { stage, message }) => {
            assert_eq!(stage, "secrets");
            assert!(
                message.contains("has no value for DB_PASSWORD"),
                "{message}"
            );
        }
        other => panic!("expected fatal, got {other:?}"),
    }
    assert!(!marker.exists(), "the app ran without its secrets");

    // An instance's supervisor offers no such service.
    let mut w = World::start().await;
    let config = local_dev_config(&w);
    let child = w.spawn(&config, &format!("touch {}", marker.display()));
    let events = w.events_until(60, is_exit).await;
    wait_exit(child, 30);
    match events.last() {
        Some(EnclaveEvent::Fatal { stage, message }) => {
            assert_eq!(stage, "secrets");
            assert!(message.contains("offers no dev secrets"), "{message}");
        }
        other => panic!("expected fatal, got {other:?}"),
    }
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn production_refuses_dev_secrets() {
    let mut w = world_with_file("DB_PASSWORD=dev-hunter2\n").await;
    let mut config = local_dev_config(&w);
    config.production = true;
    let out = w.path("app-env.txt");
    let child = w.spawn(&config, &format!("env > {}", out.display()));
    let events = w.events_until(60, is_exit).await;
    let (code, _) = wait_exit(child, 30);
    match events.last() {
        Some(EnclaveEvent::Fatal { stage, message }) => {
            assert_eq!(stage, "config");
            assert!(message.contains("secrets_source"), "{message}");
        }
        other => panic!("expected fatal, got {other:?}"),
    }
    assert_eq!(code, Some(1));
    assert!(!out.exists());
}
