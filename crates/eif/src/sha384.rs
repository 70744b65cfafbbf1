//! The SHA-384 behind every PCR, the largest share of a build's CPU time (42% in a profile).
//! The default is pure-Rust `sha2` (AVX2 on x86-64); the `aws-lc` feature swaps in AWS-LC for
//! hosts where its assembly is faster. On the project's VMs AWS-LC runs its generic
//! `sha512_block_data_order_nohw` path and measures no faster, so the CLI does not enable it.

/// An incremental SHA-384.
#[derive(Clone)]
pub(crate) struct Sha384(Inner);

#[cfg(feature = "aws-lc")]
type Inner = aws_lc_rs::digest::Context;
#[cfg(not(feature = "aws-lc"))]
type Inner = sha2::Sha384;

impl Default for Sha384 {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        let inner = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA384);
        #[cfg(not(feature = "aws-lc"))]
        let inner = <sha2::Sha384 as sha2::Digest>::new();
        Sha384(inner)
    }
}

impl Sha384 {
    pub fn update(&mut self, data: &[u8]) {
        #[cfg(feature = "aws-lc")]
        self.0.update(data);
        #[cfg(not(feature = "aws-lc"))]
        sha2::Digest::update(&mut self.0, data);
    }

    pub fn finalize(self) -> [u8; 48] {
        let mut out = [0u8; 48];
        #[cfg(feature = "aws-lc")]
        out.copy_from_slice(self.0.finish().as_ref());
        #[cfg(not(feature = "aws-lc"))]
        out.copy_from_slice(&sha2::Digest::finalize(self.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whichever backend is compiled in must give the pure-Rust digests; the test runs under
    /// both `cargo test -p nitro-eif` and `--features aws-lc`.
    #[test]
    fn backend_digest_equals_pure_rust_sha2() {
        use sha2::Digest;
        let data: Vec<u8> = (0..300_001u32).map(|i| (i * 131 % 251) as u8).collect();
        for len in [0, 1, 111, 112, 127, 128, 129, 4096, data.len()] {
            let mut h = Sha384::default();
            // Uneven pieces across block boundaries.
            let (a, b) = data[..len].split_at(len / 3);
            h.update(a);
            h.update(b);
            assert_eq!(
                h.finalize()[..],
                sha2::Sha384::digest(&data[..len])[..],
                "len {len}"
            );
        }
    }
}
