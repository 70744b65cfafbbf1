//! Bidirectional byte copy for the proxies: half-close passes through (EOF on one side shuts down
//! writing on the other, the other direction keeps flowing), backpressure comes from bounded
//! buffers (nothing is read while the previous chunk is unwritten), bytes are counted per
//! direction, and a connection without a byte either way for `idle` is closed. Two ways to move
//! the bytes with those same rules: `splice(2)` through a pipe on Linux (the bytes stay in kernel
//! pages), and a user-space buffer everywhere else or when configured (`link.proxy_copy`).

mod buffered;
#[cfg(target_os = "linux")]
mod splice;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use companion_config::ProxyCopy;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// A socket the pump can take over: tokio reads and writes for the buffered copy, or its bare
/// descriptor for splice.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send {
    /// Leaves tokio's reactor and hands over the (non-blocking) descriptor.
    fn into_fd(self) -> io::Result<OwnedFd>;
}

impl Socket for TcpStream {
    fn into_fd(self) -> io::Result<OwnedFd> {
        Ok(self.into_std()?.into())
    }
}

impl Socket for enclave_link::Stream {
    fn into_fd(self) -> io::Result<OwnedFd> {
        match self {
            enclave_link::Stream::Tcp(s) => s.into_fd(),
            enclave_link::Stream::Unix(s) => Ok(s.into_std()?.into()),
            enclave_link::Stream::Vsock(s) => Ok(s.into()),
        }
    }
}

/// The byte counters of one proxied connection, one per direction.
pub(crate) struct Counters {
    to_enclave: Counter,
    from_enclave: Counter,
}

impl Counters {
    /// `nitro_proxy_bytes_total` of `proxy`, both directions.
    pub(crate) fn new(metrics: &super::ServiceMetrics, proxy: &str) -> Self {
        Counters {
            to_enclave: metrics.bytes(proxy, "to_enclave"),
            from_enclave: metrics.bytes(proxy, "from_enclave"),
        }
    }
}

/// Copies between `outer` (the client or AWS endpoint) and `enclave` until both directions
/// reached EOF (each EOF shuts down writing on the other side).
pub(crate) async fn pump<A: Socket, B: Socket>(
    outer: A,
    enclave: B,
    copy: ProxyCopy,
    idle: Duration,
    counters: Counters,
) -> PumpEnd {
    let activity = Activity::new();
    let transfer = transfer(outer, enclave, copy, &activity, &counters);
    tokio::select! {
        r = transfer => match r {
            Ok(()) => PumpEnd::Done,
            Err(e) => PumpEnd::Error(e),
        },
        () = activity.idle_for(idle) => PumpEnd::Idle,
    }
}

/// Moves the bytes both ways with splice when asked for and a pair of pipes can be had (a
/// descriptor limit can refuse them), else with buffers.
async fn transfer<A: Socket, B: Socket>(
    outer: A,
    enclave: B,
    copy: ProxyCopy,
    activity: &Activity,
    counters: &Counters,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if copy == ProxyCopy::Splice {
        match splice::Pipes::new() {
            Ok(pipes) => {
                let (outer, enclave) = (outer.into_fd()?, enclave.into_fd()?);
                return splice::transfer(outer, enclave, pipes, activity, counters).await;
            }
            Err(e) => tracing::debug!(error = %e, "no pipes for splice: buffered copy"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = copy;
    buffered::transfer(outer, enclave, activity, counters).await
}

/// When a byte last moved either way (milliseconds since the pump started), for the idle
/// timeout; both directions update it.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    /// Notes that bytes moved now.
    fn record(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Returns once no bytes moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.last_ms.load(Ordering::Relaxed);
            tokio::time::sleep_until(self.start + Duration::from_millis(last) + idle).await;
            if self.last_ms.load(Ordering::Relaxed) == last {
                return;
            }
        }
    }
}
