//! `enclave.yaml`: loading (with source positions), the typed schema and semantic validation.
//! Its own crate so that the loader can be fuzzed and reused without the provisioner's AWS stack.

mod error;
pub mod instance_types;
mod names;
mod schema;
mod source;
mod validate;

use std::path::{Path, PathBuf};

pub use error::{did_you_mean, ConfigError, Diagnostic};
pub use names::partition;
pub use schema::*;
pub use source::{KeyPath, Pos, SourceMap};

/// A validated configuration and where it came from (relative paths resolve against `base_dir`).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: PathBuf,
    pub base_dir: PathBuf,
    /// SHA-256 of the file's bytes: saved plans refuse to apply when it changed.
    pub sha256: String,
}

impl Loaded {
    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = parse_str(&text, &path.display().to_string())?;
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    Ok(Loaded {
        config,
        file: path.to_path_buf(),
        base_dir,
        sha256,
    })
}

/// Parses and validates configuration text; `file` only names it in diagnostics.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let map = SourceMap::build(text);
    let invalid = |diagnostics| ConfigError::Invalid {
        file: file.to_string(),
        diagnostics,
    };
    let config: Config = match serde_saphyr::from_str(text) {
        Ok(c) => c,
        Err(e) => return Err(invalid(vec![validate::from_serde(&e, &map)])),
    };
    let diagnostics = validate::check(&config, &map);
    if diagnostics.is_empty() {
        Ok(config)
    } else {
        Err(invalid(diagnostics))
    }
}
