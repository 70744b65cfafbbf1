//! The deployment's live key policy. KMS admins keep `kms:PutKeyPolicy` by design, so the policy
//! can change outside CloudFormation, which only writes `KeyPolicy` when the template's changes.
//! `plan` therefore reads the live policy (GetKeyPolicy) and reports drift semantically, and
//! `apply`, after the stack update, puts the rendered policy back when the live one differs
//! (PutKeyPolicy, KMS's lock-out safety check on).

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::aws::{kms, stack, Aws};
use crate::plan::{KeyPolicyChange, KeyPolicyDrift};

/// The stack's key resource.
pub const KEY_LOGICAL_ID: &str = "EnclaveKey";

/// The key policy as KMS holds it now.
#[derive(Debug, Clone)]
pub struct LiveKey {
    pub key_id: String,
    /// The document exactly as GetKeyPolicy returned it.
    pub text: String,
    /// SHA-256 of `text`: a saved plan is stale when it changes.
    pub sha256: String,
}

impl LiveKey {
    pub fn policy(&self) -> Result<kms_policy::Policy, kms_policy::ParseError> {
        kms_policy::Policy::from_json(&self.text)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::String(self.text.clone()))
    }
}

/// The stack's key id, when the stack has created one (a stack left in the bootstrap phase
/// has none yet).
pub async fn key_id(aws: &Aws, stack_id: &str) -> anyhow::Result<Option<String>> {
    Ok(stack::resources(aws, stack_id)
        .await?
        .remove(KEY_LOGICAL_ID)
        .map(|(_, physical)| physical)
        .filter(|id| !id.is_empty()))
}

/// Reads the live policy of the stack's key; `None` when no key is deployed yet.
pub async fn read_live(aws: &Aws, stack_id: &str) -> anyhow::Result<Option<LiveKey>> {
    let Some(key_id) = key_id(aws, stack_id).await? else {
        return Ok(None);
    };
    let text = kms::get_key_policy(aws, &key_id).await?;
    Ok(Some(LiveKey {
        sha256: hex::encode(Sha256::digest(text.as_bytes())),
        key_id,
        text,
    }))
}

/// Whether two policies grant the same (semantically; unreadable ones only when equal as JSON).
pub fn same_policy(a: &str, b: &Value) -> bool {
    match (
        kms_policy::Policy::from_json(a),
        kms_policy::Policy::from_json(&b.to_string()),
    ) {
        (Ok(a), Ok(b)) => kms_policy::diff(&a, &b).is_empty(),
        _ => serde_json::from_str::<Value>(a).ok().as_ref() == Some(b),
    }
}

/// The plan's view of the key policy: how the live policy differs from the deployed template
/// (drift) and from the planned one (what apply changes). `deployed` is the template's policy.
pub fn review(
    deployed: Option<&Value>,
    live: Option<&LiveKey>,
    planned: &Value,
) -> (Option<KeyPolicyChange>, Option<KeyPolicyDrift>) {
    let Some(live) = live else {
        // No key yet: the plan shows the whole policy it creates.
        return (None, None);
    };
    let drift = deployed.filter(|d| !same_policy(&live.text, d)).map(|d| {
        let (diff, text) = semantic_diff(&d.to_string(), &live.text, "the live key policy");
        KeyPolicyDrift {
            key_id: live.key_id.clone(),
            diff,
            text,
        }
    });
    let change = (!same_policy(&live.text, planned)).then(|| {
        let (diff, text) = semantic_diff(&live.text, &planned.to_string(), "the live key policy");
        KeyPolicyChange {
            key_id: live.key_id.clone(),
            deployed: deployed.cloned().unwrap_or(Value::Null),
            live: live.json(),
            diff,
            text,
        }
    });
    (change, drift)
}

/// The semantic diff reviewers approve; a policy our strict parser refuses (edited by hand with
/// constructs we never emit) is reported as such rather than guessed at.
fn semantic_diff(before: &str, after: &str, what: &str) -> (Value, String) {
    let parse = kms_policy::Policy::from_json;
    match (parse(before), parse(after)) {
        (Ok(b), Ok(a)) => {
            let d = kms_policy::diff(&b, &a);
            (serde_json::to_value(&d).unwrap_or(Value::Null), d.to_string())
        }
        (Err(e), _) | (_, Err(e)) => (
            Value::Null,
            format!("{what} cannot be compared ({e}); apply replaces it whole with the planned policy\n"),
        ),
    }
}

/// After the stack update: puts `rendered` on the stack's key when the live policy differs.
/// Returns the key id when it wrote.
pub async fn restore(
    aws: &Aws,
    stack_id: &str,
    rendered: &Value,
) -> anyhow::Result<Option<String>> {
    let Some(live) = read_live(aws, stack_id).await? else {
        anyhow::bail!(
            "the stack has no {KEY_LOGICAL_ID} after the update: the key policy cannot be checked"
        );
    };
    if same_policy(&live.text, rendered) {
        return Ok(None);
    }
    let json = serde_json::to_string(rendered)?;
    kms::put_key_policy(aws, &live.key_id, &json)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
            "restoring the rendered key policy on {} failed (the stack itself was updated): {e}",
            live.key_id
        )
        })?;
    Ok(Some(live.key_id))
}
