//! `apply [PLAN]`: a saved plan is applied exactly (no prompt; refused when modified, another
//! deployment's, or stale); without one, a fresh plan is shown and must be confirmed (`--yes`
//! in CI).

use super::aws_args::{aws_args, prepare, runtime};
use super::Context;
use crate::cli::{ApplyArgs, Exit};
use crate::plan::to_text;
use crate::progress::EventLines;
use crate::reconcile::online_plan::{self, PlanOptions};
use crate::reconcile::saved_plan::SavedPlan;
use crate::reconcile::{apply, prompt};

pub fn run(ctx: &Context, args: &ApplyArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    // A saved plan is checked before anything is built or any AWS call is made: the file's
    // digests, its deployment, the enclave.yaml it was made from.
    let saved = match &args.plan {
        Some(path) => {
            let saved = SavedPlan::load(path)?;
            saved.check_deployment(&loaded.config)?;
            saved.check_config(&loaded.sha256)?;
            Some(saved)
        }
        None => None,
    };
    let prepared = prepare(ctx, &loaded)?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    let say = |s: &str| eprintln!("{s}");
    let applied = rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let (saved, prepared) = match saved {
            Some(saved) => {
                let prepared = apply::check_saved(&loaded, prepared, &saved, &aws).await?;
                (saved, prepared)
            }
            None => {
                let opts = PlanOptions {
                    keep_old_release: args.keep_old_release,
                    adopt_stack: args.adopt_stack,
                };
                let online = online_plan::plan(&loaded, prepared, &aws, &aws_args, opts).await?;
                for w in &online.plan.warnings {
                    ctx.warn(w);
                }
                print!("{}", to_text(&online.plan, &ctx.style));
                if !online.plan.has_changes() {
                    println!("Nothing to apply.");
                    return Ok(None);
                }
                let consent = prompt::confirm(
                    "apply",
                    &format!("Apply these changes to stack {}?", online.saved.stack_name),
                    "yes",
                    args.yes,
                    "--yes (or --auto-approve)",
                );
                if let Err(refused) = consent {
                    online_plan::discard(&aws, &online.saved, &aws_args).await?;
                    return Err(refused.into());
                }
                (online.saved, online.prepared)
            }
        };
        let sink = EventLines::new(&format!("applying {}", saved.stack_name));
        let result = apply::apply_plan(prepared, &saved, &aws, &aws_args, &sink, &say).await;
        sink.finish();
        result.map(Some)
    })?;
    let Some(applied) = applied else {
        return Ok(Exit::Success);
    };
    println!("\n{}", ctx.style.bold("Apply complete. Outputs:"));
    for (k, v) in &applied.outputs {
        println!("  {k} = {}", v.as_deref().unwrap_or("(not reported)"));
    }
    let missing = apply::missing_outputs(&applied.outputs);
    if !missing.is_empty() {
        eprintln!(
            "{}",
            ctx.style.warn(&format!(
                "warning: CloudFormation reports no value for {} (yet); `nitro-provision status` shows them later{}",
                missing.join(", "),
                if args.outputs_file.is_some() { ", and --outputs-file has them as null" } else { "" }
            ))
        );
    }
    if let Some(path) = &args.outputs_file {
        apply::write_outputs(path, &applied.outputs)?;
    }
    Ok(Exit::Success)
}
