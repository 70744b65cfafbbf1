//! Canonical form of a policy, so that semantically equal policies compare equal.

use crate::model::{Policy, Statement};

/// KMS action names in AWS's casing; IAM matches actions case-insensitively, so the canonical
/// form uses this casing (and lowercase for names not listed).
const KMS_ACTIONS: &[&str] = &[
    "kms:CancelKeyDeletion",
    "kms:ConnectCustomKeyStore",
    "kms:CreateAlias",
    "kms:CreateCustomKeyStore",
    "kms:CreateGrant",
    "kms:CreateKey",
    "kms:Decrypt",
    "kms:DeleteAlias",
    "kms:DeleteCustomKeyStore",
    "kms:DeleteImportedKeyMaterial",
    "kms:DeriveSharedSecret",
    "kms:DescribeCustomKeyStores",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:DisconnectCustomKeyStore",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateMac",
    "kms:GenerateRandom",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:GetParametersForImport",
    "kms:GetPublicKey",
    "kms:ImportKeyMaterial",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListKeys",
    "kms:ListResourceTags",
    "kms:ListRetirableGrants",
    "kms:PutKeyPolicy",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:ReplicateKey",
    "kms:RetireGrant",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:Sign",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateCustomKeyStore",
    "kms:UpdateKeyDescription",
    "kms:UpdatePrimaryRegion",
    "kms:Verify",
    "kms:VerifyMac",
];

/// The canonical form of `policy`; idempotent.
///
/// - actions: AWS casing (also for the literal part of wildcards, `kms:generatedatakey*` →
///   `kms:GenerateDataKey*`), sorted, deduplicated;
/// - principals: a bare 12-digit account id becomes `arn:aws:iam::ID:root` (what KMS stores),
///   sorted, deduplicated;
/// - resources and condition values sorted and deduplicated; values of `…IgnoreCase`
///   operators lowercased (PCR hex is lowercase);
/// - statements sorted and exact duplicates dropped (statement order has no meaning in IAM).
pub fn normalize(policy: &Policy) -> Policy {
    let mut statements: Vec<Statement> =
        policy.statements.iter().map(normalize_statement).collect();
    statements.sort();
    statements.dedup();
    Policy {
        version: policy.version.clone(),
        id: policy.id.clone(),
        statements,
    }
}

fn normalize_statement(statement: &Statement) -> Statement {
    let mut st = statement.clone();
    st.actions = sorted(st.actions.iter().map(|a| canonical_action(a)));
    st.principals = sorted(st.principals.iter().map(|p| canonical_principal(p)));
    st.resources = sorted(st.resources.iter().cloned());
    for (operator, keys) in &mut st.conditions {
        for values in keys.values_mut() {
            let lower = operator.ignores_case();
            *values = sorted(values.iter().map(|v| {
                if lower {
                    v.to_ascii_lowercase()
                } else {
                    v.clone()
                }
            }));
        }
    }
    st
}

fn sorted(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut values: Vec<String> = values.collect();
    values.sort();
    values.dedup();
    values
}

/// AWS casing for `action`, matched case-insensitively on its part before any wildcard.
pub fn canonical_action(action: &str) -> String {
    let lower = action.to_ascii_lowercase();
    let literal_len = lower.find(['*', '?']).unwrap_or(lower.len());
    let literal = &lower[..literal_len];
    match KMS_ACTIONS
        .iter()
        .find(|known| known.to_ascii_lowercase().starts_with(literal))
    {
        Some(known) => format!("{}{}", &known[..literal_len], &lower[literal_len..]),
        None => lower,
    }
}

fn canonical_principal(principal: &str) -> String {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{principal}:root")
    } else {
        principal.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_casing() {
        assert_eq!(canonical_action("KMS:decrypt"), "kms:Decrypt");
        assert_eq!(
            canonical_action("kms:generatedatakey*"),
            "kms:GenerateDataKey*"
        );
        assert_eq!(canonical_action("kms:*"), "kms:*");
        assert_eq!(canonical_action("*"), "*");
        assert_eq!(canonical_action("S3:GetObject"), "s3:getobject");
        for known in KMS_ACTIONS {
            assert_eq!(canonical_action(known), *known);
        }
    }

    #[test]
    fn principals_and_values() {
        let text = r#"{"Version":"2012-10-17","Statement":[
          {"Effect":"Allow","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:root"]},
           "Action":["kms:decrypt","kms:Decrypt"],"Resource":"*",
           "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:PCR0":["AB","ab"]},
                        "StringEquals":{"kms:RecipientAttestation:PCR1":"AB"}}}]}"#;
        let p = normalize(&Policy::from_json(text).expect("parses"));
        let st = &p.statements[0];
        assert_eq!(st.principals, ["arn:aws:iam::111122223333:root"]);
        assert_eq!(st.actions, ["kms:Decrypt"]);
        let values: Vec<&Vec<String>> = st.conditions.values().flat_map(|k| k.values()).collect();
        assert_eq!(values, [&vec!["AB".to_owned()], &vec!["ab".to_owned()]]);
        assert_eq!(normalize(&p), p);
    }
}
