//! The dev secrets file of a local run (`nitro-provision run --local --secrets-file F`): plain
//! values for a developer's machine, never KMS and never production. The provisioner checks it
//! before it builds; the local supervisor reads it again for each request of the runtime (so an
//! edit takes effect at the next boot). Errors name the line and the variable, never a value.
//!
//! Format (`secrets.local.env`): one `NAME=value` per line, `NAME` an environment variable name
//! the enclave.yaml `secrets` map gives; the value is everything after the first `=`, verbatim
//! (no quotes, no escapes, no expansion; a trailing `\r` is dropped). Blank lines and lines
//! starting with `#` are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a dev secrets file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DevSecretsError {
    #[error("cannot read the dev secrets file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: line {line}: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// Parsed dev secrets: environment variable name → value (zeroized on drop, never printed).
#[derive(Default)]
pub struct DevSecrets {
    values: BTreeMap<String, Zeroizing<String>>,
}

impl std::fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl DevSecrets {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, DevSecretsError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            DevSecretsError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?);
        Self::parse(&text).map_err(|(line, message)| DevSecretsError::Line {
            path: path.to_path_buf(),
            line,
            message,
        })
    }

    /// Parses the file's text; an error is (line number, message).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut values = BTreeMap::new();
        for (i, line) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err((n, "expected NAME=value".into()));
            };
            if !is_env_name(name) {
                return Err((
                    n,
                    format!(
                        "`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"
                    ),
                ));
            }
            if value.contains('\0') {
                return Err((n, format!("the value of {name} holds a NUL byte")));
            }
            if values
                .insert(name.to_string(), Zeroizing::new(value.to_string()))
                .is_some()
            {
                return Err((n, format!("{name} is given twice")));
            }
        }
        Ok(DevSecrets { values })
    }

    /// The value for environment variable `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.as_str())
    }

    /// The variable names the file gives, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_verbatim_and_skips_comments() {
        let s = DevSecrets::parse(
            "# dev only\n\nDB_PASSWORD=p@ss=word \r\n  # indented comment\nEMPTY=\nQUOTED=\"kept\"\n",
        )
        .unwrap();
        assert_eq!(s.get("DB_PASSWORD"), Some("p@ss=word "));
        assert_eq!(s.get("EMPTY"), Some(""));
        assert_eq!(s.get("QUOTED"), Some("\"kept\""));
        assert_eq!(
            s.names().collect::<Vec<_>>(),
            ["DB_PASSWORD", "EMPTY", "QUOTED"]
        );
        assert_eq!(format!("{s:?}"), r#"{"DB_PASSWORD", "EMPTY", "QUOTED"}"#);
    }

    #[test]
    fn refuses_bad_lines_without_echoing_values() {
        for (text, line, expected) in [
            ("A=1\nno equals sign", 2, "expected NAME=value"),
            ("1BAD=secret-value", 1, "not an environment variable name"),
            (
                "export A=secret-value",
                1,
                "not an environment variable name",
            ),
            ("A=x\n\nA=secret-value", 3, "A is given twice"),
            ("A=sec\0ret-value", 1, "NUL byte"),
        ] {
            let (n, message) = DevSecrets::parse(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(!message.contains("secret-value"), "{message}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("dev-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secrets.local.env");
        let err = DevSecrets::load(&path).unwrap_err().to_string();
        assert!(err.contains("cannot read the dev secrets file"), "{err}");
        std::fs::write(&path, "TOKEN=abc\n=oops\n").unwrap();
        let err = DevSecrets::load(&path).unwrap_err().to_string();
        assert!(err.ends_with("secrets.local.env: line 2: `` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"), "{err}");
        std::fs::write(&path, "TOKEN=abc\n").unwrap();
        assert_eq!(DevSecrets::load(&path).unwrap().get("TOKEN"), Some("abc"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
