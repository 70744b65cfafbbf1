//! Plans: what an apply would do, as a versioned document (`--json`) and as text.
//! The offline plan needs no AWS: it is what a first apply would create.

mod text;

use serde::Serialize;
use serde_json::Value;

pub use text::to_text;

use crate::render::Rendered;

/// Version of the plan document. Consumers should ignore unknown keys and reject an unknown
/// major version.
pub const FORMAT_VERSION: &str = "1.0";

/// The plan document.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub format_version: &'static str,
    /// `offline` (no AWS consulted) or `online`.
    pub mode: &'static str,
    pub deployment: DeploymentSummary,
    pub resource_changes: Vec<ResourceChange>,
    pub summary: Summary,
    pub key_policy: Value,
    pub pinned_pcrs: Vec<PinnedPcr>,
    pub resource_split: ResourceSplit,
    pub artifacts: Vec<ArtifactUpload>,
    pub warnings: Vec<String>,
    /// Online plans: the change set that `apply` executes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_set: Option<ChangeSetInfo>,
    /// Online plans: pinned PCR values, deployed → planned (only those that change).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pcr_changes: Vec<PcrChange>,
    /// Online plans: how the planned key policy differs from the deployed one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_policy_change: Option<KeyPolicyChange>,
}

/// The reviewers' artifact: the semantic diff of the key policy (broadening vs narrowing).
#[derive(Debug, Serialize)]
pub struct KeyPolicyChange {
    pub deployed: Value,
    /// `kms_policy::PolicyDiff` as JSON; `null` when the deployed policy could not be read.
    pub diff: Value,
    /// The diff as reviewers read it (or why it could not be computed).
    #[serde(skip)]
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct ChangeSetInfo {
    pub arn: String,
    /// `bootstrap`: a new stack; apply creates the bucket, uploads, then the rest.
    pub phase: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct PcrChange {
    pub index: u8,
    pub deployed: Option<String>,
    pub planned: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DeploymentSummary {
    pub name: String,
    pub stack_name: String,
    pub region: String,
    pub account: String,
    pub production: bool,
}

#[derive(Debug, Serialize)]
pub struct ResourceChange {
    pub logical_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Terraform's vocabulary: `["create"]`, `["update"]`, `["delete", "create"]`, `["delete"]`.
    pub actions: Vec<&'static str>,
    /// IAM, KMS key policy, security groups and bucket policies: reviewers look here first.
    pub security_sensitive: bool,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

#[derive(Debug, Serialize)]
pub struct PinnedPcr {
    pub index: u8,
    /// `null` until the EIF is built.
    pub value: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ResourceSplit {
    pub instance_type: String,
    pub instance: Share,
    pub enclave: Share,
    pub parent: Share,
}

#[derive(Debug, Serialize)]
pub struct Share {
    pub vcpus: u32,
    pub memory_mib: u64,
}

#[derive(Debug, Serialize)]
pub struct ArtifactUpload {
    pub name: &'static str,
    /// S3 key (content-addressed); `null` until built.
    pub key: Option<String>,
    pub digest: Option<String>,
    /// Online plans: whether the object is already in the bucket (then it is not uploaded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

/// Resource types whose changes widen or narrow who can do what.
pub fn is_security_sensitive(resource_type: &str) -> bool {
    resource_type.starts_with("AWS::IAM::")
        || resource_type == "AWS::KMS::Key"
        || resource_type.starts_with("AWS::EC2::SecurityGroup")
        || resource_type == "AWS::S3::BucketPolicy"
}

impl Plan {
    /// What a first apply of `rendered` creates.
    pub fn offline(rendered: &Rendered) -> Self {
        let dep = &rendered.deployment;
        let c = &dep.config;
        let resource_changes: Vec<ResourceChange> = rendered
            .resources
            .iter()
            .map(|(id, ty)| ResourceChange {
                logical_id: id.clone(),
                resource_type: ty.clone(),
                actions: vec!["create"],
                security_sensitive: is_security_sensitive(ty),
            })
            .collect();
        let mut warnings = Vec::new();
        if dep.artifacts.eif.is_none() {
            warnings.push("the EIF is not built: PCRs and artifact digests are unknown, the key policy admits no enclave yet".to_string());
        }
        let e = &c.enclave;
        Plan {
            format_version: FORMAT_VERSION,
            mode: "offline",
            deployment: DeploymentSummary {
                name: c.name.clone(),
                stack_name: c.name.clone(),
                region: c.region.clone(),
                account: c.account.clone(),
                production: c.production,
            },
            summary: Summary {
                add: resource_changes.len(),
                change: 0,
                destroy: 0,
            },
            resource_changes,
            key_policy: rendered.key_policy.clone(),
            pinned_pcrs: rendered
                .pinned_pcrs
                .iter()
                .map(|(index, value)| PinnedPcr {
                    index: *index,
                    value: value.clone(),
                })
                .collect(),
            resource_split: ResourceSplit {
                instance_type: c.instance.instance_type.clone(),
                instance: Share {
                    vcpus: dep.vcpus,
                    memory_mib: dep.memory_mib,
                },
                enclave: Share {
                    vcpus: e.cpu_count,
                    memory_mib: e.memory_mib,
                },
                parent: Share {
                    vcpus: dep.vcpus.saturating_sub(e.cpu_count),
                    memory_mib: dep.memory_mib.saturating_sub(e.memory_mib),
                },
            },
            artifacts: vec![
                ArtifactUpload {
                    name: "eif",
                    key: dep.eif_key(),
                    digest: dep
                        .artifacts
                        .eif
                        .as_ref()
                        .map(|e| format!("sha384:{}", e.sha384)),
                    present: None,
                },
                ArtifactUpload {
                    name: "enclave-supervisor",
                    key: dep.supervisor_key(),
                    digest: dep
                        .artifacts
                        .supervisor_sha256
                        .as_ref()
                        .map(|d| format!("sha256:{d}")),
                    present: None,
                },
            ],
            warnings,
            change_set: None,
            pcr_changes: Vec::new(),
            key_policy_change: None,
        }
    }

    pub fn has_changes(&self) -> bool {
        self.summary
            != Summary {
                add: 0,
                change: 0,
                destroy: 0,
            }
    }
}
