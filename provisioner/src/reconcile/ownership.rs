//! Which stacks this tool may touch. A stack is the deployment's only when it carries every
//! ownership mark for it: the `managed-by: nitro-provision` and `nitro-provision:deployment`
//! stack tags, and (once it has a template) `Metadata.nitro-provision.Deployment`. Anything else
//! with the deployment's name — another team's stack, another deployment's — is refused by plan,
//! apply and destroy; `--adopt-stack` takes one over on purpose, never by default.

use crate::aws::stack::StackInfo;

pub const MANAGED_BY_TAG: &str = "managed-by";
pub const MANAGED_BY: &str = "nitro-provision";
pub const DEPLOYMENT_TAG: &str = "nitro-provision:deployment";

/// What the deployed template says about its owner (`None` for a stack that only holds a
/// CREATE change set: it has no template yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateMark {
    NoTemplate,
    /// `Metadata.nitro-provision.Deployment`, if present.
    Deployment(Option<String>),
}

#[derive(Debug, thiserror::Error)]
#[error("stack {stack} was not created by nitro-provision for deployment {deployment}: {why}. nitro-provision never plans, applies or destroys a stack it does not own. Pick another `name` in enclave.yaml, or take the stack over on purpose with `plan --adopt-stack` (its template is replaced: resources not in ours are deleted)")]
pub struct NotOwned {
    pub stack: String,
    pub deployment: String,
    pub why: String,
}

/// Why the stack is not the deployment's, if it is not.
pub fn check(stack: &StackInfo, mark: &TemplateMark, deployment: &str) -> Result<(), NotOwned> {
    let why = match (
        stack.tags.get(MANAGED_BY_TAG).map(String::as_str),
        stack.tags.get(DEPLOYMENT_TAG),
        mark,
    ) {
        (None, ..) => format!("it has no `{MANAGED_BY_TAG}: {MANAGED_BY}` tag"),
        (Some(other), ..) if other != MANAGED_BY => {
            format!("its `{MANAGED_BY_TAG}` tag is `{other}`")
        }
        (_, None, _) => format!("it has no `{DEPLOYMENT_TAG}` tag"),
        (_, Some(other), _) if other != deployment => {
            format!("its `{DEPLOYMENT_TAG}` tag names deployment `{other}`")
        }
        (_, _, TemplateMark::Deployment(None)) => {
            "its template has no Metadata.nitro-provision.Deployment".to_string()
        }
        (_, _, TemplateMark::Deployment(Some(other))) if other != deployment => {
            format!("its template's Metadata.nitro-provision.Deployment is `{other}`")
        }
        _ => return Ok(()),
    };
    Err(NotOwned {
        stack: stack.name.clone(),
        deployment: deployment.to_string(),
        why,
    })
}

/// The stack tags every change set sets: the ownership marks, then the user's tags.
pub fn stack_tags(deployment: &str, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut tags = vec![
        (MANAGED_BY_TAG.to_string(), MANAGED_BY.to_string()),
        (DEPLOYMENT_TAG.to_string(), deployment.to_string()),
    ];
    tags.extend(extra.iter().cloned());
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(tags: &[(&str, &str)]) -> StackInfo {
        StackInfo {
            id: "arn:stack/demo".into(),
            name: "demo".into(),
            status: "CREATE_COMPLETE".into(),
            status_reason: None,
            outputs: Default::default(),
            parameters: Default::default(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            termination_protection: false,
        }
    }

    #[test]
    fn every_mark_must_match() {
        let ours = [(MANAGED_BY_TAG, MANAGED_BY), (DEPLOYMENT_TAG, "demo")];
        let mark = TemplateMark::Deployment(Some("demo".into()));
        assert!(check(&stack(&ours), &mark, "demo").is_ok());
        assert!(check(&stack(&ours), &TemplateMark::NoTemplate, "demo").is_ok());
        let why = |tags: &[(&str, &str)], mark: &TemplateMark| {
            check(&stack(tags), mark, "demo").unwrap_err().why
        };
        assert!(why(&[], &mark).contains("no `managed-by"));
        assert!(why(&[(MANAGED_BY_TAG, "terraform")], &mark).contains("`terraform`"));
        assert!(why(&ours[..1], &mark).contains("no `nitro-provision:deployment`"));
        assert!(why(&[ours[0], (DEPLOYMENT_TAG, "other")], &mark).contains("`other`"));
        assert!(why(&ours, &TemplateMark::Deployment(None)).contains("no Metadata"));
        assert!(
            why(&ours, &TemplateMark::Deployment(Some("x".into()))).contains("Deployment is `x`")
        );
    }
}
