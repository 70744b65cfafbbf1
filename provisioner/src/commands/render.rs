//! `render --out DIR`: the exact files a deployment is made of, for review or other tooling.

use std::fs;

use anyhow::Context as _;

use super::Context;
use crate::cli::{Exit, RenderArgs};

pub fn run(ctx: &Context, args: &RenderArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let (rendered, warnings) = ctx.render_offline(&loaded)?;
    let out = &args.out;
    fs::create_dir_all(out.join("policies"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let mut files = vec![
        ("template.yaml".to_string(), rendered.template.clone()),
        ("user_data.sh".to_string(), rendered.user_data.clone()),
    ];
    for (name, text) in rendered.policy_files() {
        files.push((format!("policies/{name}"), text));
    }
    for (name, text) in &files {
        let path = out.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for w in warnings {
        ctx.warn(&w);
    }
    if rendered.deployment.artifacts.eif.is_none() {
        ctx.warn("the EIF is not built: PCRs and artifact digests are unknown; the key policy admits no enclave and user_data refuses to boot");
    }
    Ok(Exit::Success)
}
