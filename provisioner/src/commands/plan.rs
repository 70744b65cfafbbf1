//! `plan`: what apply would do. `--offline` needs no AWS and shows what a first apply creates;
//! otherwise a CloudFormation change set is created (never executed) and reported.

use super::aws_args::{aws_args, prepare, runtime};
use super::Context;
use crate::cli::{Exit, PlanArgs};
use crate::plan::{to_text, Plan};
use crate::reconcile::online_plan;

pub fn run(ctx: &Context, args: &PlanArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let plan = if args.offline {
        offline(ctx, &loaded)?
    } else {
        let prepared = prepare(ctx, &loaded)?;
        let rt = runtime()?;
        let aws_args = aws_args(&ctx.aws);
        let online = rt.block_on(async {
            let aws = aws_args.connect(&loaded.config.region).await;
            let online =
                online_plan::plan(&loaded, prepared, &aws, &aws_args, args.keep_old_release)
                    .await?;
            match (&args.out, &online.saved) {
                (Some(path), Some(saved)) => {
                    saved
                        .save(path)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!(
                        "saved plan to {} (apply it with `nitro-provision apply {}`)",
                        path.display(),
                        path.display()
                    );
                }
                // Not saved: nothing may be left behind.
                (None, Some(saved)) => online_plan::discard(&aws, saved, &aws_args).await?,
                _ => {}
            }
            anyhow::Ok(online)
        })?;
        online.plan
    };
    for w in &plan.warnings {
        ctx.warn(w);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", to_text(&plan, &ctx.style));
    }
    Ok(if args.detailed_exitcode && plan.has_changes() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

fn offline(ctx: &Context, loaded: &crate::config::Loaded) -> anyhow::Result<Plan> {
    let (rendered, warnings) = ctx.render_offline(loaded)?;
    let mut plan = Plan::offline(&rendered);
    plan.warnings.extend(warnings);
    Ok(plan)
}
