//! `plan` against AWS: a change set (CREATE or UPDATE, explicitly), never executed, reported in
//! Terraform's terms with the security-sensitive changes, PCR changes and uploads called out.

use std::collections::BTreeMap;

use serde_json::Value;

use super::rotation::{plan_rotation, Rotation};
use super::saved_plan::{ArtifactRecord, SavedPlan, FORMAT_VERSION};
use super::{
    change_set_name, parameters, parameters_sha256, stack_tags, unix_now, AwsArgs, Prepared,
};
use crate::aws::stack::{self, ChangeSetOutcome, ChangeSetRequest, StackInfo};
use crate::aws::Aws;
use crate::config::Loaded;
use crate::plan::{
    is_security_sensitive, ChangeSetInfo, KeyPolicyChange, PcrChange, Plan, ResourceChange, Summary,
};
use crate::render::Release;

/// An online plan and what `apply` needs to execute it.
pub struct OnlinePlan {
    pub plan: Plan,
    /// The rendering the change set was made from (a rotation admits two releases).
    pub prepared: Prepared,
    pub rotation: Rotation,
    /// `None` when there is nothing to change.
    pub saved: Option<SavedPlan>,
    pub stack: Option<StackInfo>,
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

/// What the deployed template pins, admits and its key policy: the "before" of the plan.
pub struct Deployed {
    pub pcrs: BTreeMap<u8, String>,
    pub key_policy: Option<Value>,
    /// Every release the deployed key policy admits, oldest first.
    pub releases: Vec<Release>,
}

impl Deployed {
    /// The release the instances run: the one the deployed EIF's PCRs match.
    pub fn running(&self) -> Release {
        Release {
            pcrs: self.pcrs.clone(),
        }
    }
}

pub async fn deployed(aws: &Aws, stack: &StackInfo) -> anyhow::Result<Deployed> {
    let body = stack::deployed_template(aws, &stack.id).await?;
    let doc: Value = serde_saphyr::from_str(&body).unwrap_or(Value::Null);
    let pcrs = doc["Metadata"]["nitro-provision"]["PinnedPcrs"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.strip_prefix("PCR")?.parse().ok()?, v.to_string()))
        })
        .collect();
    let key_policy = doc["Resources"]["EnclaveKey"]["Properties"]["KeyPolicy"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok());
    let releases = doc["Metadata"]["nitro-provision"]["Releases"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|r| Release {
                    pcrs: r
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| {
                            Some((
                                k.strip_prefix("PCR")?.parse().ok()?,
                                v.as_str()?.to_string(),
                            ))
                        })
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Deployed {
        pcrs,
        key_policy,
        releases,
    })
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

/// Creates the change set and the plan document.
pub async fn plan(
    loaded: &Loaded,
    prepared: Prepared,
    aws: &Aws,
    args: &AwsArgs,
    keep_old_release: bool,
) -> anyhow::Result<OnlinePlan> {
    let c = &loaded.config;
    aws.check_account(&c.account).await?;
    let existing = stack::describe(aws, &c.name).await?;
    if let Some(s) = &existing {
        check_stack_state(s)?;
    }
    if let Some(review) = existing.as_ref().filter(|s| s.is_empty_review()) {
        // An empty stack left by an earlier, unexecuted plan (its saved plan, if any, is
        // superseded by this one): remove it so the new CREATE change set starts clean.
        discard_review_stack(aws, review, args).await?;
    }
    let live = existing.as_ref().filter(|s| !s.is_empty_review());
    let before = match live {
        Some(l) => Some(deployed(aws, l).await?),
        None => None,
    };
    let (prepared, rotation) = rotate(prepared, before.as_ref(), keep_old_release)?;
    // A live stack (even one left in the bootstrap phase by an interrupted first apply) goes to
    // the full phase; a new one starts with the bucket only.
    let phase = if live.is_some() { "full" } else { "bootstrap" };
    let params = parameters();
    let dep = &prepared.rendered.deployment;
    let request = ChangeSetRequest {
        stack_name: c.name.clone(),
        change_set_name: change_set_name(),
        // A new stack starts with the bucket only (see apply); the plan reviews the full template.
        template_body: if live.is_some() {
            prepared.rendered.template.clone()
        } else {
            prepared.rendered.bootstrap_template.clone()
        },
        parameters: params.clone(),
        tags: stack_tags(dep),
        create: live.is_none(),
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
    if let Some(before) = &before {
        plan.pcr_changes = pcr_changes(&before.pcrs, &prepared.rendered.pinned_pcrs);
        if before.key_policy.as_ref() != Some(&prepared.rendered.key_policy) {
            plan.key_policy_change = Some(key_policy_change(
                before.key_policy.clone(),
                &prepared.rendered.key_policy,
            ));
        }
    }
    let (arn, stack_id, changes) = match outcome {
        ChangeSetOutcome::NoChanges => {
            plan.resource_changes.clear();
            plan.summary = Summary {
                add: 0,
                change: 0,
                destroy: 0,
            };
            return Ok(OnlinePlan {
                plan,
                prepared,
                rotation,
                saved: None,
                stack: existing,
            });
        }
        ChangeSetOutcome::Ready {
            arn,
            stack_id,
            changes,
        } => (arn, stack_id, changes),
    };
    if live.is_some() {
        (plan.resource_changes, plan.summary) = plan_changes(&changes);
    }
    plan.change_set = Some(ChangeSetInfo {
        arn: arn.clone(),
        phase: phase.to_string(),
    });
    let saved = SavedPlan {
        format_version: FORMAT_VERSION.to_string(),
        deployment: c.name.clone(),
        region: c.region.clone(),
        account: c.account.clone(),
        stack_name: c.name.clone(),
        stack_id,
        change_set_arn: arn,
        phase: phase.to_string(),
        template_sha256: prepared.template_sha256.clone(),
        parameters_sha256: parameters_sha256(&params),
        config_sha256: loaded.sha256.clone(),
        artifacts: prepared
            .uploads()
            .into_iter()
            .map(|(name, _, key)| ArtifactRecord {
                sha256: prepared.sha256_of(&name),
                name,
                key,
            })
            .collect(),
        created_at_unix: unix_now(),
        keep_old_release,
        finish_rotation: rotation.then_finish,
    };
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
        saved: Some(saved),
        stack: existing,
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
    let count =
        |f: &dyn Fn(&[&str]) -> bool| resource_changes.iter().filter(|r| f(&r.actions)).count();
    let summary = Summary {
        add: count(&|a| a.contains(&"create")),
        change: count(&|a| a == ["update"]),
        destroy: count(&|a| a.contains(&"delete")),
    };
    (resource_changes, summary)
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

/// Removes what a plan created when it is not saved: its change set, and for a new stack the
/// empty stack holding it. `plan` without `--out` thus leaves nothing behind.
pub async fn discard(aws: &Aws, saved: &SavedPlan, args: &AwsArgs) -> anyhow::Result<()> {
    if saved.phase == "bootstrap" {
        if let Some(review) = stack::describe(aws, &saved.stack_id)
            .await?
            .filter(|s| s.is_empty_review())
        {
            return discard_review_stack(aws, &review, args).await;
        }
    }
    stack::delete_change_set(aws, &saved.change_set_arn).await?;
    Ok(())
}

/// The semantic diff reviewers approve; a deployed policy our parser refuses (edited by hand
/// with constructs we never emit) is reported as such rather than guessed at.
fn key_policy_change(deployed: Option<Value>, planned: &Value) -> KeyPolicyChange {
    let deployed = deployed.unwrap_or(Value::Null);
    let parse = |v: &Value| kms_policy::Policy::from_json(&v.to_string());
    match (parse(&deployed), parse(planned)) {
        (Ok(before), Ok(after)) => {
            let d = kms_policy::diff(&before, &after);
            KeyPolicyChange {
                diff: serde_json::to_value(&d).unwrap_or(Value::Null),
                text: d.to_string(),
                deployed,
            }
        }
        (Err(e), _) | (_, Err(e)) => KeyPolicyChange {
            text: format!("the deployed key policy cannot be compared ({e}); the planned policy replaces it whole"),
            diff: Value::Null,
            deployed,
        },
    }
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
                    deployed: Some("b".into()),
                    planned: Some("c".into())
                },
                PcrChange {
                    index: 2,
                    deployed: None,
                    planned: Some("d".into())
                },
            ]
        );
    }
}
