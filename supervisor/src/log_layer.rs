//! A `tracing` layer that copies every event (the supervisor's own and the enclave's, which
//! the log service re-logs with target `enclave`) into the CloudWatch shipping buffer as one
//! JSON line. Pushing never waits: the buffer is bounded and drops its oldest records.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cloudwatch_log_shipping::{Buffer, Record, Source};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

pub struct ShippingLayer {
    buffer: Arc<Buffer>,
}

impl ShippingLayer {
    pub fn new(buffer: Arc<Buffer>) -> Self {
        ShippingLayer { buffer }
    }
}

/// The target the log service re-logs enclave records under.
const ENCLAVE_TARGET: &str = "enclave";

impl<S: Subscriber> Layer<S> for ShippingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // The SDK's own events while shipping would feed back into the buffer.
        if meta.target().starts_with("aws_") || meta.target().starts_with("hyper") {
            return;
        }
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut line = fields.0;
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let source = if meta.target() == ENCLAVE_TARGET {
            Source::Enclave
        } else {
            Source::Supervisor
        };
        self.buffer.push(Record {
            timestamp_ms: now_ms(),
            source,
            message: Value::Object(line).to_string(),
        });
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
