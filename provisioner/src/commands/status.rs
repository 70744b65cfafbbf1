//! `status`: stack status, outputs, instances, pending plans. Exit 1 when nothing is deployed
//! (no stack, or a stack that only holds a pending plan).

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::Exit;
use crate::reconcile::status;

pub fn run(ctx: &Context) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let Some(s) = status::status(&loaded, &aws).await? else {
            println!("Stack {} does not exist.", loaded.config.name);
            return Ok(Exit::Failure);
        };
        if s.only_pending() {
            println!(
                "Stack {} has no resources yet: it only holds a pending plan (nothing is deployed).",
                s.stack.name
            );
        } else {
            println!("Stack {}: {}", s.stack.name, ctx.style.bold(&s.stack.status));
        }
        if let Some(r) = &s.stack.status_reason {
            println!("  reason: {r}");
        }
        for (id, ty, physical) in &s.compute {
            println!("  {ty} {id}: {physical}");
        }
        if !s.outputs.is_empty() {
            println!("Outputs:");
            for (k, v) in &s.outputs {
                println!("  {k} = {}", v.as_deref().unwrap_or("(not reported)"));
            }
        }
        if !s.pending.is_empty() {
            println!("Pending plans (change sets not executed):");
            for c in &s.pending {
                println!("  {} (created {})", c.arn, c.created);
            }
            println!("  `nitro-provision apply PLAN.json` executes one; `nitro-provision plan --discard PLAN.json` removes it.");
        }
        if s.only_pending() {
            return Ok(Exit::Failure);
        }
        println!(
            "Supervisor: its management API listens on 127.0.0.1:{} of each instance only; reach it through SSM Session Manager port forwarding.",
            loaded.config.supervisor.port
        );
        Ok(Exit::Success)
    })
}
