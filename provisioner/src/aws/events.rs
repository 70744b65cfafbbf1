//! Following a stack operation: new stack events as they happen, until a terminal status.

use std::collections::HashSet;
use std::time::Duration;

use super::{stack, Aws, AwsError};

/// One line of a stack's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackEvent {
    pub id: String,
    pub timestamp: String,
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Receives events while an operation runs (a progress bar on a TTY, plain lines otherwise).
pub trait EventSink {
    fn event(&self, event: &StackEvent);
}

/// How an operation ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: String,
    /// The first resource that failed, with CloudFormation's reason.
    pub first_failure: Option<StackEvent>,
}

/// Event ids already in the stack's history: the events of earlier operations.
pub async fn seen_events(aws: &Aws, stack: &str) -> Result<HashSet<String>, AwsError> {
    Ok(page(aws, stack).await?.into_iter().map(|e| e.id).collect())
}

async fn page(aws: &Aws, stack: &str) -> Result<Vec<StackEvent>, AwsError> {
    let out = aws
        .cfn
        .describe_stack_events()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| AwsError::call("cloudformation:DescribeStackEvents", e))?;
    Ok(out
        .stack_events()
        .iter()
        .map(|e| StackEvent {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
            logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
            resource_type: e.resource_type().unwrap_or_default().to_string(),
            // Statuses the SDK does not know (REVIEW_IN_PROGRESS) arrive as Unknown: keep the text.
            status: e
                .resource_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            reason: e.resource_status_reason().map(str::to_string),
        })
        .collect())
}

/// Polls until the stack reaches a terminal status, reporting each new event once, oldest
/// first. `stack` should be the stack id, so a deleted stack stays visible.
pub async fn follow(
    aws: &Aws,
    stack: &str,
    mut seen: HashSet<String>,
    poll: Duration,
    sink: &dyn EventSink,
) -> Result<Finished, AwsError> {
    let mut first_failure: Option<StackEvent> = None;
    loop {
        let mut fresh: Vec<StackEvent> = page(aws, stack)
            .await?
            .into_iter()
            .filter(|e| !seen.contains(&e.id))
            .collect();
        fresh.reverse();
        for e in fresh {
            seen.insert(e.id.clone());
            if first_failure.is_none() && e.status.ends_with("_FAILED") {
                first_failure = Some(e.clone());
            }
            sink.event(&e);
        }
        let status = match stack::describe(aws, stack).await? {
            Some(s) => s.status,
            None => "DELETE_COMPLETE".to_string(),
        };
        if stack::is_terminal(&status) {
            return Ok(Finished {
                status,
                first_failure,
            });
        }
        tokio::time::sleep(poll).await;
    }
}
