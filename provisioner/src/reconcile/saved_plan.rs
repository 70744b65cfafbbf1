//! Saved plans (`plan --out plan.json`): exactly what was reviewed, applied later without
//! re-planning, and tamper-evident. Every field is either re-derived by `apply` and compared, or
//! covered by a digest checked before any AWS call that changes anything:
//!
//! - `digest` is the SHA-256 of the whole plan (canonical JSON, `digest` left out): any edit of
//!   the file shows as "modified after it was made";
//! - `content_sha256` covers everything but the ids AWS assigns (stack id, change set ARN) and is
//!   also written into the change set's description when the plan is made, so a file whose
//!   digests were recomputed still cannot be pointed at (or change) what CloudFormation holds;
//! - the deployment, region, account, inputs, rendering, phase, rotation, artifacts, stack id,
//!   deployed template and live key policy are re-derived and compared (a mismatch is "stale").

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Bumped on any incompatible change; an unknown major version is refused.
pub const FORMAT_VERSION: &str = "2.0";

/// How the change set's description carries the plan's content digest.
const DESCRIPTION_PREFIX: &str = "nitro-provision plan sha256:";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format_version: String,
    pub deployment: String,
    pub region: String,
    pub account: String,
    pub stack_name: String,
    /// `bootstrap` (a new stack: bucket first, the rest after the uploads) or `full`.
    pub phase: String,
    pub template_sha256: String,
    pub parameters_sha256: String,
    pub config_sha256: String,
    /// SHA-256 of the template CloudFormation held when the plan was made (`null`: new stack).
    pub deployed_template_sha256: Option<String>,
    /// The deployment's key and the SHA-256 of its policy as KMS returned it (`null`: no key).
    pub key_id: Option<String>,
    pub live_key_policy_sha256: Option<String>,
    pub artifacts: Vec<ArtifactRecord>,
    pub created_at_unix: u64,
    /// Planned with `--keep-old-release`: a rotation keeps both releases admitted.
    pub keep_old_release: bool,
    /// After the change set, drop the old release in a second step (a rotation).
    pub finish_rotation: bool,
    /// Planned with `--adopt-stack`: the stack did not carry this deployment's ownership marks.
    pub adopt_stack: bool,
    /// SHA-256 of the fields above (canonical JSON); also in the change set's description.
    pub content_sha256: String,
    pub stack_id: String,
    /// `null` when CloudFormation had nothing to change (the plan may still restore the key
    /// policy, or do nothing).
    pub change_set_arn: Option<String>,
    /// SHA-256 of everything above (canonical JSON).
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRecord {
    pub name: String,
    pub key: String,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read saved plan {path}: {message}")]
    Read { path: String, message: String },
    #[error("saved plan {path} has format_version {found}; this nitro-provision reads saved plans of format {FORMAT_VERSION}: make the plan again with this version")]
    Version { path: String, found: String },
    #[error("the plan file {path} was modified after it was made ({what}); refusing to apply it: make a new plan")]
    Modified { path: String, what: String },
    #[error("this plan is for {planned}, but enclave.yaml describes {here}; refusing to apply another deployment's plan")]
    OtherDeployment { planned: String, here: String },
    #[error("saved plan is stale: {0}; run `nitro-provision plan` again")]
    Stale(String),
    #[error("the saved plan does not match AWS: {0}; it was not made for this stack, or it was edited: make a new plan")]
    Mismatch(String),
}

/// Compact JSON with object keys sorted at every level: the text the digests are taken of.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&map[k])))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

fn sha256_without(plan: &SavedPlan, fields: &[&str]) -> String {
    let mut value = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        for f in fields {
            map.remove(*f);
        }
    }
    hex::encode(Sha256::digest(canonical_json(&value).as_bytes()))
}

impl SavedPlan {
    /// SHA-256 of the content (the plan without the ids AWS assigns and the digests).
    pub fn compute_content_sha256(&self) -> String {
        sha256_without(
            self,
            &["content_sha256", "stack_id", "change_set_arn", "digest"],
        )
    }

    pub fn compute_digest(&self) -> String {
        sha256_without(self, &["digest"])
    }

    /// Sets `content_sha256` (before the change set is created: it goes into its description).
    pub fn seal_content(&mut self) {
        self.content_sha256 = self.compute_content_sha256();
    }

    /// Sets both digests (once the stack id and change set ARN are known).
    pub fn seal(&mut self) {
        self.seal_content();
        self.digest = self.compute_digest();
    }

    /// What the change set's description says: this plan's content digest.
    pub fn change_set_description(&self) -> String {
        format!("{DESCRIPTION_PREFIX}{}", self.content_sha256)
    }

    pub fn load(path: &Path) -> Result<Self, SavedPlanError> {
        let read_err = |message: String| SavedPlanError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        // Check the version before the shape, so a future format gets the right message.
        let raw: Value = serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
        let found = raw
            .get("format_version")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if found.split('.').next() != FORMAT_VERSION.split('.').next() {
            return Err(SavedPlanError::Version {
                path: path.display().to_string(),
                found,
            });
        }
        let plan: SavedPlan = serde_json::from_value(raw).map_err(|e| read_err(e.to_string()))?;
        plan.verify(path)?;
        Ok(plan)
    }

    /// Refuses a file whose digests do not match its content.
    fn verify(&self, path: &Path) -> Result<(), SavedPlanError> {
        let modified = |what: &str| SavedPlanError::Modified {
            path: path.display().to_string(),
            what: what.to_string(),
        };
        if self.digest != self.compute_digest() {
            return Err(modified("its digest does not match its content"));
        }
        if self.content_sha256 != self.compute_content_sha256() {
            return Err(modified("its content digest does not match its content"));
        }
        Ok(())
    }

    /// Written whole or not at all.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        super::write_whole(
            path,
            &(serde_json::to_string_pretty(self).unwrap_or_default() + "\n"),
        )
    }

    fn target(deployment: &str, stack: &str, account: &str, region: &str) -> String {
        format!("deployment {deployment} (stack {stack} in account {account}, region {region})")
    }

    /// Refuses another deployment's plan (name, stack, account or region differ).
    pub fn check_deployment(&self, config: &Config) -> Result<(), SavedPlanError> {
        let planned = Self::target(
            &self.deployment,
            &self.stack_name,
            &self.account,
            &self.region,
        );
        let here = Self::target(&config.name, &config.name, &config.account, &config.region);
        if planned != here {
            return Err(SavedPlanError::OtherDeployment { planned, here });
        }
        Ok(())
    }

    /// Refuses a plan made from another enclave.yaml (checked before anything is built).
    pub fn check_config(&self, config_sha256: &str) -> Result<(), SavedPlanError> {
        if self.config_sha256 != config_sha256 {
            return Err(SavedPlanError::Stale(
                "enclave.yaml changed since the plan was made".into(),
            ));
        }
        Ok(())
    }

    /// Refuses a plan whose rendering or artifacts differ from what would be applied now.
    pub fn check_rendering(
        &self,
        template_sha256: &str,
        parameters_sha256: &str,
        artifacts: &[ArtifactRecord],
    ) -> Result<(), SavedPlanError> {
        if self.template_sha256 != template_sha256 || self.parameters_sha256 != parameters_sha256 {
            return Err(SavedPlanError::Stale(
                "the rendered template differs from the planned one (an input such as the image or a binary changed)".into(),
            ));
        }
        if let Some(a) = artifacts.iter().find(|a| !self.artifacts.contains(a)) {
            return Err(SavedPlanError::Stale(format!(
                "artifact {} is now {} (sha256 {}), which is not what the plan uploads",
                a.name, a.key, a.sha256
            )));
        }
        if self.artifacts.len() != artifacts.len() {
            return Err(SavedPlanError::Mismatch(
                "the plan lists other artifacts than this deployment uploads".into(),
            ));
        }
        Ok(())
    }

    /// Whether the change set's description carries this plan's content digest.
    pub fn made_change_set(&self, description: &str) -> bool {
        description == self.change_set_description()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedPlan {
        let mut p = SavedPlan {
            format_version: FORMAT_VERSION.into(),
            deployment: "demo".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stack_name: "demo".into(),
            phase: "full".into(),
            template_sha256: "t".into(),
            parameters_sha256: "p".into(),
            config_sha256: "c".into(),
            deployed_template_sha256: None,
            key_id: None,
            live_key_policy_sha256: None,
            artifacts: vec![],
            created_at_unix: 0,
            keep_old_release: false,
            finish_rotation: false,
            adopt_stack: false,
            content_sha256: String::new(),
            stack_id: "id".into(),
            change_set_arn: Some("arn".into()),
            digest: String::new(),
        };
        p.seal();
        p
    }

    #[test]
    fn round_trips_and_refuses_edits_and_unknown_versions() {
        let p = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        p.save(&path).unwrap();
        assert_eq!(SavedPlan::load(&path).unwrap(), p);
        assert!(p.check_config("c").is_ok());
        assert!(
            matches!(p.check_config("x"), Err(SavedPlanError::Stale(m)) if m.contains("enclave.yaml"))
        );

        let mut edited = serde_json::to_value(&p).unwrap();
        edited["stack_id"] = "other".into();
        std::fs::write(&path, edited.to_string()).unwrap();
        assert!(matches!(
            SavedPlan::load(&path),
            Err(SavedPlanError::Modified { .. })
        ));

        // Digests recomputed without the content digest: still caught.
        let mut forged = p.clone();
        forged.finish_rotation = true;
        forged.digest = forged.compute_digest();
        std::fs::write(&path, serde_json::to_string(&forged).unwrap()).unwrap();
        assert!(matches!(
            SavedPlan::load(&path),
            Err(SavedPlanError::Modified { what, .. }) if what.contains("content digest")
        ));

        let mut v3 = serde_json::to_value(&p).unwrap();
        v3["format_version"] = "3.0".into();
        std::fs::write(&path, v3.to_string()).unwrap();
        assert!(matches!(
            SavedPlan::load(&path),
            Err(SavedPlanError::Version { .. })
        ));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v: Value = serde_json::from_str(r#"{"b":1,"a":[{"d":2,"c":3}]}"#).unwrap();
        assert_eq!(canonical_json(&v), r#"{"a":[{"c":3,"d":2}],"b":1}"#);
    }
}
