//! plan → apply → plan (no changes) → config change → plan (exit 2) → apply → destroy against a
//! real moto server, asserting through the AWS API. Plus the CI safety rails: saved-plan
//! staleness, non-TTY prompt refusal, and uploads skipped by digest.

mod moto_support;

use std::path::{Path, PathBuf};

use harness::Moto;
use moto_support::{aws, existing_network, live_key_policy, np, save_plan, text};
use nitro_provision::aws::stack;
use sha2::{Digest, Sha256, Sha384};

fn deployment(dir: &Path) -> PathBuf {
    harness::example_deployment(dir)
}

#[test]
fn plan_apply_replan_change_apply_destroy() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path());
    let (rt, aws) = aws(&moto);
    existing_network(&rt, &aws, &config);
    let saved = dir.path().join("plan.json");

    let o = np(
        &moto,
        &config,
        &[
            "plan",
            "--detailed-exitcode",
            "--out",
            saved.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "a new stack has changes");
    assert!(text(&o).contains("+ EnclaveKey"));

    // The cached EIF is changed on disk after the plan (same size and mtime): apply rebuilds it
    // before uploading, so the bucket gets exactly the planned bytes (checked below).
    let eif = dir
        .path()
        .join(".nitro-provision/build/hello-enclave/hello-enclave.eif");
    harness::corrupt_keeping_mtime(&eif, 100);

    let outputs = dir.path().join("outputs.json");
    let o = np(
        &moto,
        &config,
        &[
            "apply",
            saved.to_str().unwrap(),
            "--outputs-file",
            outputs.to_str().unwrap(),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "apply of a saved plan needs no prompt"
    );
    assert!(text(&o).contains("eif: uploaded"));

    // Through the AWS API: the stack, the key with exactly the rendered policy, the artifacts.
    let plan_json = np(&moto, &config, &["plan", "--offline", "--json"]);
    let planned: serde_json::Value = serde_json::from_slice(&plan_json.stdout).unwrap();
    let live: serde_json::Value =
        serde_json::from_str(&live_key_policy(&rt, &aws, "hello-enclave").1).unwrap();
    assert_eq!(
        live, planned["key_policy"],
        "the key carries the rendered policy"
    );
    assert!(live.to_string().contains("kms:RecipientAttestation:PCR0"));
    rt.block_on(async {
        let info = stack::describe(&aws, "hello-enclave")
            .await
            .unwrap()
            .expect("stack exists");
        assert!(
            info.status.ends_with("_COMPLETE") && !info.status.contains("ROLLBACK"),
            "{}",
            info.status
        );
        for a in planned["artifacts"].as_array().unwrap() {
            let key = a["key"].as_str().unwrap();
            let object = aws
                .s3
                .get_object()
                .bucket("hello-enclave-123456789012-us-east-1")
                .key(key)
                .send()
                .await
                .unwrap();
            let body = object.body.collect().await.unwrap().into_bytes();
            let digest = a["digest"].as_str().unwrap();
            let actual = match digest.split_once(':').unwrap().0 {
                "sha384" => format!("sha384:{}", hex::encode(Sha384::digest(&body))),
                _ => format!("sha256:{}", hex::encode(Sha256::digest(&body))),
            };
            assert_eq!(
                actual, digest,
                "{key}: the uploaded bytes are the planned ones"
            );
        }
    });
    // --outputs-file: every output the template declares, a string or null (moto reports no
    // outputs after a change set: apply says so), never a made-up entry.
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&outputs).unwrap()).unwrap();
    let keys: Vec<&str> = written
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "BucketName",
            "InstanceId",
            "KeyAlias",
            "KeyArn",
            "LogGroupName",
            "PinnedPcrs",
            "RoleArn",
            "SupervisorEndpoint"
        ]
    );
    assert!(written
        .as_object()
        .unwrap()
        .values()
        .all(|v| v.is_null() || v.as_str().is_some_and(|s| !s.is_empty())));
    if written.as_object().unwrap().values().any(|v| v.is_null()) {
        assert!(
            text(&o).contains("CloudFormation reports no value for")
                && text(&o).contains("--outputs-file has them as null"),
            "{}",
            text(&o)
        );
    }

    // moto runs no supervisor, so no instance has reported health: status exits 1.
    let o = np(&moto, &config, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["healthy"], false);
    assert!(
        status["stack"]["status"]
            .as_str()
            .unwrap()
            .ends_with("_COMPLETE"),
        "{status}"
    );
    assert_eq!(status["compute"][0]["type"], "AWS::EC2::Instance");
    assert!(status["outputs"].as_object().is_some_and(|o| !o.is_empty()));

    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "nothing changed since apply");
    assert!(text(&o).contains("No changes"));

    // A new image is a rotation: both releases admitted (one statement each), PCRs old -> new,
    // and the key policy diff reviewers approve. (moto cannot execute a key policy update, so
    // this step is planned only.)
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        original.replace("GREETING: hello", "GREETING: bonjour"),
    )
    .unwrap();
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("PCR changes (a rotation)") && t.contains("PCR2"),
        "{t}"
    );
    assert!(
        t.contains("rotation: the key policy admits the running and the new release"),
        "{t}"
    );
    assert!(t.contains("KMS key policy changes"), "{t}");
    let o = np(&moto, &config, &["plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let admitted = doc["key_policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Sid"].as_str().unwrap().starts_with("EnclaveRelease"))
        .count();
    assert_eq!(admitted, 2, "transitional: one statement per release");
    std::fs::write(&config, original).unwrap();

    // A change moto can update in place: the log group's retention.
    let changed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("retention_days: 30", "retention_days: 60");
    std::fs::write(&config, changed).unwrap();
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("~ LogGroup"),
        "expected an in-place LogGroup update"
    );

    let o = np(&moto, &config, &["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        text(&o).contains("already present (same digest), skipped"),
        "uploads are skipped by digest"
    );

    let o = np(&moto, &config, &["destroy", "--yes"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o).contains("scheduled for deletion after 30 days"));
    rt.block_on(async {
        assert!(
            stack::describe(&aws, "hello-enclave")
                .await
                .unwrap()
                .is_none(),
            "stack deleted"
        );
        let buckets = aws.s3.list_buckets().send().await.unwrap();
        assert!(buckets
            .buckets()
            .iter()
            .all(|b| b.name() != Some("hello-enclave-123456789012-us-east-1")));
    });
}

#[test]
fn saved_plan_is_refused_when_stale() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path());
    let saved = dir.path().join("plan.json");
    save_plan(&moto, &config, &saved);
    let changed = std::fs::read_to_string(&config)
        .unwrap()
        .replace("team: platform", "team: security");
    std::fs::write(&config, changed).unwrap();
    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("saved plan is stale: enclave.yaml changed"),
        "{}",
        text(&o)
    );
}

#[test]
fn prompts_fail_fast_without_a_terminal() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path());
    let o = np(&moto, &config, &["apply"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("stdin is not a terminal: pass --yes"),
        "{}",
        text(&o)
    );
    assert_eq!(
        np(&moto, &config, &["apply", "--yes"]).status.code(),
        Some(0)
    );
    let o = np(&moto, &config, &["destroy"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("destroy needs confirmation"),
        "{}",
        text(&o)
    );
}

#[test]
fn refuses_credentials_of_another_account() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = deployment(dir.path());
    let other = std::fs::read_to_string(&config)
        .unwrap()
        .replace("account: \"123456789012\"", "account: \"999999999999\"");
    std::fs::write(&config, other).unwrap();
    let o = np(&moto, &config, &["plan"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("credentials are for account 123456789012"),
        "{}",
        text(&o)
    );
}
