//! Jittered exponential backoff for reconnecting clients.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Doubles from `min` to `max`, each delay drawn from 80–120 % of the nominal one so that many
/// clients (or a reboot loop) do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The next delay; the nominal delay doubles after each call.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.current;
        self.current = (self.current * 2).min(self.max);
        nominal.mul_f64(0.8 + 0.4 * unit_random())
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// A number in [0, 1): std's `RandomState` is keyed from OS randomness and differs on every
/// call, which is all jitter needs (no RNG dependency inside the enclave).
fn unit_random() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x6a09_e667_f3bc_c908);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_up_to_the_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut nominal = 100.0;
        for _ in 0..10 {
            let d = b.next_delay().as_secs_f64() * 1000.0;
            assert!(
                d >= nominal * 0.8 - 1e-6 && d <= nominal * 1.2 + 1e-6,
                "{d} vs {nominal}"
            );
            nominal = (nominal * 2.0f64).min(5000.0);
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(120));
    }
}
