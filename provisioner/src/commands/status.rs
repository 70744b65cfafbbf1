//! `status`: stack status, outputs, each instance's health, pending plans. Exit 1 when nothing
//! is deployed (no stack, or a stack that only holds a pending plan), or when any instance is
//! not healthy with the planned release (unhealthy, stale, no record, other PCR0).

use clap::Args;

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::Exit;
use crate::reconcile::health::{self, InstanceHealth};
use crate::reconcile::status::{self, Status};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON document (stack, outputs, instances with their health records).
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: &StatusArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let s = status::status(&loaded, &aws).await?;
        let exit = exit_of(s.as_ref());
        if args.json {
            println!("{}", serde_json::to_string_pretty(&json(s.as_ref()))?);
            return Ok(exit);
        }
        let Some(s) = s else {
            println!("Stack {} does not exist.", loaded.config.name);
            return Ok(exit);
        };
        print_text(ctx, &s, loaded.config.supervisor.port);
        Ok(exit)
    })
}

/// Healthy only with a deployed stack, at least one instance, and every instance healthy on
/// the planned release.
fn exit_of(s: Option<&Status>) -> Exit {
    match s {
        Some(s) if !s.only_pending() && fleet_ok(&s.health) => Exit::Success,
        _ => Exit::Failure,
    }
}

fn fleet_ok(fleet: &[InstanceHealth]) -> bool {
    !fleet.is_empty() && fleet.iter().all(|i| i.verdict.is_healthy())
}

fn json(s: Option<&Status>) -> serde_json::Value {
    let Some(s) = s else {
        return serde_json::json!({"stack": null, "healthy": false});
    };
    serde_json::json!({
        "stack": {"name": s.stack.name, "id": s.stack.id, "status": s.stack.status, "reason": s.stack.status_reason},
        "compute": s.compute.iter().map(|(id, ty, physical)| {
            serde_json::json!({"logical_id": id, "type": ty, "physical_id": physical})
        }).collect::<Vec<_>>(),
        "outputs": s.outputs,
        "pending_plans": s.pending.iter().map(|c| &c.arn).collect::<Vec<_>>(),
        "planned_pcr0": s.planned_pcr0,
        "instances": s.health,
        "healthy": !s.only_pending() && fleet_ok(&s.health),
    })
}

fn print_text(ctx: &Context, s: &Status, port: u16) {
    if s.only_pending() {
        println!(
            "Stack {} has no resources yet: it only holds a pending plan (nothing is deployed).",
            s.stack.name
        );
    } else {
        println!(
            "Stack {}: {}",
            s.stack.name,
            ctx.style.bold(&s.stack.status)
        );
    }
    if let Some(r) = &s.stack.status_reason {
        println!("  reason: {r}");
    }
    for (id, ty, physical) in &s.compute {
        println!("  {ty} {id}: {physical}");
    }
    if !s.only_pending() {
        print_health(ctx, s);
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
    if !s.only_pending() {
        println!(
            "Supervisor: its management API listens on 127.0.0.1:{port} of each instance only; reach it through SSM Session Manager port forwarding (README: operations)."
        );
    }
}

fn print_health(ctx: &Context, s: &Status) {
    if let Some(p) = &s.planned_pcr0 {
        println!("Planned release: PCR0 {p}");
    }
    if s.health.is_empty() {
        println!("Instances: none has reported health yet");
        return;
    }
    println!("Instances:");
    for i in &s.health {
        let verdict = health::describe(&i.verdict, i.record.as_ref());
        let verdict = if i.verdict.is_healthy() {
            ctx.style.bold(&verdict)
        } else {
            ctx.style.bold(&format!("NOT OK: {verdict}"))
        };
        println!("  {}: {verdict}", i.instance_id);
        if let Some(r) = &i.record {
            let state = serde_json::to_value(r.state).unwrap_or_default();
            let desired = serde_json::to_value(r.desired_state).unwrap_or_default();
            println!(
                "    record {} s old: state {} (desired {}), restarts {}, supervisor {}",
                i.age_secs.unwrap_or_default(),
                state.as_str().unwrap_or_default(),
                desired.as_str().unwrap_or_default(),
                r.restarts,
                r.supervisor_version
            );
            let running = r
                .measured_pcrs
                .as_ref()
                .map_or("(none)", |m| m.pcr0.as_str());
            println!("    PCR0 running {running}");
            if let Some(e) = &r.last_error {
                println!("    last error: {e}");
            }
        }
    }
}
