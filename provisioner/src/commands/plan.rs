//! `plan`: what apply would do. `--offline` needs no AWS and shows what a first apply creates;
//! otherwise a CloudFormation change set is created (never executed) and reported, with the live
//! key policy compared. `--discard FILE` removes a saved plan's change set.

use super::aws_args::{aws_args, prepare, runtime};
use super::Context;
use crate::cli::{Exit, PlanArgs};
use crate::plan::{to_text, Plan};
use crate::reconcile::online_plan::{self, PlanOptions};
use crate::reconcile::saved_plan::SavedPlan;
use crate::reconcile::{apply, refresh};

pub fn run(ctx: &Context, args: &PlanArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    if let Some(path) = &args.discard {
        return discard(ctx, &loaded, path);
    }
    let plan = if args.offline {
        offline(ctx, &loaded)?
    } else {
        let prepared = prepare(ctx, &loaded)?;
        let rt = runtime()?;
        let aws_args = aws_args(&ctx.aws);
        let opts = PlanOptions {
            keep_old_release: args.keep_old_release,
            adopt_stack: args.adopt_stack,
        };
        let online = rt.block_on(async {
            let aws = aws_args.connect(&loaded.config.region).await?;
            let online = online_plan::plan(&loaded, prepared, &aws, &aws_args, opts).await?;
            match &args.out {
                Some(path) => {
                    online
                        .saved
                        .save(path)
                        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
                    eprintln!(
                        "saved plan to {} (apply it with `nitro-provision apply {}`, discard it with `nitro-provision plan --discard {}`)",
                        path.display(),
                        path.display(),
                        path.display()
                    );
                }
                // Not saved: nothing may be left behind.
                None => online_plan::discard(&aws, &online.saved, &aws_args).await?,
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

/// `plan --discard FILE`: deletes the saved plan's change set (and the empty stack a first plan
/// created), once the file is checked to be unmodified, this deployment's, and the change set
/// its own — a discard never deletes what another plan made.
fn discard(
    ctx: &Context,
    loaded: &crate::config::Loaded,
    path: &std::path::Path,
) -> anyhow::Result<Exit> {
    let saved = SavedPlan::load(path)?;
    saved.check_deployment(&loaded.config)?;
    let Some(arn) = saved.change_set_arn.clone() else {
        println!(
            "{} has no change set (CloudFormation had nothing to change): nothing to discard.",
            path.display()
        );
        return Ok(Exit::Success);
    };
    let aws_args = aws_args(&ctx.aws);
    runtime()?.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        aws.check_account(&saved.account).await?;
        let name = &loaded.config.name;
        let existing = refresh::existing(&aws, name, name, saved.adopt_stack).await?;
        if existing.is_some_and(|e| e.stack.id == saved.stack_id) {
            apply::own_change_set(&saved, &aws).await?;
            online_plan::discard(&aws, &saved, &aws_args).await?;
            println!(
                "Discarded the plan in {}: change set {arn} deleted.",
                path.display()
            );
        } else {
            println!(
                "Stack {name} of {} no longer exists: nothing to discard.",
                path.display()
            );
        }
        anyhow::Ok(Exit::Success)
    })
}
