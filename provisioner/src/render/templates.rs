//! The template set: embedded in the binary so a release renders the same everywhere, with an
//! optional directory of same-named files for power users who need to change what we emit.

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};

use super::RenderError;

/// Every template file and its embedded default.
pub const EMBEDDED: [(&str, &str); 5] = [
    (
        "cloudformation.yaml.j2",
        include_str!("../../../templates/cloudformation.yaml.j2"),
    ),
    (
        "user_data.sh.j2",
        include_str!("../../../templates/user_data.sh.j2"),
    ),
    (
        "enclave-supervisor.service.j2",
        include_str!("../../../templates/enclave-supervisor.service.j2"),
    ),
    (
        "kms-key-policy.json.j2",
        include_str!("../../../policies/kms-key-policy.json.j2"),
    ),
    (
        "instance-role-policy.json.j2",
        include_str!("../../../policies/instance-role-policy.json.j2"),
    ),
];

/// A loaded template set.
pub struct Templates {
    env: Environment<'static>,
    /// Sources by name, for renderers that bring their own environment (the key policy).
    sources: std::collections::BTreeMap<&'static str, String>,
}

impl Templates {
    /// The embedded templates, each replaced by `override_dir/NAME` when that file exists.
    pub fn load(override_dir: Option<&Path>) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        let mut sources = std::collections::BTreeMap::new();
        // Strict: a misspelled variable is an error, never an empty string in a policy.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // No auto-escaping: every template inserts values with `tojson` on purpose.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        for (name, embedded) in EMBEDDED {
            let source = match override_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|source| RenderError::ReadTemplate { path, source })?,
                None => embedded.to_string(),
            };
            sources.insert(name, source.clone());
            env.add_template_owned(name, source)
                .map_err(|e| RenderError::Template {
                    name: name.to_string(),
                    message: describe(&e),
                })?;
        }
        if let Some(dir) = override_dir {
            if !dir.is_dir() {
                return Err(RenderError::ReadTemplate {
                    path: PathBuf::from(dir),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
                });
            }
        }
        Ok(Templates { env, sources })
    }

    /// Files in an override directory that are named after no template: a misspelled name
    /// would otherwise leave the embedded template in use without a word. Each with a
    /// suggestion when one is close.
    pub fn unknown_files(dir: &Path) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let names = EMBEDDED.map(|(name, _)| name);
        let mut unknown: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !names.contains(&n.as_str()))
            .map(|n| match crate::config::did_you_mean(&n, names) {
                Some(s) => format!("{n}: not a template name (did you mean `{s}`?)"),
                None => format!("{n}: not a template name ({})", names.join(", ")),
            })
            .collect();
        unknown.sort();
        unknown
    }

    /// The source text of template `name` (for renderers that bring their own environment).
    pub fn source(&self, name: &str) -> Result<&str, RenderError> {
        self.sources
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| RenderError::Template {
                name: name.to_string(),
                message: "no such template".into(),
            })
    }

    /// Renders template `name` with `ctx`.
    pub fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<String, RenderError> {
        let tmpl = self
            .env
            .get_template(name)
            .map_err(|e| RenderError::Template {
                name: name.to_string(),
                message: describe(&e),
            })?;
        tmpl.render(ctx).map_err(|e| RenderError::Template {
            name: name.to_string(),
            message: describe(&e),
        })
    }
}

/// minijinja errors carry the line in the template; include it and the cause chain.
fn describe(e: &minijinja::Error) -> String {
    let mut s = match e.line() {
        Some(line) => format!("line {line}: {e}"),
        None => e.to_string(),
    };
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}
