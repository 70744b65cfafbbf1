//! `nitro-provision`: a thin binary over the library. Exit codes: 0 success (or no changes),
//! 1 error, 2 changes present (`plan --detailed-exitcode`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nitro_provision::cli::Cli::parse();
    nitro_provision::cli::init_logging(cli.verbose);
    match nitro_provision::cli::run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
