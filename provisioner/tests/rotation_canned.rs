//! The two-step rotation inside `apply`, with canned AWS responses (moto cannot execute a key
//! policy update): step 1 executes the planned change set admitting the running and the new
//! release; once it succeeds (instances rolled), step 2 creates and executes a change set whose
//! key policy admits only the new release. `--keep-old-release` stops after step 1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeType, ExecutionStatus, Output, ResourceChange,
    Stack, StackStatus,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use nitro_provision::aws::events::{EventSink, StackEvent};
use nitro_provision::aws::Aws;
use nitro_provision::reconcile::saved_plan::{SavedPlan, FORMAT_VERSION};
use nitro_provision::reconcile::{
    apply, online_plan, parameters, parameters_sha256, AwsArgs, Prepared,
};
use nitro_provision::render::Templates;

struct Quiet;
impl EventSink for Quiet {
    fn event(&self, _: &StackEvent) {}
}

fn enclave_release_sids(template: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_saphyr::from_str(template).unwrap();
    let policy: serde_json::Value = serde_json::from_str(
        doc["Resources"]["EnclaveKey"]["Properties"]["KeyPolicy"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s["Sid"]
                .as_str()
                .filter(|s| s.starts_with("EnclaveRelease"))
                .map(str::to_string)
        })
        .collect()
}

/// Runs apply on a stack whose deployed template admits only `old`; returns the template bodies
/// of the change sets apply created itself, and what it said.
fn rotate(keep_old: bool) -> (Vec<String>, Vec<String>, Prepared) {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let loaded = nitro_provision::config::load(&config).unwrap();
    let build_dir = dir.path().join("build");
    // The same build every time (the second and later calls reuse it by fingerprint).
    let prepare = || {
        let templates = Templates::load(None).unwrap();
        Prepared::new(&loaded, templates, &build_dir, &nitro_eif::NoProgress).unwrap()
    };
    let prepared = prepare();
    let new = prepared.new_release.clone();
    let mut old = new.clone();
    old.pcrs.insert(2, "ab".repeat(48));
    old.pcrs.insert(0, "cd".repeat(48));
    // What CloudFormation holds: the same deployment, admitting and running the old release.
    let deployed = prepare()
        .with_releases(vec![old.clone()])
        .unwrap()
        .rendered
        .template;
    // What the reviewed plan contained: both releases (its template hash is checked).
    let (planned, rotation) = {
        let p = prepare();
        let before = online_plan::Deployed {
            pcrs: old.pcrs.clone(),
            key_policy: None,
            releases: vec![old.clone()],
        };
        online_plan::rotate(p, Some(&before), keep_old).unwrap()
    };
    assert_eq!(rotation.admit, vec![old.clone(), new.clone()]);
    assert_eq!(
        enclave_release_sids(&planned.rendered.template).len(),
        2,
        "step 1 admits both"
    );

    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = created.clone();
    let create =
        mock!(aws_sdk_cloudformation::Client::create_change_set).then_compute_output(move |req| {
            sink.lock()
                .unwrap()
                .push(req.template_body().unwrap_or_default().to_string());
            CreateChangeSetOutput::builder()
                .id("arn:cs/finish")
                .stack_id("arn:stack/hello")
                .build()
        });
    let describe_cs =
        mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .execution_status(ExecutionStatus::Available)
                .changes(
                    Change::builder()
                        .r#type(ChangeType::Resource)
                        .resource_change(
                            ResourceChange::builder()
                                .action(ChangeAction::Modify)
                                .logical_resource_id("EnclaveKey")
                                .resource_type("AWS::KMS::Key")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let stacks = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
        DescribeStacksOutput::builder()
            .stacks(
                Stack::builder()
                    .stack_id("arn:stack/hello")
                    .stack_name("hello-enclave")
                    .stack_status(StackStatus::UpdateComplete)
                    .creation_time(aws_smithy_types::DateTime::from_secs(0))
                    .outputs(
                        Output::builder()
                            .output_key("KeyArn")
                            .output_value("arn:key")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let body = deployed.clone();
    let template = mock!(aws_sdk_cloudformation::Client::get_template).then_output(move || {
        GetTemplateOutput::builder()
            .template_body(body.clone())
            .build()
    });
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let execute = mock!(aws_sdk_cloudformation::Client::execute_change_set)
        .then_output(|| ExecuteChangeSetOutput::builder().build());
    let cfn = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        &[&create, &describe_cs, &stacks, &template, &events, &execute]
    );
    let who = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .account("123456789012")
            .build()
    });
    let sts = mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&who]);
    // The artifacts are already in the bucket: nothing is uploaded.
    let head = mock!(aws_sdk_s3::Client::head_object)
        .then_output(|| aws_sdk_s3::operation::head_object::HeadObjectOutput::builder().build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, &[&head]);
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let aws = Aws {
        cfn,
        s3,
        kms: aws_sdk_kms::Client::new(&conf),
        sts,
        region: "us-east-1".into(),
    };

    let saved = SavedPlan {
        format_version: FORMAT_VERSION.into(),
        deployment: "hello-enclave".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        stack_name: "hello-enclave".into(),
        stack_id: "arn:stack/hello".into(),
        change_set_arn: "arn:cs/planned".into(),
        phase: "full".into(),
        template_sha256: planned.template_sha256.clone(),
        parameters_sha256: parameters_sha256(&parameters()),
        config_sha256: loaded.sha256.clone(),
        artifacts: vec![],
        created_at_unix: 0,
        keep_old_release: keep_old,
        finish_rotation: rotation.then_finish,
    };
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = said.clone();
    let say = move |s: &str| log.lock().unwrap().push(s.to_string());
    let args = AwsArgs {
        profile: None,
        endpoint_url: None,
        poll: Duration::from_millis(1),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prepared = prepare();
    rt.block_on(async {
        let prepared = apply::check_saved(&loaded, prepared, &saved, &aws).await?;
        apply::apply_plan(prepared, &saved, &aws, &args, keep_old, &Quiet, &say).await
    })
    .unwrap();
    let created = created.lock().unwrap().clone();
    let said = said.lock().unwrap().clone();
    (created, said, planned)
}

#[test]
fn rotation_drops_the_old_release_after_the_new_one_runs() {
    let (created, said, planned) = rotate(false);
    assert_eq!(created.len(), 1, "one extra change set: step 2");
    let sids = enclave_release_sids(&created[0]);
    assert_eq!(
        sids.len(),
        1,
        "step 2 admits only the new release: {sids:?}"
    );
    assert!(enclave_release_sids(&planned.rendered.template).contains(&sids[0]));
    assert!(
        said.iter().any(|s| s.contains("dropping the old release")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s.contains("already present")),
        "uploads skipped by digest: {said:?}"
    );
}

#[test]
fn keep_old_release_stops_after_step_one() {
    let (created, said, _) = rotate(true);
    assert!(
        created.is_empty(),
        "no second change set with --keep-old-release"
    );
    assert!(!said.iter().any(|s| s.contains("dropping")), "{said:?}");
}
