//! `validate`: everything that can be checked locally, so that `apply` does not fail half-way:
//! the schema and its semantic rules, every file enclave.yaml references (blobs and their pins,
//! the image and its platform, the signing key, the runtime and supervisor binaries and their
//! architecture), and the rendered artifacts' AWS limits. Exit 0 when valid, 1 with every
//! problem listed at its `file:line:column`.

use super::Context;
use crate::cli::Exit;
use crate::config::{self, ConfigError, Diagnostic, Loaded};
use crate::render::{self, Artifacts, Deployment, RenderError, Templates};

pub fn run(ctx: &Context) -> anyhow::Result<Exit> {
    let (loaded, mut diagnostics) = config::load_unchecked(&ctx.file).map_err(|e| match e {
        ConfigError::Invalid { .. } => anyhow::anyhow!("{e}"),
        other => anyhow::Error::new(other),
    })?;
    diagnostics.extend(crate::preflight::check(&loaded));
    // Rendering needs a valid configuration; its limits are checked once it is.
    if diagnostics.is_empty() {
        diagnostics.extend(render_limits(ctx, &loaded)?);
    }
    if !diagnostics.is_empty() {
        anyhow::bail!("{}", loaded.invalid(diagnostics));
    }
    println!("{}: valid ({})", loaded.file.display(), loaded.config.name);
    Ok(Exit::Success)
}

/// Renders with unknown artifacts and reports the AWS limits the result exceeds, at the keys
/// that make it grow.
fn render_limits(ctx: &Context, loaded: &Loaded) -> anyhow::Result<Option<Diagnostic>> {
    let templates = Templates::load(ctx.templates.as_deref())?;
    let dep = Deployment::new(loaded.config.clone(), Artifacts::default());
    match render::render(&templates, &dep) {
        Ok(_) => Ok(None),
        Err(e @ RenderError::RolePolicyTooLarge { .. }) => Ok(Some(loaded.diagnostic(
            "secrets",
            e.to_string(),
            Some("fewer secrets, or shorter SSM parameter names".into()),
        ))),
        Err(e @ RenderError::UserDataTooLarge { .. }) => Ok(Some(loaded.diagnostic(
            "instance.ingress",
            e.to_string(),
            None,
        ))),
        Err(e) => Err(anyhow::Error::new(e).context("rendering failed")),
    }
}
