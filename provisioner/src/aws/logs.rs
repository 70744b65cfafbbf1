//! The deployment's CloudWatch Logs group: which streams exist, log events across streams in
//! time order, and the newest line of one stream (the latest health record). Stream names
//! are `<instance-id>/<source>` (see `cloudwatch_log_shipping::Source`).

use aws_sdk_cloudwatchlogs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudwatchlogs::types::OrderBy;
pub use cloudwatch_log_shipping::Source;

use super::{Aws, AwsError};

/// FilterLogEvents takes at most this many stream names per call.
const MAX_STREAM_NAMES: usize = 100;

/// One of the group's streams that belongs to the shipper's naming scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    pub instance_id: String,
    pub source: Source,
    /// Newest event's time (milliseconds), as CloudWatch reports it (eventually consistent).
    pub last_event_ms: Option<i64>,
}

/// One log line as `nitro-provision logs` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub event_id: String,
    pub timestamp_ms: i64,
    pub instance_id: String,
    pub source: Source,
    pub message: String,
}

/// Every stream of the group named `<instance-id>/<source>`; none when the group does not
/// exist (yet).
pub async fn streams(aws: &Aws, group: &str) -> Result<Vec<Stream>, AwsError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .logs
            .describe_log_streams()
            .log_group_name(group)
            .order_by(OrderBy::LastEventTime)
            .descending(true)
            .set_next_token(token.clone())
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) if is_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(AwsError::call("logs:DescribeLogStreams", e)),
        };
        for s in page.log_streams() {
            let Some(name) = s.log_stream_name() else {
                continue;
            };
            if let Some((instance, source)) = Source::from_stream_name(name) {
                out.push(Stream {
                    name: name.to_string(),
                    instance_id: instance.to_string(),
                    source,
                    last_event_ms: s.last_event_timestamp(),
                });
            }
        }
        let next = page.next_token().map(str::to_string);
        if next.is_none() || next == token {
            return Ok(out);
        }
        token = next;
    }
}

/// Events of `streams` from `start_ms` on (inclusive), oldest first; ties in stream order.
pub async fn events(
    aws: &Aws,
    group: &str,
    streams: &[Stream],
    start_ms: Option<i64>,
) -> Result<Vec<LogEvent>, AwsError> {
    let mut out = Vec::new();
    for chunk in streams.chunks(MAX_STREAM_NAMES) {
        let names: Vec<String> = chunk.iter().map(|s| s.name.clone()).collect();
        let mut token: Option<String> = None;
        loop {
            // `interleaved` is deprecated (the service always interleaves now); moto still
            // needs it to sort across streams.
            #[allow(deprecated)]
            let page = aws
                .logs
                .filter_log_events()
                .log_group_name(group)
                .set_log_stream_names(Some(names.clone()))
                .set_start_time(start_ms)
                .interleaved(true)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| AwsError::call("logs:FilterLogEvents", e))?;
            for e in page.events() {
                let stream = e.log_stream_name().unwrap_or_default();
                let Some((instance, source)) = Source::from_stream_name(stream) else {
                    continue;
                };
                out.push(LogEvent {
                    event_id: e.event_id().unwrap_or_default().to_string(),
                    timestamp_ms: e.timestamp().unwrap_or_default(),
                    instance_id: instance.to_string(),
                    source,
                    message: e.message().unwrap_or_default().to_string(),
                });
            }
            let next = page.next_token().map(str::to_string);
            if next.is_none() || next == token {
                break;
            }
            token = next;
        }
    }
    // Chunks are each in order; the merge is a stable sort.
    out.sort_by_key(|e| e.timestamp_ms);
    Ok(out)
}

/// The group or stream does not exist (yet): an answer, not an error, for a reader.
fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|c| c == "ResourceNotFoundException")
}

/// The newest line of `stream` and its time, or None when the stream is absent or empty.
pub async fn latest_line(
    aws: &Aws,
    group: &str,
    stream: &str,
) -> Result<Option<(i64, String)>, AwsError> {
    let page = aws
        .logs
        .get_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .start_from_head(false)
        .limit(1)
        .send()
        .await;
    let page = match page {
        Ok(p) => p,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(AwsError::call("logs:GetLogEvents", e)),
    };
    Ok(page.events().last().map(|e| {
        (
            e.timestamp().unwrap_or_default(),
            e.message().unwrap_or_default().to_string(),
        )
    }))
}
