//! One test per guard that trips it (and, where there is one, its override).

mod common;

use common::*;
use kms_policy::{
    check, check_rotation, render, GuardOverrides, PcrSet, PcrValue, Policy, PolicyContext,
    Release, RenderError, Violation,
};

fn violations(policy: &Policy, overrides: &GuardOverrides) -> Vec<Violation> {
    check(policy, overrides)
        .err()
        .map(|v| v.0)
        .unwrap_or_default()
}

/// A minimal guarded policy: admin statement plus `statement` (a JSON object).
fn with_statement(statement: &str) -> Policy {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Sid":"Admin","Effect":"Allow","Principal":{{"AWS":"{ADMIN}"}},"Action":"kms:PutKeyPolicy","Resource":"*"}},
          {statement}]}}"#
    );
    Policy::from_json(&text).expect("test policy parses")
}

fn enclave_statement(condition: &str) -> String {
    format!(
        r#"{{"Sid":"Enclave","Effect":"Allow","Principal":{{"AWS":"{ENCLAVE_ROLE}"}},"Action":"kms:Decrypt","Resource":"*","Condition":{condition}}}"#
    )
}

fn hex(byte: u8) -> String {
    pcr(byte).to_hex()
}

#[test]
fn well_formed_policy_passes() {
    let policy = with_statement(&enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{}","kms:RecipientAttestation:PCR1":"{}"}}}}"#,
        hex(1),
        hex(2)
    )));
    assert_eq!(violations(&policy, &GuardOverrides::default()), []);
}

#[test]
fn all_zero_pcr_trips_and_needs_the_debug_override() {
    let release = release(&[(0, PcrValue::ZERO), (1, pcr(1))]);
    let context = PolicyContext::steady("key", principals(), release);
    match render(TEMPLATE, &context, &GuardOverrides::default()) {
        Err(RenderError::Guard(v)) => assert!(
            matches!(v.0.as_slice(), [Violation::DebugPcr { .. }]),
            "{v}"
        ),
        other => panic!("debug PCR accepted: {other:?}"),
    }
    let overrides = GuardOverrides {
        allow_debug_pcrs: true,
        ..GuardOverrides::default()
    };
    assert!(render(TEMPLATE, &context, &overrides).is_ok());
}

#[test]
fn lock_out_trips_and_needs_its_override() {
    let text = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{WRITER}"}},"Action":"kms:Encrypt","Resource":"*"}}]}}"#
    );
    let policy = Policy::from_json(&text).expect("parses");
    assert_eq!(
        violations(&policy, &GuardOverrides::default()),
        [Violation::LockOut]
    );
    let overrides = GuardOverrides {
        allow_lockout: true,
        ..GuardOverrides::default()
    };
    assert_eq!(violations(&policy, &overrides), []);
}

#[test]
fn put_key_policy_only_under_attestation_is_a_lock_out() {
    let policy = Policy::from_json(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        enclave_statement(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{}"}}}}"#,
            hex(1)
        ))
        .replace("kms:Decrypt", "kms:PutKeyPolicy")
    ))
    .expect("parses");
    assert_eq!(
        violations(&policy, &GuardOverrides::default()),
        [Violation::LockOut]
    );
}

#[test]
fn unattested_decrypt_trips_including_wildcards() {
    for action in [
        r#""kms:Decrypt""#,
        r#""kms:*""#,
        r#"["kms:Encrypt","kms:GenerateDataKey*"]"#,
        r#""kms:CreateGrant""#,
    ] {
        let policy = with_statement(&format!(
            r#"{{"Sid":"Loose","Effect":"Allow","Principal":{{"AWS":"{WRITER}"}},"Action":{action},"Resource":"*"}}"#
        ));
        let found = violations(&policy, &GuardOverrides::default());
        assert!(
            matches!(found.as_slice(), [Violation::UnattestedDecrypt { statement, .. }] if statement == "Loose"),
            "{action}: {found:?}"
        );
    }
}

#[test]
fn if_exists_attestation_operator_trips() {
    let policy = with_statement(&enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCaseIfExists":{{"kms:RecipientAttestation:PCR0":"{}"}}}}"#,
        hex(1)
    )));
    let found = violations(&policy, &GuardOverrides::default());
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::IfExists { .. })),
        "{found:?}"
    );
    // …and it is unattested: IfExists is true when the request has no attestation document.
    assert!(
        found
            .iter()
            .any(|v| matches!(v, Violation::UnattestedDecrypt { .. })),
        "{found:?}"
    );
}

#[test]
fn wildcard_principal_trips() {
    let policy = with_statement(
        &enclave_statement(&format!(
            r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{}"}}}}"#,
            hex(1)
        ))
        .replace(&format!(r#"{{"AWS":"{ENCLAVE_ROLE}"}}"#), r#""*""#),
    );
    assert!(matches!(
        violations(&policy, &GuardOverrides::default()).as_slice(),
        [Violation::WildcardPrincipal { .. }]
    ));
}

#[test]
fn malformed_pcr_values_trip() {
    let upper = hex(0xab).to_uppercase();
    for (operator, value) in [
        ("StringEqualsIgnoreCase", format!("0x{}", &hex(1)[2..])),
        ("StringEqualsIgnoreCase", hex(1)[..64].to_owned()),
        ("StringEquals", upper.clone()),
    ] {
        let policy = with_statement(&enclave_statement(&format!(
            r#"{{"{operator}":{{"kms:RecipientAttestation:PCR0":"{value}"}}}}"#
        )));
        assert!(
            matches!(
                violations(&policy, &GuardOverrides::default()).as_slice(),
                [Violation::MalformedPcr { .. }]
            ),
            "{operator} {value}"
        );
    }
    // Uppercase is fine where KMS ignores case.
    let policy = with_statement(&enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{upper}"}}}}"#
    )));
    assert_eq!(violations(&policy, &GuardOverrides::default()), []);
    // Measurements are validated before rendering, too.
    let measurements =
        format!(r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{upper}"}}}}"#);
    assert!(matches!(
        Release::from_nitro_cli_measurements(&measurements),
        Err(RenderError::Pcr(_))
    ));
}

#[test]
fn value_lists_over_several_registers_trip() {
    let policy = with_statement(&enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{}","{}"],"kms:RecipientAttestation:PCR2":"{}"}}}}"#,
        hex(1),
        hex(2),
        hex(3)
    )));
    assert!(matches!(
        violations(&policy, &GuardOverrides::default()).as_slice(),
        [Violation::MixedReleaseLists { .. }]
    ));
    // A list on the only pinned register pairs nothing, so it cannot mix releases.
    let single = with_statement(&enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":["{}","{}"]}}}}"#,
        hex(1),
        hex(2)
    )));
    assert_eq!(violations(&single, &GuardOverrides::default()), []);
}

#[test]
fn rotation_that_drops_the_running_release_trips() {
    let old = release(&[(0, pcr(1)), (1, pcr(2))]);
    let new = release(&[(0, pcr(3)), (1, pcr(2))]);
    let render_policy = |context: PolicyContext| {
        render(TEMPLATE, &context, &GuardOverrides::default())
            .expect("renders")
            .policy
    };
    let live = render_policy(
        PolicyContext::transitional("key", principals(), old.clone(), new.clone()).expect("ctx"),
    );
    let proposed = render_policy(PolicyContext::steady("key", principals(), new.clone()));
    let none = GuardOverrides::default();

    let running_old: PcrSet = old.pcrs().clone();
    let err = check_rotation(&live, &proposed, &running_old, &none).expect_err("old still running");
    assert!(
        matches!(err.0.as_slice(), [Violation::RunningReleaseDropped { principal, .. }] if principal == ENCLAVE_ROLE)
    );

    // Once the new release is confirmed running, dropping the old one is fine.
    assert_eq!(check_rotation(&live, &proposed, new.pcrs(), &none), Ok(()));

    // A revocation can force it.
    let force = GuardOverrides {
        allow_dropping_running_release: true,
        ..none
    };
    assert_eq!(
        check_rotation(&live, &proposed, &running_old, &force),
        Ok(())
    );

    // PCRs the live policy does not know are a mistake, not a pass.
    let unknown: PcrSet = [(index(0), pcr(9))].into_iter().collect();
    let err = check_rotation(&live, &proposed, &unknown, &none).expect_err("unknown release");
    assert_eq!(err.0, [Violation::RunningReleaseUnknown]);
}

#[test]
fn transitional_refuses_the_same_release_twice() {
    let one = release(&[(0, pcr(1))]);
    assert!(matches!(
        PolicyContext::transitional("key", principals(), one.clone(), one),
        Err(RenderError::SameRelease(_))
    ));
}

#[test]
fn re_signed_image_gets_its_own_label() {
    let a = release(&[(0, pcr(1)), (8, pcr(2))]);
    let b = release(&[(0, pcr(1)), (8, pcr(3))]);
    assert_ne!(a.label(), b.label());
    let context =
        PolicyContext::transitional("key", principals(), a, b).expect("different signers");
    assert!(render(TEMPLATE, &context, &GuardOverrides::default()).is_ok());
}

#[test]
fn an_enclave_principal_that_may_rewrite_the_policy_trips() {
    let decrypt = enclave_statement(&format!(
        r#"{{"StringEqualsIgnoreCase":{{"kms:RecipientAttestation:PCR0":"{}"}}}}"#,
        hex(1)
    ));
    let rewrite = format!(
        r#"{{"Sid":"RoleAdmin","Effect":"Allow","Principal":{{"AWS":"{ENCLAVE_ROLE}"}},"Action":["kms:Get*","kms:Put*"],"Resource":"*"}}"#
    );
    let policy = with_statement(&format!("{decrypt},{rewrite}"));
    let found = violations(&policy, &GuardOverrides::default());
    assert!(
        matches!(found.as_slice(), [Violation::EnclaveCanRewritePolicy { statement, principal }]
            if statement == "RoleAdmin" && principal == ENCLAVE_ROLE),
        "{found:?}"
    );
    // The account root as admin delegates to IAM: it is not the enclave's role, and the
    // rendered default (root administers, the role decrypts) passes.
    let root = format!("arn:aws:iam::{ACCOUNT}:root");
    let context = PolicyContext::steady(
        "key",
        kms_policy::Principals {
            admins: vec![root],
            ..principals()
        },
        release(&[(0, pcr(1))]),
    );
    assert!(render(TEMPLATE, &context, &GuardOverrides::default()).is_ok());
}
