//! `policy render|diff|explain|apply`: the key policy as reviewers and key holders handle it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::aws::kms;
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
    /// The "before" policy file (default: --live, the holder's configured key, or the
    /// deployment's key `alias/NAME`).
    #[arg(long, value_name = "FILE", conflicts_with = "live")]
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
    #[arg(value_name = "FILE", conflicts_with_all = ["live", "holder"])]
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

/// Only the commands that need the deployment read enclave.yaml: a key holder reviewing policy
/// files they were sent needs none.
pub fn run(ctx: &Context, cmd: &PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Render(a) => {
            let loaded = ctx.load()?;
            let holder = find_holder(&loaded, a.holder.as_deref())?;
            let rendered = rendered(ctx, &loaded, holder, &a.releases)?;
            println!("{}", rendered.policy.to_json_pretty());
            Ok(Exit::Success)
        }
        PolicyCommand::Diff(a) => diff(ctx, a),
        PolicyCommand::Explain(a) => explain(ctx, a),
        PolicyCommand::Apply(a) => apply(ctx, &ctx.load()?, a),
    }
}

fn diff(ctx: &Context, a: &DiffArgs) -> anyhow::Result<Exit> {
    if a.from.is_some() && a.to.is_some() && a.source.holder.is_some() {
        anyhow::bail!(
            "--holder has no effect when both --from and --to are files: drop it, or drop one of the files to compare with the holder's live key or rendered policy"
        );
    }
    let loaded = match (&a.from, &a.to) {
        (Some(_), Some(_)) => None,
        _ => Some(ctx.load()?),
    };
    let before = match (&a.from, &loaded) {
        (Some(f), _) => read_policy(f)?,
        (None, Some(loaded)) => live_policy(ctx, loaded, &a.source)?,
        (None, None) => unreachable!("enclave.yaml is loaded unless both sides are files"),
    };
    let after = match (&a.to, &loaded) {
        (Some(f), _) => read_policy(f)?,
        (None, Some(loaded)) => {
            let holder = find_holder(loaded, a.source.holder.as_deref())?;
            rendered(ctx, loaded, holder, &[])?.policy
        }
        (None, None) => unreachable!("enclave.yaml is loaded unless both sides are files"),
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

fn explain(ctx: &Context, a: &ExplainArgs) -> anyhow::Result<Exit> {
    let policy = match (&a.policy_file, &a.source.live, &a.source.holder) {
        (Some(f), _, _) => read_policy(f)?,
        (None, None, None) => rendered(ctx, &ctx.load()?, None, &[])?.policy,
        _ => live_policy(ctx, &ctx.load()?, &a.source)?,
    };
    let e = kms_policy::explain(&policy);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{e}");
    }
    Ok(Exit::Success)
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

/// Whose key a live policy is read from (or written to), with whose credentials.
struct KeyTarget {
    /// `key holder NAME` or `deployment NAME`.
    owner: String,
    account: String,
    profile: Option<String>,
    key: String,
}

/// The key named by `--live` (or the holder's configured key, or the deployment's own alias),
/// with the holder's profile and account when `--holder` is given.
fn key_target(ctx: &Context, loaded: &Loaded, source: &Source) -> anyhow::Result<KeyTarget> {
    let c = &loaded.config;
    Ok(match find_holder(loaded, source.holder.as_deref())? {
        Some(h) => KeyTarget {
            owner: format!("key holder {}", h.name),
            account: h.account.clone(),
            profile: h.profile.clone().or_else(|| ctx.aws.profile.clone()),
            key: source
                .live
                .clone()
                .or_else(|| h.key.clone())
                .with_context(|| {
                    format!(
                    "name key holder {}'s key: --live KEY, or `key` in their kms.key_holders entry",
                    h.name
                )
                })?,
        },
        None => KeyTarget {
            owner: format!("deployment {}", c.name),
            account: c.account.clone(),
            profile: ctx.aws.profile.clone(),
            key: source
                .live
                .clone()
                .unwrap_or_else(|| format!("alias/{}", c.name)),
        },
    })
}

/// Connects as `target` requires and checks, before any key call, that the credentials and the
/// key belong to the target's account; resolves an alias to its key (and says which).
async fn open_key(
    ctx: &Context,
    loaded: &Loaded,
    target: &KeyTarget,
) -> anyhow::Result<(crate::aws::Aws, kms::KeyRef)> {
    let mut g = ctx.aws.clone();
    g.profile = target.profile.clone();
    let aws = aws_args(&g).connect(&loaded.config.region).await?;
    let actual = aws.caller_account().await?;
    let whose = match &target.profile {
        Some(p) => format!("of profile `{p}`"),
        None => "from the environment".to_string(),
    };
    if actual != target.account {
        anyhow::bail!(
            "the credentials {whose} are for account {actual}, but {}'s account is {}; refusing to read or write its key policy with them",
            target.owner,
            target.account
        );
    }
    let key = kms::resolve_key(&aws, &target.key).await?;
    if key.account != target.account {
        anyhow::bail!(
            "{} is key {} in account {}, not in {}'s account {}",
            target.key,
            key.arn,
            key.account,
            target.owner,
            target.account
        );
    }
    if key.name != key.id {
        eprintln!("{}: {} resolved to key {}", target.owner, key.name, key.id);
    }
    Ok((aws, key))
}

/// Reads a live key policy (see `key_target` and `open_key`).
fn live_policy(
    ctx: &Context,
    loaded: &Loaded,
    source: &Source,
) -> anyhow::Result<kms_policy::Policy> {
    let target = key_target(ctx, loaded, source)?;
    let text = runtime()?.block_on(async {
        let (aws, key) = open_key(ctx, loaded, &target).await?;
        anyhow::Ok(kms::get_key_policy(&aws, &key.id).await?)
    })?;
    kms_policy::Policy::from_json(&text).context("the live key policy")
}

fn apply(ctx: &Context, loaded: &Loaded, a: &ApplyArgs) -> anyhow::Result<Exit> {
    let holder = find_holder(loaded, Some(&a.holder))?.context("a holder is required")?;
    let target = key_target(
        ctx,
        loaded,
        &Source {
            live: None,
            holder: Some(holder.name.clone()),
        },
    )?;
    let proposed = rendered(ctx, loaded, Some(holder), &a.releases)?;
    let rt = runtime()?;
    let (aws, key, text) = rt.block_on(async {
        let (aws, key) = open_key(ctx, loaded, &target).await?;
        let text = kms::get_key_policy(&aws, &key.id).await?;
        anyhow::Ok((aws, key, text))
    })?;
    let live = kms_policy::Policy::from_json(&text).context("the live key policy")?;
    let d = kms_policy::diff(&live, &proposed.policy);
    if d.is_empty() {
        println!(
            "No differences: {}'s key {} already has this policy.",
            holder.name,
            key.describe()
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
        &format!(
            "Put this policy on {}'s key {}?",
            holder.name,
            key.describe()
        ),
        "yes",
        a.yes,
        "--yes (or --auto-approve)",
    )?;
    rt.block_on(kms::put_key_policy(&aws, &key.id, &proposed.json))?;
    println!("Applied to {}'s key {}.", holder.name, key.describe());
    Ok(Exit::Success)
}
