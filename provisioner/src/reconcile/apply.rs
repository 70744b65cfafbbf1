//! `apply`: uploads the artifacts, executes the planned change set, follows the stack's events
//! and reports the outputs — or the first failure and the rollback state.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;

use super::saved_plan::SavedPlan;
use super::saved_plan::SavedPlanError::{Mismatch, Stale};
use super::{
    change_set_name, health, key_policy, online_plan, parameters, parameters_sha256, refresh,
    stack_tags, AwsArgs, Prepared,
};
use crate::aws::artifacts::{self, Upload};
use crate::aws::events::{self, EventSink, Finished};
use crate::aws::stack::{self, ChangeSetOutcome, ChangeSetRequest};
use crate::aws::Aws;
use crate::config::Loaded;
use crate::render::log_group_name;

/// How apply ended.
#[derive(Debug)]
pub struct Applied {
    pub outputs: BTreeMap<String, Option<String>>,
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
    change_set_arn: &str,
    args: &AwsArgs,
    sink: &dyn EventSink,
) -> anyhow::Result<Finished> {
    let seen = events::seen_events(aws, &saved.stack_id)
        .await
        .unwrap_or_default();
    let token = format!(
        "np-{}",
        change_set_arn.rsplit('/').next().unwrap_or("apply")
    );
    let token: String = token
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(128)
        .collect();
    stack::execute_change_set(aws, change_set_arn, &token).await?;
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
        // SignalResource carries no reason: the supervisor's health record has it.
        let supervisor = match &finished.first_failure {
            Some(e) if is_signal_failure(e.reason.as_deref().unwrap_or_default()) => {
                health::explain_failure(
                    aws,
                    &log_group_name(&saved.stack_name),
                    e.reason.as_deref().unwrap_or_default(),
                    &saved.stack_id,
                )
                .await
                .map(|s| format!("\n{s}"))
            }
            _ => None,
        }
        .unwrap_or_default();
        let way_out = if finished.status == "ROLLBACK_COMPLETE" {
            "; the stack cannot be updated in this state: run `nitro-provision destroy`, fix the cause, and apply again"
        } else {
            ""
        };
        anyhow::bail!(
            "stack {} ended in {}{cause}{way_out}{supervisor}",
            saved.stack_name,
            finished.status
        );
    }
    Ok(finished)
}

/// CloudFormation's reasons for a FAILURE signal and for missing signals.
fn is_signal_failure(reason: &str) -> bool {
    reason.contains("FAILURE signal") || reason.contains("resource signal")
}

/// Checks a plan loaded from a file against what exists and what would be applied now, before
/// any AWS call that changes anything. The file's digests, its deployment and enclave.yaml were
/// checked when it was loaded (see `commands::apply`); here everything else is re-derived: the
/// account, the stack (same id, still the deployment's unless adopted), its phase, the change
/// set (this stack's, made by this plan, still AVAILABLE), the deployed template and the live
/// key policy (unchanged since the plan), the releases and the rotation, the rendering and the
/// artifacts. Returns the rendering to apply.
pub async fn check_saved(
    loaded: &Loaded,
    prepared: Prepared,
    saved: &SavedPlan,
    aws: &Aws,
) -> anyhow::Result<Prepared> {
    let c = &loaded.config;
    aws.check_account(&saved.account).await?;
    let existing = refresh::existing(aws, &saved.stack_name, &c.name, saved.adopt_stack).await?;
    let Some(existing) = existing else {
        return Err(Stale(format!(
            "stack {} no longer exists (it was deleted, or the plan was discarded)",
            saved.stack_name
        ))
        .into());
    };
    if existing.stack.id != saved.stack_id {
        return Err(Mismatch(format!(
            "the plan is for stack id {}, but stack {} is {} (deleted and re-created since?)",
            saved.stack_id, saved.stack_name, existing.stack.id
        ))
        .into());
    }
    let phase = online_plan::phase_of(Some(&existing));
    if saved.phase != phase {
        return Err(Stale(format!(
            "the plan's phase is `{}`, but stack {} ({}) now needs `{phase}`",
            saved.phase, saved.stack_name, existing.stack.status
        ))
        .into());
    }
    check_change_set(saved, aws).await?;
    let before = existing.deployed.as_ref();
    if before.map(|d| &d.template_sha256) != saved.deployed_template_sha256.as_ref() {
        return Err(Stale(format!(
            "the template of stack {} changed since the plan was made",
            saved.stack_name
        ))
        .into());
    }
    let live_key = match existing.is_live() {
        true => key_policy::read_live(aws, &existing.stack.id).await?,
        false => None,
    };
    if live_key.as_ref().map(|k| &k.key_id) != saved.key_id.as_ref() {
        return Err(Mismatch(format!(
            "the plan names key {}, but the stack's key is {}",
            saved.key_id.as_deref().unwrap_or("(none)"),
            live_key.as_ref().map_or("(none)", |k| k.key_id.as_str())
        ))
        .into());
    }
    if live_key.as_ref().map(|k| &k.sha256) != saved.live_key_policy_sha256.as_ref() {
        return Err(Stale(format!(
            "the live policy of key {} changed since the plan was made",
            saved.key_id.as_deref().unwrap_or_default()
        ))
        .into());
    }
    let (prepared, rotation) = online_plan::rotate(prepared, before, saved.keep_old_release)?;
    saved.check_rendering(
        &prepared.template_sha256,
        &parameters_sha256(&parameters()),
        &online_plan::artifact_records(&prepared),
    )?;
    if rotation.then_finish != saved.finish_rotation {
        return Err(Mismatch(format!(
            "the plan says finish_rotation {}, but the deployed releases call for {}",
            saved.finish_rotation, rotation.then_finish
        ))
        .into());
    }
    Ok(prepared)
}

/// The saved plan's change set, still executable.
async fn check_change_set(saved: &SavedPlan, aws: &Aws) -> anyhow::Result<()> {
    let Some(state) = own_change_set(saved, aws).await? else {
        return Ok(());
    };
    if state.execution_status != "AVAILABLE" {
        return Err(Stale(format!(
            "its change set is {} (the stack changed since the plan was made, or it was already applied)",
            state.execution_status
        ))
        .into());
    }
    Ok(())
}

/// The saved plan's change set (`None` when the plan has none), refused unless it is this
/// stack's and was made by this plan: its description carries the plan's content digest.
pub async fn own_change_set(
    saved: &SavedPlan,
    aws: &Aws,
) -> anyhow::Result<Option<stack::ChangeSetState>> {
    let Some(arn) = &saved.change_set_arn else {
        return Ok(None);
    };
    let state = stack::change_set_state(aws, arn).await.map_err(|e| {
        Stale(format!(
            "its change set {arn} cannot be read (deleted, or another account/region): {e}"
        ))
    })?;
    if state.stack_id != saved.stack_id {
        return Err(Mismatch(format!(
            "change set {arn} belongs to stack {}, not {}",
            state.stack_id, saved.stack_id
        ))
        .into());
    }
    if !saved.made_change_set(&state.description) {
        return Err(Mismatch(format!(
            "change set {arn} was not made by this plan (its description is {:?})",
            state.description
        ))
        .into());
    }
    Ok(Some(state))
}

/// How many health polls (`--poll` apart) a rotation waits for the new release's records:
/// with the default 3 s, a minute, one supervisor heartbeat.
const ROTATION_HEALTH_POLLS: u32 = 20;

/// Uploads and executes exactly the planned change set. A new stack goes through the bootstrap
/// phase first (the bucket), so that no instance starts before its artifacts are in S3. A
/// rotation then drops the old release in a second step, unless `keep_old_release`. Last, a
/// live key policy that differs from the rendered one (changed outside CloudFormation) is put
/// back.
pub async fn apply_plan(
    prepared: Prepared,
    saved: &SavedPlan,
    aws: &Aws,
    args: &AwsArgs,
    sink: &dyn EventSink,
    say: &dyn Fn(&str),
) -> anyhow::Result<Applied> {
    let uploads;
    let mut stack_id = saved.stack_id.clone();
    match &saved.change_set_arn {
        Some(arn) if saved.phase == "bootstrap" => {
            say("creating the bucket first (bootstrap phase)");
            execute(aws, saved, arn, args, sink).await?;
            uploads = upload_artifacts(aws, &prepared, say).await?;
            say("creating the rest of the stack (the reviewed template)");
            stack_id = update(aws, &prepared, saved, args, sink).await?;
        }
        Some(arn) => {
            uploads = upload_artifacts(aws, &prepared, say).await?;
            execute(aws, saved, arn, args, sink).await?;
        }
        None => uploads = upload_artifacts(aws, &prepared, say).await?,
    }
    let mut last = prepared;
    if saved.finish_rotation && !saved.keep_old_release {
        // The update above replaced the instances with the new EIF and CloudFormation took
        // their signals; the old release goes only once every instance's own health record
        // shows the new release running healthy.
        let new = last.new_release.clone();
        let pcr0 = new.pcrs.get(&0).cloned().unwrap_or_default();
        let min = last.rendered.deployment.config.instance.count as usize;
        let group = log_group_name(&saved.stack_name);
        say("rotation: waiting for every instance to report the new release healthy");
        let polls = ROTATION_HEALTH_POLLS;
        if let Err(why) =
            health::wait_for_release(aws, &stack_id, &group, &pcr0, min, args.poll, polls).await?
        {
            anyhow::bail!(
                "rotation stopped before dropping the old release (both releases stay admitted): {why}; \
                 once the instances run the new release healthy (`nitro-provision status`), apply again to finish"
            );
        }
        let live_policy = kms_policy::Policy::from_json(&last.rendered.key_policy.to_string())?;
        let finished = last.with_releases(vec![new.clone()])?;
        let proposed = kms_policy::Policy::from_json(&finished.rendered.key_policy.to_string())?;
        let running = new.pcr_set()?;
        kms_policy::check_rotation(&live_policy, &proposed, &running, &Default::default())?;
        say("rotation: the new release runs; dropping the old release from the key policy");
        update(aws, &finished, saved, args, sink).await?;
        last = finished;
    } else if saved.finish_rotation {
        say("rotation: keeping the old release admitted (--keep-old-release); a later apply drops it");
    }
    if let Some(key) = key_policy::restore(aws, &stack_id, &last.rendered.key_policy).await? {
        say(&format!(
            "key policy of {key} differed from the rendered one (changed outside CloudFormation): put the rendered policy back (PutKeyPolicy)"
        ));
    }
    let outputs = outputs(aws, &stack_id).await?;
    Ok(Applied { outputs, uploads })
}

/// Creates and executes an UPDATE change set of `prepared`'s template; returns the stack id.
async fn update(
    aws: &Aws,
    prepared: &Prepared,
    saved: &SavedPlan,
    args: &AwsArgs,
    sink: &dyn EventSink,
) -> anyhow::Result<String> {
    let request = ChangeSetRequest {
        stack_name: saved.stack_name.clone(),
        change_set_name: change_set_name(),
        template_body: prepared.rendered.template.clone(),
        parameters: parameters(),
        tags: stack_tags(&prepared.rendered.deployment),
        create: false,
        description: saved.change_set_description(),
    };
    match stack::create_change_set(aws, &request, args.poll).await? {
        ChangeSetOutcome::NoChanges => Ok(saved.stack_id.clone()),
        ChangeSetOutcome::Ready { arn, stack_id, .. } => {
            let next = SavedPlan {
                stack_id: stack_id.clone(),
                ..saved.clone()
            };
            execute(aws, &next, &arn, args, sink).await?;
            Ok(stack_id)
        }
    }
}

/// The stack's outputs: every output its template declares, `None` where CloudFormation reports
/// no value (moto after a change set; an output of a resource still being created).
pub async fn outputs(
    aws: &Aws,
    stack_id: &str,
) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let info = stack::describe(aws, stack_id)
        .await?
        .context("the stack disappeared")?;
    let body = stack::deployed_template(aws, stack_id).await?;
    let doc: serde_json::Value = serde_saphyr::from_str(&body).unwrap_or_default();
    let mut all: BTreeMap<String, Option<String>> = doc["Outputs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| (k.clone(), None))
        .collect();
    for (k, v) in info.outputs {
        all.insert(k, Some(v));
    }
    Ok(all)
}

/// The outputs without a value, for the warning that says so.
pub fn missing_outputs(outputs: &BTreeMap<String, Option<String>>) -> Vec<&str> {
    outputs
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Writes outputs as JSON (`--outputs-file`): always every declared output, `null` where
/// CloudFormation has no value; written whole or not at all.
pub fn write_outputs(
    path: &Path,
    outputs: &BTreeMap<String, Option<String>>,
) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(outputs)? + "\n";
    super::write_whole(path, &text).with_context(|| format!("cannot write {}", path.display()))
}
