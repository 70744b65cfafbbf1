//! One module per subcommand. Commands print results to stdout and return an exit status;
//! errors bubble up to `main` as `anyhow` errors.

pub mod plan;
pub mod render;
pub mod validate;

use std::path::PathBuf;

use anyhow::Context as _;

use crate::config::{self, ConfigError, Loaded};
use crate::output::Style;
use crate::render::{Artifacts, Deployment, Rendered, Templates};

/// Global options every command sees.
pub struct Context {
    pub file: PathBuf,
    pub templates: Option<PathBuf>,
    pub style: Style,
}

impl Context {
    /// Loads and validates the config; diagnostics are printed to stderr.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        config::load(&self.file).map_err(|e| match e {
            ConfigError::Invalid { .. } => anyhow::anyhow!("{e}"),
            other => anyhow::Error::new(other),
        })
    }

    /// Loads, then renders with what is known about the artifacts.
    pub fn render(&self, loaded: &Loaded, artifacts: Artifacts) -> anyhow::Result<Rendered> {
        let templates = Templates::load(self.templates.as_deref())?;
        let dep = Deployment::new(loaded.config.clone(), artifacts);
        crate::render::render(&templates, &dep).context("rendering failed")
    }
}
