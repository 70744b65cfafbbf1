//! The policy parser must never panic, and what it accepts must survive the whole pipeline:
//! serialize → reparse is lossless, normalization is idempotent, a policy has no diff with
//! itself, and the guards, evaluator and explain run without panicking.
#![no_main]

use kms_policy::{
    check, diff, evaluate, explain, normalize, GuardOverrides, PcrIndex, PcrSet, PcrValue, Policy,
    Request,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_json(text) else {
        return;
    };
    let reparsed = Policy::from_json(&policy.to_json_pretty()).expect("serialized policy reparses");
    assert_eq!(reparsed, policy);
    let normal = normalize(&policy);
    assert_eq!(normalize(&normal), normal);
    assert!(diff(&policy, &normal).is_empty());
    let _ = check(&policy, &GuardOverrides::default());
    let _ = explain(&policy);
    let mut pcrs = PcrSet::new();
    pcrs.insert(PcrIndex::PCR0, PcrValue::ZERO);
    for principal in policy.statements.iter().flat_map(|s| s.principals.iter()) {
        for attestation in [None, Some(&pcrs)] {
            let _ = evaluate(
                &policy,
                &Request {
                    principal,
                    action: "kms:Decrypt",
                    attestation,
                },
            );
        }
    }
});
