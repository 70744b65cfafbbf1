//! Guards: refuse key policies that leak secrets or brick the key.
//!
//! Each guard is one [`Violation`] variant. The only ways past a guard are the explicit,
//! loud fields of [`GuardOverrides`]; a guard without an override field has no legitimate
//! exception.

use std::collections::BTreeSet;
use std::fmt;

use crate::eval::{action_matches, evaluate, Request};
use crate::model::{ConditionKey, Effect, Policy, Statement};
use crate::pcr::{PcrError, PcrSet, PcrValue};

/// Actions that hand key material or plaintext to the caller, or delegate that right
/// (grants): only an attested enclave may have them.
pub const DECRYPTING_ACTIONS: &[&str] = &[
    "kms:Decrypt",
    "kms:DeriveSharedSecret",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:CreateGrant",
];

/// Explicit exceptions to the guards. All default to `false`; a CLI should expose each as a
/// long, alarming flag.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardOverrides {
    /// Admit all-zero PCR values (debug-mode enclaves, whose memory the parent can read).
    pub allow_debug_pcrs: bool,
    /// Accept a policy under which nobody can call `kms:PutKeyPolicy` again; the only way to
    /// remove the admins' residual trust, and irreversible.
    pub allow_lockout: bool,
    /// Let a rotation step remove the release that is running (revoking a compromised build).
    pub allow_dropping_running_release: bool,
}

/// One guard that tripped. `statement` is the Sid, or `#<index>` for a statement without one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("statement {statement}: admits an all-zero {key} (debug-mode enclave, its memory is readable by the parent instance)")]
    DebugPcr {
        statement: String,
        key: ConditionKey,
    },
    #[error("no principal can call kms:PutKeyPolicy without attestation: the key would become unmanageable")]
    LockOut,
    #[error("statement {statement}: allows {actions} without an attestation condition")]
    UnattestedDecrypt { statement: String, actions: String },
    #[error("statement {statement}: {operator} on {key} is true for requests without an attestation document")]
    IfExists {
        statement: String,
        operator: String,
        key: ConditionKey,
    },
    #[error("statement {statement}: allows principal \"*\"")]
    WildcardPrincipal { statement: String },
    #[error("statement {statement}: {key} value {value:?} is not a PCR value: {reason}")]
    MalformedPcr {
        statement: String,
        key: ConditionKey,
        value: String,
        reason: PcrError,
    },
    #[error("statement {statement}: several values for {key} in a statement pinning several registers; IAM ORs values per key, so registers of different releases mix (use one statement per release)")]
    MixedReleaseLists {
        statement: String,
        key: ConditionKey,
    },
    #[error("statement {statement}: {principal} decrypts as an attested enclave but may also call kms:PutKeyPolicy: whoever holds its credentials (the parent instance) could rewrite the policy and decrypt without attestation")]
    EnclaveCanRewritePolicy {
        statement: String,
        principal: String,
    },
    #[error("{principal} can decrypt with the running release (PCR0 {pcr0}) under the live policy but not under the proposed one; confirm the new release is running first")]
    RunningReleaseDropped { principal: String, pcr0: String },
    #[error("the live policy does not admit the given running release; check its PCRs")]
    RunningReleaseUnknown,
}

/// All guards that tripped, so one run reports everything.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Violations(pub Vec<Violation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key policy refused ({} problem(s)):", self.0.len())?;
        for violation in &self.0 {
            writeln!(f, "  - {violation}")?;
        }
        Ok(())
    }
}

fn into_result(violations: Vec<Violation>) -> Result<(), Violations> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(Violations(violations))
    }
}

fn statement_name(index: usize, st: &Statement) -> String {
    st.sid.clone().unwrap_or_else(|| format!("#{index}"))
}

/// Runs every single-policy guard on `policy`.
pub fn check(policy: &Policy, overrides: &GuardOverrides) -> Result<(), Violations> {
    let mut violations = Vec::new();
    for (index, st) in policy.statements.iter().enumerate() {
        check_statement(&statement_name(index, st), st, overrides, &mut violations);
    }
    let enclaves = attested_principals(policy);
    for (index, st) in policy.statements.iter().enumerate() {
        let rewrites = st.effect == Effect::Allow
            && st
                .actions
                .iter()
                .any(|a| action_matches(a, "kms:PutKeyPolicy"));
        if !rewrites {
            continue;
        }
        for principal in st
            .principals
            .iter()
            .filter(|p| enclaves.contains(p.as_str()))
        {
            violations.push(Violation::EnclaveCanRewritePolicy {
                statement: statement_name(index, st),
                principal: principal.clone(),
            });
        }
    }
    if !overrides.allow_lockout && !anyone_can_put_key_policy(policy) {
        violations.push(Violation::LockOut);
    }
    into_result(violations)
}

fn check_statement(
    statement: &str,
    st: &Statement,
    overrides: &GuardOverrides,
    out: &mut Vec<Violation>,
) {
    let allow = st.effect == Effect::Allow;
    let mut pinned = BTreeSet::new();
    let mut listed = None;
    for (operator, keys) in &st.conditions {
        for (key, values) in keys {
            if operator.if_exists {
                let operator = operator.name();
                out.push(Violation::IfExists {
                    statement: statement.to_owned(),
                    operator,
                    key: *key,
                });
            }
            let mut distinct = BTreeSet::new();
            for value in values {
                let written = if operator.ignores_case() {
                    value.to_ascii_lowercase()
                } else {
                    value.clone()
                };
                match written.parse::<PcrValue>() {
                    Ok(pcr)
                        if pcr.is_zero()
                            && allow
                            && !operator.is_negated()
                            && !overrides.allow_debug_pcrs =>
                    {
                        out.push(Violation::DebugPcr {
                            statement: statement.to_owned(),
                            key: *key,
                        })
                    }
                    Ok(_) => {}
                    Err(reason) => out.push(Violation::MalformedPcr {
                        statement: statement.to_owned(),
                        key: *key,
                        value: value.clone(),
                        reason,
                    }),
                }
                distinct.insert(written);
            }
            if !operator.is_negated() && !operator.if_exists {
                pinned.insert(key.register());
                if distinct.len() > 1 {
                    listed.get_or_insert(*key);
                }
            }
        }
    }
    if !allow {
        return;
    }
    if st.principals.iter().any(|p| p == "*") {
        out.push(Violation::WildcardPrincipal {
            statement: statement.to_owned(),
        });
    }
    if pinned.is_empty() {
        let granted: Vec<&str> = DECRYPTING_ACTIONS
            .iter()
            .copied()
            .filter(|action| {
                st.actions
                    .iter()
                    .any(|pattern| action_matches(pattern, action))
            })
            .collect();
        if !granted.is_empty() {
            out.push(Violation::UnattestedDecrypt {
                statement: statement.to_owned(),
                actions: granted.join(", "),
            });
        }
    }
    if let Some(key) = listed.filter(|_| pinned.len() > 1) {
        out.push(Violation::MixedReleaseLists {
            statement: statement.to_owned(),
            key,
        });
    }
}

/// Principals that an Allow statement lets decrypt under attestation conditions: the enclave's
/// (instance) roles. Named exactly: an account root delegates to IAM and is not one of them.
fn attested_principals(policy: &Policy) -> BTreeSet<&str> {
    policy
        .statements
        .iter()
        .filter(|st| st.effect == Effect::Allow && has_positive_attestation(st))
        .filter(|st| {
            DECRYPTING_ACTIONS
                .iter()
                .any(|action| st.actions.iter().any(|a| action_matches(a, action)))
        })
        .flat_map(|st| st.principals.iter().map(String::as_str))
        .filter(|p| *p != "*")
        .collect()
}

fn has_positive_attestation(st: &Statement) -> bool {
    st.conditions
        .keys()
        .any(|operator| !operator.is_negated() && !operator.if_exists)
}

/// Principals named by Allow statements, the only ones a key policy can let in.
fn allowed_principals(policy: &Policy) -> BTreeSet<&str> {
    policy
        .statements
        .iter()
        .filter(|st| st.effect == Effect::Allow)
        .flat_map(|st| st.principals.iter().map(String::as_str))
        .collect()
}

fn anyone_can_put_key_policy(policy: &Policy) -> bool {
    allowed_principals(policy).into_iter().any(|principal| {
        let request = Request {
            principal,
            action: "kms:PutKeyPolicy",
            attestation: None,
        };
        evaluate(policy, &request).is_allowed()
    })
}

/// Refuses a rotation step (`live` → `proposed`) that takes Decrypt away from the release
/// that is `running` (its full PCR set, as its attestation document reports it).
///
/// Dropping the old release is only safe once the new one is confirmed running; the caller
/// expresses that by passing the *new* release's PCRs as `running`.
pub fn check_rotation(
    live: &Policy,
    proposed: &Policy,
    running: &PcrSet,
    overrides: &GuardOverrides,
) -> Result<(), Violations> {
    if overrides.allow_dropping_running_release {
        return Ok(());
    }
    let can_decrypt = |policy: &Policy, principal: &str| {
        let request = Request {
            principal,
            action: "kms:Decrypt",
            attestation: Some(running),
        };
        evaluate(policy, &request).is_allowed()
    };
    let admitted: Vec<&str> = allowed_principals(live)
        .into_iter()
        .filter(|p| can_decrypt(live, p))
        .collect();
    if admitted.is_empty() {
        return into_result(vec![Violation::RunningReleaseUnknown]);
    }
    let pcr0 = running
        .get(&crate::pcr::PcrIndex::PCR0)
        .map(PcrValue::to_hex)
        .unwrap_or_default();
    let dropped = admitted
        .into_iter()
        .filter(|p| !can_decrypt(proposed, p))
        .map(|principal| Violation::RunningReleaseDropped {
            principal: principal.to_owned(),
            pcr0: pcr0.clone(),
        })
        .collect();
    into_result(dropped)
}
