//! Plans: what an apply would do, as a versioned document (`--json`) and as text.
//! The offline plan needs no AWS: it is what a first apply would create.

mod text;

use serde::Serialize;
use serde_json::Value;

pub use text::to_text;

use crate::render::Rendered;

/// Version of the plan document. Consumers should ignore unknown keys and reject an unknown
/// major version.
pub const FORMAT_VERSION: &str = "1.1";

/// The plan document. Its schema is stable: every key is always present (`null` or `[]` when it
/// does not apply, e.g. offline), and PCRs carry both `index` and nitro-cli's `name` (`PCR0`).
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
    /// Online plans: the change set that `apply` executes (`null` when CloudFormation has
    /// nothing to change, or offline).
    pub change_set: Option<ChangeSetInfo>,
    /// Online plans: the deployment's live key (`null` while no key is deployed, or offline).
    pub key_id: Option<String>,
    /// Online plans: pinned PCR values, deployed → planned (only those that change).
    pub pcr_changes: Vec<PcrChange>,
    /// Online plans: how the planned key policy differs from the live one.
    pub key_policy_change: Option<KeyPolicyChange>,
    /// Online plans: how the live key policy differs from the deployed template (changed outside
    /// CloudFormation); apply writes the planned policy back.
    pub key_policy_drift: Option<KeyPolicyDrift>,
}

/// The reviewers' artifact: the semantic diff of the key policy (broadening vs narrowing), from
/// the live policy (what KMS enforces now) to the planned one.
#[derive(Debug, Serialize)]
pub struct KeyPolicyChange {
    pub key_id: String,
    /// The policy in the deployed template (`null` when it has none).
    pub deployed: Value,
    /// The policy KMS holds now (GetKeyPolicy).
    pub live: Value,
    /// `kms_policy::PolicyDiff` live → planned as JSON; `null` when a side could not be read.
    pub diff: Value,
    /// The diff as reviewers read it (or why it could not be computed).
    #[serde(skip)]
    pub text: String,
}

/// A live key policy that differs from the deployed template: someone with kms:PutKeyPolicy
/// changed it outside CloudFormation.
#[derive(Debug, Serialize)]
pub struct KeyPolicyDrift {
    pub key_id: String,
    /// `kms_policy::PolicyDiff` deployed template → live, as JSON (`null` when unreadable).
    pub diff: Value,
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
    /// `PCR0`, … (nitro-cli's names).
    pub name: String,
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
    /// `PCR0`, … (nitro-cli's names).
    pub name: String,
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
    /// Online plans: whether the object is already in the bucket (then it is not uploaded);
    /// `null` offline.
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
                    name: pcr_name(*index),
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
            key_id: None,
            pcr_changes: Vec::new(),
            key_policy_change: None,
            key_policy_drift: None,
        }
    }

    /// Anything to apply: resources to change, or a live key policy to put back.
    pub fn has_changes(&self) -> bool {
        self.change_set.is_some()
            || self.key_policy_change.is_some()
            || self.summary
                != Summary {
                    add: 0,
                    change: 0,
                    destroy: 0,
                }
    }
}

/// nitro-cli's name of a PCR.
pub fn pcr_name(index: u8) -> String {
    format!("PCR{index}")
}
