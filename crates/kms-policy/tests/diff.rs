//! Properties of normalize, diff and apply over generated policies, and the diff text reviewers read.

mod common;

use std::collections::BTreeMap;

use common::*;
use kms_policy::{
    apply, diff, evaluate, normalize, render, ConditionKey, Direction, Effect, GuardOverrides,
    Impact, Operator, PcrSet, Policy, PolicyContext, PolicyDiff, Statement,
};
use proptest::prelude::*;

const PRINCIPALS: [&str; 5] = [
    ADMIN,
    ENCLAVE_ROLE,
    WRITER,
    "arn:aws:iam::111122223333:root",
    "*",
];
const ACTIONS: [&str; 6] = [
    "kms:Decrypt",
    "KMS:decrypt",
    "kms:Encrypt",
    "kms:PutKeyPolicy",
    "kms:GenerateDataKey*",
    "kms:*",
];
const RESOURCES: [&str; 2] = ["*", "arn:aws:kms:eu-west-1:111122223333:key/1"];
const OPERATORS: [&str; 5] = [
    "StringEqualsIgnoreCase",
    "StringEquals",
    "StringNotEqualsIgnoreCase",
    "StringNotEquals",
    "StringEqualsIgnoreCaseIfExists",
];
/// Small universes so that generated policies overlap and diffs are interesting.
const VALUE_BYTES: [u8; 3] = [0x1a, 0x2b, 0x3c];
const KEY_REGISTERS: [u32; 3] = [0, 1, 8];

fn subset<T: Clone + std::fmt::Debug + 'static>(
    universe: &'static [T],
) -> impl Strategy<Value = Vec<T>> {
    prop::sample::subsequence(universe, 1..=universe.len().min(3)).prop_shuffle()
}

fn value() -> impl Strategy<Value = String> {
    (prop::sample::select(&VALUE_BYTES[..]), any::<bool>()).prop_map(|(b, upper)| {
        let hex = pcr(b).to_hex();
        if upper {
            hex.to_uppercase()
        } else {
            hex
        }
    })
}

fn key() -> impl Strategy<Value = ConditionKey> {
    prop_oneof![
        prop::sample::select(&KEY_REGISTERS[..]).prop_map(|i| ConditionKey::Pcr(index(i))),
        Just(ConditionKey::ImageSha384),
    ]
}

fn conditions() -> impl Strategy<Value = kms_policy::Conditions> {
    let keys = prop::collection::btree_map(key(), prop::collection::vec(value(), 1..3), 1..3);
    let operator = prop::sample::select(&OPERATORS[..])
        .prop_map(|o| Operator::parse(o).expect("known operator"));
    prop::collection::btree_map(operator, keys, 0..3)
}

fn statement() -> impl Strategy<Value = Statement> {
    (
        prop::option::weighted(0.8, prop::sample::select(&["A", "B", "C", "D"][..])),
        prop_oneof![3 => Just(Effect::Allow), 1 => Just(Effect::Deny)],
        subset(&PRINCIPALS),
        subset(&ACTIONS),
        subset(&RESOURCES),
        conditions(),
    )
        .prop_map(
            |(sid, effect, principals, actions, resources, conditions)| Statement {
                sid: sid.map(str::to_owned),
                effect,
                principals: principals.into_iter().map(str::to_owned).collect(),
                actions: actions.into_iter().map(str::to_owned).collect(),
                resources: resources.into_iter().map(str::to_owned).collect(),
                conditions,
            },
        )
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(&["2012-10-17", "2008-10-17"][..]),
        prop::option::of(prop::sample::select(&["key-a", "key-b"][..])),
        prop::collection::vec(statement(), 0..5),
    )
        .prop_map(|(version, id, statements)| {
            // Sids are unique in a policy (the parser refuses duplicates).
            let mut seen = Vec::new();
            let statements = statements
                .into_iter()
                .filter(|s| {
                    s.sid.is_none()
                        || !seen.contains(&s.sid) && {
                            seen.push(s.sid.clone());
                            true
                        }
                })
                .collect();
            Policy {
                version: version.into(),
                id: id.map(str::to_owned),
                statements,
            }
        })
}

/// The same policy written differently: statement and list order reversed.
fn reordered(policy: &Policy) -> Policy {
    let mut p = policy.clone();
    p.statements.reverse();
    for st in &mut p.statements {
        st.principals.reverse();
        st.actions.reverse();
        st.resources.reverse();
        for values in st.conditions.values_mut().flat_map(|k| k.values_mut()) {
            values.reverse();
        }
    }
    p
}

fn inverse(d: &PolicyDiff) -> Vec<kms_policy::Change> {
    let mut changes: Vec<_> = d
        .changes
        .iter()
        .cloned()
        .map(|mut c| {
            c.direction = match c.direction {
                Direction::Added => Direction::Removed,
                Direction::Removed => Direction::Added,
            };
            c.impact = match c.impact {
                Impact::Broadening => Impact::Narrowing,
                Impact::Narrowing => Impact::Broadening,
                Impact::Neutral => Impact::Neutral,
            };
            c
        })
        .collect();
    changes.sort();
    changes
}

/// Every request the generated policies can tell apart, with whether it is allowed.
fn decisions(policy: &Policy) -> BTreeMap<(String, &'static str, Option<u8>), bool> {
    let requesters = [ADMIN, ENCLAVE_SESSION, WRITER, OUTSIDER];
    let mut out = BTreeMap::new();
    for principal in requesters {
        for action in [
            "kms:Decrypt",
            "kms:Encrypt",
            "kms:PutKeyPolicy",
            "kms:GenerateDataKeyPair",
        ] {
            for byte in [None, Some(VALUE_BYTES[0]), Some(VALUE_BYTES[1]), Some(0x77)] {
                let pcrs: Option<PcrSet> =
                    byte.map(|b| KEY_REGISTERS.iter().map(|i| (index(*i), pcr(b))).collect());
                let request = kms_policy::Request {
                    principal,
                    action,
                    attestation: pcrs.as_ref(),
                };
                out.insert(
                    (principal.to_owned(), action, byte),
                    evaluate(policy, &request).is_allowed(),
                );
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn normalize_is_idempotent_and_order_insensitive(p in policy()) {
        let n = normalize(&p);
        prop_assert_eq!(&normalize(&n), &n);
        prop_assert_eq!(&normalize(&reordered(&p)), &n);
        prop_assert_eq!(decisions(&n), decisions(&p));
    }

    #[test]
    fn serialization_round_trips(p in policy()) {
        prop_assert_eq!(Policy::from_json(&p.to_json_pretty()), Ok(p));
    }

    #[test]
    fn diff_with_itself_is_empty(p in policy()) {
        prop_assert!(diff(&p, &p).is_empty());
        prop_assert!(diff(&p, &reordered(&p)).is_empty());
        prop_assert_eq!(diff(&p, &p).to_string(), "no changes\n");
    }

    #[test]
    fn diff_is_consistent_both_ways(a in policy(), b in policy()) {
        let forward = diff(&a, &b);
        let backward = diff(&b, &a);
        prop_assert_eq!(inverse(&forward), backward.changes.clone());
        prop_assert_eq!(forward.count(Impact::Broadening), backward.count(Impact::Narrowing));
        prop_assert_eq!(forward.is_empty(), normalize(&a) == normalize(&b));
    }

    #[test]
    fn applying_the_diff_yields_the_target(a in policy(), b in policy()) {
        prop_assert_eq!(apply(&diff(&a, &b), &a), Ok(normalize(&b)));
    }

    /// The classification is what the evaluator sees: each change on its own never refuses
    /// a request when it is broadening and never allows a new one when it is narrowing.
    #[test]
    fn each_change_has_the_impact_the_evaluator_sees(a in policy(), b in policy()) {
        let before = decisions(&a);
        for change in diff(&a, &b).changes {
            // Some changes only apply together (an Effect change, a replaced last value).
            let Ok(step) = apply(&PolicyDiff { changes: vec![change.clone()] }, &a) else { continue };
            for (request, allowed) in decisions(&step) {
                let was = before[&request];
                match change.impact {
                    Impact::Broadening => prop_assert!(allowed || !was, "{:?} refused after {:?}", request, change),
                    Impact::Narrowing => prop_assert!(was || !allowed, "{:?} allowed after {:?}", request, change),
                    Impact::Neutral => prop_assert_eq!(allowed, was),
                }
            }
        }
    }

    /// The same over a whole diff: without broadening changes nothing new is allowed,
    /// without narrowing changes nothing is taken away.
    #[test]
    fn diff_impact_matches_the_evaluator(a in policy(), b in policy()) {
        let d = diff(&a, &b);
        let (before, after) = (decisions(&a), decisions(&b));
        for (request, allowed) in &after {
            if d.count(Impact::Broadening) == 0 && *allowed {
                prop_assert!(before[request], "{:?} newly allowed by a diff without broadening:\n{}", request, d);
            }
            if d.count(Impact::Narrowing) == 0 && before[request] {
                prop_assert!(*allowed, "{:?} newly refused by a diff without narrowing:\n{}", request, d);
            }
        }
    }
}

fn rendered(context: &PolicyContext) -> Policy {
    render(TEMPLATE, context, &GuardOverrides::default())
        .expect("renders")
        .policy
}

#[test]
fn pcr0_rotation_diff_text() {
    let old = release(&[(0, pcr(0x11)), (1, pcr(0x22))]);
    let new = release(&[(0, pcr(0x33)), (1, pcr(0x22))]);
    let steady_old = rendered(&PolicyContext::steady("key", principals(), old.clone()));
    let both = rendered(&PolicyContext::transitional("key", principals(), old, new).expect("ctx"));
    let d = diff(&steady_old, &both);
    let (p22, p33) = (pcr(0x22).to_hex(), pcr(0x33).to_hex());
    let expected = format!(
        "2 change(s): 2 broadening, 0 narrowing
  statement DenyDecryptOutsideReleasedEnclaves (Deny):
    + StringNotEqualsIgnoreCase kms:RecipientAttestation:PCR0 value {p33}   [BROADENING]
+ statement EnclaveRelease3333333333333333 (Allow)   [BROADENING]
+     Principal {ENCLAVE_ROLE}
+     Action kms:Decrypt, kms:GenerateDataKey
+     Resource *
+     StringEqualsIgnoreCase kms:RecipientAttestation:PCR0 = {p33}
+     StringEqualsIgnoreCase kms:RecipientAttestation:PCR1 = {p22}
"
    );
    assert_eq!(d.to_string(), expected);
    let json = serde_json::to_value(&d).expect("diff serializes");
    assert_eq!(json["changes"][0]["impact"], "broadening");
    assert_eq!(json["changes"][1]["element"], "statement");
    assert_eq!(
        json["changes"][1]["statement"]["Sid"],
        "EnclaveRelease3333333333333333"
    );
}

#[test]
fn pcr8_rotation_diff_text() {
    let old = release(&[(0, pcr(0x11)), (8, pcr(0x88))]);
    let new = release(&[(0, pcr(0x11)), (8, pcr(0x99))]);
    let steady_old = rendered(&PolicyContext::steady("key", principals(), old.clone()));
    let both = rendered(&PolicyContext::transitional("key", principals(), old, new).expect("ctx"));
    let (p11, p99) = (pcr(0x11).to_hex(), pcr(0x99).to_hex());
    // Same image: the explicit Deny (keyed on PCR0) does not change.
    let expected = format!(
        "1 change(s): 1 broadening, 0 narrowing
+ statement EnclaveRelease1111111111111111Signer99999999 (Allow)   [BROADENING]
+     Principal {ENCLAVE_ROLE}
+     Action kms:Decrypt, kms:GenerateDataKey
+     Resource *
+     StringEqualsIgnoreCase kms:RecipientAttestation:PCR0 = {p11}
+     StringEqualsIgnoreCase kms:RecipientAttestation:PCR8 = {p99}
"
    );
    assert_eq!(diff(&steady_old, &both).to_string(), expected);
}

#[test]
fn dropping_the_old_release_is_narrowing_only() {
    let old = release(&[(0, pcr(0x11))]);
    let new = release(&[(0, pcr(0x33))]);
    let both =
        rendered(&PolicyContext::transitional("key", principals(), old, new.clone()).expect("ctx"));
    let steady_new = rendered(&PolicyContext::steady("key", principals(), new));
    let p11 = pcr(0x11).to_hex();
    let expected = format!(
        "2 change(s): 0 broadening, 2 narrowing
  statement DenyDecryptOutsideReleasedEnclaves (Deny):
    - StringNotEqualsIgnoreCase kms:RecipientAttestation:PCR0 value {p11}   [narrowing]
- statement EnclaveRelease1111111111111111 (Allow)   [narrowing]
-     Principal {ENCLAVE_ROLE}
-     Action kms:Decrypt, kms:GenerateDataKey
-     Resource *
-     StringEqualsIgnoreCase kms:RecipientAttestation:PCR0 = {p11}
"
    );
    assert_eq!(diff(&both, &steady_new).to_string(), expected);
}

#[test]
fn added_writer_is_one_broadening_line() {
    let one = release(&[(0, pcr(0x11))]);
    let before = rendered(&PolicyContext::steady("key", principals(), one.clone()));
    let mut more = principals();
    more.writers.push(MIGRATOR.to_owned());
    let after = rendered(&PolicyContext::steady("key", more, one));
    let expected = format!(
        "1 change(s): 1 broadening, 0 narrowing
  statement SealSecrets (Allow):
    + Principal {MIGRATOR}   [BROADENING]
"
    );
    assert_eq!(diff(&before, &after).to_string(), expected);
}
