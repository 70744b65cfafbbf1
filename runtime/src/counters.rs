//! The runtime's counters, named as Simple Enclave names them so dashboards carry over; relayed
//! to the supervisor over the control channel.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Monotonic since the runtime started.
        #[derive(Debug, Default)]
        pub struct Counters {
            $(pub $name: AtomicU64,)*
        }

        impl Counters {
            /// Every counter by name, for the control channel.
            pub fn snapshot(&self) -> BTreeMap<String, u64> {
                BTreeMap::from([
                    $((stringify!($name).to_string(), self.$name.load(Ordering::Relaxed)),)*
                ])
            }
        }
    };
}

counters!(
    http_requests,
    http_errors,
    kms_operations,
    kms_errors,
    storage_reads,
    storage_writes,
    storage_deletes,
    storage_errors,
    secret_reads,
    secret_writes,
    secret_deletes,
);

/// Adds one.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_match_simple_enclave() {
        let c = Counters::default();
        inc(&c.kms_operations);
        inc(&c.kms_operations);
        let s = c.snapshot();
        assert_eq!(s["kms_operations"], 2);
        assert_eq!(s["storage_errors"], 0);
        assert_eq!(s.len(), 11);
    }
}
