//! One module per subcommand. Commands print results to stdout and return an exit status;
//! errors bubble up to `main` as `anyhow` errors.

pub mod apply;
pub mod attest;
pub mod aws_args;
pub mod build;
pub mod destroy;
pub mod eif;
pub mod plan;
pub mod policy;
pub mod render;
pub mod status;
pub mod validate;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::build::BuildError;
use crate::config::{self, ConfigError, Loaded};
use crate::output::Style;
use crate::progress::BuildProgress;
use crate::reconcile::{artifacts_of, sha256_file};
use crate::render::{Artifacts, Deployment, Rendered, Templates};

/// Global options every command sees.
pub struct Context {
    pub file: PathBuf,
    pub templates: Option<PathBuf>,
    pub style: Style,
    pub aws: crate::cli::GlobalAws,
}

impl Context {
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
        let built = crate::build::build(loaded, &aws_args::build_dir(loaded), &progress);
        progress.finish();
        let mut warnings = Vec::new();
        let built = match built {
            Ok(b) => Some(b),
            Err(BuildError::RuntimeMissing(path)) => {
                warnings.push(format!(
                    "enclave-runtime not found at {} (run `cargo build --bins`): the EIF cannot be built, PCRs are unknown",
                    path.display()
                ));
                None
            }
            Err(e) => return Err(e.into()),
        };
        let supervisor = crate::build::supervisor_binary(loaded);
        let supervisor_sha256 = sha256_file(&supervisor).ok();
        if supervisor_sha256.is_none() {
            warnings.push(format!(
                "enclave-supervisor not found at {}: its digest is unknown",
                supervisor.display()
            ));
        }
        if built.as_ref().is_some_and(|b| b.standin) {
            warnings.push(crate::build::STANDIN_WARNING.to_string());
        }
        let rendered = self.render(loaded, artifacts_of(built.as_ref(), supervisor_sha256))?;
        Ok((rendered, warnings))
    }
}
