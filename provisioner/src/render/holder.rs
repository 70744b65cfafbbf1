//! Key holders: each independent holder owns a key (usually in their own account) whose policy
//! admits the same releases for this deployment's instance role, administered by the holder.

use super::{Release, RenderError, Templates};
use crate::config::KeyHolder;
use crate::render::Deployment;

impl Deployment {
    /// The key policy context of `holder`'s key: they administer and seal; our role decrypts as
    /// one of `releases`.
    pub fn holder_policy_context(
        &self,
        holder: &KeyHolder,
    ) -> Result<kms_policy::PolicyContext, RenderError> {
        let mut ctx = self.policy_context()?;
        ctx.policy_id = format!(
            "nitro-provision-{}-holder-{}",
            self.config.name, holder.name
        );
        ctx.admins = vec![holder.admin.clone()];
        ctx.writers = vec![holder.admin.clone()];
        Ok(ctx)
    }
}

/// Renders a key policy for `releases` (one: steady; two: transitional old, new), for the
/// deployment's own key or for `holder`'s. Guards run on the result.
pub fn key_policy(
    templates: &Templates,
    dep: &Deployment,
    holder: Option<&KeyHolder>,
    releases: Vec<Release>,
) -> Result<kms_policy::Rendered, RenderError> {
    let dep = dep.clone().with_releases(releases);
    let ctx = match holder {
        Some(h) => dep.holder_policy_context(h)?,
        None => dep.policy_context()?,
    };
    Ok(kms_policy::render(
        templates.source("kms-key-policy.json.j2")?,
        &ctx,
        &kms_policy::GuardOverrides::default(),
    )?)
}
