//! `plan` against AWS: a change set (CREATE or UPDATE, explicitly), never executed, reported in
//! Terraform's terms with the security-sensitive changes, PCR changes and uploads called out.

use std::collections::BTreeMap;

use super::key_policy;
use super::refresh::{self, Deployed, Existing};
use super::rotation::{plan_rotation, Rotation};
use super::saved_plan::{ArtifactRecord, SavedPlan, FORMAT_VERSION};
use super::{
    change_set_name, parameters, parameters_sha256, stack_tags, unix_now, AwsArgs, Prepared,
};
use crate::aws::stack::{self, ChangeSetOutcome, ChangeSetRequest, StackInfo};
use crate::aws::Aws;
use crate::config::Loaded;
use crate::plan::{
    is_security_sensitive, pcr_name, ChangeSetInfo, PcrChange, Plan, ResourceChange, Summary,
};

/// What the user asked of a plan besides the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanOptions {
    /// In a rotation, keep the old release admitted (`--keep-old-release`).
    pub keep_old_release: bool,
    /// Take over a stack that is not this deployment's (`--adopt-stack`).
    pub adopt_stack: bool,
}

/// An online plan and what `apply` needs to execute it.
pub struct OnlinePlan {
    pub plan: Plan,
    /// The rendering the change set was made from (a rotation admits two releases).
    pub prepared: Prepared,
    pub rotation: Rotation,
    /// What `plan --out` writes and `apply` executes (also when nothing changes).
    pub saved: SavedPlan,
}

/// Why a stack cannot be planned against as it is.
pub fn check_stack_state(stack: &StackInfo) -> anyhow::Result<()> {
    if stack.status == "ROLLBACK_COMPLETE" || stack.status == "ROLLBACK_FAILED" {
        anyhow::bail!(
            "stack {} is {} (its creation failed and rolled back); it cannot be updated. Delete it with `nitro-provision destroy`, then apply again{}",
            stack.name,
            stack.status,
            stack.status_reason.as_ref().map(|r| format!(" (reason: {r})")).unwrap_or_default()
        );
    }
    if stack.is_busy() {
        anyhow::bail!(
            "stack {} is {}: another operation is running; retry when it ends",
            stack.name,
            stack.status
        );
    }
    Ok(())
}

/// The releases this apply admits (see `rotation`) and the rendering that goes with them.
pub fn rotate(
    prepared: Prepared,
    deployed: Option<&Deployed>,
    keep_old: bool,
) -> anyhow::Result<(Prepared, Rotation)> {
    let new = prepared.new_release.clone();
    let (releases, running) = match deployed {
        Some(d) => (d.releases.clone(), Some(d.running())),
        None => (Vec::new(), None),
    };
    let rotation = plan_rotation(&releases, running.as_ref(), &new, keep_old);
    let prepared = if rotation.admit == [new] {
        prepared
    } else {
        prepared.with_releases(rotation.admit.clone())?
    };
    Ok((prepared, rotation))
}

/// The phase a plan of this stack is in: `bootstrap` while the stack has no artifact bucket yet
/// (a new stack, or one taken over with `--adopt-stack`): its change set creates the bucket only,
/// apply uploads, then creates the rest. A stack with the bucket (even one left in the bootstrap
/// phase by an interrupted first apply) goes to the full template at once.
pub fn phase_of(existing: Option<&Existing>) -> &'static str {
    let has_bucket = existing
        .filter(|e| e.is_live())
        .and_then(|e| e.deployed.as_ref())
        .is_some_and(|d| d.has_bucket);
    if has_bucket {
        "full"
    } else {
        "bootstrap"
    }
}

/// The artifacts apply uploads, as a saved plan records them.
pub fn artifact_records(prepared: &Prepared) -> Vec<ArtifactRecord> {
    prepared
        .uploads()
        .into_iter()
        .map(|(name, _, key)| ArtifactRecord {
            sha256: prepared.sha256_of(&name),
            name,
            key,
        })
        .collect()
}

/// Reads what exists (refusing a stack that is not the deployment's unless adopted), creates the
/// change set and the plan document. Nothing is executed.
pub async fn plan(
    loaded: &Loaded,
    prepared: Prepared,
    aws: &Aws,
    args: &AwsArgs,
    opts: PlanOptions,
) -> anyhow::Result<OnlinePlan> {
    let c = &loaded.config;
    aws.check_account(&c.account).await?;
    let existing = refresh::existing(aws, &c.name, &c.name, opts.adopt_stack).await?;
    if let Some(e) = &existing {
        check_stack_state(&e.stack)?;
    }
    if let Some(review) = existing.as_ref().filter(|e| !e.is_live()) {
        // An empty stack left by an earlier, unexecuted plan (its saved plan, if any, is
        // superseded by this one): remove it so the new CREATE change set starts clean.
        discard_review_stack(aws, &review.stack, args).await?;
    }
    let live = existing.as_ref().filter(|e| e.is_live());
    let before = live.and_then(|l| l.deployed.as_ref());
    let live_key = match live {
        Some(l) => key_policy::read_live(aws, &l.stack.id).await?,
        None => None,
    };
    let (prepared, rotation) = rotate(prepared, before, opts.keep_old_release)?;
    let phase = phase_of(live);
    let bootstrap = phase == "bootstrap";
    let params = parameters();
    let mut saved = SavedPlan {
        format_version: FORMAT_VERSION.to_string(),
        deployment: c.name.clone(),
        region: c.region.clone(),
        account: c.account.clone(),
        stack_name: c.name.clone(),
        phase: phase.to_string(),
        template_sha256: prepared.template_sha256.clone(),
        parameters_sha256: parameters_sha256(&params),
        config_sha256: loaded.sha256.clone(),
        deployed_template_sha256: before.map(|d| d.template_sha256.clone()),
        key_id: live_key.as_ref().map(|k| k.key_id.clone()),
        live_key_policy_sha256: live_key.as_ref().map(|k| k.sha256.clone()),
        artifacts: artifact_records(&prepared),
        created_at_unix: unix_now(),
        keep_old_release: opts.keep_old_release,
        finish_rotation: rotation.then_finish,
        adopt_stack: opts.adopt_stack,
        content_sha256: String::new(),
        stack_id: live.map(|l| l.stack.id.clone()).unwrap_or_default(),
        change_set_arn: None,
        digest: String::new(),
    };
    saved.seal_content();
    let dep = &prepared.rendered.deployment;
    let request = ChangeSetRequest {
        stack_name: c.name.clone(),
        change_set_name: change_set_name(),
        // The bootstrap phase creates the bucket only (see apply); the plan reviews the full
        // template.
        template_body: if bootstrap {
            prepared.rendered.bootstrap_template.clone()
        } else {
            prepared.rendered.template.clone()
        },
        parameters: params.clone(),
        tags: stack_tags(dep),
        create: live.is_none(),
        description: saved.change_set_description(),
    };
    let mut plan = Plan::offline(&prepared.rendered);
    // Independent calls run together: the change set (which CloudFormation takes a while to
    // compute) and the artifact look-ups.
    let present = |key: Option<String>| async move {
        match key {
            Some(k) => Some(
                aws.s3
                    .head_object()
                    .bucket(&dep.bucket)
                    .key(k)
                    .send()
                    .await
                    .is_ok(),
            ),
            None => None,
        }
    };
    let (outcome, eif_present, supervisor_present) = tokio::join!(
        stack::create_change_set(aws, &request, args.poll),
        present(dep.eif_key()),
        present(dep.supervisor_key()),
    );
    let outcome = outcome?;
    for a in plan.artifacts.iter_mut() {
        a.present = if a.name == "eif" {
            eif_present
        } else {
            supervisor_present
        };
    }
    plan.mode = "online";
    plan.warnings.retain(|w| !w.contains("not built"));
    if prepared.built.standin {
        plan.warnings.push(crate::build::STANDIN_WARNING.into());
    }
    match existing.as_ref().and_then(|e| e.adopted.as_ref()) {
        Some(why) => plan.warnings.push(format!(
            "adopting stack {} (--adopt-stack): it was not this deployment's ({why}); apply replaces its template and tags, deleting resources that are not in ours",
            c.name
        )),
        None if opts.adopt_stack => plan.warnings.push(format!(
            "--adopt-stack has nothing to adopt: stack {} {}",
            c.name,
            if existing.is_some() { "is already this deployment's" } else { "does not exist" }
        )),
        None => {}
    }
    if let Some(before) = before {
        plan.pcr_changes = pcr_changes(&before.pcrs, &prepared.rendered.pinned_pcrs);
    }
    plan.key_id = live_key.as_ref().map(|k| k.key_id.clone());
    (plan.key_policy_change, plan.key_policy_drift) = key_policy::review(
        before.and_then(|d| d.key_policy.as_ref()),
        live_key.as_ref(),
        &prepared.rendered.key_policy,
    );
    match outcome {
        ChangeSetOutcome::NoChanges => {
            plan.resource_changes.clear();
            plan.summary = Summary {
                add: 0,
                change: 0,
                destroy: 0,
            };
        }
        ChangeSetOutcome::Ready {
            arn,
            stack_id,
            changes,
        } => {
            if !bootstrap {
                (plan.resource_changes, plan.summary) = plan_changes(&changes);
            } else if live.is_some() {
                // An adopted stack: everything of ours is created, and what the change set
                // removes from the foreign template is destroyed.
                let (removed, _) = plan_changes(&changes);
                plan.resource_changes.extend(
                    removed
                        .into_iter()
                        .filter(|r| r.actions.contains(&"delete")),
                );
                plan.summary = summary_of(&plan.resource_changes);
            }
            plan.change_set = Some(ChangeSetInfo {
                arn: arn.clone(),
                phase: phase.to_string(),
            });
            saved.stack_id = stack_id;
            saved.change_set_arn = Some(arn);
        }
    }
    saved.seal();
    if rotation.admit.len() > 1 {
        plan.warnings.push(if rotation.then_finish {
            "rotation: the key policy admits the running and the new release; after the instances roll, apply drops the old one in a second step".to_string()
        } else {
            "rotation: the key policy admits the running and the new release, and keeps both (--keep-old-release); a later apply drops the old one".to_string()
        });
    }
    Ok(OnlinePlan {
        plan,
        prepared,
        rotation,
        saved,
    })
}

/// A change set's changes in the plan's terms, with the summary counts.
pub fn plan_changes(changes: &[stack::ResourceChange]) -> (Vec<ResourceChange>, Summary) {
    let resource_changes: Vec<ResourceChange> = changes
        .iter()
        .map(|ch| ResourceChange {
            logical_id: ch.logical_id.clone(),
            resource_type: ch.resource_type.clone(),
            actions: ch
                .actions
                .iter()
                .map(|a| match a.as_str() {
                    "create" => "create",
                    "delete" => "delete",
                    _ => "update",
                })
                .collect(),
            security_sensitive: is_security_sensitive(&ch.resource_type),
        })
        .collect();
    let summary = summary_of(&resource_changes);
    (resource_changes, summary)
}

/// Terraform's counts: replacements count as one add and one destroy.
fn summary_of(changes: &[ResourceChange]) -> Summary {
    let count = |f: &dyn Fn(&[&str]) -> bool| changes.iter().filter(|r| f(&r.actions)).count();
    Summary {
        add: count(&|a| a.contains(&"create")),
        change: count(&|a| a == ["update"]),
        destroy: count(&|a| a.contains(&"delete")),
    }
}

/// Deletes a stack that only exists to hold an unexecuted CREATE change set (no resources).
async fn discard_review_stack(aws: &Aws, review: &StackInfo, args: &AwsArgs) -> anyhow::Result<()> {
    stack::delete_stack(aws, &review.id, &format!("np-discard-{}", unix_now())).await?;
    for _ in 0..600 {
        match stack::describe(aws, &review.id).await? {
            None => return Ok(()),
            Some(s) if s.status == "DELETE_FAILED" => {
                anyhow::bail!("could not delete the empty stack {}", s.name)
            }
            Some(_) => tokio::time::sleep(args.poll).await,
        }
    }
    anyhow::bail!("the empty stack {} was not deleted in time", review.name)
}

/// Removes what a plan created: its change set, and for a new stack the empty stack holding
/// it. `plan` without `--out` thus leaves nothing behind; `plan --discard` calls it for a saved
/// plan once it is checked to be this deployment's.
pub async fn discard(aws: &Aws, saved: &SavedPlan, args: &AwsArgs) -> anyhow::Result<()> {
    let Some(arn) = &saved.change_set_arn else {
        return Ok(());
    };
    if saved.phase == "bootstrap" {
        if let Some(review) = stack::describe(aws, &saved.stack_id)
            .await?
            .filter(|s| s.is_empty_review())
        {
            return discard_review_stack(aws, &review, args).await;
        }
    }
    stack::delete_change_set(aws, arn).await?;
    Ok(())
}

/// PCR values that differ between the deployed template and the plan.
fn pcr_changes(
    deployed: &BTreeMap<u8, String>,
    planned: &[(u8, Option<String>)],
) -> Vec<PcrChange> {
    let planned: BTreeMap<u8, Option<String>> = planned.iter().cloned().collect();
    let mut indices: Vec<u8> = deployed.keys().chain(planned.keys()).copied().collect();
    indices.sort_unstable();
    indices.dedup();
    indices
        .into_iter()
        .filter_map(|i| {
            let before = deployed.get(&i).cloned();
            let after = planned.get(&i).cloned().flatten();
            (before != after).then_some(PcrChange {
                index: i,
                name: pcr_name(i),
                deployed: before,
                planned: after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_only_changed_pcrs() {
        let deployed = BTreeMap::from([(0, "a".to_string()), (1, "b".to_string())]);
        let planned = vec![
            (0, Some("a".to_string())),
            (1, Some("c".to_string())),
            (2, Some("d".to_string())),
        ];
        assert_eq!(
            pcr_changes(&deployed, &planned),
            vec![
                PcrChange {
                    index: 1,
                    name: "PCR1".into(),
                    deployed: Some("b".into()),
                    planned: Some("c".into())
                },
                PcrChange {
                    index: 2,
                    name: "PCR2".into(),
                    deployed: None,
                    planned: Some("d".into())
                },
            ]
        );
    }
}
