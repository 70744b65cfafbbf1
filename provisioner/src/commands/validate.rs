//! `validate`: everything that can be checked locally, so that `apply` does not fail half-way:
//! the schema and its semantic rules, every file enclave.yaml references (blobs and their pins,
//! the image and its platform, the signing key, the runtime and supervisor binaries and their
//! architecture), and the rendered artifacts' AWS limits. Exit 0 when valid, 1 with every
//! problem listed at its `file:line:column`.

use serde_json::{json, Value};

use super::Context;
use crate::cli::{Exit, ValidateArgs};
use crate::config::{self, ConfigError, Diagnostic, Loaded};
use crate::render::{self, Artifacts, Deployment, RenderError, Templates};

pub fn run(ctx: &Context, args: &ValidateArgs) -> anyhow::Result<Exit> {
    let problems = check(ctx);
    if args.json {
        let doc = match &problems {
            Ok(loaded) => {
                json!({"valid": true, "file": loaded.file, "name": loaded.config.name, "diagnostics": []})
            }
            Err(e) => json!({"valid": false, "file": ctx.file, "diagnostics": diagnostics_json(e)}),
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(if problems.is_ok() {
            Exit::Success
        } else {
            Exit::Failure
        });
    }
    let loaded = problems.map_err(|e| match e {
        Problems::Config(e @ ConfigError::Invalid { .. }) => anyhow::anyhow!("{e}"),
        Problems::Config(e) => anyhow::Error::new(e),
        Problems::Other(e) => e,
    })?;
    println!("{}: valid ({})", loaded.file.display(), loaded.config.name);
    Ok(Exit::Success)
}

/// Why a configuration is not valid: its diagnostics, or a failure to check it at all.
enum Problems {
    Config(ConfigError),
    Other(anyhow::Error),
}

fn check(ctx: &Context) -> Result<Loaded, Problems> {
    let (loaded, mut diagnostics) = config::load_unchecked(&ctx.file).map_err(Problems::Config)?;
    diagnostics.extend(crate::preflight::check(&loaded));
    // Rendering needs a valid configuration; its limits are checked once it is.
    if diagnostics.is_empty() {
        diagnostics.extend(render_limits(ctx, &loaded).map_err(Problems::Other)?);
    }
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(Problems::Config(loaded.invalid(diagnostics)))
    }
}

/// Each diagnostic as an object; an unreadable file or a failed check as one without a position.
fn diagnostics_json(problems: &Problems) -> Vec<Value> {
    match problems {
        Problems::Config(e @ ConfigError::Invalid { .. }) => {
            e.diagnostics().iter().map(diagnostic_json).collect()
        }
        Problems::Config(e) => vec![json!({"severity": "error", "message": e.to_string()})],
        Problems::Other(e) => vec![json!({"severity": "error", "message": format!("{e:#}")})],
    }
}

fn diagnostic_json(d: &Diagnostic) -> Value {
    json!({
        "severity": "error",
        "line": d.pos.line,
        "column": d.pos.column,
        "path": d.path.to_string(),
        "message": d.message,
        "hint": d.hint,
    })
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
