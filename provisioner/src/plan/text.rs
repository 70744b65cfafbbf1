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
    if plan.mode == "online" && !plan.has_changes() {
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
    if plan.resource_changes.is_empty() {
        let _ = writeln!(out, "  (no resource changes)");
    }
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
    key_policy_text(&mut out, plan, style);
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
    let key_changes = plan
        .resource_changes
        .iter()
        .any(|r| r.resource_type == "AWS::KMS::Key");
    let put_back = match &plan.key_policy_change {
        Some(c) if !key_changes => format!(", and the key policy of {} is put back", c.key_id),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "\n{} {} to add, {} to change, {} to destroy{put_back}.",
        style.bold("Plan:"),
        sum.add,
        sum.change,
        sum.destroy
    );
    out
}

/// The key policy section: drift first (what changed outside CloudFormation), then what apply
/// changes (live -> planned); a key that does not exist yet is shown whole, as offline.
fn key_policy_text(out: &mut String, plan: &Plan, style: &Style) {
    let signed = |out: &mut String, text: &str| {
        for line in text.lines() {
            let painted = match line.trim_start().chars().next() {
                Some('+') => style.add(line),
                Some('-') => style.remove(line),
                _ => line.to_string(),
            };
            let _ = writeln!(out, "  {painted}");
        }
    };
    if let Some(drift) = &plan.key_policy_drift {
        let _ = writeln!(
            out,
            "\n{} key {} was changed outside CloudFormation (deployed template -> live):",
            style.warn("KMS key policy drift:"),
            drift.key_id
        );
        signed(out, &drift.text);
    }
    match (&plan.key_policy_change, &plan.key_id) {
        (Some(change), _) => {
            let _ = writeln!(
                out,
                "\n{} (live -> planned):",
                style.warn("KMS key policy changes")
            );
            signed(out, &change.text);
            if plan.key_policy_drift.is_some() {
                let _ = writeln!(
                    out,
                    "  apply puts the planned policy back on {} (PutKeyPolicy, after the stack update)",
                    change.key_id
                );
            }
        }
        (None, Some(key_id)) => {
            let _ = writeln!(
                out,
                "\nKMS key policy: unchanged (live key {key_id} matches)"
            );
        }
        (None, None) => {
            let heading = if plan.mode == "online" {
                "KMS key policy (EnclaveKey): no key deployed yet; apply creates it with"
            } else {
                "KMS key policy (EnclaveKey)"
            };
            let _ = writeln!(out, "\n{heading}:");
            for line in pretty(&plan.key_policy).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}
