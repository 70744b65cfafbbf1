//! Evaluation of our policy subset, and `explain`: who can decrypt, with which enclave, and who
//! can give themselves Decrypt (rewriting the policy, a grant, re-encryption).
//!
//! IAM semantics implemented: an explicit Deny wins over any Allow; a statement applies when
//! its principal, action and every condition match; operators and keys are ANDed, the values of
//! one key ORed; negated operators are NOR over the values and true when the key is absent;
//! `…IfExists` operators are true when the key is absent.
//!
//! Principals: `*` matches anyone. The account root `arn:aws:iam::ACCT:root` in a key policy
//! delegates to that account's IAM policies; the evaluator cannot see those, so it treats the
//! root as allowing every principal of that account (the worst case, which is what a review
//! must assume). A role ARN also matches its `sts` assumed-role sessions, which is how
//! enclave requests (signed with the instance role) arrive.
//!
//! Every statement is taken to apply to the key: a key policy only governs its own key.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::model::{Effect, Operator, Policy, Statement};
use crate::pcr::{PcrSet, PcrValue};

/// A KMS request as the key policy sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The caller's ARN (`arn:aws:iam::…:role/…`, `arn:aws:sts::…:assumed-role/…/…`, …).
    pub principal: &'a str,
    /// e.g. `kms:Decrypt`, matched case-insensitively.
    pub action: &'a str,
    /// The PCRs of the request's attestation document; `None` when it carries no `Recipient`.
    pub attestation: Option<&'a PcrSet>,
}

/// The statement that decided, by position in the policy and Sid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decider {
    pub index: usize,
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow(Decider),
    Deny(Decider),
    /// No statement applies: KMS denies.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Decides `request` under `policy`: the first matching Deny, else the first matching Allow.
pub fn evaluate(policy: &Policy, request: &Request<'_>) -> Decision {
    let matching = |effect: Effect| {
        policy
            .statements
            .iter()
            .enumerate()
            .find(|(_, st)| st.effect == effect && statement_matches(st, request))
            .map(|(index, st)| Decider {
                index,
                sid: st.sid.clone(),
            })
    };
    if let Some(decider) = matching(Effect::Deny) {
        Decision::Deny(decider)
    } else if let Some(decider) = matching(Effect::Allow) {
        Decision::Allow(decider)
    } else {
        Decision::ImplicitDeny
    }
}

fn statement_matches(st: &Statement, request: &Request<'_>) -> bool {
    st.principals
        .iter()
        .any(|p| principal_matches(p, request.principal))
        && st.actions.iter().any(|a| action_matches(a, request.action))
        && conditions_hold(st, request.attestation)
}

/// Whether the policy principal `pattern` covers the caller `principal` (see the module docs).
pub fn principal_matches(pattern: &str, principal: &str) -> bool {
    if pattern == "*" || pattern == principal {
        return true;
    }
    let (Some(pat), Some(caller)) = (Arn::parse(pattern), Arn::parse(principal)) else {
        return false;
    };
    if pat.partition != caller.partition || pat.account != caller.account || pat.service != "iam" {
        return false;
    }
    if pat.resource == "root" {
        return true;
    }
    // arn:aws:iam::A:role/path/Name covers arn:aws:sts::A:assumed-role/Name/session.
    match (
        pat.resource.strip_prefix("role/"),
        caller.resource.strip_prefix("assumed-role/"),
    ) {
        (Some(role_path), Some(session)) if caller.service == "sts" => {
            let role_name = role_path.rsplit('/').next();
            role_name.is_some() && session.split('/').next() == role_name
        }
        _ => false,
    }
}

struct Arn<'a> {
    partition: &'a str,
    service: &'a str,
    account: &'a str,
    resource: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(arn: &'a str) -> Option<Arn<'a>> {
        let mut parts = arn.splitn(6, ':');
        (parts.next()? == "arn").then_some(())?;
        let partition = parts.next()?;
        let service = parts.next()?;
        let _region = parts.next()?;
        let account = parts.next()?;
        let resource = parts.next()?;
        Some(Arn {
            partition,
            service,
            account,
            resource,
        })
    }
}

/// IAM action match: case-insensitive, `*` any run of characters, `?` one character.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let action: Vec<char> = action.to_lowercase().chars().collect();
    // Iterative glob with single-star backtracking: linear memory, no recursion.
    let (mut p, mut a) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while a < action.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, a));
                p += 1;
            }
            Some(c) if *c == '?' || *c == action[a] => {
                p += 1;
                a += 1;
            }
            _ => match star {
                Some((sp, sa)) => {
                    p = sp + 1;
                    a = sa + 1;
                    star = Some((sp, sa + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

fn conditions_hold(st: &Statement, attestation: Option<&PcrSet>) -> bool {
    st.conditions.iter().all(|(operator, keys)| {
        keys.iter().all(|(key, values)| {
            let actual = attestation
                .and_then(|pcrs| pcrs.get(&key.register()))
                .map(PcrValue::to_hex);
            condition_holds(*operator, actual.as_deref(), values)
        })
    })
}

fn condition_holds(operator: Operator, actual: Option<&str>, values: &[String]) -> bool {
    let Some(actual) = actual else {
        return operator.if_exists || operator.is_negated();
    };
    let equal = |v: &String| {
        if operator.ignores_case() {
            v.eq_ignore_ascii_case(actual)
        } else {
            v == actual
        }
    };
    values.iter().any(equal) != operator.is_negated()
}

/// Who can decrypt under a policy: directly (and with which enclave measurements), and
/// indirectly (by rewriting the policy, granting themselves Decrypt, or re-encrypting under a key
/// they control), with the findings a reviewer must not miss.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub access: Vec<DecryptAccess>,
    pub indirect: Vec<IndirectAccess>,
    /// Flagged problems, one sentence each (empty for a clean policy without escalation paths).
    pub findings: Vec<String>,
}

/// What one Allow statement that covers `kms:Decrypt` lets through, after Deny statements.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecryptAccess {
    pub sid: Option<String>,
    pub principals: Vec<String>,
    /// True when no attestation document is needed at all (a finding on its own).
    pub unattested: bool,
    /// The PCR sets (register → value) this statement admits and no Deny refuses: every
    /// combination of its listed values, since IAM ORs values per key independently. In JSON the
    /// registers are named `PCR0`, `PCR1`, … as in nitro-cli's measurements.
    #[serde(serialize_with = "named_registers")]
    pub releases: Vec<BTreeMap<u8, String>>,
    /// Some admitted release pins only all-zero registers: every debug-mode enclave (whose
    /// memory the parent instance can read) attests exactly that.
    pub admits_debug_enclaves: bool,
}

/// A statement whose principals can give themselves `kms:Decrypt` without being admitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndirectAccess {
    pub sid: Option<String>,
    /// The statement's principals that the policy (after Deny) lets call `action`.
    pub principals: Vec<String>,
    /// `kms:PutKeyPolicy`, `kms:CreateGrant` or `kms:ReEncryptFrom`.
    pub action: &'static str,
    /// How that action leads to plaintext.
    pub how: &'static str,
}

/// Actions that lead to plaintext without `kms:Decrypt` itself, and how. None of these requests
/// can carry an attestation document.
pub const ESCALATIONS: [(&str, &str); 3] = [
    (
        "kms:PutKeyPolicy",
        "can rewrite this key policy to give itself kms:Decrypt",
    ),
    (
        "kms:CreateGrant",
        "can create a grant that gives itself kms:Decrypt (grants bypass key policy conditions)",
    ),
    (
        "kms:ReEncryptFrom",
        "can re-encrypt ciphertexts under a key it controls, then decrypt them there",
    ),
];

/// Above this many combinations `explain` stops enumerating (a policy this loose is
/// already a finding).
const MAX_COMBINATIONS: usize = 1024;

/// Which releases (PCR sets) and principals can Decrypt under `policy`, who can give themselves
/// Decrypt, and what of it is a finding.
pub fn explain(policy: &Policy) -> Explanation {
    let access: Vec<DecryptAccess> = policy
        .statements
        .iter()
        .filter(|st| {
            st.effect == Effect::Allow
                && st.actions.iter().any(|a| action_matches(a, "kms:Decrypt"))
        })
        .map(|st| direct_access(policy, st))
        .collect();
    let indirect: Vec<IndirectAccess> = policy
        .statements
        .iter()
        .filter(|st| st.effect == Effect::Allow)
        .flat_map(|st| indirect_access(policy, st))
        .collect();
    let findings = findings(&access, &indirect);
    Explanation {
        access,
        indirect,
        findings,
    }
}

fn direct_access(policy: &Policy, st: &Statement) -> DecryptAccess {
    let admitted = |attestation: Option<&PcrSet>| {
        st.principals.iter().any(|principal| {
            let request = Request {
                principal,
                action: "kms:Decrypt",
                attestation,
            };
            evaluate(policy, &request).is_allowed()
        })
    };
    let admitted_sets: Vec<PcrSet> = candidate_releases(st)
        .into_iter()
        .filter(|pcrs| admitted(Some(pcrs)))
        .collect();
    DecryptAccess {
        sid: st.sid.clone(),
        principals: st.principals.clone(),
        unattested: admitted(None),
        admits_debug_enclaves: admitted_sets
            .iter()
            .any(|pcrs| !pcrs.is_empty() && pcrs.values().all(PcrValue::is_zero)),
        releases: admitted_sets
            .into_iter()
            .map(|pcrs| {
                pcrs.into_iter()
                    .map(|(i, v)| (i.get(), v.to_hex()))
                    .collect()
            })
            .collect(),
    }
}

fn indirect_access(policy: &Policy, st: &Statement) -> Vec<IndirectAccess> {
    ESCALATIONS
        .iter()
        .filter(|(action, _)| st.actions.iter().any(|a| action_matches(a, action)))
        .filter_map(|(action, how)| {
            let principals: Vec<String> = st
                .principals
                .iter()
                .filter(|principal| {
                    let request = Request {
                        principal,
                        action,
                        attestation: None,
                    };
                    evaluate(policy, &request).is_allowed()
                })
                .cloned()
                .collect();
            (!principals.is_empty()).then(|| IndirectAccess {
                sid: st.sid.clone(),
                principals,
                action,
                how,
            })
        })
        .collect()
}

fn findings(access: &[DecryptAccess], indirect: &[IndirectAccess]) -> Vec<String> {
    let sid = |s: &Option<String>| s.clone().unwrap_or_else(|| "(no Sid)".into());
    let mut out = Vec::new();
    for a in access {
        if a.unattested {
            out.push(format!(
                "statement {}: {} can kms:Decrypt without attestation (from any environment)",
                sid(&a.sid),
                a.principals.join(", ")
            ));
        }
        if a.admits_debug_enclaves {
            out.push(format!(
                "statement {}: admits a release whose pinned PCRs are all zero: every debug-mode enclave (its memory is readable by the parent instance) can decrypt",
                sid(&a.sid)
            ));
        }
    }
    for i in indirect {
        let by_design = if i.action == "kms:PutKeyPolicy" {
            " (by design for key administrators: their residual trust)"
        } else {
            ""
        };
        out.push(format!(
            "statement {}: {} {} via {}{by_design}",
            sid(&i.sid),
            i.principals.join(", "),
            i.how,
            i.action
        ));
    }
    out
}

/// Serializes release maps with nitro-cli's register names (`PCR0`, …).
fn named_registers<S: serde::Serializer>(
    releases: &[BTreeMap<u8, String>],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(releases.len()))?;
    for release in releases {
        let named: BTreeMap<String, &String> = release
            .iter()
            .map(|(i, v)| (format!("PCR{i}"), v))
            .collect();
        seq.serialize_element(&named)?;
    }
    seq.end()
}

/// The PCR sets an Allow statement's positive attestation conditions name (values that are
/// not valid PCR hex can never be reported by an enclave and are skipped).
pub(crate) fn candidate_releases(st: &Statement) -> Vec<PcrSet> {
    let mut per_register: BTreeMap<_, Vec<PcrValue>> = BTreeMap::new();
    for (operator, keys) in &st.conditions {
        if operator.is_negated() {
            continue;
        }
        for (key, values) in keys {
            let parsed = values
                .iter()
                .filter_map(|v| v.to_ascii_lowercase().parse::<PcrValue>().ok());
            let slot = per_register.entry(key.register()).or_default();
            slot.extend(parsed);
            slot.sort();
            slot.dedup();
        }
    }
    let mut sets = vec![PcrSet::new()];
    for (register, values) in per_register {
        sets = sets
            .iter()
            .flat_map(|set| {
                values.iter().map(move |value| {
                    let mut next = set.clone();
                    next.insert(register, *value);
                    next
                })
            })
            .take(MAX_COMBINATIONS)
            .collect();
    }
    sets
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.access.is_empty() {
            writeln!(f, "nobody can kms:Decrypt directly")?;
        }
        for access in &self.access {
            let sid = access.sid.as_deref().unwrap_or("(no Sid)");
            writeln!(f, "statement {sid}: {}", access.principals.join(", "))?;
            if access.unattested {
                writeln!(f, "  WITHOUT ATTESTATION (any caller environment)")?;
            }
            if access.releases.is_empty() && !access.unattested {
                writeln!(f, "  no enclave (conditions unsatisfiable or denied)")?;
            }
            for release in &access.releases {
                let pcrs: Vec<String> =
                    release.iter().map(|(i, v)| format!("PCR{i}={v}")).collect();
                writeln!(f, "  enclave {}", pcrs.join(" "))?;
            }
        }
        if !self.indirect.is_empty() {
            writeln!(f, "can give themselves kms:Decrypt:")?;
            for i in &self.indirect {
                let sid = i.sid.as_deref().unwrap_or("(no Sid)");
                writeln!(
                    f,
                    "  statement {sid}: {} via {}",
                    i.principals.join(", "),
                    i.action
                )?;
            }
        }
        if !self.findings.is_empty() {
            writeln!(f, "findings:")?;
            for finding in &self.findings {
                writeln!(f, "  ! {finding}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(action_matches("kms:*", "kms:Decrypt"));
        assert!(action_matches("*", "kms:Decrypt"));
        assert!(action_matches("KMS:decrypt", "kms:Decrypt"));
        assert!(action_matches(
            "kms:GenerateDataKey*",
            "kms:GenerateDataKeyPair"
        ));
        assert!(action_matches(
            "kms:GenerateDataKey*",
            "kms:GenerateDataKey"
        ));
        assert!(action_matches("kms:Re?ncrypt*", "kms:ReEncryptFrom"));
        assert!(!action_matches("kms:Decrypt", "kms:DecryptX"));
        assert!(!action_matches("kms:Encrypt", "kms:Decrypt"));
        assert!(action_matches("*a*b*", "xaxxbx"));
    }

    #[test]
    fn principals() {
        let role = "arn:aws:iam::111122223333:role/app/enclave";
        let session = "arn:aws:sts::111122223333:assumed-role/enclave/i-0abc";
        assert!(principal_matches(role, role));
        assert!(principal_matches(role, session));
        assert!(!principal_matches(
            role,
            "arn:aws:sts::444455556666:assumed-role/enclave/i-0abc"
        ));
        assert!(!principal_matches(
            role,
            "arn:aws:sts::111122223333:assumed-role/other/i-0abc"
        ));
        assert!(principal_matches("arn:aws:iam::111122223333:root", session));
        assert!(!principal_matches(
            "arn:aws:iam::111122223333:root",
            "arn:aws:iam::444455556666:root"
        ));
        assert!(principal_matches("*", "anything"));
    }

    #[test]
    fn negated_and_if_exists_when_key_absent() {
        let op = |name| Operator::parse(name).expect("known operator");
        let v = vec!["ab".to_owned()];
        assert!(!condition_holds(op("StringEqualsIgnoreCase"), None, &v));
        assert!(condition_holds(op("StringNotEqualsIgnoreCase"), None, &v));
        assert!(condition_holds(
            op("StringEqualsIgnoreCaseIfExists"),
            None,
            &v
        ));
        assert!(condition_holds(
            op("StringEqualsIgnoreCase"),
            Some("AB"),
            &v
        ));
        assert!(!condition_holds(op("StringEquals"), Some("AB"), &v));
        assert!(!condition_holds(op("StringNotEquals"), Some("ab"), &v));
        let two = vec!["ab".to_owned(), "cd".to_owned()];
        assert!(condition_holds(op("StringNotEquals"), Some("ef"), &two));
        assert!(!condition_holds(op("StringNotEquals"), Some("cd"), &two));
    }
}
