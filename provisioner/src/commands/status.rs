//! `status`: stack status, outputs, instances, pending plans. Exit 1 when nothing is deployed
//! (no stack, or a stack that only holds a pending plan).

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::{Exit, StatusArgs};
use crate::reconcile::status;

pub fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let found = status::status(&loaded, &aws).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&status_json(&loaded, found.as_ref()))?);
            return Ok(if found.is_some() {
                Exit::Success
            } else {
                Exit::Failure
            });
        }
        let Some(s) = found else {
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

/// `{"exists": false}` or the stack's status, reason, instances / Auto Scaling groups and
/// outputs.
fn status_json(loaded: &crate::config::Loaded, s: Option<&status::Status>) -> serde_json::Value {
    let Some(s) = s else {
        return serde_json::json!({"stack": loaded.config.name, "exists": false});
    };
    let compute: Vec<_> = s
        .compute
        .iter()
        .map(|(id, ty, physical)| {
            serde_json::json!({"logical_id": id, "type": ty, "physical_id": physical})
        })
        .collect();
    serde_json::json!({
        "stack": s.stack.name,
        "exists": true,
        "status": s.stack.status,
        "status_reason": s.stack.status_reason,
        "compute": compute,
        "outputs": s.outputs,
        "supervisor_port": loaded.config.supervisor.port,
    })
}
