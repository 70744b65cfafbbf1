//! Items 2 and 11 (discard, status of a pending plan) of issue 10, through the real binary against
//! a real moto server: a saved plan is applied only as it was made. Each field edited in turn is
//! refused with its own message, exit 1, and — checked through the AWS API — no change set runs.

mod moto_support;

use std::path::Path;

use harness::Moto;
use moto_support::{aws, change_sets, np, save_plan, stack_status, text};
use nitro_provision::aws::Aws;
use nitro_provision::reconcile::saved_plan::SavedPlan;
use serde_json::{json, Value};

const STACK: &str = "hello-enclave";
const BUCKET: &str = "hello-enclave-123456789012-us-east-1";

fn write_plan(path: &Path, plan: &Value) {
    std::fs::write(path, serde_json::to_string_pretty(plan).unwrap()).unwrap();
}

/// The same edit, with both digests recomputed as a forger with this tool's source would.
fn forge(plan: &Value) -> Value {
    let mut p: SavedPlan = serde_json::from_value(plan.clone()).unwrap();
    p.seal();
    serde_json::to_value(p).unwrap()
}

fn edited(plan: &Value, pointer: &str, value: Value) -> Value {
    let mut p = plan.clone();
    *p.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    p
}

/// Nothing was executed: every change set of the stack is still AVAILABLE, the stack holds no
/// resources, and no bucket (the first thing a bootstrap apply creates) exists.
fn assert_untouched(rt: &tokio::runtime::Runtime, aws: &Aws, what: &str) {
    let sets = change_sets(rt, aws, STACK);
    assert!(
        !sets.is_empty() && sets.iter().all(|(_, s)| s == "AVAILABLE"),
        "{what}: {sets:?}"
    );
    assert_eq!(
        stack_status(rt, aws, STACK).as_deref(),
        Some("REVIEW_IN_PROGRESS"),
        "{what}"
    );
    assert!(
        rt.block_on(aws.s3.head_bucket().bucket(BUCKET).send())
            .is_err(),
        "{what}: the bucket was created"
    );
}

fn refused(moto: &Moto, config: &Path, file: &Path, expected: &str, what: &str) {
    let o = np(moto, config, &["apply", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
    assert!(
        text(&o).contains(expected),
        "{what}: expected {expected:?} in\n{}",
        text(&o)
    );
}

#[test]
fn every_field_of_a_saved_plan_is_checked_before_anything_runs() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    let saved = dir.path().join("plan.json");
    let pristine = save_plan(&moto, &config, &saved);
    assert_eq!(pristine["phase"], "bootstrap");
    let file = dir.path().join("tampered.json");

    // Every field, edited by hand: the digest no longer matches.
    let edits: Vec<(&str, Value)> = vec![
        ("/deployment", json!("billing")),
        ("/region", json!("eu-west-1")),
        ("/account", json!("999999999999")),
        ("/stack_name", json!("billing")),
        ("/phase", json!("full")),
        ("/template_sha256", json!("0".repeat(64))),
        ("/parameters_sha256", json!("0".repeat(64))),
        ("/config_sha256", json!("0".repeat(64))),
        ("/deployed_template_sha256", json!("0".repeat(64))),
        ("/key_id", json!("1234abcd-12ab-34cd-56ef-1234567890ab")),
        ("/live_key_policy_sha256", json!("0".repeat(64))),
        ("/artifacts/0/sha256", json!("0".repeat(64))),
        ("/artifacts/0/key", json!("artifacts/eif/other.eif")),
        ("/artifacts/1/name", json!("eif")),
        ("/created_at_unix", json!(1)),
        ("/keep_old_release", json!(true)),
        ("/finish_rotation", json!(true)),
        ("/adopt_stack", json!(true)),
        ("/content_sha256", json!("0".repeat(64))),
        (
            "/stack_id",
            json!("arn:aws:cloudformation:us-east-1:123456789012:stack/hello-enclave/other"),
        ),
        (
            "/change_set_arn",
            json!("arn:aws:cloudformation:us-east-1:123456789012:changeSet/other/1"),
        ),
        ("/digest", json!("0".repeat(64))),
    ];
    for (pointer, value) in &edits {
        write_plan(&file, &edited(&pristine, pointer, value.clone()));
        refused(
            &moto,
            &config,
            &file,
            &format!(
                "the plan file {} was modified after it was made",
                file.display()
            ),
            pointer,
        );
        assert_untouched(&rt, &aws, pointer);
    }

    // The same edits with the digests recomputed: each is caught by what apply re-derives, or
    // by the change set, whose description CloudFormation keeps with this plan's digest.
    let not_ours = "was not made by this plan";
    let forged: Vec<(&str, Value, &str)> = vec![
        ("/deployment", json!("billing"), "this plan is for deployment billing (stack hello-enclave"),
        ("/stack_name", json!("billing"), "this plan is for deployment hello-enclave (stack billing"),
        ("/region", json!("eu-west-1"), "region eu-west-1), but enclave.yaml describes"),
        ("/account", json!("999999999999"), "in account 999999999999, region us-east-1), but enclave.yaml"),
        ("/config_sha256", json!("0".repeat(64)), "saved plan is stale: enclave.yaml changed"),
        (
            "/stack_id",
            json!("arn:aws:cloudformation:us-east-1:123456789012:stack/hello-enclave/other"),
            "the plan is for stack id arn:aws:cloudformation:us-east-1:123456789012:stack/hello-enclave/other",
        ),
        ("/phase", json!("full"), "the plan's phase is `full`"),
        (
            "/change_set_arn",
            json!("arn:aws:cloudformation:us-east-1:123456789012:changeSet/other/1"),
            "its change set arn:aws:cloudformation:us-east-1:123456789012:changeSet/other/1 cannot be read",
        ),
        ("/template_sha256", json!("0".repeat(64)), not_ours),
        ("/parameters_sha256", json!("0".repeat(64)), not_ours),
        ("/deployed_template_sha256", json!("0".repeat(64)), not_ours),
        ("/key_id", json!("1234abcd-12ab-34cd-56ef-1234567890ab"), not_ours),
        ("/live_key_policy_sha256", json!("0".repeat(64)), not_ours),
        ("/artifacts/0/sha256", json!("0".repeat(64)), not_ours),
        ("/artifacts/0/key", json!("artifacts/eif/other.eif"), not_ours),
        ("/created_at_unix", json!(1), not_ours),
        ("/keep_old_release", json!(true), not_ours),
        ("/finish_rotation", json!(true), not_ours),
        ("/adopt_stack", json!(true), not_ours),
    ];
    for (pointer, value, expected) in &forged {
        write_plan(&file, &forge(&edited(&pristine, pointer, value.clone())));
        refused(&moto, &config, &file, expected, pointer);
        assert_untouched(&rt, &aws, pointer);
    }

    // An unknown major format version gets its own message.
    write_plan(&file, &edited(&pristine, "/format_version", json!("3.0")));
    refused(
        &moto,
        &config,
        &file,
        "has format_version 3.0; this nitro-provision reads saved plans of format 2.0",
        "format_version",
    );
    assert_untouched(&rt, &aws, "format_version");

    // The untouched plan applies, exactly once.
    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("saved plan is stale: the plan's phase is `bootstrap`"),
        "{}",
        text(&o)
    );
}

#[test]
fn another_deployments_plan_is_refused_and_left_alone() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = harness::example_deployment(&other_dir);
    std::fs::write(
        &other,
        std::fs::read_to_string(&other)
            .unwrap()
            .replace("name: hello-enclave", "name: billing-enclave"),
    )
    .unwrap();
    let (rt, aws) = aws(&moto);
    let plan = dir.path().join("billing.json");
    save_plan(&moto, &other, &plan);
    for args in [
        &["apply", plan.to_str().unwrap()][..],
        &["plan", "--discard", plan.to_str().unwrap()],
    ] {
        let o = np(&moto, &config, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            text(&o).contains("this plan is for deployment billing-enclave (stack billing-enclave in account 123456789012, region us-east-1), but enclave.yaml describes deployment hello-enclave"),
            "{}",
            text(&o)
        );
    }
    let sets = change_sets(&rt, &aws, "billing-enclave");
    assert!(sets.len() == 1 && sets[0].1 == "AVAILABLE", "{sets:?}");
    assert_eq!(stack_status(&rt, &aws, STACK), None);
}

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pending_plans_show_in_status_and_can_be_discarded() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    let first = dir.path().join("first.json");
    let arn = save_plan(&moto, &config, &first)["change_set_arn"]
        .as_str()
        .unwrap()
        .to_string();

    // A stack that only holds the first plan's change set: nothing is deployed.
    let o = np(&moto, &config, &["status"]);
    assert_eq!(o.status.code(), Some(1));
    let t = text(&o);
    assert!(
        t.contains("only holds a pending plan (nothing is deployed)") && t.contains(&arn),
        "{t}"
    );

    // A modified plan file is never used to delete anything.
    let tampered = dir.path().join("tampered.json");
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(&first).unwrap()).unwrap();
    doc["created_at_unix"] = json!(7);
    write_plan(&tampered, &doc);
    let o = np(&moto, &config, &["plan", "--discard", path_arg(&tampered)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("was modified after it was made"));
    assert_eq!(
        stack_status(&rt, &aws, STACK).as_deref(),
        Some("REVIEW_IN_PROGRESS")
    );

    let o = np(&moto, &config, &["plan", "--discard", path_arg(&first)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains(&format!("change set {arn} deleted")));
    assert_eq!(
        stack_status(&rt, &aws, STACK),
        None,
        "the empty stack went with it"
    );
    let o = np(&moto, &config, &["status"]);
    assert!(text(&o).contains("does not exist"));

    // A deployed stack with a pending plan: status lists it; discard deletes only its change set.
    assert_eq!(
        np(&moto, &config, &["apply", "--yes"]).status.code(),
        Some(0)
    );
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("retention_days: 30", "retention_days: 60"),
    )
    .unwrap();
    let second = dir.path().join("second.json");
    let arn = save_plan(&moto, &config, &second)["change_set_arn"]
        .as_str()
        .unwrap()
        .to_string();
    let o = np(&moto, &config, &["status"]);
    // Exit 1: moto's instance has no supervisor, so it never reports health.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("NOT OK: no health record"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("Pending plans") && text(&o).contains(&arn),
        "{}",
        text(&o)
    );
    let o = np(&moto, &config, &["plan", "--discard", path_arg(&second)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        change_sets(&rt, &aws, STACK).iter().all(|(a, _)| a != &arn),
        "the change set is gone"
    );
    assert!(stack_status(&rt, &aws, STACK).is_some_and(|s| s.ends_with("_COMPLETE")));
    let o = np(&moto, &config, &["apply", path_arg(&second)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("cannot be read"), "{}", text(&o));
}
