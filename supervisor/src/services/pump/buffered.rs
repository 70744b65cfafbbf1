//! The portable copy: one user-space buffer per direction, read a chunk, write it all, repeat.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Activity, Counters};

/// Each direction's buffer starts small (an idle connection costs 2 × 4 KiB) and doubles, up to
/// `MAX_BUFFER`, whenever a read fills it: bulk transfers get large reads and writes.
const MIN_BUFFER: usize = 4 * 1024;
const MAX_BUFFER: usize = 256 * 1024;

/// Copies both ways until both directions reached EOF.
pub(super) async fn transfer<A, B>(
    mut outer: A,
    mut enclave: B,
    activity: &Activity,
    counters: &Counters,
) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut inbound = Half::new(counters.to_enclave.clone());
    let mut outbound = Half::new(counters.from_enclave.clone());
    poll_fn(|cx| {
        let a = inbound.poll(cx, &mut outer, &mut enclave, activity)?;
        let b = outbound.poll(cx, &mut enclave, &mut outer, activity)?;
        if a.is_ready() && b.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
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
        activity: &Activity,
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
            if n > 0 {
                activity.record();
            }
            self.counter.inc_by(n as u64);
            self.eof = n == 0;
            self.grow = n == self.buf.len() && n < MAX_BUFFER;
            (self.pos, self.filled) = (0, n);
        }
    }
}
