//! Canned AWS responses (aws-smithy-mocks) for what moto cannot do, through the real SDK clients:
//! a small model of one stack, its change sets and its KMS key, where executing a change set
//! writes the key policy only when the template's `KeyPolicy` changes — as CloudFormation does —
//! so tests can tell CloudFormation's writes from the tool's own PutKeyPolicy.
#![allow(dead_code)] // each test crate uses a different part of this module

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::delete_change_set::DeleteChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stack_resources::DescribeStackResourcesOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::operation::get_template::GetTemplateOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, ChangeType, ExecutionStatus, ResourceChange, Stack,
    StackResource, StackStatus, Tag,
};
use aws_sdk_kms::operation::get_key_policy::GetKeyPolicyOutput;
use aws_sdk_kms::operation::put_key_policy::{PutKeyPolicyError, PutKeyPolicyOutput};
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use nitro_provision::aws::events::{EventSink, StackEvent};
use nitro_provision::aws::Aws;

pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/hello-enclave/1";
pub const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
pub const INSTANCE_ID: &str = "i-0123456789abcdef0";

/// The model's state, shared with the mock rules.
#[derive(Debug, Default)]
pub struct Cloud {
    pub stack_name: String,
    pub tags: Vec<(String, String)>,
    /// The deployed template body.
    pub template: String,
    pub change_sets: Vec<ChangeSet>,
    /// The key policy KMS holds.
    pub live_policy: String,
    /// Every PutKeyPolicy: (policy, BypassPolicyLockoutSafetyCheck).
    pub put_policies: Vec<(String, Option<bool>)>,
    /// Mutating calls in order: `execute <arn>`, `put-key-policy`.
    pub mutations: Vec<String>,
    /// PutKeyPolicy fails as KMS's lock-out safety check does.
    pub refuse_put: bool,
    /// The stack's instances (AWS::EC2::Instance resources).
    pub instances: Vec<String>,
    /// Each instance's health stream as the reads will see it: every read takes the front
    /// line while more than one is queued (records changing over time), then repeats the last.
    pub health: BTreeMap<String, VecDeque<String>>,
    /// Change set creations and health reads in order: `create <arn>`, `health <instance>`.
    pub calls: Vec<String>,
}

/// A change set as CloudFormation keeps it.
#[derive(Debug, Clone, Default)]
pub struct ChangeSet {
    pub arn: String,
    pub template: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub executed: bool,
}

/// The `KeyPolicy` string of a template body.
pub fn key_policy_of(template: &str) -> String {
    let doc: serde_json::Value = serde_saphyr::from_str(template).expect("template parses");
    doc["Resources"]["EnclaveKey"]["Properties"]["KeyPolicy"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Cloud {
    /// A deployed stack with `tags` holding `template`, its key carrying the template's policy.
    pub fn deployed(template: &str, tags: Vec<(String, String)>) -> Arc<Mutex<Cloud>> {
        Arc::new(Mutex::new(Cloud {
            stack_name: "hello-enclave".into(),
            tags,
            template: template.to_string(),
            live_policy: key_policy_of(template),
            instances: vec![INSTANCE_ID.to_string()],
            ..Cloud::default()
        }))
    }
}

/// Fast polling, no profile, no endpoint: the mocks answer.
pub fn args() -> nitro_provision::reconcile::AwsArgs {
    nitro_provision::reconcile::AwsArgs {
        profile: None,
        endpoint_url: None,
        poll: std::time::Duration::from_millis(1),
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub struct Quiet;
impl EventSink for Quiet {
    fn event(&self, _: &StackEvent) {}
}

/// `Aws` clients answering from `cloud`.
pub fn aws(cloud: &Arc<Mutex<Cloud>>) -> Aws {
    let c = cloud.clone();
    let stacks =
        mock!(aws_sdk_cloudformation::Client::describe_stacks).then_compute_output(move |_| {
            let c = c.lock().unwrap();
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_id(STACK_ID)
                        .stack_name(&c.stack_name)
                        .stack_status(StackStatus::UpdateComplete)
                        .creation_time(aws_smithy_types::DateTime::from_secs(0))
                        .set_tags(Some(
                            c.tags
                                .iter()
                                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                                .collect(),
                        ))
                        .build(),
                )
                .build()
        });
    let c = cloud.clone();
    let template =
        mock!(aws_sdk_cloudformation::Client::get_template).then_compute_output(move |_| {
            GetTemplateOutput::builder()
                .template_body(c.lock().unwrap().template.clone())
                .build()
        });
    let c = cloud.clone();
    let resources = mock!(aws_sdk_cloudformation::Client::describe_stack_resources)
        .then_compute_output(move |_| {
            let has_key = !key_policy_of(&c.lock().unwrap().template).is_empty();
            let key = StackResource::builder()
                .logical_resource_id("EnclaveKey")
                .resource_type("AWS::KMS::Key")
                .physical_resource_id(KEY_ID)
                .timestamp(aws_smithy_types::DateTime::from_secs(0))
                .resource_status(aws_sdk_cloudformation::types::ResourceStatus::UpdateComplete)
                .build();
            let c = c.lock().unwrap();
            let instances = c.instances.iter().map(|id| {
                StackResource::builder()
                    .logical_resource_id("Instance")
                    .resource_type("AWS::EC2::Instance")
                    .physical_resource_id(id)
                    .timestamp(aws_smithy_types::DateTime::from_secs(0))
                    .resource_status(aws_sdk_cloudformation::types::ResourceStatus::UpdateComplete)
                    .build()
            });
            DescribeStackResourcesOutput::builder()
                .set_stack_resources(Some(
                    has_key
                        .then_some(key)
                        .into_iter()
                        .chain(instances)
                        .collect(),
                ))
                .build()
        });
    let c = cloud.clone();
    let create =
        mock!(aws_sdk_cloudformation::Client::create_change_set).then_compute_output(move |req| {
            let mut c = c.lock().unwrap();
            let arn = format!("arn:cs/{}", c.change_sets.len() + 1);
            c.calls.push(format!("create {arn}"));
            c.change_sets.push(ChangeSet {
                arn: arn.clone(),
                template: req.template_body().unwrap_or_default().to_string(),
                description: req.description().unwrap_or_default().to_string(),
                tags: req
                    .tags()
                    .iter()
                    .map(|t| {
                        (
                            t.key().unwrap_or_default().to_string(),
                            t.value().unwrap_or_default().to_string(),
                        )
                    })
                    .collect(),
                executed: false,
            });
            CreateChangeSetOutput::builder()
                .id(arn)
                .stack_id(STACK_ID)
                .build()
        });
    let c = cloud.clone();
    let describe_cs = mock!(aws_sdk_cloudformation::Client::describe_change_set)
        .then_compute_output(move |req| {
            let c = c.lock().unwrap();
            let name = req.change_set_name().unwrap_or_default();
            let ChangeSet {
                template: body,
                description,
                executed,
                ..
            } = c
                .change_sets
                .iter()
                .find(|cs| cs.arn == name)
                .cloned()
                .unwrap_or_default();
            let out = DescribeChangeSetOutput::builder()
                .stack_id(STACK_ID)
                .description(description);
            if body == c.template && !executed {
                return out
                    .status(ChangeSetStatus::Failed)
                    .status_reason("The submitted information didn't contain changes. Submit different information to create a change set.")
                    .execution_status(ExecutionStatus::Unavailable)
                    .build();
            }
            let key_changes = key_policy_of(&body) != key_policy_of(&c.template);
            out.status(ChangeSetStatus::CreateComplete)
                .execution_status(if executed {
                    ExecutionStatus::ExecuteComplete
                } else {
                    ExecutionStatus::Available
                })
                .changes(
                    Change::builder()
                        .r#type(ChangeType::Resource)
                        .resource_change(
                            ResourceChange::builder()
                                .action(ChangeAction::Modify)
                                .logical_resource_id(if key_changes {
                                    "EnclaveKey"
                                } else {
                                    "LogGroup"
                                })
                                .resource_type(if key_changes {
                                    "AWS::KMS::Key"
                                } else {
                                    "AWS::Logs::LogGroup"
                                })
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let c = cloud.clone();
    let execute =
        mock!(aws_sdk_cloudformation::Client::execute_change_set).then_compute_output(move |req| {
            let mut c = c.lock().unwrap();
            let name = req.change_set_name().unwrap_or_default().to_string();
            c.mutations.push(format!("execute {name}"));
            let cs = c
                .change_sets
                .iter()
                .find(|cs| cs.arn == name)
                .cloned()
                .expect("executes a change set it made");
            let body = cs.template;
            // The change set's tags become the stack's.
            c.tags = cs.tags;
            // CloudFormation writes KeyPolicy only when the template's changes.
            if key_policy_of(&body) != key_policy_of(&c.template) {
                c.live_policy = key_policy_of(&body);
            }
            c.template = body;
            for cs in c.change_sets.iter_mut().filter(|cs| cs.arn == name) {
                cs.executed = true;
            }
            ExecuteChangeSetOutput::builder().build()
        });
    let events = mock!(aws_sdk_cloudformation::Client::describe_stack_events)
        .then_output(|| DescribeStackEventsOutput::builder().build());
    let delete_cs = mock!(aws_sdk_cloudformation::Client::delete_change_set)
        .then_output(|| DeleteChangeSetOutput::builder().build());
    let cfn = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        &[
            &stacks,
            &template,
            &resources,
            &create,
            &describe_cs,
            &execute,
            &events,
            &delete_cs
        ]
    );

    let c = cloud.clone();
    let get_policy = mock!(aws_sdk_kms::Client::get_key_policy).then_compute_output(move |_| {
        GetKeyPolicyOutput::builder()
            .policy(c.lock().unwrap().live_policy.clone())
            .build()
    });
    let c = cloud.clone();
    let put_policy = mock!(aws_sdk_kms::Client::put_key_policy).then_compute_response(move |req| {
        let mut c = c.lock().unwrap();
        c.mutations.push("put-key-policy".into());
        if c.refuse_put {
            return MockResponse::Error(PutKeyPolicyError::MalformedPolicyDocumentException(
                aws_sdk_kms::types::error::MalformedPolicyDocumentException::builder()
                    .message("The new key policy will not allow you to update the key policy in the future.")
                    .build(),
            ));
        }
        let policy = req.policy().unwrap_or_default().to_string();
        c.put_policies
            .push((policy.clone(), req.bypass_policy_lockout_safety_check()));
        c.live_policy = policy;
        MockResponse::Output(PutKeyPolicyOutput::builder().build())
    });
    let kms = mock_client!(aws_sdk_kms, RuleMode::MatchAny, &[&get_policy, &put_policy]);

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
    Aws {
        cfn,
        s3,
        kms,
        sts,
        logs: logs_client(cloud),
        region: "us-east-1".into(),
    }
}

/// CloudWatch Logs answering health reads from `cloud.health`.
fn logs_client(cloud: &Arc<Mutex<Cloud>>) -> aws_sdk_cloudwatchlogs::Client {
    use aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput;
    use aws_sdk_cloudwatchlogs::operation::get_log_events::{
        GetLogEventsError, GetLogEventsOutput,
    };
    use aws_sdk_cloudwatchlogs::types::error::ResourceNotFoundException;
    use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
    let c = cloud.clone();
    let get =
        mock!(aws_sdk_cloudwatchlogs::Client::get_log_events).then_compute_response(move |req| {
            let mut c = c.lock().unwrap();
            let stream = req.log_stream_name().unwrap_or_default();
            let instance = stream.strip_suffix("/health").unwrap_or(stream).to_string();
            c.calls.push(format!("health {instance}"));
            let Some(queue) = c.health.get_mut(&instance) else {
                return MockResponse::Error(GetLogEventsError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .message("The specified log stream does not exist.")
                        .build(),
                ));
            };
            let line = if queue.len() > 1 {
                queue.pop_front()
            } else {
                queue.front().cloned()
            };
            let events = line.map(|l| OutputLogEvent::builder().timestamp(0).message(l).build());
            MockResponse::Output(
                GetLogEventsOutput::builder()
                    .set_events(Some(events.into_iter().collect()))
                    .build(),
            )
        });
    let streams = mock!(aws_sdk_cloudwatchlogs::Client::describe_log_streams)
        .then_output(|| DescribeLogStreamsOutput::builder().build());
    mock_client!(
        aws_sdk_cloudwatchlogs,
        RuleMode::MatchAny,
        &[&get, &streams]
    )
}

/// A fresh health record of `instance` running `pcr0` in `state`.
pub fn health_line(
    instance: &str,
    pcr0: &str,
    state: companion_config::health::EnclaveState,
    last_error: Option<&str>,
) -> String {
    use companion_config::health::{DesiredState, HealthRecord, HealthReport};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let pcrs = |pcr0: &str| companion_config::Measurements {
        pcr0: pcr0.to_string(),
        pcr1: "11".repeat(48),
        pcr2: "22".repeat(48),
        pcr8: None,
    };
    HealthRecord::new(HealthReport {
        deployment: "hello-enclave".into(),
        instance_id: instance.into(),
        timestamp_ms: now,
        state,
        desired_state: DesiredState::Running,
        measured_pcrs: Some(pcrs(pcr0)),
        // The supervisor expects what it runs: only the plan's PCR0 can disagree.
        expected_pcrs: pcrs(pcr0),
        restarts: 0,
        last_error: last_error.map(str::to_string),
        supervisor_version: "0.1.0".into(),
    })
    .to_line()
}
