//! `apply`: uploads the artifacts, executes the planned change set, follows the stack's events
//! and reports the outputs — or the first failure and the rollback state.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::saved_plan::SavedPlan;
use super::{
    change_set_name, online_plan, parameters, parameters_sha256, stack_tags, AwsArgs, Prepared,
};
use crate::aws::artifacts::{self, Upload};
use crate::aws::events::{self, EventSink, Finished};
use crate::aws::stack::{self, ChangeSetOutcome, ChangeSetRequest};
use crate::aws::Aws;
use crate::config::Loaded;

/// How apply ended.
#[derive(Debug)]
pub struct Applied {
    pub outputs: BTreeMap<String, String>,
    pub uploads: Vec<(String, Upload)>,
}

/// Uploads every artifact that is not in the bucket yet.
pub async fn upload_artifacts(
    aws: &Aws,
    prepared: &Prepared,
    say: &dyn Fn(&str),
) -> anyhow::Result<Vec<(String, Upload)>> {
    let bucket = &prepared.rendered.deployment.bucket;
    let mut done = Vec::new();
    for (name, path, key) in prepared.uploads() {
        let result =
            artifacts::upload(aws, bucket, &key, &path, &prepared.sha256_of(&name)).await?;
        match &result {
            Upload::AlreadyPresent => say(&format!(
                "{name}: s3://{bucket}/{key} already present (same digest), skipped"
            )),
            Upload::Uploaded { bytes } => say(&format!(
                "{name}: uploaded {bytes} bytes to s3://{bucket}/{key}"
            )),
        }
        done.push((name, result));
    }
    Ok(done)
}

/// Executes a change set and follows it to the end; an error names the first failure.
pub async fn execute(
    aws: &Aws,
    saved: &SavedPlan,
    args: &AwsArgs,
    sink: &dyn EventSink,
) -> anyhow::Result<Finished> {
    let seen = events::seen_events(aws, &saved.stack_id)
        .await
        .unwrap_or_default();
    let token = format!(
        "np-{}",
        &saved.change_set_arn.rsplit('/').next().unwrap_or("apply")
    );
    let token: String = token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(128)
        .collect();
    stack::execute_change_set(aws, &saved.change_set_arn, &token).await?;
    let finished = events::follow(aws, &saved.stack_id, seen, args.poll, sink).await?;
    if stack::is_failure(&finished.status) {
        let cause = finished
            .first_failure
            .as_ref()
            .map(|e| {
                format!(
                    "; first failure: {} ({}) {}: {}",
                    e.logical_id,
                    e.resource_type,
                    e.status,
                    e.reason.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let way_out = if finished.status == "ROLLBACK_COMPLETE" {
            "; the stack cannot be updated in this state: run `nitro-provision destroy`, fix the cause, and apply again"
        } else {
            ""
        };
        anyhow::bail!(
            "stack {} ended in {}{cause}{way_out}",
            saved.stack_name,
            finished.status
        );
    }
    Ok(finished)
}

/// Checks a plan loaded from a file against what would be applied now: re-derives the releases
/// exactly as the plan did (the deployed stack cannot have changed, or the change set is
/// OBSOLETE), so the template hash proves nothing else changed; refuses a stale plan. Returns
/// the rendering to apply. A plan made in the same run needs none of this.
pub async fn check_saved(
    loaded: &Loaded,
    prepared: Prepared,
    saved: &SavedPlan,
    aws: &Aws,
) -> anyhow::Result<Prepared> {
    aws.check_account(&saved.account).await?;
    let live = stack::describe(aws, &saved.stack_name)
        .await?
        .filter(|s| !s.is_empty_review());
    let before = match &live {
        Some(l) => Some(online_plan::deployed(aws, l).await?),
        None => None,
    };
    let (prepared, _) = online_plan::rotate(prepared, before.as_ref(), saved.keep_old_release)?;
    saved.check_inputs(
        &loaded.sha256,
        &prepared.template_sha256,
        &parameters_sha256(&parameters()),
    )?;
    let status = stack::execution_status(aws, &saved.change_set_arn)
        .await
        .context(
            "the saved plan's change set cannot be read (deleted, or a different account/region)",
        )?;
    if status != "AVAILABLE" {
        return Err(super::saved_plan::SavedPlanError::Stale(format!(
            "its change set is {status} (the stack changed since the plan was made, or it was already applied)"
        ))
        .into());
    }
    Ok(prepared)
}

/// Uploads and executes exactly the planned change set. A new stack goes through the bootstrap
/// phase first (the bucket), so that no instance starts before its artifacts are in S3. A
/// rotation then drops the old release in a second step, unless `keep_old_release`.
pub async fn apply_plan(
    prepared: Prepared,
    saved: &SavedPlan,
    aws: &Aws,
    args: &AwsArgs,
    keep_old_release: bool,
    sink: &dyn EventSink,
    say: &dyn Fn(&str),
) -> anyhow::Result<Applied> {
    let uploads;
    if saved.phase == "bootstrap" {
        say("creating the bucket first (bootstrap phase)");
        execute(aws, saved, args, sink).await?;
        uploads = upload_artifacts(aws, &prepared, say).await?;
        say("creating the rest of the stack (the reviewed template)");
        update(aws, &prepared, saved, args, sink).await?;
    } else {
        uploads = upload_artifacts(aws, &prepared, say).await?;
        execute(aws, saved, args, sink).await?;
    }
    if saved.finish_rotation && !keep_old_release {
        // The update above replaced the instances with the new EIF and succeeded: the new
        // release runs, so the old one may go.
        let new = prepared.new_release.clone();
        let live_policy = kms_policy::Policy::from_json(&prepared.rendered.key_policy.to_string())?;
        let finished = prepared.with_releases(vec![new.clone()])?;
        let proposed = kms_policy::Policy::from_json(&finished.rendered.key_policy.to_string())?;
        let running = new.pcr_set()?;
        kms_policy::check_rotation(&live_policy, &proposed, &running, &Default::default())?;
        say("rotation: the new release runs; dropping the old release from the key policy");
        update(aws, &finished, saved, args, sink).await?;
    } else if saved.finish_rotation {
        say("rotation: keeping the old release admitted (--keep-old-release); a later apply drops it");
    }
    let outputs = outputs(aws, &saved.stack_id).await?;
    Ok(Applied { outputs, uploads })
}

/// Creates and executes an UPDATE change set of `prepared`'s template.
async fn update(
    aws: &Aws,
    prepared: &Prepared,
    saved: &SavedPlan,
    args: &AwsArgs,
    sink: &dyn EventSink,
) -> anyhow::Result<()> {
    let request = ChangeSetRequest {
        stack_name: saved.stack_name.clone(),
        change_set_name: change_set_name(),
        template_body: prepared.rendered.template.clone(),
        parameters: parameters(),
        tags: stack_tags(&prepared.rendered.deployment),
        create: false,
    };
    match stack::create_change_set(aws, &request, args.poll).await? {
        ChangeSetOutcome::NoChanges => Ok(()),
        ChangeSetOutcome::Ready { arn, stack_id, .. } => {
            let next = SavedPlan {
                change_set_arn: arn,
                stack_id,
                phase: "full".into(),
                ..saved.clone()
            };
            execute(aws, &next, args, sink).await.map(|_| ())
        }
    }
}

/// The stack's outputs; where CloudFormation reports none (moto after a change set), the
/// physical ids of its resources stand in.
pub async fn outputs(aws: &Aws, stack_id: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let info = stack::describe(aws, stack_id)
        .await?
        .context("the stack disappeared")?;
    if !info.outputs.is_empty() {
        return Ok(info.outputs);
    }
    Ok(stack::resources(aws, stack_id)
        .await?
        .into_iter()
        .map(|(id, (_, physical))| (id, physical))
        .collect())
}

/// Writes outputs as JSON (`--outputs-file`).
pub fn write_outputs(path: &Path, outputs: &BTreeMap<String, String>) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(outputs)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}
