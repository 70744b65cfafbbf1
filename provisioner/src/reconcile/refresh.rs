//! Reading what exists before anything is planned or changed (Terraform's refresh): the stack,
//! whether it is this deployment's (see `ownership`), and what its deployed template pins, admits
//! and says about its key policy.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ownership::{self, NotOwned, TemplateMark};
use crate::aws::stack::{self, StackInfo};
use crate::aws::Aws;
use crate::render::Release;

/// What the deployed template pins, admits and its key policy: the "before" of a plan.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    pub pcrs: BTreeMap<u8, String>,
    pub key_policy: Option<Value>,
    /// Every release the deployed key policy admits, oldest first.
    pub releases: Vec<Release>,
    /// `Metadata.nitro-provision.Deployment`.
    pub deployment: Option<String>,
    /// SHA-256 of the template body CloudFormation holds (a saved plan's staleness check).
    pub template_sha256: String,
    /// The template has the artifact bucket (a stack taken over with `--adopt-stack` may not).
    pub has_bucket: bool,
}

impl Deployed {
    /// The release the instances run: the one the deployed EIF's PCRs match.
    pub fn running(&self) -> Release {
        Release {
            pcrs: self.pcrs.clone(),
        }
    }
}

/// A stack with the deployment's name, checked to be the deployment's (or adopted).
#[derive(Debug, Clone)]
pub struct Existing {
    pub stack: StackInfo,
    /// `None` for a stack that only holds a CREATE change set (no template, no resources).
    pub deployed: Option<Deployed>,
    /// Set when the stack is not the deployment's and is being adopted: why it is not.
    pub adopted: Option<String>,
}

impl Existing {
    /// A stack with resources (not just a pending CREATE change set).
    pub fn is_live(&self) -> bool {
        !self.stack.is_empty_review()
    }
}

/// The stack named `name`, if any, refused unless it carries the deployment's ownership marks
/// (or `adopt` is set).
pub async fn existing(
    aws: &Aws,
    name: &str,
    deployment: &str,
    adopt: bool,
) -> anyhow::Result<Option<Existing>> {
    let Some(stack) = stack::describe(aws, name).await? else {
        return Ok(None);
    };
    let deployed = if stack.is_empty_review() {
        None
    } else {
        Some(deployed(aws, &stack).await?)
    };
    let mark = match &deployed {
        None => TemplateMark::NoTemplate,
        Some(d) => TemplateMark::Deployment(d.deployment.clone()),
    };
    let adopted = match ownership::check(&stack, &mark, deployment) {
        Ok(()) => None,
        Err(NotOwned { why, .. }) if adopt => Some(why),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(Existing {
        stack,
        deployed,
        adopted,
    }))
}

/// Reads the deployed template back.
pub async fn deployed(aws: &Aws, stack: &StackInfo) -> anyhow::Result<Deployed> {
    let body = stack::deployed_template(aws, &stack.id).await?;
    Ok(parse_deployed(&body))
}

/// What a template body records (a template we did not write yields empty fields).
pub fn parse_deployed(body: &str) -> Deployed {
    let doc: Value = serde_saphyr::from_str(body).unwrap_or(Value::Null);
    let meta = &doc["Metadata"]["nitro-provision"];
    let pcrs = meta["PinnedPcrs"]
        .as_str()
        .unwrap_or_default()
        .split(';')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.strip_prefix("PCR")?.parse().ok()?, v.to_string()))
        })
        .collect();
    let key_policy = doc["Resources"]["EnclaveKey"]["Properties"]["KeyPolicy"]
        .as_str()
        .and_then(|s| serde_json::from_str(s).ok());
    let releases = meta["Releases"]
        .as_array()
        .map(|list| list.iter().map(release_of_metadata).collect())
        .unwrap_or_default();
    Deployed {
        pcrs,
        key_policy,
        releases,
        deployment: meta["Deployment"].as_str().map(str::to_string),
        has_bucket: doc["Resources"]["Bucket"].is_object(),
        template_sha256: hex::encode(Sha256::digest(body.as_bytes())),
    }
}

fn release_of_metadata(r: &Value) -> Release {
    Release {
        pcrs: r
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("PCR")?.parse().ok()?,
                    v.as_str()?.to_string(),
                ))
            })
            .collect(),
    }
}
