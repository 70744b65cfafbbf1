//! `build`: the EIF and its measurements from the pinned inputs.

use super::Context;
use crate::build::STANDIN_WARNING;
use crate::cli::{BuildArgs, Exit};
use crate::progress::BuildProgress;

pub fn run(ctx: &Context, args: &BuildArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let progress = BuildProgress::new();
    let built = crate::build::build(&loaded, &args.out, &progress);
    progress.finish();
    let built = built?;
    if built.standin {
        ctx.warn(STANDIN_WARNING);
    }
    if args.json {
        // What `nitro-cli build-enclave` prints (and measurements.json holds).
        println!("{}", built.measurements.to_json());
        return Ok(Exit::Success);
    }
    println!("{}", built.eif.display());
    row("size", &format!("{} bytes", built.eif_size));
    row("sha384", &built.eif_sha384);
    for (i, pcr) in crate::build::pcr_map(&built.measurements) {
        row(&format!("PCR{i}"), &pcr);
    }
    row(
        "measurements",
        &args.out.join("measurements.json").display().to_string(),
    );
    row(
        "manifest",
        &args.out.join("build-manifest.json").display().to_string(),
    );
    Ok(Exit::Success)
}

/// One line of the summary, values aligned in one column.
fn row(label: &str, value: &str) {
    println!("  {label:<13} {value}");
}
