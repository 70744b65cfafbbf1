//! CloudFormation stacks and change sets: the plan is a change set, apply executes it.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, ExecutionStatus, Parameter,
    Replacement, Tag,
};
use serde::{Deserialize, Serialize};

use super::{Aws, AwsError};

/// What CloudFormation knows about a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackInfo {
    pub id: String,
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub outputs: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    /// Stack-level tags (CloudFormation propagates them to the resources).
    pub tags: BTreeMap<String, String>,
    pub termination_protection: bool,
}

impl StackInfo {
    /// A stack created by an unexecuted CREATE change set has no resources yet.
    pub fn is_empty_review(&self) -> bool {
        self.status == "REVIEW_IN_PROGRESS"
    }

    /// An operation is running; nothing else may start.
    pub fn is_busy(&self) -> bool {
        self.status.ends_with("_IN_PROGRESS") && !self.is_empty_review()
    }
}

/// Stack statuses at which waiting ends.
pub fn is_terminal(status: &str) -> bool {
    !status.ends_with("_IN_PROGRESS")
}

/// Terminal statuses that mean the operation failed.
pub fn is_failure(status: &str) -> bool {
    status.ends_with("_FAILED") || status.contains("ROLLBACK")
}

/// Describes `name`; `None` when it does not exist (or was deleted).
pub async fn describe(aws: &Aws, name: &str) -> Result<Option<StackInfo>, AwsError> {
    let out = match aws.cfn.describe_stacks().stack_name(name).send().await {
        Ok(o) => o,
        Err(e) => {
            let err = AwsError::call("cloudformation:DescribeStacks", e);
            if err.to_string().contains("does not exist") {
                return Ok(None);
            }
            return Err(err);
        }
    };
    let Some(s) = out.stacks().first() else {
        return Ok(None);
    };
    let status = s
        .stack_status()
        .map(|x| x.as_str().to_string())
        .unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    Ok(Some(StackInfo {
        id: s.stack_id().unwrap_or_default().to_string(),
        name: s.stack_name().unwrap_or_default().to_string(),
        status,
        status_reason: s.stack_status_reason().map(str::to_string),
        outputs: s
            .outputs()
            .iter()
            .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
            .collect(),
        parameters: s
            .parameters()
            .iter()
            .filter_map(|p| {
                Some((
                    p.parameter_key()?.to_string(),
                    p.parameter_value()?.to_string(),
                ))
            })
            .collect(),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        termination_protection: s.enable_termination_protection().unwrap_or(false),
    }))
}

/// A change set to create: the whole template and its parameters, explicitly CREATE or UPDATE
/// (moto and AWS default differently).
#[derive(Debug, Clone)]
pub struct ChangeSetRequest {
    pub stack_name: String,
    pub change_set_name: String,
    pub template_body: String,
    pub parameters: BTreeMap<String, String>,
    pub tags: Vec<(String, String)>,
    pub create: bool,
    /// Kept by CloudFormation with the change set: a saved plan's digest is written here, so a
    /// plan file cannot be pointed at a change set it did not make.
    pub description: String,
}

/// One resource change of a change set, in Terraform's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceChange {
    pub logical_id: String,
    pub resource_type: String,
    /// `["create"]`, `["update"]`, `["delete","create"]` (replacement), `["delete"]`.
    pub actions: Vec<String>,
    /// Replacement only under some conditions (CloudFormation's `Conditional`).
    pub conditional_replacement: bool,
    /// Properties named by CloudFormation as changing, where it says so.
    pub properties: Vec<String>,
}

/// The result of creating a change set.
#[derive(Debug, Clone)]
pub enum ChangeSetOutcome {
    /// CloudFormation found nothing to change; the change set was deleted.
    NoChanges,
    Ready {
        arn: String,
        stack_id: String,
        changes: Vec<ResourceChange>,
    },
}

/// CloudFormation's (and moto's) ways of saying a change set is empty.
fn is_no_change_reason(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// Creates a change set, waits for it, and reads its changes. Never executes it.
pub async fn create_change_set(
    aws: &Aws,
    req: &ChangeSetRequest,
    poll: Duration,
) -> Result<ChangeSetOutcome, AwsError> {
    let out = aws
        .cfn
        .create_change_set()
        .stack_name(&req.stack_name)
        .change_set_name(&req.change_set_name)
        .change_set_type(if req.create {
            ChangeSetType::Create
        } else {
            ChangeSetType::Update
        })
        .template_body(&req.template_body)
        .description(&req.description)
        .capabilities(Capability::CapabilityNamedIam)
        .set_parameters(Some(
            req.parameters
                .iter()
                .map(|(k, v)| {
                    Parameter::builder()
                        .parameter_key(k)
                        .parameter_value(v)
                        .build()
                })
                .collect(),
        ))
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:CreateChangeSet", e))?;
    let arn = out.id().unwrap_or_default().to_string();
    let stack_id = out.stack_id().unwrap_or_default().to_string();
    let mut attempts = 0u32;
    loop {
        let d = aws
            .cfn
            .describe_change_set()
            .change_set_name(&arn)
            .send()
            .await
            .map_err(|e| AwsError::call("cloudformation:DescribeChangeSet", e))?;
        match d.status() {
            Some(ChangeSetStatus::CreateComplete) => break,
            Some(ChangeSetStatus::Failed) => {
                let reason = d.status_reason().unwrap_or_default().to_string();
                if is_no_change_reason(&reason) {
                    delete_change_set(aws, &arn).await?;
                    return Ok(ChangeSetOutcome::NoChanges);
                }
                return Err(AwsError::Unexpected(format!("change set failed: {reason}")));
            }
            _ => {}
        }
        attempts += 1;
        if attempts > 600 {
            return Err(AwsError::Unexpected(
                "change set did not complete within the wait limit".into(),
            ));
        }
        tokio::time::sleep(poll).await;
    }
    let changes = read_changes(aws, &arn).await?;
    Ok(ChangeSetOutcome::Ready {
        arn,
        stack_id,
        changes,
    })
}

/// All resource changes of a change set (paginated).
pub async fn read_changes(aws: &Aws, arn: &str) -> Result<Vec<ResourceChange>, AwsError> {
    let mut changes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let d = aws
            .cfn
            .describe_change_set()
            .change_set_name(arn)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::call("cloudformation:DescribeChangeSet", e))?;
        for c in d.changes() {
            let Some(rc) = c.resource_change() else {
                continue;
            };
            let replacement = rc.replacement();
            let actions: Vec<String> = match rc.action() {
                Some(ChangeAction::Add) => vec!["create".into()],
                Some(ChangeAction::Remove) => vec!["delete".into()],
                Some(ChangeAction::Modify) if replacement == Some(&Replacement::True) => {
                    vec!["delete".into(), "create".into()]
                }
                _ => vec!["update".into()],
            };
            let mut properties: Vec<String> = rc
                .details()
                .iter()
                .filter_map(|d| {
                    d.target()
                        .and_then(|t| t.name().or(t.attribute().map(|a| a.as_str())))
                })
                .map(str::to_string)
                .collect();
            properties.dedup();
            changes.push(ResourceChange {
                logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                resource_type: rc.resource_type().unwrap_or_default().to_string(),
                actions,
                conditional_replacement: replacement == Some(&Replacement::Conditional),
                properties,
            });
        }
        token = d.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(changes)
}

/// What a saved plan checks about its change set before executing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetState {
    pub stack_id: String,
    pub description: String,
    /// `AVAILABLE` can run; `OBSOLETE` means the stack changed since it was made.
    pub execution_status: String,
}

pub async fn change_set_state(aws: &Aws, arn: &str) -> Result<ChangeSetState, AwsError> {
    let d = aws
        .cfn
        .describe_change_set()
        .change_set_name(arn)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:DescribeChangeSet", e))?;
    Ok(ChangeSetState {
        stack_id: d.stack_id().unwrap_or_default().to_string(),
        description: d.description().unwrap_or_default().to_string(),
        execution_status: d
            .execution_status()
            .map(ExecutionStatus::as_str)
            .unwrap_or("UNAVAILABLE")
            .to_string(),
    })
}

/// A change set of a stack, as `status` lists pending plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSetSummary {
    pub name: String,
    pub arn: String,
    pub execution_status: String,
    pub created: String,
}

/// The stack's change sets (paginated).
pub async fn list_change_sets(aws: &Aws, stack: &str) -> Result<Vec<ChangeSetSummary>, AwsError> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = aws
            .cfn
            .list_change_sets()
            .stack_name(stack)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| AwsError::call("cloudformation:ListChangeSets", e))?;
        all.extend(out.summaries().iter().map(|c| {
            ChangeSetSummary {
                name: c.change_set_name().unwrap_or_default().to_string(),
                arn: c.change_set_id().unwrap_or_default().to_string(),
                execution_status: c
                    .execution_status()
                    .map(ExecutionStatus::as_str)
                    .unwrap_or("UNAVAILABLE")
                    .to_string(),
                created: c.creation_time().map(|t| t.to_string()).unwrap_or_default(),
            }
        }));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            return Ok(all);
        }
    }
}

pub async fn delete_change_set(aws: &Aws, arn: &str) -> Result<(), AwsError> {
    aws.cfn
        .delete_change_set()
        .change_set_name(arn)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:DeleteChangeSet", e))?;
    Ok(())
}

pub async fn execute_change_set(aws: &Aws, arn: &str, token: &str) -> Result<(), AwsError> {
    aws.cfn
        .execute_change_set()
        .change_set_name(arn)
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:ExecuteChangeSet", e))?;
    Ok(())
}

pub async fn delete_stack(aws: &Aws, stack_id: &str, token: &str) -> Result<(), AwsError> {
    aws.cfn
        .delete_stack()
        .stack_name(stack_id)
        .client_request_token(token)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:DeleteStack", e))?;
    Ok(())
}

pub async fn set_termination_protection(aws: &Aws, stack: &str, on: bool) -> Result<(), AwsError> {
    aws.cfn
        .update_termination_protection()
        .stack_name(stack)
        .enable_termination_protection(on)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:UpdateTerminationProtection", e))?;
    Ok(())
}

/// Physical resources of a stack: logical id → (type, physical id).
pub async fn resources(
    aws: &Aws,
    stack: &str,
) -> Result<BTreeMap<String, (String, String)>, AwsError> {
    let out = aws
        .cfn
        .describe_stack_resources()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:DescribeStackResources", e))?;
    // moto lists resource types it does not model with an empty logical id: skip them.
    Ok(out
        .stack_resources()
        .iter()
        .filter(|r| r.logical_resource_id().is_some_and(|id| !id.is_empty()))
        .filter_map(|r| {
            Some((
                r.logical_resource_id()?.to_string(),
                (
                    r.resource_type()?.to_string(),
                    r.physical_resource_id().unwrap_or_default().to_string(),
                ),
            ))
        })
        .collect())
}

/// The template body CloudFormation holds for the stack (what was last applied).
pub async fn deployed_template(aws: &Aws, stack: &str) -> Result<String, AwsError> {
    let out = aws
        .cfn
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:GetTemplate", e))?;
    Ok(out.template_body().unwrap_or_default().to_string())
}
