//! The awsim front's policy checker (Python, written from the IAM/KMS docs) and this crate's
//! evaluator decide the same shared table of cases, and both match its expected decisions:
//! a bug in either shows up as a disagreement rather than passing both sides silently.

use std::process::Command;

use kms_policy::{evaluate, PcrIndex, PcrSet, PcrValue, Policy, Request};
use serde_json::Value;

#[test]
fn both_evaluators_decide_every_shared_case_as_expected() {
    let table = harness::repo_root().join("tests/harness/awsim/policy_cases.json");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(&table).unwrap()).unwrap();
    let cases = cases["cases"].as_array().unwrap();

    let out = Command::new(harness::tool("python3"))
        .arg(harness::repo_root().join("tests/harness/awsim/policy.py"))
        .arg(&table)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(python.len(), cases.len());

    for (case, python) in cases.iter().zip(&python) {
        let name = case["name"].as_str().unwrap();
        let expected = case["expected"].as_str().unwrap();
        let policy = Policy::from_json(&case["policy"].to_string())
            .unwrap_or_else(|e| panic!("{name}: kms-policy cannot parse the case: {e}"));
        let pcrs: Option<PcrSet> = case["pcrs"].as_object().map(|m| {
            m.iter()
                .map(|(i, v)| {
                    (
                        PcrIndex::new(i.parse().unwrap()).unwrap(),
                        v.as_str().unwrap().parse::<PcrValue>().unwrap(),
                    )
                })
                .collect()
        });
        let request = Request {
            principal: case["principal"].as_str().unwrap(),
            action: case["action"].as_str().unwrap(),
            attestation: pcrs.as_ref(),
        };
        let rust = if evaluate(&policy, &request).is_allowed() {
            "allow"
        } else {
            "deny"
        };
        assert_eq!(rust, expected, "{name}: kms-policy");
        assert_eq!(python, expected, "{name}: awsim policy.py");
    }
}
