//! CloudWatch Logs shipping for `enclave-supervisor`: its own tracing output and the enclave's
//! lines (from the link's log service) go to the stack's log group, one stream per instance and
//! source. Producers call [`Buffer::push`], which never waits; one [`Shipper`] task sends
//! PutLogEvents batches within the API's limits and keeps records through outages up to the
//! buffer's bound, counting what it had to drop.

mod buffer;
mod clock;
mod limits;
mod record;
mod shipper;

pub use buffer::{Bounds, Buffer, Stats, StatsSnapshot};
pub use clock::{Clock, Sleep, TokioClock};
pub use limits::{
    EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS, MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
};
pub use record::{Record, Source};
pub use shipper::{Shipper, ShipperConfig, Unavailable};
