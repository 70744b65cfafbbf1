//! The log service: records of the runtime and the application, pushed enclave → parent. The
//! sending side never blocks its caller: records wait in a bounded queue, and when it is full the
//! record is dropped and counted; the count travels to the parent in [`Dropped`] frames.
//! Delivery is at most once (no resend after a broken connection), so `seq` gaps mean drops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

use crate::control::truncate;
use crate::frame::{messages, Codec, Limits};
use crate::transport::{Stream, Transport};
use crate::{backoff::Backoff, ports};

/// Longest message of one record; longer ones are cut (on a character boundary) by the sender.
pub const MAX_MESSAGE: usize = 16 * 1024;

messages! {
    /// Frames of the log service (kinds 0x20–0x2f).
    LogMsg {
        0x21 => Record(Record),
        /// Records the sender dropped since it started (cumulative).
        0x22 => Dropped(Dropped),
    }
}

/// Severity, as `tracing` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a record came from inside the enclave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// The application's standard output.
    Stdout,
    /// The application's standard error.
    Stderr,
    /// The runtime itself.
    Runtime,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Runtime => "runtime",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Milliseconds since the Unix epoch, by the enclave's clock.
    pub timestamp_ms: u64,
    pub level: Level,
    pub stream: LogStream,
    /// Assigned when the record is queued: gaps are drops.
    pub seq: u64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dropped {
    pub total: u64,
}

impl Limits for Record {
    fn check(&self) -> Result<(), String> {
        if self.message.len() > MAX_MESSAGE {
            return Err(format!("log message longer than {MAX_MESSAGE} bytes"));
        }
        Ok(())
    }
}
impl Limits for Dropped {}

/// What a [`LogSender`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogStats {
    /// Records accepted by [`LogSender::log`] (sequence numbers handed out).
    pub queued: u64,
    /// Records written to the connection.
    pub sent: u64,
    /// Records dropped: queue full, or lost with a broken connection.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counts {
    seq: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
}

/// Enclave side of the log service: a bounded queue drained by a background task that
/// (re)connects with jittered backoff from 100 ms to 5 s.
pub struct LogSender {
    tx: mpsc::Sender<Record>,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl LogSender {
    /// Starts the sender; at most `capacity` records wait for the connection.
    pub fn spawn(transport: Arc<dyn Transport>, capacity: usize) -> LogSender {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counts = Arc::new(Counts::default());
        let task = tokio::spawn(run(transport, rx, counts.clone()));
        LogSender { tx, counts, task }
    }

    /// Queues a record without waiting; returns false when it was dropped (queue full).
    pub fn log(&self, level: Level, stream: LogStream, message: &str) -> bool {
        let seq = self.counts.seq.fetch_add(1, Ordering::Relaxed);
        let record = Record {
            timestamp_ms: now_ms(),
            level,
            stream,
            seq,
            message: truncate(message, MAX_MESSAGE).to_owned(),
        };
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(_) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn stats(&self) -> LogStats {
        self.counts.stats()
    }

    /// Stops taking records, sends what is queued (waiting at most `timeout`) and returns the
    /// final counts; whatever could not be sent by then counts as dropped.
    pub async fn shutdown(self, timeout: Duration) -> LogStats {
        let LogSender { tx, counts, task } = self;
        drop(tx);
        let abort = task.abort_handle();
        if tokio::time::timeout(timeout, task).await.is_err() {
            abort.abort();
        }
        let s = counts.stats();
        LogStats {
            dropped: s.queued - s.sent,
            ..s
        }
    }
}

impl Counts {
    fn stats(&self) -> LogStats {
        LogStats {
            queued: self.seq.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn run(transport: Arc<dyn Transport>, mut rx: mpsc::Receiver<Record>, counts: Arc<Counts>) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let stream = match transport.connect(ports::LOGS).await {
            Ok(s) => s,
            Err(_) if rx.is_closed() && rx.is_empty() => return,
            Err(_) => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        let mut framed = Framed::new(stream, Codec::<LogMsg>::default());
        if pump(&mut framed, &mut rx, &counts).await.is_ok() {
            return;
        }
    }
}

/// Writes records until the queue closes (Ok) or the connection breaks (Err; the record being
/// written is lost and counted: at most once).
async fn pump(
    framed: &mut Framed<Stream, Codec<LogMsg>>,
    rx: &mut mpsc::Receiver<Record>,
    counts: &Counts,
) -> Result<(), ()> {
    let mut reported = 0;
    loop {
        let dropped = counts.dropped.load(Ordering::Relaxed);
        if dropped != reported {
            let total = LogMsg::Dropped(Dropped { total: dropped });
            framed.feed(total).await.map_err(|_| ())?;
            reported = dropped;
        }
        let Some(record) = rx.recv().await else {
            let dropped = counts.dropped.load(Ordering::Relaxed);
            if dropped != reported {
                let total = LogMsg::Dropped(Dropped { total: dropped });
                framed.feed(total).await.map_err(|_| ())?;
            }
            return framed.flush().await.map_err(|_| ());
        };
        if framed.feed(LogMsg::Record(record)).await.is_err() {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        counts.sent.fetch_add(1, Ordering::Relaxed);
        if rx.is_empty() {
            framed.flush().await.map_err(|_| ())?;
        }
    }
}
