//! plan → apply → plan (no changes) → config change → plan (exit 2) → apply → destroy against a
//! real moto server, asserting through the AWS API. Plus the CI safety rails: saved-plan
//! staleness, non-TTY prompt refusal, and uploads skipped by digest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use harness::Moto;
use nitro_provision::aws::{stack, Aws, AwsOptions};

fn deployment(dir: &Path) -> PathBuf {
    harness::example_deployment(dir)
}

fn np(moto: &Moto, config: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .arg("-f")
        .arg(config)
        .args(args)
        .envs(moto.env())
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .expect("run nitro-provision");
    eprintln!(
        "$ nitro-provision {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn aws(moto: &Moto) -> (tokio::runtime::Runtime, Aws) {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt.block_on(Aws::connect(&AwsOptions {
        region: "us-east-1".into(),
        profile: None,
        endpoint_url: Some(moto.url()),
        max_attempts: 1,
    }));
    (rt, aws)
}

/// A VPC with two subnets, made by the test: moto never deletes a route table created through
/// CloudFormation, so a stack-created VPC cannot be destroyed there. The deployment then uses
/// `instance.network.vpc_id/subnet_ids` (the existing-network mode).
fn existing_network(rt: &tokio::runtime::Runtime, aws: &Aws, config: &Path) {
    let template = serde_json::json!({
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.9.0.0/16"}},
            "A": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.9.0.0/24"}},
            "B": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.9.1.0/24"}}
        }
    });
    let ids = rt.block_on(async {
        aws.cfn
            .create_stack()
            .stack_name("test-network")
            .template_body(template.to_string())
            .send()
            .await
            .unwrap();
        stack::resources(aws, "test-network").await.unwrap()
    });
    let text = std::fs::read_to_string(config).unwrap().replace(
        "    vpc_cidr: 10.80.0.0/16",
        &format!(
            "    vpc_id: {}\n    subnet_ids: [{}, {}]",
            ids["Vpc"].1, ids["A"].1, ids["B"].1
        ),
    );
    std::fs::write(config, text).unwrap();
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
        let resources = stack::resources(&aws, &info.id).await.unwrap();
        let key_id = &resources["EnclaveKey"].1;
        let policy = aws
            .kms
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send()
            .await
            .unwrap();
        let live: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
        assert_eq!(
            live, planned["key_policy"],
            "the key carries the rendered policy"
        );
        assert!(live.to_string().contains("kms:RecipientAttestation:PCR0"));
        for a in planned["artifacts"].as_array().unwrap() {
            let key = a["key"].as_str().unwrap();
            aws.s3
                .head_object()
                .bucket("hello-enclave-123456789012-us-east-1")
                .key(key)
                .send()
                .await
                .unwrap();
        }
    });
    assert!(
        std::fs::read_to_string(&outputs)
            .unwrap()
            .contains("EnclaveKey")
            || std::fs::read_to_string(&outputs)
                .unwrap()
                .contains("KeyArn")
    );

    let o = np(&moto, &config, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["exists"], true);
    assert!(
        status["status"].as_str().unwrap().ends_with("_COMPLETE"),
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
    assert_eq!(
        np(&moto, &config, &["plan", "--out", saved.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
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
