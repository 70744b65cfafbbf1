//! `verify`: rebuilds the EIF from the pinned inputs in a fresh directory (never from a cache)
//! and compares its PCRs with the ones a key holder is asked to approve. Exit 1 on any
//! mismatch, with a per-PCR report; PCRs the build produces but the expectation leaves out are
//! reported too (an approval that does not pin them admits more than it seems to).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use nitro_eif::pcr::Pcr;
use serde::Serialize;

use super::Context;
use crate::build::STANDIN_WARNING;
use crate::cli::Exit;
use crate::progress::BuildProgress;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Expected PCRs from a nitro-cli-shaped measurements.json.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["pcr0", "pcr1", "pcr2", "pcr8"])]
    pub expect: Option<PathBuf>,
    /// Expected PCR0 (the whole image), 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_pcr)]
    pub pcr0: Option<Pcr>,
    /// Expected PCR1 (kernel and boot ramdisk), 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_pcr)]
    pub pcr1: Option<Pcr>,
    /// Expected PCR2 (the application ramdisk), 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_pcr)]
    pub pcr2: Option<Pcr>,
    /// Expected PCR8 (the signing certificate), 96 hex digits.
    #[arg(long, value_name = "HEX", value_parser = parse_pcr)]
    pub pcr8: Option<Pcr>,
    /// Print the comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A PCR on the command line: 96 hex digits (a SHA-384), nothing shorter.
fn parse_pcr(s: &str) -> Result<Pcr, String> {
    Pcr::from_hex(s).ok_or_else(|| {
        format!(
            "a PCR is 96 hex digits (a SHA-384), got {} character(s)",
            s.trim().len()
        )
    })
}

/// How one register compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Match,
    Mismatch,
    /// Expected, but the build does not produce it (PCR8 of an unsigned build).
    NotProduced,
    /// Produced by the build, absent from the expectation.
    NotExpected,
}

#[derive(Debug, Serialize)]
struct Register {
    pcr: u8,
    outcome: Outcome,
    expected: Option<String>,
    actual: Option<String>,
}

pub fn run(ctx: &Context, a: &VerifyArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let mut expected: BTreeMap<u8, String> = BTreeMap::new();
    if let Some(path) = &a.expect {
        expected.extend(crate::build::read_measurements(path)?);
    }
    for (i, v) in [(0, &a.pcr0), (1, &a.pcr1), (2, &a.pcr2), (8, &a.pcr8)] {
        if let Some(v) = v {
            expected.insert(i, v.to_hex());
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
    if built.standin {
        ctx.warn(STANDIN_WARNING);
    }
    let registers = compare(&expected, &crate::build::pcr_map(&built.measurements));
    let failed = registers
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Mismatch | Outcome::NotProduced))
        .count();
    if a.json {
        let doc = serde_json::json!({"match": failed == 0, "registers": registers});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_report(&registers, failed);
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Every register on either side, in order.
fn compare(expected: &BTreeMap<u8, String>, actual: &BTreeMap<u8, String>) -> Vec<Register> {
    let mut pcrs: Vec<u8> = expected.keys().chain(actual.keys()).copied().collect();
    pcrs.sort_unstable();
    pcrs.dedup();
    pcrs.into_iter()
        .map(|pcr| {
            let (want, got) = (expected.get(&pcr), actual.get(&pcr));
            let outcome = match (want, got) {
                (Some(w), Some(g)) if w == g => Outcome::Match,
                (Some(_), Some(_)) => Outcome::Mismatch,
                (Some(_), None) => Outcome::NotProduced,
                (None, _) => Outcome::NotExpected,
            };
            Register {
                pcr,
                outcome,
                expected: want.cloned(),
                actual: got.cloned(),
            }
        })
        .collect()
}

fn print_report(registers: &[Register], failed: usize) {
    let dash = || "-".to_string();
    for r in registers {
        let got = r.actual.clone().unwrap_or_else(dash);
        match r.outcome {
            Outcome::Match => println!("PCR{:<2} match        {got}", r.pcr),
            Outcome::Mismatch => println!(
                "PCR{:<2} MISMATCH     expected {}\n                  got      {got}",
                r.pcr,
                r.expected.clone().unwrap_or_else(dash)
            ),
            Outcome::NotProduced => println!(
                "PCR{:<2} MISMATCH     expected {}\n                  got      (not produced: the build is not signed)",
                r.pcr,
                r.expected.clone().unwrap_or_else(dash)
            ),
            Outcome::NotExpected => {
                println!("PCR{:<2} not checked  {got} (built, but not in the expectation)", r.pcr)
            }
        }
    }
    if failed > 0 {
        println!("{failed} PCR(s) differ: do not approve a policy for these measurements.");
    } else {
        let checked = registers
            .iter()
            .filter(|r| r.outcome == Outcome::Match)
            .count();
        println!("All {checked} expected PCR(s) match the rebuild from the pinned inputs.");
    }
}
