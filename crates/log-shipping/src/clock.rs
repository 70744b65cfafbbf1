//! Waiting, behind a trait: the shipper's retry delays and batching linger run on the real
//! clock in the supervisor and on a test-controlled one in tests (no sleeps in tests).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait Clock: Send + Sync {
    fn sleep(&self, duration: Duration) -> Sleep<'_>;
}

/// Tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(duration))
    }
}
