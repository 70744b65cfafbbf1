//! Host side of the log service. Connection readers never wait for the writer: records go into a
//! bounded queue (`link.logs.buffer_records`), and a full queue drops and counts them. One writer
//! thread re-logs them through `tracing` (JSON in production) with `source: "enclave"`, so a slow
//! journald never stalls the async runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use enclave_link::frame::Codec;
use enclave_link::logs::{Level, LogMsg, Record};
use enclave_link::{FrameError, Stream};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::link::Ctx;
use super::metrics::SideLabels;
use super::{ServiceError, ServiceMetrics};

pub(crate) const SERVICE: &str = "logs";

struct State {
    queue: mpsc::Sender<Record>,
    metrics: Arc<ServiceMetrics>,
    /// The runtime's cumulative drop count last seen (it restarts at 0 with a new boot).
    enclave_dropped: AtomicU64,
}

pub(crate) async fn start(ctx: &Ctx, capacity: usize) -> Result<(), ServiceError> {
    let listener = ctx.listen(SERVICE, enclave_link::ports::LOGS).await?;
    let (queue, rx) = mpsc::channel(capacity.max(1));
    spawn_writer(rx, ctx.metrics.clone()).map_err(ServiceError::Spawn)?;
    let state = Arc::new(State {
        queue,
        metrics: ctx.metrics.clone(),
        enclave_dropped: AtomicU64::new(0),
    });
    ctx.serve(SERVICE, listener, move |stream| {
        serve(stream, state.clone())
    });
    Ok(())
}

async fn serve(stream: Stream, state: Arc<State>) {
    let host_dropped = state
        .metrics
        .log_dropped
        .get_or_create_owned(&SideLabels { side: "host" });
    let mut framed = Framed::new(stream, Codec::<LogMsg>::default());
    while let Some(frame) = framed.next().await {
        match frame {
            Ok(LogMsg::Record(r)) => {
                if state.queue.try_send(r).is_err() {
                    host_dropped.inc();
                }
            }
            Ok(LogMsg::Dropped(d)) => state.enclave_drops(d.total),
            Err(FrameError::Io(_)) => break,
            Err(e) => {
                state.metrics.frame_rejected(SERVICE, &e);
                tracing::warn!(service = SERVICE, error = %e, "closing log connection");
                break;
            }
        }
    }
}

impl State {
    fn enclave_drops(&self, total: u64) {
        let last = self.enclave_dropped.swap(total, Ordering::Relaxed);
        let new = if total >= last { total - last } else { total };
        if new > 0 {
            self.metrics
                .log_dropped
                .get_or_create(&SideLabels { side: "enclave" })
                .inc_by(new);
        }
    }
}

/// The writer thread ends when every sender (the service's state) is gone.
fn spawn_writer(
    mut rx: mpsc::Receiver<Record>,
    metrics: Arc<ServiceMetrics>,
) -> std::io::Result<()> {
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    std::thread::Builder::new()
        .name("enclave-logs".into())
        .spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                while let Some(r) = rx.blocking_recv() {
                    relog(&r);
                    metrics.log_forwarded.inc();
                }
            })
        })
        .map(drop)
}

fn relog(r: &Record) {
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(r.timestamp_ms));
    let stream = r.stream.as_str();
    macro_rules! event {
        ($level:ident) => {
            tracing::$level!(target: "enclave", source = "enclave", stream, seq = r.seq, enclave_time = %time, "{}", r.message)
        };
    }
    match r.level {
        Level::Trace => event!(trace),
        Level::Debug => event!(debug),
        Level::Info => event!(info),
        Level::Warn => event!(warn),
        Level::Error => event!(error),
    }
}
