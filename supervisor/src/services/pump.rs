//! Bidirectional byte copy for the proxies: half-close passes through (EOF on one side shuts down
//! writing on the other, the other direction keeps flowing), backpressure comes from bounded
//! buffers (nothing is read while the previous chunk is unwritten), bytes are counted per
//! direction, and a connection without a byte either way for `idle` is closed.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Per-direction buffer: large enough for loopback/vsock throughput, small enough for a thousand
/// connections (pages an idle connection never fills stay unmapped).
pub(crate) const BUFFER: usize = 64 * 1024;

/// How a proxied connection ended.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// Both directions reached EOF.
    Done,
    /// No byte either way for the idle timeout.
    Idle,
    Error(io::Error),
}

impl PumpEnd {
    /// Counts the connection's end under `proxy`.
    pub(crate) fn report(&self, metrics: &super::ServiceMetrics, proxy: &str) {
        let result = match self {
            PumpEnd::Done => "ok",
            PumpEnd::Idle => "idle_timeout",
            PumpEnd::Error(e) => {
                tracing::debug!(proxy, error = %e, "proxied connection failed");
                "error"
            }
        };
        metrics.proxy_result(proxy, result);
    }
}

/// Copies between `outer` (the client or AWS endpoint) and `enclave` until both sides are done.
pub(crate) async fn pump<A, B>(
    outer: &mut A,
    enclave: &mut B,
    idle: Duration,
    to_enclave: Counter,
    from_enclave: Counter,
) -> PumpEnd
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let activity = Arc::new(AtomicU64::new(0));
    let mut a = Counted {
        inner: outer,
        counter: to_enclave,
        activity: activity.clone(),
        start,
    };
    let mut b = Counted {
        inner: enclave,
        counter: from_enclave,
        activity: activity.clone(),
        start,
    };
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut a, &mut b, BUFFER, BUFFER);
    tokio::select! {
        r = copy => match r {
            Ok(_) => PumpEnd::Done,
            Err(e) => PumpEnd::Error(e),
        },
        () = idle_watch(&activity, start, idle) => PumpEnd::Idle,
    }
}

/// Returns once no read made progress for `idle`.
async fn idle_watch(activity: &AtomicU64, start: Instant, idle: Duration) {
    loop {
        let last = activity.load(Ordering::Relaxed);
        tokio::time::sleep_until(start + Duration::from_millis(last) + idle).await;
        if activity.load(Ordering::Relaxed) == last {
            return;
        }
    }
}

/// Counts bytes read from the inner stream and records when the last ones arrived.
struct Counted<'a, S> {
    inner: &'a mut S,
    counter: Counter,
    activity: Arc<AtomicU64>,
    start: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counter.inc_by(n as u64);
            let ms = self.start.elapsed().as_millis() as u64;
            self.activity.store(ms, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
