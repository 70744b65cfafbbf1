//! `secret put|list|rm`: the writers' side of sealed secrets (see [`crate::secrets`]). Values
//! come from a file or stdin only and are never printed; output names the parameter, the key and
//! the number of bytes.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::Exit;
use crate::reconcile::prompt;
use crate::secrets::{self, Listed, SecretStore, State};

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Seal a value from --value-file or stdin for one of enclave.yaml's `secrets`: KMS Encrypt
    /// with the deployment's key, then SSM PutParameter. Needs `kms.writers` credentials.
    Put(PutArgs),
    /// Each configured secret: parameter, environment variable, present/missing, last
    /// modified, version. Exit 0 (with --require-all: 1 when any is not present).
    List(ListArgs),
    /// Delete a secret's parameter; the enclave will not start the application without it.
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The SSM parameter: a key of enclave.yaml's `secrets`.
    pub name: String,
    /// Read the value from FILE (its exact bytes) instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<PathBuf>,
    /// Replace an existing value (otherwise an existing parameter is an error).
    #[arg(long)]
    pub overwrite: bool,
    /// Drop one trailing line break from a piped or file value (a typed value never has one).
    #[arg(long)]
    pub trim_newline: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON (format_version 1) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 unless every configured secret is present (for CI before an apply).
    #[arg(long)]
    pub require_all: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The SSM parameter: a key of enclave.yaml's `secrets`.
    pub name: String,
    /// Delete without typing the parameter name (required without a terminal).
    #[arg(long)]
    pub yes: bool,
}

pub fn run(ctx: &Context, cmd: &SecretCommand) -> anyhow::Result<Exit> {
    match cmd {
        SecretCommand::Put(args) => put(ctx, args),
        SecretCommand::List(args) => list(ctx, args),
        SecretCommand::Rm(args) => rm(ctx, args),
    }
}

fn put(ctx: &Context, args: &PutArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let config = &loaded.config;
    let env = secrets::configured(config, &args.name)?;
    let mut value = secrets::value::read(args.value_file.as_deref())?;
    if args.trim_newline {
        value.trim_newline();
    } else if value.ends_with_newline() {
        eprintln!("note: the value ends with a line break, which is part of the secret (--trim-newline drops it)");
    }
    let rt = runtime()?;
    let sealed = rt.block_on(async {
        let store = SecretStore::connect(&aws_args(&ctx.aws), config).await?;
        store.put(&args.name, &value, args.overwrite).await
    })?;
    drop(value);
    println!(
        "Sealed {} for {env}: {} bytes encrypted with {} (context: deployment {}, parameter {}).",
        sealed.parameter, sealed.plaintext_bytes, sealed.key_id, config.name, sealed.parameter
    );
    println!(
        "Wrote parameter {} version {} ({} tier, {} bytes of base64).",
        sealed.parameter, sealed.version, sealed.tier, sealed.ciphertext_base64_bytes
    );
    Ok(Exit::Success)
}

fn list(ctx: &Context, args: &ListArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let config = &loaded.config;
    let rt = runtime()?;
    let (key, listed) = rt.block_on(async {
        let store = SecretStore::connect(&aws_args(&ctx.aws), config).await?;
        let listed = store.list(&config.secrets).await?;
        anyhow::Ok((store.key().to_string(), listed))
    })?;
    if args.json {
        let doc = json!({
            "format_version": 1,
            "deployment": config.name,
            "key": key,
            "secrets": listed,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", table(ctx, &config.name, &key, &listed));
    }
    let absent: Vec<&str> = listed
        .iter()
        .filter(|l| l.state != State::Present)
        .map(|l| l.parameter.as_str())
        .collect();
    if args.require_all && !absent.is_empty() {
        eprintln!(
            "error: {} of {} secrets are not sealed: {}",
            absent.len(),
            listed.len(),
            absent.join(", ")
        );
        return Ok(Exit::Failure);
    }
    Ok(Exit::Success)
}

fn table(ctx: &Context, deployment: &str, key: &str, listed: &[Listed]) -> String {
    if listed.is_empty() {
        return format!("{deployment} has no secrets (enclave.yaml `secrets:` is empty).\n");
    }
    let width = |f: &dyn Fn(&Listed) -> usize, title: &str| {
        listed.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let (wp, we) = (
        width(&|l| l.parameter.len(), "PARAMETER"),
        width(&|l| l.env.len(), "ENV"),
    );
    let mut out = format!("Secrets of {deployment} (sealed with {key}):\n");
    out += &format!(
        "  {:wp$}  {:we$}  {:10}  {:7}  LAST MODIFIED\n",
        "PARAMETER", "ENV", "STATE", "VERSION"
    );
    for l in listed {
        let state = format!("{:10}", l.state.as_str());
        let state = match l.state {
            State::Present => ctx.style.add(&state),
            State::Missing => ctx.style.remove(&state),
            State::NotSealed => ctx.style.warn(&state),
        };
        out += &format!(
            "  {:wp$}  {:we$}  {state}  {:7}  {}\n",
            l.parameter,
            l.env,
            l.version.map_or("-".to_string(), |v| v.to_string()),
            l.last_modified.as_deref().unwrap_or("-"),
        );
    }
    out
}

fn rm(ctx: &Context, args: &RmArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let config = &loaded.config;
    let env = secrets::configured(config, &args.name)?;
    let rt = runtime()?;
    rt.block_on(async {
        let store = SecretStore::connect(&aws_args(&ctx.aws), config).await?;
        if !store.exists(&args.name).await? {
            return Err(secrets::SecretError::Missing(args.name.clone()).into());
        }
        prompt::confirm(
            "secret rm",
            &format!(
                "Delete parameter {} ({env})? The enclave will not start its application without it.",
                args.name
            ),
            &args.name,
            args.yes,
            "--yes",
        )?;
        store.remove(&args.name).await?;
        println!("Deleted parameter {} ({env}).", args.name);
        anyhow::Ok(Exit::Success)
    })
}
