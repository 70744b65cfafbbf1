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
    println!("  size     {} bytes", built.eif_size);
    println!("  sha384   {}", built.eif_sha384);
    for (i, pcr) in crate::build::pcr_map(&built.measurements) {
        println!("  PCR{i:<6} {pcr}");
    }
    println!(
        "  measurements  {}",
        args.out.join("measurements.json").display()
    );
    println!(
        "  manifest      {}",
        args.out.join("build-manifest.json").display()
    );
    Ok(Exit::Success)
}
