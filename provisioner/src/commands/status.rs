//! `status`: stack status, outputs, instances, pinned PCRs. Exit 1 when there is no stack.

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::Exit;
use crate::reconcile::status;

pub fn run(ctx: &Context) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await;
        let Some(s) = status::status(&loaded, &aws).await? else {
            println!("Stack {} does not exist.", loaded.config.name);
            return Ok(Exit::Failure);
        };
        println!("Stack {}: {}", s.stack.name, ctx.style.bold(&s.stack.status));
        if let Some(r) = &s.stack.status_reason {
            println!("  reason: {r}");
        }
        for (id, ty, physical) in &s.compute {
            println!("  {ty} {id}: {physical}");
        }
        println!("Outputs:");
        for (k, v) in &s.outputs {
            println!("  {k} = {v}");
        }
        println!(
            "Supervisor: its management API listens on 127.0.0.1:{} of each instance only; reach it through SSM Session Manager port forwarding.",
            loaded.config.supervisor.port
        );
        Ok(Exit::Success)
    })
}
