//! `plan`: what apply would do. `--offline` needs no AWS and shows what a first apply creates.

use super::Context;
use crate::cli::{Exit, PlanArgs};
use crate::plan::{to_text, Plan};
use crate::render::Artifacts;

pub fn run(ctx: &Context, args: &PlanArgs) -> anyhow::Result<Exit> {
    if !args.offline {
        anyhow::bail!(
            "plan against AWS (change sets) is not available in this version; run `plan --offline`"
        );
    }
    let loaded = ctx.load()?;
    let rendered = ctx.render(&loaded, Artifacts::default())?;
    let plan = Plan::offline(&rendered);
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
