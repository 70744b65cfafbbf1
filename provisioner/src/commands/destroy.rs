//! `destroy`: shows what is lost, then deletes after the stack name is typed (or `--yes`).

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::cli::{DestroyArgs, Exit};
use crate::progress::EventLines;
use crate::reconcile::{destroy, prompt};

pub fn run(ctx: &Context, args: &DestroyArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let Some(preview) = destroy::preview(&loaded, &aws).await? else {
            println!(
                "Stack {} does not exist. Nothing to destroy.",
                loaded.config.name
            );
            return Ok(Exit::Success);
        };
        print!("{}", preview.describe());
        let name = preview.stack.name.clone();
        prompt::confirm(
            "destroy",
            &format!("Type the stack name to destroy it ({name}). There is no undo."),
            &name,
            args.yes,
            "--yes (or --auto-approve)",
        )?;
        let sink = EventLines::new(&format!("destroying {name}"));
        let result = destroy::destroy(&preview, &aws, &aws_args, args.force, &sink).await;
        sink.finish();
        result?;
        println!("Destroy complete: stack {name} deleted.");
        Ok(Exit::Success)
    })
}
