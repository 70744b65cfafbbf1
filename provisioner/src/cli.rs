//! Command-line interface: global options and the subcommands, each delegating to `commands`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::output::{ColorChoice, Stream, Style};

/// Help heading of the options every subcommand accepts.
const GLOBAL: &str = "Global options";

/// Declarative provisioner for AWS Nitro Enclaves.
#[derive(Debug, Parser)]
#[command(name = "nitro-provision", version, about, max_term_width = 100)]
pub struct Cli {
    /// The deployment description.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "enclave.yaml",
        help_heading = GLOBAL
    )]
    pub file: PathBuf,
    /// Use templates from DIR (same file names as templates/ and policies/) instead of the
    /// embedded ones.
    #[arg(long, global = true, value_name = "DIR", help_heading = GLOBAL)]
    pub templates: Option<PathBuf>,
    /// When to color output.
    #[arg(
        long,
        global = true,
        value_name = "WHEN",
        default_value = "auto",
        help_heading = GLOBAL
    )]
    pub color: ColorChoice,
    /// Same as --color never.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub no_color: bool,
    /// More log output (-v debug, -vv trace); logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,
    #[command(flatten)]
    pub aws: GlobalAws,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach AWS (credentials and region otherwise come from the usual AWS settings).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "AWS options")]
pub struct GlobalAws {
    /// AWS profile to use.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (e.g. a local moto server); S3 then uses path style.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Milliseconds between CloudFormation polls.
    #[arg(
        long,
        global = true,
        default_value_t = 3000,
        hide = true,
        env = "NITRO_PROVISION_POLL_MS"
    )]
    pub poll_ms: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check enclave.yaml; lists every problem with file:line:column. Exit 0 valid, 1 invalid.
    Validate(ValidateArgs),
    /// Write the CloudFormation template, user_data and policies to a directory.
    Render(RenderArgs),
    /// Build the EIF from the pinned inputs: NAME.eif, measurements.json, build-manifest.json.
    Build(BuildArgs),
    /// Rebuild the EIF from the pinned inputs and compare its PCRs (exit 1 on any mismatch).
    Verify(commands::verify::VerifyArgs),
    /// Low-level EIF tools: describe, pcr, ramdisk, assemble.
    #[command(subcommand)]
    Eif(commands::eif::EifCommand),
    /// Show what apply would do (a CloudFormation change set, never executed).
    Plan(PlanArgs),
    /// Upload the artifacts and execute the plan (a saved plan, or a fresh one after confirmation).
    Apply(ApplyArgs),
    /// Delete the stack, its bucket contents, and schedule the KMS key's deletion.
    Destroy(DestroyArgs),
    /// Stack status, outputs, and each instance's health (from its supervisor's latest health
    /// record). Exit 1 when an instance is unhealthy, stale or runs another release.
    Status(commands::status::StatusArgs),
    /// The deployment's logs from CloudWatch (every instance and source, by time).
    Logs(commands::logs::LogsArgs),
    /// Attestation documents: verify against AWS's root, expected PCRs, nonce and age.
    #[command(subcommand)]
    Attest(commands::attest::AttestCommand),
    /// KMS key policies: render, diff, explain, apply to key holders.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// Sealed secrets for the enclave: put (from a file or stdin), list, rm.
    #[command(subcommand)]
    Secret(commands::secret::SecretCommand),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print the result as JSON on stdout: `valid` and every diagnostic with its position.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR", default_value = "out")]
    pub out: PathBuf,
    /// Print the measurements as JSON, as `nitro-cli build-enclave` does.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan without AWS: everything a first apply would create.
    #[arg(long)]
    pub offline: bool,
    /// Print the versioned plan document (JSON) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 2 when the plan has changes, 0 when none, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan for `apply FILE` (executes exactly this change set).
    #[arg(long, value_name = "FILE", conflicts_with = "offline")]
    pub out: Option<PathBuf>,
    /// In a rotation, keep the old release admitted after the instances roll (so other key
    /// holders can sign off); a later plan/apply drops it.
    #[arg(long, conflicts_with = "offline")]
    pub keep_old_release: bool,
    /// Take over a stack of this name that nitro-provision did not create (or that belongs to
    /// another deployment): the plan replaces its template, deleting resources not in ours.
    #[arg(long, conflicts_with = "offline")]
    pub adopt_stack: bool,
    /// Discard a saved plan: delete its change set (and the empty stack of a first plan).
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["offline", "json", "detailed_exitcode", "out", "keep_old_release", "adopt_stack"]
    )]
    pub discard: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`: applied exactly, without a prompt; refused when stale or
    /// modified. Planning options (and --yes: the file is the approval) cannot be combined with it.
    pub plan: Option<PathBuf>,
    /// Approve without a prompt (required without a terminal).
    #[arg(long, visible_alias = "auto-approve", conflicts_with = "plan")]
    pub yes: bool,
    /// Write the stack outputs as JSON.
    #[arg(long, value_name = "FILE")]
    pub outputs_file: Option<PathBuf>,
    /// In a rotation, stop after admitting both releases and rolling the instances.
    #[arg(long, conflicts_with = "plan")]
    pub keep_old_release: bool,
    /// Take over a stack of this name that nitro-provision did not create (see `plan --adopt-stack`).
    #[arg(long, conflicts_with = "plan")]
    pub adopt_stack: bool,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Approve without typing the stack name (required without a terminal).
    #[arg(long, visible_alias = "auto-approve")]
    pub yes: bool,
    /// Lift termination protection first.
    #[arg(long)]
    pub force: bool,
}

/// What a command asks the process to exit with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failure,
    Changes,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(match e {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Changes => 2,
        })
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let color = if cli.no_color {
        ColorChoice::Never
    } else {
        cli.color
    };
    let ctx = commands::Context {
        file: cli.file,
        templates: cli.templates,
        style: Style::detect(color, Stream::Stdout),
        err_style: Style::detect(color, Stream::Stderr),
        aws: cli.aws,
    };
    if let Some(dir) = &ctx.templates {
        for name in crate::render::Templates::unknown_files(dir) {
            ctx.warn(&format!("--templates {}: ignoring {name}", dir.display()));
        }
    }
    match cli.command {
        Command::Validate(args) => commands::validate::run(&ctx, &args),
        Command::Render(args) => commands::render::run(&ctx, &args),
        Command::Build(args) => commands::build::run(&ctx, &args),
        Command::Plan(args) => commands::plan::run(&ctx, &args),
        Command::Apply(args) => commands::apply::run(&ctx, &args),
        Command::Destroy(args) => commands::destroy::run(&ctx, &args),
        Command::Status(args) => commands::status::run(&ctx, &args),
        Command::Logs(args) => commands::logs::run(&ctx, &args),
        Command::Policy(cmd) => commands::policy::run(&ctx, &cmd),
        Command::Secret(cmd) => commands::secret::run(&ctx, &cmd),
        Command::Attest(cmd) => commands::attest::run(&cmd),
        Command::Verify(args) => commands::verify::run(&ctx, &args),
        Command::Eif(cmd) => commands::eif::run(&cmd),
    }
}

/// Parses the command line. Help and `--version` exit 0; every usage error exits 1, like any
/// other error (2 means only "changes present").
pub fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// The text `main` prints after `error: ` (see `output::error_text`).
pub fn describe_error(e: &anyhow::Error) -> String {
    crate::output::error_text(e.as_ref())
}

/// Logs go to stderr; `RUST_LOG` overrides the level chosen by `-v`.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
