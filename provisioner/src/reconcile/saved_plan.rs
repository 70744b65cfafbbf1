//! Saved plans (`plan --out plan.json`): exactly what was reviewed, applied later without
//! re-planning. Staleness is refused: a changed `enclave.yaml`, a different rendering, or a change
//! set CloudFormation marked OBSOLETE.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; an unknown major version is refused.
pub const FORMAT_VERSION: &str = "1.0";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format_version: String,
    pub deployment: String,
    pub region: String,
    pub account: String,
    pub stack_name: String,
    pub stack_id: String,
    pub change_set_arn: String,
    /// `bootstrap` (a new stack: bucket first, the rest after the uploads) or `full`.
    pub phase: String,
    pub template_sha256: String,
    pub parameters_sha256: String,
    pub config_sha256: String,
    pub artifacts: Vec<ArtifactRecord>,
    pub created_at_unix: u64,
    /// Planned with `--keep-old-release`: a rotation keeps both releases admitted.
    pub keep_old_release: bool,
    /// After the change set, drop the old release in a second step (a rotation).
    pub finish_rotation: bool,
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
    #[error(
        "saved plan {path} has format_version {found}; this nitro-provision reads {FORMAT_VERSION}"
    )]
    Version { path: String, found: String },
    #[error("saved plan is stale: {0}; run `nitro-provision plan` again")]
    Stale(String),
}

impl SavedPlan {
    pub fn load(path: &Path) -> Result<Self, SavedPlanError> {
        let read_err = |message: String| SavedPlanError::Read {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        // Check the version before the shape, so a future format gets the right message.
        let raw: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| read_err(e.to_string()))?;
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
        serde_json::from_value(raw).map_err(|e| read_err(e.to_string()))
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(
            path,
            serde_json::to_string_pretty(self).unwrap_or_default() + "\n",
        )
    }

    /// Refuses a plan whose inputs no longer match what would be applied now.
    pub fn check_inputs(
        &self,
        config_sha256: &str,
        template_sha256: &str,
        parameters_sha256: &str,
    ) -> Result<(), SavedPlanError> {
        if self.config_sha256 != config_sha256 {
            return Err(SavedPlanError::Stale(
                "enclave.yaml changed since the plan was made".into(),
            ));
        }
        if self.template_sha256 != template_sha256 || self.parameters_sha256 != parameters_sha256 {
            return Err(SavedPlanError::Stale(
                "the rendered template differs from the planned one (an input such as the image or a binary changed)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedPlan {
        SavedPlan {
            format_version: FORMAT_VERSION.into(),
            deployment: "demo".into(),
            region: "us-east-1".into(),
            account: "123456789012".into(),
            stack_name: "demo".into(),
            stack_id: "id".into(),
            change_set_arn: "arn".into(),
            phase: "full".into(),
            template_sha256: "t".into(),
            parameters_sha256: "p".into(),
            config_sha256: "c".into(),
            artifacts: vec![],
            created_at_unix: 0,
            keep_old_release: false,
            finish_rotation: false,
        }
    }

    #[test]
    fn refuses_changed_inputs_and_unknown_versions() {
        let p = sample();
        assert!(p.check_inputs("c", "t", "p").is_ok());
        assert!(
            matches!(p.check_inputs("x", "t", "p"), Err(SavedPlanError::Stale(m)) if m.contains("enclave.yaml"))
        );
        assert!(matches!(
            p.check_inputs("c", "x", "p"),
            Err(SavedPlanError::Stale(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        p.save(&path).unwrap();
        assert_eq!(SavedPlan::load(&path).unwrap(), p);
        let mut v2 = serde_json::to_value(&p).unwrap();
        v2["format_version"] = "2.0".into();
        std::fs::write(&path, v2.to_string()).unwrap();
        assert!(matches!(
            SavedPlan::load(&path),
            Err(SavedPlanError::Version { .. })
        ));
    }
}
