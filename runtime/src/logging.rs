//! The runtime's own log lines: formatted by `tracing` (JSON in production), written to the
//! enclave console and, once the link is up and forwarding is on, queued on the [`LogSender`]
//! (never blocking: a full queue drops and counts).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use companion_config::Logging;
use enclave_link::logs::{Level, LogSender, LogStats, LogStream};
use tracing_subscriber::fmt::MakeWriter;

/// The forwarding slot, filled once the link is up.
#[derive(Clone, Default)]
pub struct Forward(Arc<Mutex<Option<Arc<LogSender>>>>);

impl Forward {
    pub fn attach(&self, sender: Arc<LogSender>) {
        *self.lock() = Some(sender);
    }

    /// The sender, if attached (the app's pipes use it too).
    pub fn sender(&self) -> Option<Arc<LogSender>> {
        self.lock().clone()
    }

    /// Detaches the sender and sends what is queued, waiting at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) -> Option<LogStats> {
        let sender = self.lock().take()?;
        match Arc::try_unwrap(sender) {
            Ok(sender) => Some(sender.shutdown(timeout).await),
            // A pipe reader still holds it: report what it did so far.
            Err(shared) => Some(shared.stats()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<LogSender>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One event's bytes: written to stderr and queued as one record when dropped.
pub struct EventWriter {
    forward: Option<Arc<LogSender>>,
    level: Level,
    buf: Vec<u8>,
}

impl Write for EventWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = io::stderr().write_all(&self.buf);
        if let Some(sender) = &self.forward {
            let line = String::from_utf8_lossy(&self.buf);
            sender.log(self.level, LogStream::Runtime, line.trim_end());
        }
    }
}

impl<'a> MakeWriter<'a> for Forward {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> EventWriter {
        self.writer(Level::Info)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> EventWriter {
        let level = match *meta.level() {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        };
        self.writer(level)
    }
}

impl Forward {
    fn writer(&self, level: Level) -> EventWriter {
        EventWriter {
            forward: self.sender(),
            level,
            buf: Vec::new(),
        }
    }
}

/// Installs the global subscriber; returns the slot the link fills later.
pub fn init(config: &Logging) -> Forward {
    let forward = Forward::default();
    let filter = tracing_subscriber::EnvFilter::try_new(&config.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(forward.clone());
    if config.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    forward
}
