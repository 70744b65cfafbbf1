//! One module per subcommand. Commands print results to stdout and return an exit status;
//! errors bubble up to `main` as `anyhow` errors.

pub mod apply;
pub mod attest;
pub mod aws_args;
pub mod build;
pub mod destroy;
pub mod eif;
pub mod logs;
pub mod plan;
pub mod policy;
pub mod render;
pub mod secret;
pub mod status;
pub mod validate;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::{self, ConfigError, Loaded};
use crate::output::Style;
use crate::progress::BuildProgress;
use crate::reconcile::{self, artifacts_of};
use crate::render::{Artifacts, Deployment, Rendered, Templates};

/// Global options every command sees.
pub struct Context {
    pub file: PathBuf,
    pub templates: Option<PathBuf>,
    /// Styles stdout.
    pub style: Style,
    /// Styles stderr (a terminal or not on its own).
    pub err_style: Style,
    pub aws: crate::cli::GlobalAws,
}

impl Context {
    /// A warning, always on stderr: stdout stays the command's result (JSON, a plan, PCRs).
    pub fn warn(&self, message: &str) {
        eprintln!("{}", self.err_style.warn(&format!("warning: {message}")));
    }

    /// Loads and validates the config; diagnostics are printed to stderr.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        config::load(&self.file).map_err(|e| match e {
            ConfigError::Invalid { .. } => anyhow::anyhow!("{e}"),
            other => anyhow::Error::new(other),
        })
    }

    /// Renders with what is known about the artifacts.
    pub fn render(&self, loaded: &Loaded, artifacts: Artifacts) -> anyhow::Result<Rendered> {
        let templates = Templates::load(self.templates.as_deref())?;
        let dep = Deployment::new(loaded.config.clone(), artifacts);
        crate::render::render(&templates, &dep).context("rendering failed")
    }

    /// Builds the EIF when it can and renders with its measurements. Without the
    /// enclave-runtime binary the PCRs stay unknown (a warning); any other build problem is an
    /// error. Returns the warnings to show.
    pub fn render_offline(&self, loaded: &Loaded) -> anyhow::Result<(Rendered, Vec<String>)> {
        let progress = BuildProgress::new();
        let local = reconcile::local(loaded, &aws_args::build_dir(loaded), &progress);
        progress.finish();
        let local = local?;
        let rendered = self.render(
            loaded,
            artifacts_of(local.built.as_ref(), local.supervisor_sha256),
        )?;
        Ok((rendered, local.warnings))
    }
}
