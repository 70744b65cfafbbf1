//! Driving the real binary against a real moto server, and reading the result back through the
//! AWS API.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::path::Path;
use std::process::{Command, Output, Stdio};

use harness::Moto;
use nitro_provision::aws::{stack, Aws, AwsOptions};

/// Runs `nitro-provision -f CONFIG ARGS…` against `moto` (no terminal, no profile).
pub fn np(moto: &Moto, config: &Path, args: &[&str]) -> Output {
    np_env(moto, config, args, &[])
}

/// As `np`, with extra environment variables.
pub fn np_env(moto: &Moto, config: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
        .arg("-f")
        .arg(config)
        .args(args)
        .envs(moto.env())
        .env_remove("AWS_PROFILE")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
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

/// stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// SDK clients on `moto` for the test's own checks.
pub fn aws(moto: &Moto) -> (tokio::runtime::Runtime, Aws) {
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ] {
        std::env::set_var(k, v);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let aws = rt
        .block_on(Aws::connect(&AwsOptions {
            region: "us-east-1".into(),
            profile: None,
            endpoint_url: Some(moto.url()),
            max_attempts: 1,
        }))
        .expect("moto clients");
    (rt, aws)
}

/// A VPC with two subnets, made by the test: moto never deletes a route table created through
/// CloudFormation, so a stack-created VPC cannot be destroyed there. The deployment then uses
/// `instance.network.vpc_id/subnet_ids` (the existing-network mode).
pub fn existing_network(rt: &tokio::runtime::Runtime, aws: &Aws, config: &Path) {
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

/// `plan --out PATH` (which must succeed); the saved plan as JSON.
pub fn save_plan(moto: &Moto, config: &Path, path: &Path) -> serde_json::Value {
    let o = np(moto, config, &["plan", "--out", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The stack's change sets: (ARN, execution status).
pub fn change_sets(rt: &tokio::runtime::Runtime, aws: &Aws, stack: &str) -> Vec<(String, String)> {
    rt.block_on(stack::list_change_sets(aws, stack))
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.arn, c.execution_status))
        .collect()
}

/// The stack's status, `None` when it does not exist.
pub fn stack_status(rt: &tokio::runtime::Runtime, aws: &Aws, name: &str) -> Option<String> {
    rt.block_on(stack::describe(aws, name))
        .unwrap()
        .map(|s| s.status)
}

/// The live policy of the stack's key.
pub fn live_key_policy(
    rt: &tokio::runtime::Runtime,
    aws: &Aws,
    stack_name: &str,
) -> (String, String) {
    rt.block_on(async {
        let info = stack::describe(aws, stack_name).await.unwrap().unwrap();
        let key_id = stack::resources(aws, &info.id).await.unwrap()["EnclaveKey"]
            .1
            .clone();
        let policy = nitro_provision::aws::kms::get_key_policy(aws, &key_id)
            .await
            .unwrap();
        (key_id, policy)
    })
}
