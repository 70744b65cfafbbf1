//! Renders a validated configuration into the artifacts CloudFormation and the instances consume:
//! the stack template, the instance user_data, the KMS key policy and the instance-role policy.
//! Rendering is pure: same inputs, same bytes — plans and saved-plan hashes depend on it.

mod context;
mod holder;
mod templates;

use std::collections::BTreeMap;
use std::path::PathBuf;

use companion_config::SupervisorConfig;
use serde::Serialize;

pub use context::{bucket_name, key_alias, log_group_name, Deployment, ARTIFACT_PREFIX};
pub use holder::key_policy;
pub use templates::{Templates, EMBEDDED};

/// EC2 rejects larger user data (before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// CloudFormation accepts larger template bodies only through S3.
pub const TEMPLATE_BODY_LIMIT: usize = 51_200;
/// IAM's limit on a role's inline policies, in characters without white space.
pub const ROLE_POLICY_LIMIT: usize = 10_240;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read template {}: {source}", path.display())]
    ReadTemplate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("template {name} did not produce valid {format}: {message}")]
    Output {
        name: String,
        format: &'static str,
        message: String,
    },
    #[error("user_data is {size} bytes; EC2 accepts at most {USER_DATA_LIMIT}")]
    UserDataTooLarge { size: usize },
    #[error("the instance role's policy is {size} characters; IAM accepts at most {ROLE_POLICY_LIMIT} (each secret adds its SSM parameter's ARN)")]
    RolePolicyTooLarge { size: usize },
    #[error("KMS key policy refused: {0}")]
    KeyPolicy(#[from] kms_policy::RenderError),
}

/// One enclave build whose measurements a key policy admits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// PCR index → 96 lowercase hex characters.
    pub pcrs: BTreeMap<u8, String>,
}

impl Release {
    /// The same registers in the policy crate's checked types.
    pub fn pcr_set(&self) -> Result<kms_policy::PcrSet, kms_policy::PcrError> {
        self.pcrs
            .iter()
            .map(|(i, v)| {
                Ok((
                    kms_policy::PcrIndex::new(u32::from(*i))?,
                    v.parse::<kms_policy::PcrValue>()?,
                ))
            })
            .collect()
    }
}

/// Digests of what `apply` uploads; `None` until the artifact is built.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Artifacts {
    pub eif: Option<EifArtifact>,
    pub supervisor_sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EifArtifact {
    pub sha384: String,
    pub size: u64,
    pub release: Release,
}

/// Everything rendering produces.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The stack template.
    pub template: String,
    /// The first phase of a new stack: the bucket only, so that artifacts are uploaded before
    /// any instance can boot.
    pub bootstrap_template: String,
    pub user_data: String,
    pub key_policy: serde_json::Value,
    pub role_policy: serde_json::Value,
    pub supervisor_config: SupervisorConfig,
    /// Logical id → resource type, in template order.
    pub resources: Vec<(String, String)>,
    /// PCR index → value, or `None` while the EIF is not built.
    pub pinned_pcrs: Vec<(u8, Option<String>)>,
    pub deployment: Deployment,
}

impl Rendered {
    /// Policies as written by `render --out`: file name → pretty JSON. The key policy is the
    /// document KMS receives; the role policy names the key by `Fn::GetAtt` (its ARN exists only
    /// once the stack creates it), so it is labelled a CloudFormation fragment.
    pub fn policy_files(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kms-key-policy.json", pretty(&self.key_policy)),
            (ROLE_POLICY_FILE, pretty(&self.role_policy)),
        ]
    }
}

/// File name of the role policy in `render --out`: a CloudFormation fragment, not a document
/// IAM accepts as it is.
pub const ROLE_POLICY_FILE: &str = "instance-role-policy.cfn.json";

/// The role policy's size as IAM counts it (white space excluded), with the key's ARN in place
/// of its `Fn::GetAtt` (a key ARN has a fixed length: its id is a 36-character UUID or `mrk-`
/// + 32 hex).
pub fn role_policy_size(policy: &serde_json::Value, dep: &Deployment) -> usize {
    let key_arn = format!(
        "arn:{}:kms:{}:{}:key/{}",
        dep.partition,
        dep.config.region,
        dep.config.account,
        "0".repeat(36)
    );
    let resolved = resolve_get_att(policy.clone(), &key_arn);
    serde_json::to_string(&resolved)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

fn resolve_get_att(v: serde_json::Value, arn: &str) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) if m.contains_key("Fn::GetAtt") => Value::String(arn.to_string()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, resolve_get_att(v, arn)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|v| resolve_get_att(v, arn)).collect()),
        other => other,
    }
}

/// Pretty JSON with a trailing newline (serializing a `Value` cannot fail).
pub fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Renders everything for `dep`.
pub fn render(templates: &Templates, dep: &Deployment) -> Result<Rendered, RenderError> {
    let key_policy = key_policy(templates, dep, None, dep.releases.clone())?
        .policy
        .to_json_value();
    let role_policy = render_json(
        templates,
        "instance-role-policy.json.j2",
        &dep.role_policy_context(),
    )?;
    let size = role_policy_size(&role_policy, dep);
    if size > ROLE_POLICY_LIMIT {
        return Err(RenderError::RolePolicyTooLarge { size });
    }
    let supervisor_config = dep.supervisor_config();
    let unit = templates.render("enclave-supervisor.service.j2", &dep.unit_context())?;
    let user_data = templates.render(
        "user_data.sh.j2",
        &dep.user_data_context(&supervisor_config, &unit),
    )?;
    if user_data.len() > USER_DATA_LIMIT {
        return Err(RenderError::UserDataTooLarge {
            size: user_data.len(),
        });
    }
    let key_policy_json = serde_json::to_string(&key_policy).unwrap_or_default();
    let role_policy_json = serde_json::to_string(&role_policy).unwrap_or_default();
    let mut ctx = dep.stack_context(&key_policy_json, &role_policy_json, &user_data);
    ctx["full"] = true.into();
    let template = templates.render("cloudformation.yaml.j2", &ctx)?;
    ctx["full"] = false.into();
    let bootstrap_template = templates.render("cloudformation.yaml.j2", &ctx)?;
    let resources = resource_list(&template)?;
    resource_list(&bootstrap_template)?;
    Ok(Rendered {
        template,
        bootstrap_template,
        user_data,
        key_policy,
        role_policy,
        supervisor_config,
        resources,
        pinned_pcrs: dep.pinned_pcrs(),
        deployment: dep.clone(),
    })
}

fn render_json(
    templates: &Templates,
    name: &str,
    ctx: &serde_json::Value,
) -> Result<serde_json::Value, RenderError> {
    let text = templates.render(name, ctx)?;
    serde_json::from_str(&text).map_err(|e| RenderError::Output {
        name: name.to_string(),
        format: "JSON",
        message: e.to_string(),
    })
}

/// Reads the rendered template back: proves it is YAML and lists its resources in order.
fn resource_list(template: &str) -> Result<Vec<(String, String)>, RenderError> {
    let bad = |message: String| RenderError::Output {
        name: "cloudformation.yaml.j2".into(),
        format: "CloudFormation YAML",
        message,
    };
    let doc: serde_json::Value =
        serde_saphyr::from_str(template).map_err(|e| bad(e.to_string()))?;
    let resources = doc
        .get("Resources")
        .and_then(|r| r.as_object())
        .ok_or_else(|| bad("no Resources mapping".into()))?;
    resources
        .iter()
        .map(|(id, r)| {
            let ty = r
                .get("Type")
                .and_then(|t| t.as_str())
                .ok_or_else(|| bad(format!("{id} has no Type")))?;
            Ok((id.clone(), ty.to_string()))
        })
        .collect()
}
