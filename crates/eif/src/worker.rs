//! A thread fed through a bounded channel and always joined — when its owner finishes it or
//! drops it on an error path — so no thread outlives the build step that started it.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

pub(crate) struct Worker<T, R> {
    tx: Option<SyncSender<T>>,
    handle: Option<JoinHandle<R>>,
}

impl<T: Send + 'static, R: Send + 'static> Worker<T, R> {
    /// Runs `work` on a new thread over the items sent; [`send`](Self::send) blocks while
    /// `depth` items wait.
    pub fn spawn(depth: usize, work: impl FnOnce(Receiver<T>) -> R + Send + 'static) -> Self {
        let (tx, rx) = sync_channel(depth);
        Worker {
            tx: Some(tx),
            handle: Some(std::thread::spawn(move || work(rx))),
        }
    }

    /// Queues an item; fails once the thread has stopped taking items.
    pub fn send(&self, item: T) -> io::Result<()> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(item).ok())
            .ok_or_else(|| io::Error::other("a worker thread stopped"))
    }

    /// Closes the queue, waits for the thread and returns its result.
    pub fn join(mut self) -> io::Result<R> {
        self.tx = None;
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .ok_or_else(|| io::Error::other("a worker thread failed"))
    }
}

impl<T, R> Drop for Worker<T, R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
