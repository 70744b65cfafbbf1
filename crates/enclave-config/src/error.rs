//! Configuration diagnostics: every problem names `file:line:column`, the key path, what is wrong
//! and, where we can tell, what was meant.

use std::fmt;
use std::path::PathBuf;

use super::source::{KeyPath, Pos};

/// One problem in `enclave.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub path: KeyPath,
    pub message: String,
    /// A suggestion ("did you mean `cpu_count`?") or the accepted range.
    pub hint: Option<String>,
}

/// Everything wrong with a configuration file, in source order.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than {} KiB: refused unread (an enclave.yaml is a few KiB; is this the right file?)", path.display(), crate::MAX_CONFIG_BYTES >> 10)]
    TooLarge { path: PathBuf },
    #[error("{}", render(file, diagnostics))]
    Invalid {
        file: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The diagnostics of an invalid file (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid { diagnostics, .. } => diagnostics,
            ConfigError::Read { .. } | ConfigError::TooLarge { .. } => &[],
        }
    }
}

/// One line per problem, as gcc and rustc print them (`FILE:LINE:COLUMN: error: …`, which editors
/// and CI annotators parse), then a count.
fn render(file: &str, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&format!(
            "{file}:{}: error: {}: {}",
            d.pos, d.path, d.message
        ));
        if let Some(h) = &d.hint {
            out.push_str(&format!(" ({h})"));
        }
        out.push('\n');
    }
    let n = diagnostics.len();
    out.push_str(&format!(
        "error: {n} error{} in {file}",
        if n == 1 { "" } else { "s" }
    ));
    out
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.pos, self.path, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// The closest candidate to `word`, when it is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        // Ties go to the earlier candidate, so suggestions are stable.
        .fold(None, |best: Option<(f64, &str)>, (score, c)| match best {
            Some((b, _)) if b >= score => best,
            _ => Some((score, c)),
        })
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["cpu_count", "memory_mib", "cid", "debug"];
        assert_eq!(did_you_mean("cpu_cont", keys), Some("cpu_count"));
        assert_eq!(did_you_mean("memory", keys), Some("memory_mib"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }
}
