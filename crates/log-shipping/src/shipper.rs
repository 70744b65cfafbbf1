//! The one task that moves records from the [`Buffer`] to CloudWatch Logs.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::error::{DisplayErrorContext, SdkError};
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_sdk_cloudwatchlogs::Client;
use enclave_link::Backoff;

use crate::buffer::Buffer;
use crate::clock::Clock;
use crate::record::{Record, Source};

/// Where to ship and how patiently.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub log_group: String,
    pub instance_id: String,
    /// How long to wait after the first record before sending, so that bursts share a call.
    pub linger: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Attempts left after [`Buffer::close`] before the rest is given up.
    pub shutdown_attempts: u32,
}

impl ShipperConfig {
    pub fn new(log_group: impl Into<String>, instance_id: impl Into<String>) -> Self {
        ShipperConfig {
            log_group: log_group.into(),
            instance_id: instance_id.into(),
            linger: Duration::from_secs(1),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(60),
            shutdown_attempts: 3,
        }
    }
}

/// CloudWatch Logs could not take the batch now; it stays pending and is sent first next time.
#[derive(Debug, thiserror::Error)]
#[error("CloudWatch Logs: {0}")]
pub struct Unavailable(String);

pub struct Shipper {
    client: Client,
    buffer: Arc<Buffer>,
    config: ShipperConfig,
    clock: Arc<dyn Clock>,
    created: HashSet<Source>,
    pending: Option<(Source, Vec<Record>)>,
}

/// What a send did with a batch it did not leave pending.
enum Sent {
    Accepted { rejected: usize },
    Refused(String),
}

impl Shipper {
    /// `client` should have the SDK's own retries off: the shipper retries, with the records
    /// kept, and an SDK retry loop would only hold the batch longer.
    pub fn new(
        client: Client,
        buffer: Arc<Buffer>,
        config: ShipperConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Shipper {
            client,
            buffer,
            config,
            clock,
            created: HashSet::new(),
            pending: None,
        }
    }

    /// Sends everything buffered now, batch by batch. On a transient failure the batch in hand
    /// stays pending (it is not counted against the buffer's bound) and the error is returned.
    pub async fn flush(&mut self) -> Result<(), Unavailable> {
        loop {
            let (source, records) = match self.pending.take() {
                Some(p) => p,
                None => match self.buffer.take_batch() {
                    Some(b) => b,
                    None => return Ok(()),
                },
            };
            match self.send(source, &records).await {
                Ok(Sent::Accepted { rejected }) => self.count(records.len(), rejected),
                Ok(Sent::Refused(why)) => {
                    tracing::warn!(
                        records = records.len(),
                        stream = %source.stream_name(&self.config.instance_id),
                        "CloudWatch Logs refused a batch: {why}"
                    );
                    self.count(0, records.len());
                }
                Err(e) => {
                    self.pending = Some((source, records));
                    return Err(e);
                }
            }
        }
    }

    /// Ships until the buffer is closed and drained, retrying with jittered exponential
    /// backoff. After the close it makes `shutdown_attempts` more tries, then gives up.
    pub async fn run(mut self) {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut failing = false;
        let mut attempts_after_close = 0;
        loop {
            if self.pending.is_none() {
                self.buffer.ready().await;
            }
            let closed = self.buffer.is_closed();
            if !closed && !failing {
                self.clock.sleep(self.config.linger).await;
            }
            match self.flush().await {
                Ok(()) => {
                    if failing {
                        tracing::info!("CloudWatch Logs reachable again");
                    }
                    failing = false;
                    backoff.reset();
                    if closed {
                        return;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("log shipping paused, records are buffered: {e}");
                    }
                    failing = true;
                    if closed {
                        attempts_after_close += 1;
                        if attempts_after_close >= self.config.shutdown_attempts {
                            tracing::warn!(
                                buffered = self.buffer.snapshot().buffered,
                                "giving up on log shipping at shutdown"
                            );
                            return;
                        }
                    }
                    self.clock.sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    fn count(&self, total: usize, rejected: usize) {
        let stats = self.buffer.stats();
        stats
            .shipped
            .fetch_add((total - rejected) as u64, Ordering::Relaxed);
        stats.rejected.fetch_add(rejected as u64, Ordering::Relaxed);
    }

    /// One PutLogEvents, creating the stream first when this shipper has not seen it (or
    /// CloudWatch says it is gone, e.g. someone deleted it).
    async fn send(&mut self, source: Source, records: &[Record]) -> Result<Sent, Unavailable> {
        let stream = source.stream_name(&self.config.instance_id);
        for _ in 0..2 {
            if !self.created.contains(&source) {
                self.create_stream(&stream).await?;
                self.created.insert(source);
            }
            let events = records
                .iter()
                .map(|r| {
                    InputLogEvent::builder()
                        .timestamp(r.timestamp_ms)
                        .message(&r.message)
                        .build()
                        .expect("timestamp and message are set")
                })
                .collect();
            let result = self
                .client
                .put_log_events()
                .log_group_name(&self.config.log_group)
                .log_stream_name(&stream)
                .set_log_events(Some(events))
                .send()
                .await;
            match result {
                Ok(out) => {
                    return Ok(Sent::Accepted {
                        rejected: rejected_count(&out, records.len()),
                    })
                }
                Err(e) => {
                    let service = e.as_service_error();
                    if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                        self.created.remove(&source);
                        continue;
                    }
                    if service.is_some_and(|s| s.is_data_already_accepted_exception()) {
                        return Ok(Sent::Accepted { rejected: 0 });
                    }
                    if service.is_some_and(|s| s.is_invalid_parameter_exception()) {
                        return Ok(Sent::Refused(DisplayErrorContext(&e).to_string()));
                    }
                    return Err(unavailable(&e));
                }
            }
        }
        Err(Unavailable(format!(
            "log stream {stream} disappeared right after it was created"
        )))
    }

    async fn create_stream(&self, stream: &str) -> Result<(), Unavailable> {
        let result = self
            .client
            .create_log_stream()
            .log_group_name(&self.config.log_group)
            .log_stream_name(stream)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_resource_already_exists_exception()) {
                    return Ok(());
                }
                if service.is_some_and(|s| s.is_resource_not_found_exception()) {
                    return Err(Unavailable(format!(
                        "log group {} does not exist",
                        self.config.log_group
                    )));
                }
                Err(unavailable(&e))
            }
        }
    }
}

fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> Unavailable {
    Unavailable(DisplayErrorContext(e).to_string())
}

/// How many of `total` events CloudWatch set aside (too old, expired, too far in the future).
fn rejected_count(out: &PutLogEventsOutput, total: usize) -> usize {
    let Some(info) = out.rejected_log_events_info() else {
        return 0;
    };
    let index = |i: Option<i32>| i.map(|i| i.max(0) as usize);
    // The *EndIndex values name the last rejected event at the front; the StartIndex the first
    // rejected event at the back.
    let front = index(info.too_old_log_event_end_index())
        .max(index(info.expired_log_event_end_index()))
        .map_or(0, |i| i + 1);
    let back = index(info.too_new_log_event_start_index()).map_or(0, |i| total.saturating_sub(i));
    (front + back).min(total)
}
