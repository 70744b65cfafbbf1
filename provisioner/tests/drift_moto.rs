//! Items 3, 4 and 11 ("no key deployed yet") of issue 10, through the real binary against a real
//! moto server: the first plan shows the whole key policy; a key policy changed outside
//! CloudFormation (PutKeyPolicy, as a KMS admin may) is reported as drift, counts as a change,
//! and apply puts the rendered policy back — moto executes PutKeyPolicy. What moto cannot do (a
//! key updated through CloudFormation, the lock-out check) is in `key_policy_canned.rs`.

mod moto_support;

use harness::Moto;
use moto_support::{aws, change_sets, live_key_policy, np, save_plan, text};
use nitro_provision::reconcile::saved_plan::SavedPlan;
use serde_json::{json, Value};

const STACK: &str = "hello-enclave";

fn with_foreign_admin(policy: &str, who: &str) -> String {
    let mut doc: Value = serde_json::from_str(policy).unwrap();
    doc["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "ForeignAdmin",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::123456789012:user/{who}")},
        "Action": "kms:*",
        "Resource": "*"
    }));
    doc.to_string()
}

#[test]
fn first_plan_shows_the_policy_and_drift_is_reported_and_put_back() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);

    // Item 4: a first online plan shows the full policy it creates.
    let o = np(&moto, &config, &["plan"]);
    assert_eq!(o.status.code(), Some(0));
    let t = text(&o);
    assert!(
        t.contains("KMS key policy (EnclaveKey): no key deployed yet; apply creates it with:")
            && t.contains("\"kms:RecipientAttestation:PCR0\"")
            && !t.contains("unchanged"),
        "{t}"
    );
    assert_eq!(
        np(&moto, &config, &["apply", "--yes"]).status.code(),
        Some(0)
    );
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("No changes"));

    // A KMS admin changes the policy outside CloudFormation.
    let (key_id, rendered) = live_key_policy(&rt, &aws, STACK);
    let put = |policy: String| {
        rt.block_on(nitro_provision::aws::kms::put_key_policy(
            &aws, &key_id, &policy,
        ))
        .unwrap()
    };
    put(with_foreign_admin(&rendered, "mallory"));
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "drift is a change: {}", text(&o));
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "KMS key policy drift: key {key_id} was changed outside CloudFormation"
        )) && t.contains("arn:aws:iam::123456789012:user/mallory")
            && t.contains("KMS key policy changes (live -> planned)")
            && t.contains("apply puts the planned policy back"),
        "{t}"
    );
    let o = np(&moto, &config, &["plan", "--json"]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        doc["change_set"].is_null(),
        "CloudFormation sees nothing to change"
    );
    assert_eq!(doc["key_id"], key_id.as_str());
    assert!(
        doc["key_policy_drift"]["diff"]["changes"].is_array(),
        "{doc:#}"
    );
    assert!(
        doc["key_policy_change"]["diff"]["changes"].is_array(),
        "{doc:#}"
    );

    // A saved drift plan: nothing to hang on a change set, so every field is re-derived.
    let saved = dir.path().join("drift.json");
    let pristine = save_plan(&moto, &config, &saved);
    assert!(pristine["change_set_arn"].is_null());
    let sets_before = change_sets(&rt, &aws, STACK);
    let forged_file = dir.path().join("forged.json");
    for (pointer, value, expected) in [
        (
            "/template_sha256",
            json!("0".repeat(64)),
            "the rendered template differs from the planned one",
        ),
        (
            "/artifacts/0/sha256",
            json!("0".repeat(64)),
            "artifact eif is now",
        ),
        (
            "/finish_rotation",
            json!(true),
            "the plan says finish_rotation true",
        ),
        (
            "/deployed_template_sha256",
            json!("0".repeat(64)),
            "the template of stack hello-enclave changed since the plan was made",
        ),
        (
            "/key_id",
            json!("1234abcd-12ab-34cd-56ef-1234567890ab"),
            "the plan names key 1234abcd-12ab-34cd-56ef-1234567890ab",
        ),
        (
            "/live_key_policy_sha256",
            json!("0".repeat(64)),
            "changed since the plan was made",
        ),
        (
            "/phase",
            json!("bootstrap"),
            "the plan's phase is `bootstrap`",
        ),
    ] {
        let mut doc = pristine.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        let mut p: SavedPlan = serde_json::from_value(doc).unwrap();
        p.seal();
        std::fs::write(&forged_file, serde_json::to_string(&p).unwrap()).unwrap();
        let o = np(&moto, &config, &["apply", forged_file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{pointer}");
        assert!(text(&o).contains(expected), "{pointer}: {}", text(&o));
        assert!(
            live_key_policy(&rt, &aws, STACK).1.contains("mallory"),
            "{pointer}: nothing put"
        );
        assert_eq!(change_sets(&rt, &aws, STACK), sets_before, "{pointer}");
    }

    // The live policy changes again after the plan: the plan is stale.
    put(with_foreign_admin(&rendered, "eve"));
    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains(&format!(
            "saved plan is stale: the live policy of key {key_id} changed since the plan was made"
        )),
        "{}",
        text(&o)
    );
    put(with_foreign_admin(&rendered, "mallory"));
    save_plan(&moto, &config, &saved);
    let o = np(&moto, &config, &["apply", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("put the rendered policy back (PutKeyPolicy)"),
        "{}",
        text(&o)
    );
    let (_, restored) = live_key_policy(&rt, &aws, STACK);
    assert_eq!(
        serde_json::from_str::<Value>(&restored).unwrap(),
        serde_json::from_str::<Value>(&rendered).unwrap(),
        "the rendered policy is back"
    );
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn a_stack_left_in_the_bootstrap_phase_has_no_key_yet() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = harness::example_deployment(dir.path());
    let (rt, aws) = aws(&moto);
    let saved = dir.path().join("plan.json");
    // An interrupted first apply: the bucket-only change set ran, nothing after it.
    let arn = save_plan(&moto, &config, &saved)["change_set_arn"]
        .as_str()
        .unwrap()
        .to_string();
    rt.block_on(aws.cfn.execute_change_set().change_set_name(&arn).send())
        .unwrap();
    let o = np(&moto, &config, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("no key deployed yet; apply creates it with")
            && !t.contains("cannot be compared"),
        "{t}"
    );
    assert!(t.contains("+ EnclaveKey"), "{t}");
    let o = np(&moto, &config, &["apply", "--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(live_key_policy(&rt, &aws, STACK)
        .1
        .contains("kms:RecipientAttestation:PCR0"));
}
