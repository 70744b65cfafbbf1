//! Restart delays: exponential from the minimum to the maximum, with ±20 % jitter so that a
//! fleet of hosts that lost their enclaves at once does not retry in lockstep.

use std::time::Duration;

/// The jitter source: SplitMix64, seeded from the OS in production and fixed in tests.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(seed: u64) -> Self {
        Jitter(seed)
    }

    /// Seeded from /dev/urandom (falls back to the clock and pid).
    pub fn from_os() -> Self {
        use std::io::Read;
        let mut b = [0u8; 8];
        let seed = match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b))
        {
            Ok(()) => u64::from_le_bytes(b),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                t ^ u64::from(std::process::id()).rotate_left(32)
            }
        };
        Jitter(seed)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    jitter: Jitter,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, jitter: Jitter) -> Self {
        Backoff { min, max, jitter }
    }

    /// The un-jittered delay after `failures` consecutive failures: 0 for none, then min,
    /// 2·min, 4·min, … up to max.
    pub fn base(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay to wait: the base ±20 %, never above the configured maximum.
    pub fn delay(&mut self, failures: u32) -> Duration {
        let base = self.base(failures);
        base.mul_f64(0.8 + 0.4 * self.jitter.unit()).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_maximum_within_the_jitter() {
        let mut b = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Jitter::seeded(7),
        );
        assert_eq!(b.delay(0), Duration::ZERO);
        let bases: Vec<u64> = (1..=7).map(|n| b.base(n).as_secs()).collect();
        assert_eq!(bases, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.base(200), Duration::from_secs(30), "no overflow");
        let (mut lo, mut hi) = (f64::MAX, 0f64);
        for _ in 0..2000 {
            let d = b.delay(3).as_secs_f64();
            assert!((3.2..=4.8).contains(&d), "{d}");
            lo = lo.min(d);
            hi = hi.max(d);
            assert!(b.delay(10) <= Duration::from_secs(30));
            assert!(b.delay(10) >= Duration::from_secs(24));
        }
        assert!(lo < 3.3 && hi > 4.7, "jitter spans ±20 %: {lo}..{hi}");
    }
}
