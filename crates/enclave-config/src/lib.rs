//! `enclave.yaml`: loading (with source positions), the typed schema and semantic validation.
//! Its own crate so that the loader can be fuzzed and reused without the provisioner's AWS stack.

mod error;
mod image_ref;
pub mod instance_types;
mod names;
pub mod regions;
mod schema;
mod source;
mod validate;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use error::{did_you_mean, ConfigError, Diagnostic};
pub use image_ref::{ImageRef, ImageRefError, Transport};
pub use names::partition;
pub use schema::*;
pub use source::{KeyPath, Pos, SourceMap};

/// Larger files are refused unread: a configuration is a few KiB, so this is the wrong file
/// (or a device), and parsing it would only waste memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A validated configuration and where it came from (relative paths resolve against `base_dir`).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub file: PathBuf,
    pub base_dir: PathBuf,
    /// SHA-256 of the file's bytes: saved plans refuse to apply when it changed.
    pub sha256: String,
    /// Where each key is, for diagnostics found after loading (files, digests, architectures).
    pub source_map: SourceMap,
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

    /// A diagnostic at the key `dotted` (e.g. `"image.runtime"`), or its nearest present parent.
    pub fn diagnostic(
        &self,
        dotted: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        self.diagnostic_at(KeyPath::parse(dotted), message, hint)
    }

    /// A diagnostic at `path` (for keys that contain dots, such as `nsm.ko`).
    pub fn diagnostic_at(
        &self,
        path: KeyPath,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        Diagnostic {
            pos: self.source_map.value_pos(&path),
            path,
            message: message.into(),
            hint,
        }
    }

    /// The error for diagnostics found after loading, in source order.
    pub fn invalid(&self, mut diagnostics: Vec<Diagnostic>) -> ConfigError {
        diagnostics.sort_by_key(|d| d.pos);
        ConfigError::Invalid {
            file: self.file.display().to_string(),
            diagnostics,
        }
    }
}

/// Reads, parses and validates `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let (loaded, diagnostics) = load_unchecked(path)?;
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(loaded.invalid(diagnostics))
    }
}

/// Reads and parses `path`, returning the semantic problems beside the configuration instead
/// of failing on them, so that `validate` can add the checks of the files it references. Only
/// an unreadable file and syntax or type errors fail.
pub fn load_unchecked(path: &Path) -> Result<(Loaded, Vec<Diagnostic>), ConfigError> {
    let text = read_limited(path)?;
    let source_map = SourceMap::build(&text);
    let config = deserialize(&text, &path.display().to_string(), &source_map)?;
    let diagnostics = validate::check(&config, &source_map);
    let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base_dir = if base_dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base_dir
    };
    use sha2::Digest;
    let sha256 = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    let loaded = Loaded {
        config,
        file: path.to_path_buf(),
        base_dir,
        sha256,
        source_map,
    };
    Ok((loaded, diagnostics))
}

/// Reads at most [`MAX_CONFIG_BYTES`] (a pipe or device has no size to check beforehand).
fn read_limited(path: &Path) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let too_large = || ConfigError::TooLarge {
        path: path.to_path_buf(),
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    if file.metadata().map_err(read_err)?.len() > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_large());
    }
    String::from_utf8(bytes).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })
}

/// Parses and validates configuration text; `file` only names it in diagnostics.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    parse_with_map(text, file, &SourceMap::build(text))
}

fn parse_with_map(text: &str, file: &str, map: &SourceMap) -> Result<Config, ConfigError> {
    let config = deserialize(text, file, map)?;
    let diagnostics = validate::check(&config, map);
    if diagnostics.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_string(),
            diagnostics,
        })
    }
}

/// Syntax and types only.
fn deserialize(text: &str, file: &str, map: &SourceMap) -> Result<Config, ConfigError> {
    // YAML 1.2 booleans only (`on`/`yes`/`y` are strings); see also `schema::core_bool`.
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| ConfigError::Invalid {
        file: file.to_string(),
        diagnostics: vec![validate::from_serde(&e, map)],
    })
}
