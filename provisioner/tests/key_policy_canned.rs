//! Key-policy drift restored by `apply`, with canned AWS responses where moto cannot do it:
//! moto cannot update a key through CloudFormation (so "CloudFormation writes the policy when the
//! template's changes" and the order of the stack update and PutKeyPolicy are shown here), and it
//! has no lock-out safety check. The plain drift case runs against moto through the binary in
//! `drift_moto.rs`.

mod canned;

use std::sync::{Arc, Mutex};

use canned::{health_line, key_policy_of, Cloud, Quiet, INSTANCE_ID};
use nitro_provision::reconcile::online_plan::{self, PlanOptions};
use nitro_provision::reconcile::{apply, stack_tags, Prepared};
use nitro_provision::render::Templates;

/// The live policy with a foreign admin added outside CloudFormation.
fn drifted(policy: &str) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(policy).unwrap();
    doc["Statement"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "Sid": "ForeignAdmin",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:user/mallory"},
            "Action": "kms:*",
            "Resource": "*"
        }));
    doc.to_string()
}

struct Run {
    cloud: Arc<Mutex<Cloud>>,
    result: anyhow::Result<()>,
    drift_reported: bool,
    rendered_policy: String,
}

/// Deploys the example (with `old` admitted when given), drifts the live policy, edits
/// enclave.yaml with `edit`, then plans and applies.
fn run(old_release: bool, edit: &dyn Fn(String) -> String, refuse_put: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let build_dir = dir.path().join("build");
    let prepare = |loaded: &nitro_provision::config::Loaded| {
        Prepared::new(
            loaded,
            Templates::load(None).unwrap(),
            &build_dir,
            &nitro_eif::NoProgress,
        )
        .unwrap()
    };
    let original = nitro_provision::config::load(&config).unwrap();
    let mut deployed = prepare(&original);
    if old_release {
        let mut old = deployed.new_release.clone();
        old.pcrs.insert(0, "cd".repeat(48));
        deployed = deployed.with_releases(vec![old]).unwrap();
    }
    let cloud = Cloud::deployed(
        &deployed.rendered.template,
        stack_tags(&deployed.rendered.deployment),
    );
    {
        let mut c = cloud.lock().unwrap();
        c.live_policy = drifted(&c.live_policy);
        c.refuse_put = refuse_put;
        // The instance reports the new release healthy (a rotation's second step waits for it).
        let line = health_line(
            INSTANCE_ID,
            &deployed.new_release.pcrs[&0],
            companion_config::health::EnclaveState::Healthy,
            None,
        );
        c.health.insert(INSTANCE_ID.to_string(), [line].into());
    }
    std::fs::write(&config, edit(std::fs::read_to_string(&config).unwrap())).unwrap();
    let loaded = nitro_provision::config::load(&config).unwrap();
    let aws = canned::aws(&cloud);
    let (args, rt) = (canned::args(), canned::rt());
    let mut drift_reported = false;
    let mut rendered_policy = String::new();
    let result = rt.block_on(async {
        let online = online_plan::plan(
            &loaded,
            prepare(&loaded),
            &aws,
            &args,
            PlanOptions::default(),
        )
        .await?;
        drift_reported = online.plan.key_policy_drift.is_some()
            && online.plan.key_policy_change.is_some()
            && online.plan.has_changes();
        rendered_policy = serde_json::to_string(&online.prepared.rendered.key_policy)?;
        apply::apply_plan(online.prepared, &online.saved, &aws, &args, &Quiet, &|_| {}).await?;
        Ok(())
    });
    Run {
        cloud,
        result,
        drift_reported,
        rendered_policy,
    }
}

#[test]
fn drift_alone_is_put_back_with_the_lockout_check_on() {
    let r = run(false, &|t| t, false);
    r.result.unwrap();
    assert!(r.drift_reported, "drift counts as a change");
    let c = r.cloud.lock().unwrap();
    assert_eq!(
        c.mutations,
        ["put-key-policy"],
        "no change set to execute, one PutKeyPolicy"
    );
    assert_eq!(c.put_policies, [(r.rendered_policy.clone(), Some(false))]);
    assert_eq!(c.live_policy, key_policy_of(&c.template));
}

#[test]
fn drift_is_put_back_after_a_stack_update_that_leaves_the_key_policy() {
    // CloudFormation does not write KeyPolicy for a log retention change: apply must.
    let r = run(
        false,
        &|t| t.replace("retention_days: 30", "retention_days: 60"),
        false,
    );
    r.result.unwrap();
    let c = r.cloud.lock().unwrap();
    assert_eq!(
        c.mutations,
        ["execute arn:cs/1", "put-key-policy"],
        "PutKeyPolicy comes after the stack update"
    );
    assert_eq!(c.put_policies[0].0, r.rendered_policy);
    assert!(!c.live_policy.contains("mallory"));
}

#[test]
fn a_template_that_changes_the_key_policy_overwrites_drift_without_put_key_policy() {
    // A rotation changes KeyPolicy in the template: CloudFormation writes it (both steps), so the
    // drift is gone without a PutKeyPolicy.
    let r = run(true, &|t| t, false);
    r.result.unwrap();
    assert!(r.drift_reported);
    let c = r.cloud.lock().unwrap();
    assert_eq!(c.mutations, ["execute arn:cs/1", "execute arn:cs/2"]);
    assert!(c.put_policies.is_empty());
    assert_eq!(c.live_policy, key_policy_of(&c.template));
    assert!(!c.live_policy.contains("mallory"));
}

#[test]
fn a_put_refused_by_the_lockout_check_fails_apply_and_says_so() {
    let r = run(false, &|t| t, true);
    let err = format!("{:#}", r.result.unwrap_err());
    assert!(
        err.contains("restoring the rendered key policy on")
            && err.contains("MalformedPolicyDocumentException")
            && err.contains("will not allow you to update the key policy"),
        "{err}"
    );
    assert!(r.cloud.lock().unwrap().live_policy.contains("mallory"));
}

/// Adoption on the AWS side (moto does not apply an UPDATE change set's tags, see
/// `ownership_moto.rs`): the change sets carry the ownership tags, so once applied the stack is
/// the deployment's and is planned without `--adopt-stack`.
#[test]
fn adopted_stack_gets_the_ownership_tags() {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let loaded = nitro_provision::config::load(&config).unwrap();
    let build_dir = dir.path().join("build");
    let prepare = || {
        Prepared::new(
            &loaded,
            Templates::load(None).unwrap(),
            &build_dir,
            &nitro_eif::NoProgress,
        )
        .unwrap()
    };
    let foreign = r#"{"Resources": {"Queue": {"Type": "AWS::SQS::Queue"}}}"#;
    let cloud = Cloud::deployed(foreign, vec![("team".into(), "orders".into())]);
    let aws = canned::aws(&cloud);
    let (args, rt) = (canned::args(), canned::rt());
    rt.block_on(async {
        let refused = online_plan::plan(&loaded, prepare(), &aws, &args, PlanOptions::default())
            .await
            .err()
            .expect("a foreign stack is refused");
        assert!(refused.to_string().contains("no `managed-by"), "{refused}");
        let adopt = PlanOptions {
            adopt_stack: true,
            ..PlanOptions::default()
        };
        let online = online_plan::plan(&loaded, prepare(), &aws, &args, adopt).await?;
        assert_eq!(online.saved.phase, "bootstrap", "the bucket comes first");
        apply::apply_plan(online.prepared, &online.saved, &aws, &args, &Quiet, &|_| {}).await?;
        let again =
            online_plan::plan(&loaded, prepare(), &aws, &args, PlanOptions::default()).await?;
        assert!(!again.plan.has_changes(), "now the deployment's, unchanged");
        anyhow::Ok(())
    })
    .unwrap();
    let c = cloud.lock().unwrap();
    assert!(c
        .tags
        .contains(&("managed-by".to_string(), "nitro-provision".to_string())));
    assert!(c.tags.contains(&(
        "nitro-provision:deployment".to_string(),
        "hello-enclave".to_string()
    )));
}
