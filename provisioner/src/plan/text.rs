//! The human form of a plan: Terraform's symbols, resources grouped by type, security-sensitive
//! resources marked, the full key policy, and a one-line summary at the end.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Plan;
use crate::output::Style;
use crate::render::pretty;

pub fn to_text(plan: &Plan, style: &Style) -> String {
    let mut out = String::new();
    let d = &plan.deployment;
    let _ = writeln!(
        out,
        "{} deployment {} in account {} / {} ({})",
        style.bold("nitro-provision plan"),
        style.bold(&d.name),
        d.account,
        d.region,
        if plan.mode == "offline" {
            "offline: what a first apply creates"
        } else {
            "online"
        },
    );
    if plan.mode == "online" && plan.change_set.is_none() {
        let _ = writeln!(
            out,
            "\nNo changes. Stack {} matches the configuration.",
            d.stack_name
        );
        return out;
    }
    if let Some(cs) = &plan.change_set {
        let phase = if cs.phase == "bootstrap" {
            " (new stack: apply creates the bucket, uploads the artifacts, then the rest)"
        } else {
            ""
        };
        let _ = writeln!(out, "\nChange set {}{phase}", cs.arn);
    }
    let _ = writeln!(out, "\nStack {}:", d.stack_name);
    let mut by_type: BTreeMap<&str, Vec<&super::ResourceChange>> = BTreeMap::new();
    for r in &plan.resource_changes {
        by_type.entry(&r.resource_type).or_default().push(r);
    }
    for (ty, changes) in by_type {
        let _ = writeln!(out, "  {ty}");
        for r in changes {
            let symbol = match r.actions.as_slice() {
                ["create"] => style.add("+"),
                ["delete"] => style.remove("-"),
                ["delete", "create"] => style.remove("-/+"),
                _ => style.change("~"),
            };
            let note = if r.security_sensitive {
                style.warn("  [security]")
            } else {
                String::new()
            };
            let _ = writeln!(out, "    {symbol} {}{note}", r.logical_id);
        }
    }
    match &plan.key_policy_change {
        Some(change) => {
            let _ = writeln!(
                out,
                "\n{} (deployed -> planned):",
                style.warn("KMS key policy changes")
            );
            for line in change.text.lines() {
                let painted = match line.trim_start().chars().next() {
                    Some('+') => style.add(line),
                    Some('-') => style.remove(line),
                    _ => line.to_string(),
                };
                let _ = writeln!(out, "  {painted}");
            }
        }
        None if plan.mode == "online" => {
            let _ = writeln!(out, "\nKMS key policy: unchanged");
        }
        None => {
            let _ = writeln!(out, "\nKMS key policy (EnclaveKey):");
            for line in pretty(&plan.key_policy).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if !plan.pcr_changes.is_empty() {
        let _ = writeln!(out, "\n{}:", style.warn("PCR changes (a rotation)"));
        for c in &plan.pcr_changes {
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
            let _ = writeln!(
                out,
                "  PCR{:<2} {}",
                c.index,
                style.remove(&format!("- {}", show(&c.deployed)))
            );
            let _ = writeln!(
                out,
                "        {}",
                style.add(&format!("+ {}", show(&c.planned)))
            );
        }
    }
    let _ = writeln!(out, "\nPinned PCRs:");
    for p in &plan.pinned_pcrs {
        let value = p
            .value
            .clone()
            .unwrap_or_else(|| style.dim("(known after build)"));
        let _ = writeln!(out, "  PCR{:<2} {value}", p.index);
    }
    let s = &plan.resource_split;
    let _ = writeln!(
        out,
        "\nResources of {} ({} vCPUs, {} MiB):",
        s.instance_type, s.instance.vcpus, s.instance.memory_mib
    );
    let _ = writeln!(
        out,
        "  enclave  {:>3} vCPUs  {:>7} MiB",
        s.enclave.vcpus, s.enclave.memory_mib
    );
    let _ = writeln!(
        out,
        "  parent   {:>3} vCPUs  {:>7} MiB",
        s.parent.vcpus, s.parent.memory_mib
    );
    let _ = writeln!(out, "\nArtifacts to upload:");
    for a in &plan.artifacts {
        let unknown = style.dim("(known after build)");
        let state = match a.present {
            Some(true) => "  (already in the bucket)",
            Some(false) => "  (will be uploaded)",
            None => "",
        };
        let _ = writeln!(
            out,
            "  {:<19} {}  {}{state}",
            a.name,
            a.key.as_deref().unwrap_or(&unknown),
            a.digest.as_deref().unwrap_or("")
        );
    }
    let sum = &plan.summary;
    let _ = writeln!(
        out,
        "\n{} {} to add, {} to change, {} to destroy.",
        style.bold("Plan:"),
        sum.add,
        sum.change,
        sum.destroy
    );
    out
}
