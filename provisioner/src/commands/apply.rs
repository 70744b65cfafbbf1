//! `apply [PLAN]`: a saved plan is applied exactly (no prompt; refused when stale); without one,
//! a fresh plan is shown and must be confirmed (`--yes` in CI).

use super::aws_args::{aws_args, prepare, runtime};
use super::Context;
use crate::cli::{ApplyArgs, Exit};
use crate::plan::to_text;
use crate::progress::EventLines;
use crate::reconcile::saved_plan::SavedPlan;
use crate::reconcile::{apply, online_plan, prompt};

pub fn run(ctx: &Context, args: &ApplyArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let prepared = prepare(ctx, &loaded)?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    let say = |s: &str| eprintln!("{s}");
    let applied = rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await;
        let (saved, prepared) = match &args.plan {
            Some(path) => {
                let saved = SavedPlan::load(path)?;
                let prepared = apply::check_saved(&loaded, prepared, &saved, &aws).await?;
                (saved, prepared)
            }
            None => {
                let online =
                    online_plan::plan(&loaded, prepared, &aws, &aws_args, args.keep_old_release)
                        .await?;
                for w in &online.plan.warnings {
                    ctx.warn(w);
                }
                print!("{}", to_text(&online.plan, &ctx.style));
                let Some(saved) = online.saved else {
                    println!("No changes. Nothing to apply.");
                    return Ok(None);
                };
                let consent = prompt::confirm(
                    "apply",
                    &format!("Apply these changes to stack {}?", saved.stack_name),
                    "yes",
                    args.yes,
                    "--yes (or --auto-approve)",
                );
                if let Err(refused) = consent {
                    online_plan::discard(&aws, &saved, &aws_args).await?;
                    return Err(refused.into());
                }
                (saved, online.prepared)
            }
        };
        let sink = EventLines::new(&format!("applying {}", saved.stack_name));
        let result = apply::apply_plan(
            prepared,
            &saved,
            &aws,
            &aws_args,
            args.keep_old_release,
            &sink,
            &say,
        )
        .await;
        sink.finish();
        result.map(Some)
    })?;
    let Some(applied) = applied else {
        return Ok(Exit::Success);
    };
    println!("\n{}", ctx.style.bold("Apply complete. Outputs:"));
    for (k, v) in &applied.outputs {
        println!("  {k} = {v}");
    }
    if let Some(path) = &args.outputs_file {
        apply::write_outputs(path, &applied.outputs)?;
    }
    Ok(Exit::Success)
}
