//! `destroy`: shows what will be lost, asks for the stack name (or `--yes` in CI), respects
//! termination protection unless `--force`, empties the bucket, deletes the stack. Only a stack
//! that carries the deployment's ownership marks is ever deleted.

use super::AwsArgs;
use crate::aws::events::{self, EventSink};
use crate::aws::stack::{self, StackInfo};
use crate::aws::{artifacts, Aws};
use crate::config::Loaded;

/// What a destroy will delete, for the confirmation screen.
#[derive(Debug)]
pub struct DestroyPreview {
    pub stack: StackInfo,
    /// (logical id, type, physical id)
    pub resources: Vec<(String, String, String)>,
    pub bucket: String,
    /// Object versions that will be deleted with the bucket; `None` if the bucket is gone.
    pub bucket_objects: Option<usize>,
    pub key_pending_window_days: u32,
}

impl DestroyPreview {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "Stack {} ({}) will be deleted with:\n",
            self.stack.name, self.stack.status
        );
        for (id, ty, physical) in &self.resources {
            s.push_str(&format!("  - {ty} {id} {physical}\n"));
        }
        if self
            .resources
            .iter()
            .any(|(_, ty, _)| ty == "AWS::KMS::Key")
        {
            s.push_str(&format!(
                "The KMS key is scheduled for deletion after {} days; until then `aws kms cancel-key-deletion` recovers it. Everything encrypted under it becomes unreadable after that.\n",
                self.key_pending_window_days
            ));
        }
        match self.bucket_objects {
            Some(n) => s.push_str(&format!(
                "Bucket {} is emptied first: {n} object version(s), including the enclave's encrypted state, are lost.\n",
                self.bucket
            )),
            None => s.push_str(&format!("Bucket {} does not exist.\n", self.bucket)),
        }
        s
    }
}

/// Reads what exists; `None` when there is no stack.
pub async fn preview(loaded: &Loaded, aws: &Aws) -> anyhow::Result<Option<DestroyPreview>> {
    let c = &loaded.config;
    aws.check_account(&c.account).await?;
    // Only the deployment's own stack: a foreign one of the same name is refused here.
    let Some(existing) = super::refresh::existing(aws, &c.name, &c.name, false).await? else {
        return Ok(None);
    };
    let info = existing.stack;
    if info.is_busy() {
        anyhow::bail!(
            "stack {} is {}: wait for the running operation to end",
            info.name,
            info.status
        );
    }
    let resources = stack::resources(aws, &info.id)
        .await?
        .into_iter()
        .map(|(id, (ty, physical))| (id, ty, physical))
        .collect();
    let bucket = format!("{}-{}-{}", c.name, c.account, c.region);
    let bucket_objects = artifacts::count_objects(aws, &bucket).await?;
    Ok(Some(DestroyPreview {
        stack: info,
        resources,
        bucket,
        bucket_objects,
        key_pending_window_days: c.kms.pending_window_days,
    }))
}

/// Deletes after consent was given. `force` first lifts termination protection.
pub async fn destroy(
    preview: &DestroyPreview,
    aws: &Aws,
    args: &AwsArgs,
    force: bool,
    sink: &dyn EventSink,
) -> anyhow::Result<()> {
    let stack = &preview.stack;
    if stack.termination_protection {
        if !force {
            anyhow::bail!(
                "stack {} has termination protection; pass --force to lift it and delete",
                stack.name
            );
        }
        stack::set_termination_protection(aws, &stack.id, false).await?;
    }
    artifacts::empty_bucket(aws, &preview.bucket).await?;
    let seen = events::seen_events(aws, &stack.id)
        .await
        .unwrap_or_default();
    let token = format!("np-destroy-{}", super::unix_now());
    stack::delete_stack(aws, &stack.id, &token).await?;
    let finished = events::follow(aws, &stack.id, seen, args.poll, sink).await?;
    if finished.status != "DELETE_COMPLETE" {
        let cause = finished
            .first_failure
            .map(|e| {
                format!(
                    "; first failure: {} ({}): {}",
                    e.logical_id,
                    e.resource_type,
                    e.reason.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        anyhow::bail!("stack {} ended in {}{cause}", stack.name, finished.status);
    }
    Ok(())
}
