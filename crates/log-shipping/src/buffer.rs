//! The bounded buffer between producers and the shipper. Pushing never waits for the network:
//! when the buffer is full the oldest record goes and the drop counter says so, because during
//! an outage the most recent lines are the ones an operator needs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::limits::{
    event_cost, truncate_to_event, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS,
};
use crate::record::{Record, Source};

/// How much the buffer may hold before it drops the oldest records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub records: usize,
    pub bytes: usize,
}

/// Counters for `/metrics` and `/v1/enclave-info`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Records accepted by CloudWatch.
    pub shipped: AtomicU64,
    /// Records dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Records CloudWatch refused (too old, too new, malformed batch).
    pub rejected: AtomicU64,
    /// Records cut to the per-event limit.
    pub truncated: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub shipped: u64,
    pub dropped: u64,
    pub rejected: u64,
    pub truncated: u64,
    pub buffered: u64,
}

#[derive(Debug, Default)]
struct Queues {
    by_source: [VecDeque<Record>; 3],
    records: usize,
    bytes: usize,
    closed: bool,
}

impl Queues {
    fn queue(&mut self, source: Source) -> &mut VecDeque<Record> {
        &mut self.by_source[source as usize]
    }

    /// Removes the oldest record of any source (by arrival time within each queue, by timestamp
    /// across queues).
    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .by_source
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.front().map(|r| (r.timestamp_ms, i)))
            .min();
        let Some((_, i)) = oldest else { return false };
        let r = self.by_source[i].pop_front().expect("front exists");
        self.records -= 1;
        self.bytes -= event_cost(&r.message);
        true
    }
}

/// Shared between producers ([`Buffer::push`]) and the one shipper task.
#[derive(Debug)]
pub struct Buffer {
    queues: Mutex<Queues>,
    bounds: Bounds,
    ready: Notify,
    stats: Arc<Stats>,
}

impl Buffer {
    pub fn new(bounds: Bounds) -> Arc<Self> {
        Arc::new(Buffer {
            queues: Mutex::default(),
            bounds,
            ready: Notify::new(),
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Queues a record without waiting; the oldest records make room when the buffer is full.
    pub fn push(&self, mut record: Record) {
        if truncate_to_event(&mut record.message) {
            self.stats.truncated.fetch_add(1, Ordering::Relaxed);
        }
        let cost = event_cost(&record.message);
        let mut q = self.lock();
        if q.closed {
            return;
        }
        while q.records > 0
            && (q.records + 1 > self.bounds.records || q.bytes + cost > self.bounds.bytes)
            && q.evict_oldest()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.records += 1;
        q.bytes += cost;
        q.queue(record.source).push_back(record);
        drop(q);
        self.ready.notify_one();
    }

    /// No more records will be accepted; the shipper drains what is left and stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Waits until there is something to ship or the buffer is closed.
    pub async fn ready(&self) {
        loop {
            let notified = self.ready.notified();
            {
                let q = self.lock();
                if q.records > 0 || q.closed {
                    return;
                }
            }
            notified.await;
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let buffered = self.lock().records as u64;
        StatsSnapshot {
            shipped: self.stats.shipped.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            truncated: self.stats.truncated.load(Ordering::Relaxed),
            buffered,
        }
    }

    /// Takes the next batch for one stream: the source whose oldest record is oldest, as many
    /// records as PutLogEvents accepts in one call, sorted by time (the API's requirement; the
    /// enclave's and the host's clocks may disagree by a little).
    pub fn take_batch(&self) -> Option<(Source, Vec<Record>)> {
        let mut q = self.lock();
        let source = Source::ALL
            .into_iter()
            .filter_map(|s| q.by_source[s as usize].front().map(|r| (r.timestamp_ms, s)))
            .min()?
            .1;
        let mut batch: Vec<Record> = Vec::new();
        let (mut bytes, mut lo, mut hi) = (0usize, i64::MAX, i64::MIN);
        while let Some(next) = q.queue(source).front() {
            let cost = event_cost(&next.message);
            let (nlo, nhi) = (lo.min(next.timestamp_ms), hi.max(next.timestamp_ms));
            let fits = batch.len() < MAX_BATCH_EVENTS
                && bytes + cost <= MAX_BATCH_BYTES
                && nhi - nlo <= MAX_BATCH_SPAN_MS;
            if !fits {
                break;
            }
            (bytes, lo, hi) = (bytes + cost, nlo, nhi);
            let r = q.queue(source).pop_front().expect("front exists");
            batch.push(r);
        }
        q.records -= batch.len();
        q.bytes -= bytes;
        drop(q);
        batch.sort_by_key(|r| r.timestamp_ms);
        Some((source, batch))
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A panic while holding this lock cannot leave the queues inconsistent in a way that
        // matters more than losing logs would, so poisoning is ignored.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{EVENT_OVERHEAD_BYTES, MAX_MESSAGE_BYTES};

    fn rec(ts: i64, source: Source, message: &str) -> Record {
        Record {
            timestamp_ms: ts,
            source,
            message: message.into(),
        }
    }

    fn big() -> Bounds {
        Bounds {
            records: 1_000_000,
            bytes: usize::MAX,
        }
    }

    #[test]
    fn full_buffer_drops_the_oldest_and_counts() {
        let b = Buffer::new(Bounds {
            records: 3,
            bytes: usize::MAX,
        });
        for i in 0..5 {
            b.push(rec(i, Source::Supervisor, &format!("line {i}")));
        }
        let s = b.snapshot();
        assert_eq!((s.buffered, s.dropped), (3, 2));
        let (_, batch) = b.take_batch().unwrap();
        let msgs: Vec<_> = batch.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(msgs, ["line 2", "line 3", "line 4"]);
    }

    #[test]
    fn byte_bound_counts_the_per_event_overhead() {
        let b = Buffer::new(Bounds {
            records: 100,
            bytes: 2 * (10 + EVENT_OVERHEAD_BYTES),
        });
        for i in 0..3 {
            b.push(rec(i, Source::Enclave, "0123456789"));
        }
        assert_eq!(b.snapshot().dropped, 1);
        assert_eq!(b.snapshot().buffered, 2);
    }

    #[test]
    fn batches_stop_at_ten_thousand_events() {
        let b = Buffer::new(big());
        for i in 0..10_001 {
            b.push(rec(i, Source::Enclave, "x"));
        }
        assert_eq!(b.take_batch().unwrap().1.len(), 10_000);
        assert_eq!(b.take_batch().unwrap().1.len(), 1);
        assert!(b.take_batch().is_none());
    }

    #[test]
    fn batches_stop_at_one_mebibyte_including_overhead() {
        let b = Buffer::new(big());
        let msg = "y".repeat(MAX_MESSAGE_BYTES);
        for i in 0..5 {
            b.push(rec(i, Source::Enclave, &msg));
        }
        let (_, first) = b.take_batch().unwrap();
        let bytes: usize = first.iter().map(|r| event_cost(&r.message)).sum();
        assert_eq!(first.len(), 4, "4 × 256 KiB is exactly 1 MiB");
        assert!(bytes <= MAX_BATCH_BYTES);
        assert_eq!(b.take_batch().unwrap().1.len(), 1);
    }

    #[test]
    fn batches_span_at_most_a_day_and_are_time_ordered() {
        let b = Buffer::new(big());
        b.push(rec(5_000, Source::Supervisor, "b"));
        b.push(rec(1_000, Source::Supervisor, "a"));
        b.push(rec(1_000 + MAX_BATCH_SPAN_MS + 1, Source::Supervisor, "c"));
        let (_, first) = b.take_batch().unwrap();
        let ts: Vec<_> = first.iter().map(|r| r.timestamp_ms).collect();
        assert_eq!(ts, [1_000, 5_000]);
        assert_eq!(b.take_batch().unwrap().1[0].message, "c");
    }

    #[test]
    fn one_batch_holds_one_source_and_the_oldest_source_goes_first() {
        let b = Buffer::new(big());
        b.push(rec(20, Source::Supervisor, "s"));
        b.push(rec(10, Source::Enclave, "e1"));
        b.push(rec(30, Source::Enclave, "e2"));
        let (src, batch) = b.take_batch().unwrap();
        assert_eq!(src, Source::Enclave);
        assert_eq!(batch.len(), 2);
        assert_eq!(b.take_batch().unwrap().0, Source::Supervisor);
    }

    #[test]
    fn oversize_records_are_truncated_and_counted() {
        let b = Buffer::new(big());
        b.push(rec(1, Source::Enclave, &"z".repeat(3 * MAX_MESSAGE_BYTES)));
        assert_eq!(b.snapshot().truncated, 1);
        let (_, batch) = b.take_batch().unwrap();
        assert!(batch[0].message.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn closed_buffer_refuses_new_records() {
        let b = Buffer::new(big());
        b.close();
        b.push(rec(1, Source::Enclave, "late"));
        assert!(b.is_empty());
        assert!(b.is_closed());
    }
}
