//! `logs`: the deployment's log group, every instance and source interleaved by time;
//! `--follow` keeps polling until Ctrl-C (exit 0).

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, ValueEnum};

use super::aws_args::{aws_args, runtime};
use super::Context;
use crate::aws::logs::{self, LogEvent, Source, Stream};
use crate::aws::Aws;
use crate::cli::Exit;
use crate::reconcile::unix_now_ms;
use crate::render::log_group_name;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing new events until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// Start this far back (e.g. 30s, 10m, 2h, 1d).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub since: Duration,
    /// Only this instance.
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only this source (default: enclave and supervisor; `health` shows the health records).
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,
    /// One JSON object per line: timestamp (ms), time, instance, source, message.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SourceArg {
    Enclave,
    Supervisor,
    Health,
}

impl SourceArg {
    fn source(self) -> Source {
        match self {
            SourceArg::Enclave => Source::Enclave,
            SourceArg::Supervisor => Source::Supervisor,
            SourceArg::Health => Source::Health,
        }
    }
}

pub fn run(ctx: &Context, args: &LogsArgs) -> anyhow::Result<Exit> {
    let loaded = ctx.load()?;
    let group = log_group_name(&loaded.config.name);
    let rt = runtime()?;
    let aws_args = aws_args(&ctx.aws);
    rt.block_on(async {
        let aws = aws_args.connect(&loaded.config.region).await?;
        let start = unix_now_ms() - args.since.as_millis() as i64;
        tokio::select! {
            r = tail(&aws, &group, args, start, aws_args.poll) => r,
            _ = tokio::signal::ctrl_c() => Ok(Exit::Success),
        }
    })
}

/// Prints from `start` on; with `--follow`, forever.
async fn tail(
    aws: &Aws,
    group: &str,
    args: &LogsArgs,
    mut start: i64,
    poll: Duration,
) -> anyhow::Result<Exit> {
    // Event ids already printed at the newest timestamp: the next poll starts there again.
    let mut printed_at_start: HashSet<String> = HashSet::new();
    let mut said_empty = false;
    loop {
        let streams = selected(logs::streams(aws, group).await?, args);
        if streams.is_empty() && !said_empty {
            eprintln!("no matching log streams in {group} (yet)");
            said_empty = true;
        }
        let events = logs::events(aws, group, &streams, Some(start)).await?;
        let mut out = std::io::stdout().lock();
        for e in events {
            if e.timestamp_ms == start && printed_at_start.contains(&e.event_id) {
                continue;
            }
            if e.timestamp_ms > start {
                start = e.timestamp_ms;
                printed_at_start.clear();
            }
            printed_at_start.insert(e.event_id.clone());
            if writeln!(out, "{}", line(&e, args.json)).is_err() {
                // The reader went away (`| head`): nothing more to do.
                return Ok(Exit::Success);
            }
        }
        let _ = out.flush();
        drop(out);
        if !args.follow {
            return Ok(Exit::Success);
        }
        tokio::time::sleep(poll).await;
    }
}

fn selected(streams: Vec<Stream>, args: &LogsArgs) -> Vec<Stream> {
    streams
        .into_iter()
        .filter(|s| match args.source {
            Some(wanted) => s.source == wanted.source(),
            None => s.source != Source::Health,
        })
        .filter(|s| args.instance.as_ref().is_none_or(|i| &s.instance_id == i))
        .collect()
}

fn line(e: &LogEvent, json: bool) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(e.timestamp_ms.max(0) as u64);
    let time = humantime::format_rfc3339_millis(time).to_string();
    if json {
        serde_json::json!({
            "timestamp": e.timestamp_ms,
            "time": time,
            "instance": e.instance_id,
            "source": e.source.as_str(),
            "message": e.message,
        })
        .to_string()
    } else {
        format!(
            "{time} {} {:<10} {}",
            e.instance_id,
            e.source.as_str(),
            e.message.trim_end()
        )
    }
}
