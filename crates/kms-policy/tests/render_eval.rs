//! Policies rendered from the real template, judged by the evaluator.

mod common;

use common::*;
use kms_policy::{
    evaluate, explain, render, Decision, GuardOverrides, PcrSet, PcrValue, Policy, PolicyContext,
    Release, Request,
};
use proptest::prelude::*;

fn steady(pcrs: &PcrSet) -> Policy {
    let release = Release::new(pcrs.clone()).expect("release");
    let context = PolicyContext::steady("key-policy", principals(), release);
    render(TEMPLATE, &context, &GuardOverrides::default())
        .expect("steady policy renders")
        .policy
}

fn transitional(old: &PcrSet, new: &PcrSet) -> Policy {
    let (old, new) = (
        Release::new(old.clone()).expect("old"),
        Release::new(new.clone()).expect("new"),
    );
    let context =
        PolicyContext::transitional("key-policy", principals(), old, new).expect("two releases");
    render(TEMPLATE, &context, &GuardOverrides::default())
        .expect("transitional policy renders")
        .policy
}

fn decrypt(policy: &Policy, principal: &str, attestation: Option<&PcrSet>) -> Decision {
    evaluate(
        policy,
        &Request {
            principal,
            action: "kms:Decrypt",
            attestation,
        },
    )
}

fn can(policy: &Policy, principal: &str, action: &str) -> bool {
    evaluate(
        policy,
        &Request {
            principal,
            action,
            attestation: None,
        },
    )
    .is_allowed()
}

/// Every principal any rendered policy names, plus an outsider.
const EVERYONE: [&str; 7] = [
    ADMIN,
    ENCLAVE_ROLE,
    ENCLAVE_SESSION,
    WRITER,
    MIGRATOR,
    OUTSIDER,
    "arn:aws:iam::111122223333:root",
];

/// No rendered policy lets anyone decrypt without attestation or as a debug enclave.
fn assert_no_unattested_or_debug_decrypt(policy: &Policy) {
    let zeros: PcrSet = (0..32).map(|i| (index(i), PcrValue::ZERO)).collect();
    for principal in EVERYONE {
        for action in [
            "kms:Decrypt",
            "kms:GenerateDataKey",
            "kms:GenerateDataKeyPair",
            "kms:ReEncryptFrom",
            "kms:CreateGrant",
        ] {
            for attestation in [None, Some(&zeros)] {
                let decision = evaluate(
                    policy,
                    &Request {
                        principal,
                        action,
                        attestation,
                    },
                );
                assert!(
                    !decision.is_allowed(),
                    "{principal} {action} {attestation:?}: {decision:?}"
                );
            }
        }
    }
}

#[test]
fn steady_policy_admits_its_release_only() {
    let pcrs: PcrSet = REGISTERS
        .iter()
        .map(|i| (index(*i), pcr(*i as u8 + 1)))
        .collect();
    let policy = steady(&pcrs);
    let label = &pcr(1).to_hex()[..16];
    let sid = format!("EnclaveRelease{label}Signer{}", &pcr(9).to_hex()[..8]);
    match decrypt(&policy, ENCLAVE_SESSION, Some(&pcrs)) {
        Decision::Allow(decider) => assert_eq!(decider.sid.as_deref(), Some(sid.as_str())),
        other => panic!("enclave refused: {other:?}"),
    }
    match decrypt(&policy, ENCLAVE_SESSION, None) {
        Decision::Deny(decider) => assert_eq!(
            decider.sid.as_deref(),
            Some("DenyDecryptOutsideReleasedEnclaves")
        ),
        other => panic!("unattested request not explicitly denied: {other:?}"),
    }
    assert!(!decrypt(&policy, OUTSIDER, Some(&pcrs)).is_allowed());
    assert!(!decrypt(&policy, ADMIN, Some(&pcrs)).is_allowed());
    assert!(can(&policy, ADMIN, "kms:PutKeyPolicy"));
    assert!(can(&policy, WRITER, "kms:Encrypt"));
    assert!(!can(&policy, ENCLAVE_SESSION, "kms:Encrypt"));
    assert_no_unattested_or_debug_decrypt(&policy);
}

#[test]
fn steady_policy_without_explicit_deny_is_still_attested_only() {
    let pcrs: PcrSet = [(index(0), pcr(1))].into_iter().collect();
    let mut context = PolicyContext::steady(
        "key-policy",
        principals(),
        Release::new(pcrs.clone()).expect("release"),
    );
    context.deny_unattested = false;
    let policy = render(TEMPLATE, &context, &GuardOverrides::default())
        .expect("renders")
        .policy;
    assert_eq!(
        decrypt(&policy, ENCLAVE_SESSION, None),
        Decision::ImplicitDeny
    );
    assert!(decrypt(&policy, ENCLAVE_SESSION, Some(&pcrs)).is_allowed());
    assert_no_unattested_or_debug_decrypt(&policy);
}

#[test]
fn migration_policy_lets_nobody_decrypt() {
    let context = PolicyContext::migration("migration", vec![ADMIN.into()], vec![MIGRATOR.into()]);
    let rendered =
        render(TEMPLATE, &context, &GuardOverrides::default()).expect("migration policy renders");
    let policy = rendered.policy;
    assert!(can(&policy, MIGRATOR, "kms:Encrypt"));
    assert!(can(&policy, MIGRATOR, "kms:PutKeyPolicy"));
    assert!(explain(&policy).access.is_empty());
    assert_no_unattested_or_debug_decrypt(&policy);
}

#[test]
fn explain_names_principals_and_releases() {
    let old: PcrSet = [(index(0), pcr(1)), (index(2), pcr(2))]
        .into_iter()
        .collect();
    let new: PcrSet = [(index(0), pcr(3)), (index(2), pcr(2))]
        .into_iter()
        .collect();
    let explanation = explain(&transitional(&old, &new));
    let access: Vec<_> = explanation
        .access
        .iter()
        .filter(|a| !a.releases.is_empty())
        .collect();
    assert_eq!(access.len(), 2);
    for (entry, pcrs) in access.iter().zip([&old, &new]) {
        assert_eq!(entry.principals, [ENCLAVE_ROLE]);
        assert!(!entry.unattested);
        let expected: Vec<_> = vec![pcrs.iter().map(|(i, v)| (i.get(), v.to_hex())).collect()];
        assert_eq!(entry.releases, expected);
    }
    let text = explanation.to_string();
    assert!(
        text.contains(&format!("PCR0={}", pcr(3).to_hex())),
        "{text}"
    );
}

/// All registers sets drawn from `old` and `new` register by register.
fn mixes(old: &PcrSet, new: &PcrSet) -> Vec<PcrSet> {
    (0u32..1 << REGISTERS.len())
        .map(|mask| {
            REGISTERS
                .iter()
                .enumerate()
                .map(|(bit, i)| {
                    let i = index(*i);
                    (
                        i,
                        if mask & (1 << bit) == 0 {
                            old[&i]
                        } else {
                            new[&i]
                        },
                    )
                })
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The transitional policy admits exactly {old, new}: no mix of their registers.
    #[test]
    fn transitional_admits_exactly_old_and_new((old, new) in release_pair()) {
        let policy = transitional(&old, &new);
        for pcrs in mixes(&old, &new) {
            let admitted = decrypt(&policy, ENCLAVE_SESSION, Some(&pcrs)).is_allowed();
            prop_assert_eq!(admitted, pcrs == old || pcrs == new, "{:?}", pcrs);
        }
        assert_no_unattested_or_debug_decrypt(&policy);
        let releases: Vec<_> = explain(&policy).access.into_iter().flat_map(|a| a.releases).collect();
        prop_assert_eq!(releases.len(), 2);
    }

    /// The value-list layout the template avoids does admit mixes; this is why the
    /// `MixedReleaseLists` guard exists.
    #[test]
    fn value_lists_would_admit_mixes((old, new) in release_pair()) {
        let mut policy = transitional(&old, &new);
        let (first, second) = policy.statements.split_at_mut(2);
        let merged = &mut first[1].conditions;
        for (op, keys) in &second[0].conditions {
            for (key, values) in keys {
                let slot = merged.entry(*op).or_default().entry(*key).or_default();
                slot.extend(values.iter().cloned());
            }
        }
        policy.statements.remove(2);
        let admitted = mixes(&old, &new)
            .into_iter()
            .filter(|pcrs| decrypt(&policy, ENCLAVE_SESSION, Some(pcrs)).is_allowed())
            .count();
        prop_assert_eq!(admitted, 1 << REGISTERS.len());
    }

    #[test]
    fn steady_never_admits_debug_or_unattested(pcrs in pcr_set()) {
        let policy = steady(&pcrs);
        prop_assert!(decrypt(&policy, ENCLAVE_SESSION, Some(&pcrs)).is_allowed());
        assert_no_unattested_or_debug_decrypt(&policy);
    }
}

#[test]
fn explain_lists_ways_to_give_oneself_decrypt() {
    let pcrs: PcrSet = [(index(0), pcr(1))].into_iter().collect();
    let explanation = explain(&steady(&pcrs));
    // The admins keep kms:PutKeyPolicy (their residual trust); the template's Deny refuses
    // CreateGrant and ReEncryptFrom to anyone without a released PCR0.
    let paths: Vec<(&str, &[String])> = explanation
        .indirect
        .iter()
        .map(|i| (i.action, i.principals.as_slice()))
        .collect();
    assert_eq!(paths, [("kms:PutKeyPolicy", &[ADMIN.to_string()][..])]);
    assert!(
        explanation
            .findings
            .iter()
            .any(|f| f.contains(ADMIN) && f.contains("kms:PutKeyPolicy")),
        "{:?}",
        explanation.findings
    );

    // kms:* to a writer: direct unattested Decrypt and every escalation, each flagged.
    let loose = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Everything","Effect":"Allow","Principal":{{"AWS":"{WRITER}"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    let e = explain(&Policy::from_json(&loose).expect("parses"));
    assert!(e.access[0].unattested);
    let actions: Vec<&str> = e.indirect.iter().map(|i| i.action).collect();
    assert_eq!(
        actions,
        ["kms:PutKeyPolicy", "kms:CreateGrant", "kms:ReEncryptFrom"]
    );
    assert_eq!(e.findings.len(), 4, "{:?}", e.findings);
    let text = e.to_string();
    assert!(
        text.contains("can give themselves kms:Decrypt") && text.contains("! statement Everything"),
        "{text}"
    );
}

#[test]
fn explain_flags_a_release_of_all_zero_pcrs() {
    let zero = PolicyContext::steady(
        "debug",
        principals(),
        Release::new(
            [(index(0), PcrValue::ZERO), (index(1), PcrValue::ZERO)]
                .into_iter()
                .collect(),
        )
        .expect("release"),
    );
    let overrides = GuardOverrides {
        allow_debug_pcrs: true,
        ..GuardOverrides::default()
    };
    let policy = render(TEMPLATE, &zero, &overrides)
        .expect("renders with the override")
        .policy;
    let e = explain(&policy);
    assert!(e.access.iter().any(|a| a.admits_debug_enclaves));
    assert!(
        e.findings.iter().any(|f| f.contains("debug-mode enclave")),
        "{:?}",
        e.findings
    );
    // A real release is not flagged, and JSON names registers as nitro-cli does.
    let clean = explain(&steady(&[(index(0), pcr(7))].into_iter().collect()));
    assert!(clean.access.iter().all(|a| !a.admits_debug_enclaves));
    let json = serde_json::to_value(&clean).expect("serializes");
    assert!(
        json["access"][0]["releases"][0]["PCR0"].is_string(),
        "{json}"
    );
}
