//! KMS keys as this tool handles them: names resolved to key ids (GetKeyPolicy and
//! PutKeyPolicy take a key id or ARN only), key policies read and written with KMS's lock-out
//! safety check on.

use super::{Aws, AwsError};

/// A key as KMS describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    /// What the user wrote: an id, a key ARN, `alias/NAME` or an alias ARN.
    pub name: String,
    pub id: String,
    pub arn: String,
    /// The account that owns the key (from its ARN).
    pub account: String,
}

impl KeyRef {
    /// `alias/x (key 1234…)` for an alias, the id otherwise: what a message should name.
    pub fn describe(&self) -> String {
        if self.name == self.id {
            self.id.clone()
        } else {
            format!("{} (key {})", self.name, self.id)
        }
    }
}

/// Resolves any key name KMS accepts in DescribeKey (id, key ARN, `alias/NAME`, alias ARN).
pub async fn resolve_key(aws: &Aws, name: &str) -> Result<KeyRef, AwsError> {
    let out = aws
        .kms
        .describe_key()
        .key_id(name)
        .send()
        .await
        .map_err(|e| AwsError::call("kms:DescribeKey", e))?;
    let meta = out
        .key_metadata()
        .ok_or_else(|| AwsError::Unexpected(format!("kms:DescribeKey {name}: no key metadata")))?;
    let arn = meta.arn().unwrap_or_default().to_string();
    let account = arn.split(':').nth(4).unwrap_or_default().to_string();
    Ok(KeyRef {
        name: name.to_string(),
        id: meta.key_id().to_string(),
        arn,
        account,
    })
}

/// The key's `default` policy document, as KMS returns it.
pub async fn get_key_policy(aws: &Aws, key_id: &str) -> Result<String, AwsError> {
    let out = aws
        .kms
        .get_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| AwsError::call("kms:GetKeyPolicy", e))?;
    Ok(out.policy().unwrap_or_default().to_string())
}

/// Writes the key's policy. The lock-out safety check stays on: KMS refuses a policy that would
/// lock the caller out of the key.
pub async fn put_key_policy(aws: &Aws, key_id: &str, policy: &str) -> Result<(), AwsError> {
    aws.kms
        .put_key_policy()
        .key_id(key_id)
        .policy_name("default")
        .policy(policy)
        .bypass_policy_lockout_safety_check(false)
        .send()
        .await
        .map_err(|e| AwsError::call("kms:PutKeyPolicy", e))?;
    Ok(())
}
