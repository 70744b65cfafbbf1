//! What producers hand the shipper: one line with its time and where it came from.

/// Where a record came from; each source gets its own stream (`<instance-id>/<source>`), so
/// `nitro-provision logs --source` is a stream-name filter, not a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Lines the enclave sent over the link's log service.
    Enclave,
    /// The supervisor's own tracing output.
    Supervisor,
    /// Health records (Embedded Metric Format); `status` reads the newest one.
    Health,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Enclave, Source::Supervisor, Source::Health];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Enclave => "enclave",
            Source::Supervisor => "supervisor",
            Source::Health => "health",
        }
    }

    /// The stream for this source on `instance_id`.
    pub fn stream_name(self, instance_id: &str) -> String {
        format!("{instance_id}/{}", self.as_str())
    }

    /// The source a stream name belongs to, if it is one of ours.
    pub fn from_stream_name(stream: &str) -> Option<(&str, Source)> {
        let (instance, source) = stream.rsplit_once('/')?;
        let source = Source::ALL.into_iter().find(|s| s.as_str() == source)?;
        Some((instance, source))
    }
}

/// One log line. `timestamp_ms` is milliseconds since the Unix epoch, as CloudWatch wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub timestamp_ms: i64,
    pub source: Source,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_round_trip() {
        for s in Source::ALL {
            let name = s.stream_name("i-0123456789abcdef0");
            assert_eq!(
                Source::from_stream_name(&name),
                Some(("i-0123456789abcdef0", s))
            );
        }
        assert_eq!(Source::from_stream_name("i-1/other"), None);
        assert_eq!(Source::from_stream_name("no-slash"), None);
    }
}
