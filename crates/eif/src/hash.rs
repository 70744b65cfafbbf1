//! SHA-384 and SHA-256 of the build's hot paths (PCRs, layer digests, input files), from one of
//! two backends with identical results:
//! - pure Rust (`sha2`), always compiled: nitro-eif builds without a C compiler;
//! - AWS-LC's assembly (`aws-lc-rs`), with the `aws-lc` feature: measured faster for SHA-384
//!   (see the crate's benchmark), and already linked into `nitro-provision` by the AWS SDK.
//!
//! Signing keeps `sha2` (it hashes a few bytes, through the `ecdsa` traits).

use std::io;

/// The pure-Rust implementation, also the reference the other backend is tested against.
pub mod pure {
    use sha2::Digest;

    #[derive(Clone, Default)]
    pub struct Sha384(sha2::Sha384);

    #[derive(Clone, Default)]
    pub struct Sha256(sha2::Sha256);

    impl Sha384 {
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        pub fn finalize(self) -> [u8; 48] {
            self.0.finalize().into()
        }
    }

    impl Sha256 {
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        pub fn finalize(self) -> [u8; 32] {
            self.0.finalize().into()
        }
    }
}

/// AWS-LC's implementation (assembly for SHA-NI, AVX2, …, selected at run time).
#[cfg(feature = "aws-lc")]
pub mod aws_lc {
    use aws_lc_rs::digest::{Context, SHA256, SHA384};

    #[derive(Clone)]
    pub struct Sha384(Context);

    #[derive(Clone)]
    pub struct Sha256(Context);

    impl Default for Sha384 {
        fn default() -> Self {
            Sha384(Context::new(&SHA384))
        }
    }

    impl Default for Sha256 {
        fn default() -> Self {
            Sha256(Context::new(&SHA256))
        }
    }

    fn bytes<const N: usize>(c: Context) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(c.finish().as_ref());
        out
    }

    impl Sha384 {
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        pub fn finalize(self) -> [u8; 48] {
            bytes(self.0)
        }
    }

    impl Sha256 {
        pub fn update(&mut self, data: &[u8]) {
            self.0.update(data);
        }
        pub fn finalize(self) -> [u8; 32] {
            bytes(self.0)
        }
    }
}

#[cfg(feature = "aws-lc")]
use aws_lc as backend;
#[cfg(not(feature = "aws-lc"))]
use pure as backend;

/// The backend this build uses, for benchmarks and logs.
pub const BACKEND: &str = if cfg!(feature = "aws-lc") {
    "aws-lc"
} else {
    "sha2 (pure Rust)"
};

/// SHA-384 of the selected backend.
#[derive(Clone, Default)]
pub struct Sha384(backend::Sha384);

/// SHA-256 of the selected backend.
#[derive(Clone, Default)]
pub struct Sha256(backend::Sha256);

impl Sha384 {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finalize(self) -> [u8; 48] {
        self.0.finalize()
    }
    pub fn digest(data: &[u8]) -> [u8; 48] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

impl Sha256 {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finalize(self) -> [u8; 32] {
        self.0.finalize()
    }
    pub fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

impl io::Write for Sha384 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Write for Sha256 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, feature = "aws-lc"))]
mod tests {
    use super::{aws_lc, pure};

    /// Both backends agree on every length around the block sizes (64 and 128 bytes), on
    /// split updates, and on a large input.
    #[test]
    fn both_backends_give_identical_digests() {
        let data: Vec<u8> = (0..(3 << 20) + 77).map(|i| (i * 131 % 251) as u8).collect();
        let mut lengths: Vec<usize> = (0..=300).collect();
        lengths.extend([1 << 16, (1 << 20) + 1, data.len()]);
        for n in lengths {
            let input = &data[..n];
            let (mut a, mut b) = (pure::Sha384::default(), aws_lc::Sha384::default());
            let (mut c, mut d) = (pure::Sha256::default(), aws_lc::Sha256::default());
            // Split at an odd point: the backends buffer partial blocks differently.
            let (x, y) = input.split_at(n / 3);
            for part in [x, y] {
                a.update(part);
                b.update(part);
                c.update(part);
                d.update(part);
            }
            assert_eq!(a.finalize(), b.finalize(), "SHA-384 of {n} bytes");
            assert_eq!(c.finalize(), d.finalize(), "SHA-256 of {n} bytes");
        }
    }
}
