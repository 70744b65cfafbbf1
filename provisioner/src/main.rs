//! `nitro-provision`: a thin binary over the library. Exit codes: 0 success (or no changes),
//! 1 any error (usage errors included), 2 changes present (`plan --detailed-exitcode`,
//! `policy diff`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match nitro_provision::cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    nitro_provision::cli::init_logging(cli.verbose);
    match nitro_provision::cli::run(cli) {
        Ok(code) => code.into(),
        Err(e) => {
            eprintln!(
                "{}",
                nitro_provision::output::error_lines(&nitro_provision::cli::describe_error(&e))
            );
            ExitCode::from(1)
        }
    }
}
