//! `validate`: exit 0 when the file is valid, 1 with every problem listed.

use super::Context;
use crate::cli::Exit;

pub fn run(ctx: &Context) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    println!("{}: valid ({})", loaded.file.display(), loaded.config.name);
    Ok(Exit::Success)
}
