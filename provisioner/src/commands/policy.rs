//! `policy render|diff|explain|apply`: the key policy as reviewers and key holders handle it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::Exit;
use crate::config::{KeyHolder, Loaded};
use crate::reconcile::{prompt, release_of};
use crate::render::{self, Deployment, Release, Templates};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the key policy for the current build, or for given releases.
    Render(RenderArgs),
    /// Semantic diff of two policies. Exit 0 same, 2 different, 1 error.
    Diff(DiffArgs),
    /// Which builds (PCR sets) and principals can decrypt under a policy.
    Explain(ExplainArgs),
    /// Show the diff against a key holder's live key, confirm, and PutKeyPolicy.
    Apply(ApplyArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// A key holder's key instead of the deployment's.
    #[arg(long)]
    pub holder: Option<String>,
    /// nitro-cli-shaped measurements.json: one = steady, two (OLD,NEW) = transitional.
    #[arg(long, value_delimiter = ',', value_name = "A.json[,B.json]")]
    pub releases: Vec<PathBuf>,
}

/// Where a policy comes from.
#[derive(Debug, Args)]
pub struct Source {
    /// The deployment's (or --holder's) live key: ARN, key id or alias/NAME.
    #[arg(long, value_name = "KEY")]
    pub live: Option<String>,
    /// A key holder: with --live (or their configured key), read with their profile.
    #[arg(long)]
    pub holder: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The "before" policy file (default: --live, or the holder's configured key).
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The "after" policy file (default: rendered for the current build).
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    #[command(flatten)]
    pub source: Source,
    /// Print the differences as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A policy file (default: rendered for the current build).
    #[arg(value_name = "FILE")]
    pub policy_file: Option<PathBuf>,
    #[command(flatten)]
    pub source: Source,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The key holder (a `kms.key_holders[].name`) whose key policy to update.
    #[arg(long)]
    pub holder: String,
    /// Releases to admit (default: the current build).
    #[arg(long, value_delimiter = ',', value_name = "A.json[,B.json]")]
    pub releases: Vec<PathBuf>,
    /// Approve without a prompt (required without a terminal).
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Allow a policy that no longer admits the release the live policy admits (only once the
    /// new release is confirmed running).
    #[arg(long)]
    pub allow_dropping_running_release: bool,
}

pub fn run(ctx: &Context, cmd: &PolicyCommand) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    match cmd {
        PolicyCommand::Render(a) => {
            let holder = find_holder(&loaded, a.holder.as_deref())?;
            let rendered = rendered(ctx, &loaded, holder, &a.releases)?;
            println!("{}", rendered.policy.to_json_pretty());
            Ok(Exit::Success)
        }
        PolicyCommand::Diff(a) => {
            let before = match &a.from {
                Some(f) => read_policy(f)?,
                None => live_policy(ctx, &loaded, &a.source)?,
            };
            let after = match &a.to {
                Some(f) => read_policy(f)?,
                None => {
                    rendered(
                        ctx,
                        &loaded,
                        find_holder(&loaded, a.source.holder.as_deref())?,
                        &[],
                    )?
                    .policy
                }
            };
            let d = kms_policy::diff(&before, &after);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else if d.is_empty() {
                println!("No differences.");
            } else {
                print!("{d}");
            }
            Ok(if d.is_empty() {
                Exit::Success
            } else {
                Exit::Changes
            })
        }
        PolicyCommand::Explain(a) => {
            let policy = match (&a.policy_file, &a.source.live, &a.source.holder) {
                (Some(f), _, _) => read_policy(f)?,
                (None, None, None) => rendered(ctx, &loaded, None, &[])?.policy,
                _ => live_policy(ctx, &loaded, &a.source)?,
            };
            let e = kms_policy::explain(&policy);
            if a.json {
                println!("{}", serde_json::to_string_pretty(&e)?);
            } else {
                print!("{e}");
            }
            Ok(Exit::Success)
        }
        PolicyCommand::Apply(a) => apply(ctx, &loaded, a),
    }
}

fn find_holder<'a>(
    loaded: &'a Loaded,
    name: Option<&str>,
) -> anyhow::Result<Option<&'a KeyHolder>> {
    let Some(name) = name else { return Ok(None) };
    let holders = &loaded.config.kms.key_holders;
    holders
        .iter()
        .find(|h| h.name == name)
        .map(Some)
        .ok_or_else(|| {
            let names: Vec<&str> = holders.iter().map(|h| h.name.as_str()).collect();
            anyhow::anyhow!(
                "no key holder `{name}` in kms.key_holders (known: {})",
                names.join(", ")
            )
        })
}

fn read_policy(path: &Path) -> anyhow::Result<kms_policy::Policy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    kms_policy::Policy::from_json(&text).with_context(|| format!("{}", path.display()))
}

fn read_release(path: &Path) -> anyhow::Result<Release> {
    Ok(Release {
        pcrs: crate::build::read_measurements(path)?,
    })
}

/// The policy for the given releases (default: the current build's), guards included.
fn rendered(
    ctx: &Context,
    loaded: &Loaded,
    holder: Option<&KeyHolder>,
    releases: &[PathBuf],
) -> anyhow::Result<kms_policy::Rendered> {
    if releases.len() > 2 {
        anyhow::bail!("--releases takes one file (steady) or two (transitional: OLD,NEW)");
    }
    let releases: Vec<Release> = if releases.is_empty() {
        let progress = crate::progress::BuildProgress::new();
        let built = crate::build::build(loaded, &super::aws_args::build_dir(loaded), &progress);
        progress.finish();
        let built = built?;
        if built.standin {
            ctx.warn(crate::build::STANDIN_WARNING);
        }
        vec![release_of(&built)]
    } else {
        releases
            .iter()
            .map(|p| read_release(p))
            .collect::<anyhow::Result<_>>()?
    };
    let templates = Templates::load(ctx.templates.as_deref())?;
    let dep = Deployment::new(loaded.config.clone(), Default::default());
    Ok(render::key_policy(&templates, &dep, holder, releases)?)
}

/// Reads a live key policy, with the holder's profile when `--holder` is given.
fn live_policy(
    ctx: &Context,
    loaded: &Loaded,
    source: &Source,
) -> anyhow::Result<kms_policy::Policy> {
    let holder = find_holder(loaded, source.holder.as_deref())?;
    let key = source
        .live
        .clone()
        .or_else(|| holder.and_then(|h| h.key.clone()))
        .context("name the key: --live KEY (or set the holder's `key` in enclave.yaml)")?;
    let mut g = ctx.aws.clone();
    if let Some(p) = holder.and_then(|h| h.profile.clone()) {
        g.profile = Some(p);
    }
    let args = aws_args(&g);
    let text = runtime()?.block_on(async {
        let aws = args.connect(&loaded.config.region).await;
        get_key_policy(&aws, &key).await
    })?;
    kms_policy::Policy::from_json(&text).context("the live key policy")
}

async fn get_key_policy(aws: &crate::aws::Aws, key: &str) -> anyhow::Result<String> {
    let out = aws
        .kms
        .get_key_policy()
        .key_id(key)
        .policy_name("default")
        .send()
        .await
        .map_err(|e| crate::aws::AwsError::call("kms:GetKeyPolicy", e))?;
    Ok(out.policy().unwrap_or_default().to_string())
}

fn apply(ctx: &Context, loaded: &Loaded, a: &ApplyArgs) -> anyhow::Result<Exit> {
    let holder = find_holder(loaded, Some(&a.holder))?.context("a holder is required")?;
    let key = holder
        .key
        .clone()
        .context("set this holder's `key` in enclave.yaml")?;
    let proposed = rendered(ctx, loaded, Some(holder), &a.releases)?;
    let live = live_policy(
        ctx,
        loaded,
        &Source {
            live: Some(key.clone()),
            holder: Some(holder.name.clone()),
        },
    )?;
    let d = kms_policy::diff(&live, &proposed.policy);
    if d.is_empty() {
        println!(
            "No differences: {}'s key already has this policy.",
            holder.name
        );
        return Ok(Exit::Success);
    }
    print!("{d}");
    // The release the live policy admits must stay admitted unless explicitly released.
    let overrides = kms_policy::GuardOverrides {
        allow_dropping_running_release: a.allow_dropping_running_release,
        ..Default::default()
    };
    for access in kms_policy::explain(&live).access {
        for release in access.releases {
            let running = Release { pcrs: release }.pcr_set()?;
            kms_policy::check_rotation(&live, &proposed.policy, &running, &overrides)?;
        }
    }
    prompt::confirm(
        "policy apply",
        &format!("Put this policy on {}'s key {key}?", holder.name),
        "yes",
        a.yes,
        "--yes (or --auto-approve)",
    )?;
    let mut g = ctx.aws.clone();
    if let Some(p) = &holder.profile {
        g.profile = Some(p.clone());
    }
    let args = aws_args(&g);
    runtime()?.block_on(async {
        let aws = args.connect(&loaded.config.region).await;
        // The lock-out safety check stays on: KMS refuses a policy that locks the caller out.
        aws.kms
            .put_key_policy()
            .key_id(&key)
            .policy_name("default")
            .policy(&proposed.json)
            .send()
            .await
            .map_err(|e| crate::aws::AwsError::call("kms:PutKeyPolicy", e))
    })?;
    println!("Applied to {}'s key {key}.", holder.name);
    Ok(Exit::Success)
}
