//! CloudFormation paths moto cannot produce (replacements, per-resource events, rollbacks,
//! termination protection), driven by canned SDK responses through the real client stack.

use std::cell::RefCell;
use std::time::Duration;

use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeType, ExecutionStatus, Replacement,
    RequiresRecreation, ResourceChange, ResourceChangeDetail, ResourceStatus,
    ResourceTargetDefinition, Stack, StackEvent, StackStatus,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use nitro_provision::aws::events::{EventSink, StackEvent as Event};
use nitro_provision::aws::stack::{self, ChangeSetOutcome, ChangeSetRequest, StackInfo};
use nitro_provision::aws::Aws;
use nitro_provision::reconcile::saved_plan::{SavedPlan, FORMAT_VERSION};
use nitro_provision::reconcile::{apply, destroy, online_plan, AwsArgs};

mod canned;

/// An `Aws` whose CloudFormation client answers from `cfn`; the other clients are never called.
fn aws(cfn: Client) -> Aws {
    use aws_config::{BehaviorVersion, Region};
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    aws_with_logs(cfn, aws_sdk_cloudwatchlogs::Client::new(&conf))
}

/// As `aws`, with CloudWatch Logs answering from `logs`.
fn aws_with_logs(cfn: Client, logs: aws_sdk_cloudwatchlogs::Client) -> Aws {
    use aws_config::{BehaviorVersion, Region};
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    Aws {
        cfn,
        s3: aws_sdk_s3::Client::new(&conf),
        kms: aws_sdk_kms::Client::new(&conf),
        sts: aws_sdk_sts::Client::new(&conf),
        logs,
        region: "us-east-1".into(),
    }
}

fn args() -> AwsArgs {
    AwsArgs {
        profile: None,
        endpoint_url: None,
        poll: Duration::from_millis(1),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn modify(id: &str, ty: &str, replacement: Replacement, property: &str) -> Change {
    Change::builder()
        .r#type(ChangeType::Resource)
        .resource_change(
            ResourceChange::builder()
                .action(ChangeAction::Modify)
                .logical_resource_id(id)
                .resource_type(ty)
                .replacement(replacement)
                .details(
                    ResourceChangeDetail::builder()
                        .target(
                            ResourceTargetDefinition::builder()
                                .name(property)
                                .requires_recreation(RequiresRecreation::Always)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

#[test]
fn replacements_are_reported_as_destroy_then_create() {
    let create = mock!(Client::create_change_set).then_output(|| {
        CreateChangeSetOutput::builder()
            .id("arn:cs/1")
            .stack_id("arn:stack/demo")
            .build()
    });
    let describe = mock!(Client::describe_change_set).then_output(|| {
        DescribeChangeSetOutput::builder()
            .status(ChangeSetStatus::CreateComplete)
            .execution_status(ExecutionStatus::Available)
            .changes(modify(
                "Instance",
                "AWS::EC2::Instance",
                Replacement::True,
                "UserData",
            ))
            .changes(modify(
                "InstanceSecurityGroup",
                "AWS::EC2::SecurityGroup",
                Replacement::Conditional,
                "GroupDescription",
            ))
            .changes(modify(
                "LogGroup",
                "AWS::Logs::LogGroup",
                Replacement::False,
                "RetentionInDays",
            ))
            .build()
    });
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        &[&create, &describe]
    );
    let aws = aws(client);
    let req = ChangeSetRequest {
        stack_name: "demo".into(),
        change_set_name: "cs".into(),
        template_body: "{}".into(),
        parameters: Default::default(),
        tags: vec![],
        create: false,
        description: String::new(),
    };
    let outcome = rt()
        .block_on(stack::create_change_set(
            &aws,
            &req,
            Duration::from_millis(1),
        ))
        .unwrap();
    let ChangeSetOutcome::Ready { changes, .. } = outcome else {
        panic!("expected changes")
    };
    assert_eq!(changes[0].actions, ["delete", "create"]);
    assert_eq!(changes[0].properties, ["UserData"]);
    assert!(changes[1].conditional_replacement);
    assert_eq!(changes[2].actions, ["update"]);

    let (resource_changes, summary) = online_plan::plan_changes(&changes);
    assert_eq!((summary.add, summary.change, summary.destroy), (1, 2, 1));
    let style = nitro_provision::output::Style::plain();
    let mut plan = nitro_provision::plan::Plan::offline(&render_example());
    plan.mode = "online";
    plan.resource_changes = resource_changes;
    plan.summary = summary;
    plan.change_set = Some(nitro_provision::plan::ChangeSetInfo {
        arn: "arn:cs/1".into(),
        phase: "full".into(),
    });
    let text = nitro_provision::plan::to_text(&plan, &style);
    assert!(text.contains("-/+ Instance"), "{text}");
    assert!(text.contains("~ LogGroup"), "{text}");
    assert!(
        text.contains("~ InstanceSecurityGroup  [security]"),
        "{text}"
    );
}

fn render_example() -> nitro_provision::render::Rendered {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let loaded = nitro_provision::config::load(&config).unwrap();
    let templates = nitro_provision::render::Templates::load(None).unwrap();
    let dep = nitro_provision::render::Deployment::new(loaded.config, Default::default());
    nitro_provision::render::render(&templates, &dep).unwrap()
}

fn event(id: &str, logical: &str, ty: &str, status: ResourceStatus, reason: &str) -> StackEvent {
    StackEvent::builder()
        .event_id(id)
        .stack_id("arn:stack/demo")
        .stack_name("demo")
        .logical_resource_id(logical)
        .resource_type(ty)
        .resource_status(status)
        .resource_status_reason(reason)
        .build()
}

fn stack_status(status: StackStatus) -> DescribeStacksOutput {
    DescribeStacksOutput::builder()
        .stacks(
            Stack::builder()
                .stack_id("arn:stack/demo")
                .stack_name("demo")
                .stack_status(status)
                .creation_time(aws_smithy_types::DateTime::from_secs(0))
                .build(),
        )
        .build()
}

#[derive(Default)]
struct Recorder(RefCell<Vec<Event>>);

impl EventSink for Recorder {
    fn event(&self, e: &Event) {
        self.0.borrow_mut().push(e.clone());
    }
}

fn saved() -> SavedPlan {
    SavedPlan {
        format_version: FORMAT_VERSION.into(),
        deployment: "demo".into(),
        region: "us-east-1".into(),
        account: "123456789012".into(),
        stack_name: "demo".into(),
        phase: "full".into(),
        template_sha256: String::new(),
        parameters_sha256: String::new(),
        config_sha256: String::new(),
        deployed_template_sha256: None,
        key_id: None,
        live_key_policy_sha256: None,
        artifacts: vec![],
        created_at_unix: 0,
        keep_old_release: false,
        finish_rotation: false,
        adopt_stack: false,
        content_sha256: String::new(),
        stack_id: "arn:stack/demo".into(),
        change_set_arn: Some("arn:cs/1".into()),
        digest: String::new(),
    }
}

/// An update whose instance fails: events stream once each, oldest first; the error names the
/// first failure and the rollback state.
fn failed_update(final_status: StackStatus) -> (Result<(), String>, Vec<Event>) {
    failed_update_with(
        final_status,
        "We currently do not have sufficient m6i.xlarge capacity",
        None,
    )
}

/// As `failed_update`, with the instance's failure `reason` and CloudWatch Logs from `logs`.
fn failed_update_with(
    final_status: StackStatus,
    reason: &str,
    logs: Option<aws_sdk_cloudwatchlogs::Client>,
) -> (Result<(), String>, Vec<Event>) {
    let old = event(
        "e0",
        "demo",
        "AWS::CloudFormation::Stack",
        ResourceStatus::UpdateComplete,
        "",
    );
    let e1 = event(
        "e1",
        "demo",
        "AWS::CloudFormation::Stack",
        ResourceStatus::UpdateInProgress,
        "User Initiated",
    );
    let e2 = event(
        "e2",
        "Instance",
        "AWS::EC2::Instance",
        ResourceStatus::UpdateInProgress,
        "",
    );
    let e3 = event(
        "e3",
        "Instance",
        "AWS::EC2::Instance",
        ResourceStatus::UpdateFailed,
        reason,
    );
    let e4 = event(
        "e4",
        "LaunchTemplate",
        "AWS::EC2::LaunchTemplate",
        ResourceStatus::UpdateFailed,
        "Resource update cancelled",
    );
    let e5 = event(
        "e5",
        "demo",
        "AWS::CloudFormation::Stack",
        ResourceStatus::from(final_status.as_str()),
        "",
    );
    let pages = vec![
        vec![old.clone()],
        vec![e2.clone(), e1.clone(), old.clone()],
        vec![e5, e4, e3, e2, e1, old],
    ];
    let mut events = mock!(Client::describe_stack_events).sequence();
    for p in pages {
        events = events.output(move || {
            DescribeStackEventsOutput::builder()
                .set_stack_events(Some(p.clone()))
                .build()
        });
    }
    let events = events.build();
    let fs = final_status.clone();
    let stacks = mock!(Client::describe_stacks)
        .sequence()
        .output(|| stack_status(StackStatus::UpdateInProgress))
        .output(move || stack_status(fs.clone()))
        .build();
    let execute =
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build());
    let client = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        &[&execute, &events, &stacks]
    );
    let aws = match logs {
        Some(logs) => aws_with_logs(client, logs),
        None => aws(client),
    };
    let sink = Recorder::default();
    let result = rt()
        .block_on(apply::execute(&aws, &saved(), "arn:cs/1", &args(), &sink))
        .map(|_| ())
        .map_err(|e| e.to_string());
    (result, sink.0.into_inner())
}

#[test]
fn failed_update_streams_events_and_names_the_first_failure() {
    let (result, seen) = failed_update(StackStatus::UpdateRollbackComplete);
    let ids: Vec<&str> = seen.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        ["e1", "e2", "e3", "e4", "e5"],
        "each new event once, oldest first"
    );
    let err = result.unwrap_err();
    assert!(err.contains("ended in UPDATE_ROLLBACK_COMPLETE"), "{err}");
    assert!(err.contains("first failure: Instance (AWS::EC2::Instance) UPDATE_FAILED: We currently do not have sufficient"), "{err}");
}

#[test]
fn a_failed_signal_fails_apply_with_the_supervisors_last_error() {
    use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
    use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
    use companion_config::health::EnclaveState;
    let instance = "i-0123456789abcdef0";
    let line = canned::health_line(
        instance,
        &"ab".repeat(48),
        EnclaveState::Failed,
        Some("E27: enclave memory exceeds the allocator's hugepage reservation"),
    );
    let wanted = format!("{instance}/health");
    let get = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
        .match_requests(move |r| {
            r.log_group_name() == Some("/nitro-provision/demo")
                && r.log_stream_name() == Some(wanted.as_str())
        })
        .then_output(move || {
            GetLogEventsOutput::builder()
                .events(
                    OutputLogEvent::builder()
                        .timestamp(0)
                        .message(line.clone())
                        .build(),
                )
                .build()
        });
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, &[&get]);
    let (result, _) = failed_update_with(
        StackStatus::UpdateRollbackComplete,
        &format!("Received FAILURE signal with UniqueId {instance}"),
        Some(logs),
    );
    let err = result.unwrap_err();
    assert!(
        err.contains("Received FAILURE signal with UniqueId i-0123456789abcdef0"),
        "{err}"
    );
    assert!(
        err.contains("supervisor on i-0123456789abcdef0: enclave failed; last error: E27: enclave memory exceeds the allocator's hugepage reservation"),
        "{err}"
    );
}

#[test]
fn rollback_complete_offers_the_way_out() {
    let (result, _) = failed_update(StackStatus::RollbackComplete);
    let err = result.unwrap_err();
    assert!(err.contains("run `nitro-provision destroy`"), "{err}");

    let stuck = StackInfo {
        id: "arn:stack/demo".into(),
        name: "demo".into(),
        status: "ROLLBACK_COMPLETE".into(),
        status_reason: Some("The following resource(s) failed to create: [Instance]".into()),
        outputs: Default::default(),
        parameters: Default::default(),
        tags: Default::default(),
        termination_protection: false,
    };
    let err = online_plan::check_stack_state(&stuck)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot be updated")
            && err.contains("nitro-provision destroy")
            && err.contains("[Instance]"),
        "{err}"
    );
    let busy = StackInfo {
        status: "UPDATE_IN_PROGRESS".into(),
        ..stuck
    };
    assert!(online_plan::check_stack_state(&busy)
        .unwrap_err()
        .to_string()
        .contains("another operation is running"));
}

#[test]
fn termination_protection_is_respected_without_force() {
    // No rules: any AWS call would fail the test with an error other than the expected one.
    let client = mock_client!(aws_sdk_cloudformation, RuleMode::MatchAny, &[]);
    let aws = aws(client);
    let preview = destroy::DestroyPreview {
        stack: StackInfo {
            id: "arn:stack/demo".into(),
            name: "demo".into(),
            status: "UPDATE_COMPLETE".into(),
            status_reason: None,
            outputs: Default::default(),
            parameters: Default::default(),
            tags: Default::default(),
            termination_protection: true,
        },
        resources: vec![],
        bucket: "demo-123456789012-us-east-1".into(),
        bucket_objects: Some(3),
        key_pending_window_days: 30,
    };
    let sink = Recorder::default();
    let err = rt()
        .block_on(destroy::destroy(&preview, &aws, &args(), false, &sink))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("termination protection; pass --force"),
        "{err}"
    );
    assert!(preview.describe().contains("3 object version(s)"));
}
