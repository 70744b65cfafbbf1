//! `verify`: rebuilds the EIF from the pinned inputs in a fresh directory (never from a cache)
//! and compares its PCRs with the ones a key holder is asked to approve. Exit 1 on any
//! mismatch, with a per-PCR report.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;

use super::Context;
use crate::build::STANDIN_WARNING;
use crate::cli::Exit;
use crate::progress::BuildProgress;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Expected PCRs from a nitro-cli-shaped measurements.json.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pcr0", "pcr1", "pcr2", "pcr8"])]
    pub expect: Option<PathBuf>,
    #[arg(long, value_name = "HEX")]
    pub pcr0: Option<String>,
    #[arg(long, value_name = "HEX")]
    pub pcr1: Option<String>,
    #[arg(long, value_name = "HEX")]
    pub pcr2: Option<String>,
    #[arg(long, value_name = "HEX")]
    pub pcr8: Option<String>,
}

pub fn run(ctx: &Context, a: &VerifyArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let mut expected: BTreeMap<u8, String> = BTreeMap::new();
    if let Some(path) = &a.expect {
        expected.extend(crate::build::read_measurements(path)?);
    }
    for (i, v) in [(0, &a.pcr0), (1, &a.pcr1), (2, &a.pcr2), (8, &a.pcr8)] {
        if let Some(v) = v {
            expected.insert(i, v.to_ascii_lowercase());
        }
    }
    if expected.is_empty() {
        anyhow::bail!("nothing to verify against: give --expect measurements.json or --pcr0/--pcr1/--pcr2/--pcr8");
    }
    let dir = tempfile::tempdir()?;
    let progress = BuildProgress::new();
    let built = crate::build::build(&loaded, dir.path(), &progress);
    progress.finish();
    let built = built?;
    let actual = crate::build::pcr_map(&built.measurements);
    let mut mismatches = 0;
    for (i, want) in &expected {
        match actual.get(i) {
            Some(got) if got == want => println!("PCR{i:<2} match     {got}"),
            Some(got) => {
                mismatches += 1;
                println!("PCR{i:<2} MISMATCH  expected {want}\n                got      {got}");
            }
            None => {
                mismatches += 1;
                println!("PCR{i:<2} MISMATCH  expected {want}\n                got      (not produced: the build is not signed)");
            }
        }
    }
    if built.standin {
        eprintln!("{}", ctx.style.warn(&format!("warning: {STANDIN_WARNING}")));
    }
    if mismatches > 0 {
        println!("{mismatches} PCR(s) differ: do not approve a policy for these measurements.");
        return Ok(Exit::Failure);
    }
    println!(
        "All {} PCR(s) match the rebuild from the pinned inputs.",
        expected.len()
    );
    Ok(Exit::Success)
}
