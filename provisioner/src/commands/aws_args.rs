//! Shared plumbing of the commands that talk to AWS: one tokio runtime, the connection options,
//! and the local preparation (build + render).

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::GlobalAws;
use crate::config::Loaded;
use crate::progress::BuildProgress;
use crate::reconcile::{AwsArgs, Prepared};
use crate::render::Templates;

use super::Context;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

pub fn aws_args(g: &GlobalAws) -> AwsArgs {
    AwsArgs {
        profile: g.profile.clone(),
        endpoint_url: g.endpoint_url.clone(),
        poll: Duration::from_millis(g.poll_ms),
    }
}

/// Where builds of this deployment are kept (and reused): beside enclave.yaml.
pub fn build_dir(loaded: &Loaded) -> PathBuf {
    loaded
        .base_dir
        .join(".nitro-provision")
        .join("build")
        .join(&loaded.config.name)
}

/// Builds (or reuses the build of) the EIF and renders with its measurements.
pub fn prepare(ctx: &Context, loaded: &Loaded) -> anyhow::Result<Prepared> {
    let templates = Templates::load(ctx.templates.as_deref())?;
    let progress = BuildProgress::new();
    let prepared = Prepared::new(loaded, templates, &build_dir(loaded), &progress);
    progress.finish();
    prepared
}
