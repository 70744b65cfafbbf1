//! Bidirectional byte copy for the proxies: half-close passes through (EOF on one side shuts down
//! writing on the other, the other direction keeps flowing), backpressure comes from bounded
//! buffers (nothing is read while the previous chunk is unwritten), bytes are counted per
//! direction, and a connection without a byte either way for `idle` is closed.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Each direction's buffer starts small (an idle connection costs 2 × 4 KiB) and doubles, up to
/// `MAX_BUFFER`, whenever a read fills it: bulk transfers get large reads and writes.
const MIN_BUFFER: usize = 4 * 1024;
const MAX_BUFFER: usize = 256 * 1024;

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

/// Copies between `outer` (the client or AWS endpoint) and `enclave` until both directions
/// reached EOF (each EOF shuts down writing on the other side).
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
    let activity = AtomicU64::new(0);
    let mut inbound = Half::new(to_enclave);
    let mut outbound = Half::new(from_enclave);
    let copy = poll_fn(|cx| {
        let seen = |n: usize| {
            if n > 0 {
                activity.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        };
        let a = inbound.poll(cx, &mut *outer, &mut *enclave, &seen)?;
        let b = outbound.poll(cx, &mut *enclave, &mut *outer, &seen)?;
        if a.is_ready() && b.is_ready() {
            Poll::Ready(Ok::<(), io::Error>(()))
        } else {
            Poll::Pending
        }
    });
    tokio::select! {
        r = copy => match r {
            Ok(()) => PumpEnd::Done,
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

/// One direction: read a chunk, write it all, repeat; on EOF flush and shut down the writer.
struct Half {
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    grow: bool,
    eof: bool,
    done: bool,
    counter: Counter,
}

impl Half {
    fn new(counter: Counter) -> Self {
        Half {
            buf: vec![0; MIN_BUFFER],
            pos: 0,
            filled: 0,
            grow: false,
            eof: false,
            done: false,
            counter,
        }
    }

    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        seen: &dyn Fn(usize),
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while self.pos < self.filled {
                let n = ready!(Pin::new(&mut *w).poll_write(cx, &self.buf[self.pos..self.filled]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.pos += n;
            }
            if self.eof {
                ready!(Pin::new(&mut *w).poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            if self.grow {
                self.buf = vec![0; (self.buf.len() * 2).min(MAX_BUFFER)];
                self.grow = false;
            }
            let mut rb = ReadBuf::new(&mut self.buf);
            ready!(Pin::new(&mut *r).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            seen(n);
            self.counter.inc_by(n as u64);
            self.eof = n == 0;
            self.grow = n == self.buf.len() && n < MAX_BUFFER;
            (self.pos, self.filled) = (0, n);
        }
    }
}
