//! `nitro-provision`: a thin binary over the library. Exit codes: 0 success (or no changes),
//! 1 error (a malformed command line too), 2 changes present (`plan --detailed-exitcode`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match nitro_provision::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // clap exits 2 on usage errors; 2 means "changes present" here.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    nitro_provision::cli::init_logging(cli.verbose);
    match nitro_provision::cli::run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!(
                "{}",
                nitro_provision::output::error_lines(&format!("{e:#}"))
            );
            ExitCode::from(1)
        }
    }
}
