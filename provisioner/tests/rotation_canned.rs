//! The two-step rotation inside `apply`, with canned AWS responses (moto cannot execute a key
//! policy update through CloudFormation): the plan's change set admits the running and the new
//! release; once it succeeds (instances rolled), apply creates and executes a second change set
//! whose key policy admits only the new release. `--keep-old-release` stops after step 1. The
//! plan goes through a saved file and `check_saved`, as `apply plan.json` does.

mod canned;

use std::sync::{Arc, Mutex};

use canned::{health_line, key_policy_of, Cloud, Quiet, INSTANCE_ID};
use companion_config::health::EnclaveState;
use nitro_provision::reconcile::online_plan::{self, PlanOptions};
use nitro_provision::reconcile::saved_plan::SavedPlan;
use nitro_provision::reconcile::{apply, stack_tags, Prepared};
use nitro_provision::render::Templates;

fn enclave_release_sids(template: &str) -> Vec<String> {
    let policy: serde_json::Value = serde_json::from_str(&key_policy_of(template)).unwrap();
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s["Sid"]
                .as_str()
                .filter(|s| s.starts_with("EnclaveRelease"))
                .map(str::to_string)
        })
        .collect()
}

/// The instance's health stream during the apply, given (old PCR0, new PCR0).
type Health = fn(&str, &str) -> Vec<String>;

/// Already on the new release, healthy.
fn new_healthy(_old: &str, new: &str) -> Vec<String> {
    vec![health_line(INSTANCE_ID, new, EnclaveState::Healthy, None)]
}

/// Plans and applies against a stack whose deployed template admits and runs only `old`;
/// returns the cloud afterwards, what apply said, and whether the plan had changes (or apply's
/// error).
fn rotate(
    keep_old: bool,
    health: Health,
) -> (Arc<Mutex<Cloud>>, Vec<String>, anyhow::Result<bool>) {
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let loaded = nitro_provision::config::load(&config).unwrap();
    let build_dir = dir.path().join("build");
    // The same build every time (the second and later calls reuse it by fingerprint).
    let prepare = || {
        let templates = Templates::load(None).unwrap();
        Prepared::new(&loaded, templates, &build_dir, &nitro_eif::NoProgress).unwrap()
    };
    let mut old = prepare().new_release;
    old.pcrs.insert(2, "ab".repeat(48));
    old.pcrs.insert(0, "cd".repeat(48));
    let deployed = prepare().with_releases(vec![old]).unwrap();
    let cloud = Cloud::deployed(
        &deployed.rendered.template,
        stack_tags(&deployed.rendered.deployment),
    );
    let new_pcr0 = prepare().new_release.pcrs[&0].clone();
    cloud.lock().unwrap().health.insert(
        INSTANCE_ID.to_string(),
        health(&"cd".repeat(48), &new_pcr0).into(),
    );
    let aws = canned::aws(&cloud);
    let said: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = said.clone();
    let say = move |s: &str| log.lock().unwrap().push(s.to_string());
    let (args, rt) = (canned::args(), canned::rt());
    let plan_file = dir.path().join("plan.json");
    let opts = PlanOptions {
        keep_old_release: keep_old,
        adopt_stack: false,
    };
    let has_changes = rt.block_on(async {
        let online = online_plan::plan(&loaded, prepare(), &aws, &args, opts).await?;
        assert_eq!(
            enclave_release_sids(&online.prepared.rendered.template).len(),
            2,
            "step 1 admits both"
        );
        online.saved.save(&plan_file)?;
        let saved = SavedPlan::load(&plan_file)?;
        let prepared = apply::check_saved(&loaded, prepare(), &saved, &aws).await?;
        apply::apply_plan(prepared, &saved, &aws, &args, &Quiet, &say).await?;
        anyhow::Ok(online.plan.has_changes())
    });
    let said = said.lock().unwrap().clone();
    (cloud, said, has_changes)
}

#[test]
fn rotation_drops_the_old_release_after_the_new_one_runs() {
    let (cloud, said, has_changes) = rotate(false, new_healthy);
    assert!(has_changes.unwrap());
    let c = cloud.lock().unwrap();
    assert_eq!(
        c.mutations,
        ["execute arn:cs/1", "execute arn:cs/2"],
        "the planned change set, then step 2"
    );
    let step1 = enclave_release_sids(&c.change_sets[0].template);
    let step2 = enclave_release_sids(&c.change_sets[1].template);
    assert_eq!(step1.len(), 2);
    assert_eq!(step2.len(), 1, "step 2 admits only the new release");
    assert!(step1.contains(&step2[0]));
    assert_eq!(
        c.live_policy,
        key_policy_of(&c.change_sets[1].template),
        "CloudFormation wrote the final policy: no PutKeyPolicy needed"
    );
    assert!(c.put_policies.is_empty());
    assert!(
        said.iter().any(|s| s.contains("dropping the old release")),
        "{said:?}"
    );
    assert!(
        said.iter().any(|s| s.contains("already present")),
        "uploads skipped by digest: {said:?}"
    );
}

#[test]
fn keep_old_release_stops_after_step_one() {
    let (cloud, said, done) = rotate(true, new_healthy);
    done.unwrap();
    let c = cloud.lock().unwrap();
    assert_eq!(
        c.mutations,
        ["execute arn:cs/1"],
        "no second change set with --keep-old-release"
    );
    assert_eq!(enclave_release_sids(&c.template).len(), 2);
    assert!(!said.iter().any(|s| s.contains("dropping")), "{said:?}");
}

#[test]
fn the_old_release_is_dropped_only_after_the_instance_reports_the_new_one_healthy() {
    // The supervisor still reports the old release twice, then the new one starting, then
    // healthy: step 2 waits for the fourth read.
    fn rolling(old: &str, new: &str) -> Vec<String> {
        vec![
            health_line(INSTANCE_ID, old, EnclaveState::Healthy, None),
            health_line(INSTANCE_ID, old, EnclaveState::Healthy, None),
            health_line(INSTANCE_ID, new, EnclaveState::Starting, None),
            health_line(INSTANCE_ID, new, EnclaveState::Healthy, None),
        ]
    }
    let (cloud, said, done) = rotate(false, rolling);
    done.unwrap();
    let c = cloud.lock().unwrap();
    let after_step1: Vec<&str> = c
        .calls
        .iter()
        .map(String::as_str)
        .skip_while(|c| *c != "create arn:cs/1")
        .collect();
    let health = format!("health {INSTANCE_ID}");
    assert_eq!(
        after_step1,
        [
            "create arn:cs/1",
            &health,
            &health,
            &health,
            &health,
            "create arn:cs/2"
        ],
        "the second change set is created after the fourth health read"
    );
    assert_eq!(enclave_release_sids(&c.template).len(), 1);
    assert!(
        said.iter()
            .any(|s| s.contains("waiting for every instance")),
        "{said:?}"
    );
}

#[test]
fn an_instance_stuck_on_the_old_release_stops_apply_with_both_releases_admitted() {
    fn stuck(old: &str, _new: &str) -> Vec<String> {
        vec![health_line(INSTANCE_ID, old, EnclaveState::Healthy, None)]
    }
    let (cloud, _, done) = rotate(false, stuck);
    let err = format!("{:#}", done.unwrap_err());
    assert!(err.contains("both releases stay admitted"), "{err}");
    assert!(
        err.contains(&format!("{INSTANCE_ID}: runs PCR0 {}…", &"cd".repeat(8))),
        "{err}"
    );
    let c = cloud.lock().unwrap();
    assert_eq!(c.mutations, ["execute arn:cs/1"], "no step 2");
    assert_eq!(
        c.change_sets.len(),
        1,
        "the second change set was never created"
    );
    assert_eq!(enclave_release_sids(&c.template).len(), 2);
    assert_eq!(enclave_release_sids(&key_policy_of_live(&c)).len(), 2);
}

#[test]
fn an_unhealthy_new_release_is_reported_with_the_supervisors_last_error() {
    fn failing(_old: &str, new: &str) -> Vec<String> {
        vec![health_line(
            INSTANCE_ID,
            new,
            EnclaveState::Failed,
            Some("E36: enclave did not boot within 180 s"),
        )]
    }
    let (cloud, _, done) = rotate(false, failing);
    let err = format!("{:#}", done.unwrap_err());
    assert!(
        err.contains("enclave failed; last error: E36: enclave did not boot within 180 s"),
        "{err}"
    );
    assert_eq!(cloud.lock().unwrap().mutations, ["execute arn:cs/1"]);
}

/// The live key policy wrapped as a template body, for `enclave_release_sids`.
fn key_policy_of_live(c: &Cloud) -> String {
    serde_json::json!({"Resources": {"EnclaveKey": {"Properties": {"KeyPolicy": c.live_policy}}}})
        .to_string()
}
