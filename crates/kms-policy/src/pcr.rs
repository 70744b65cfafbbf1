//! PCR values as KMS compares them, and PCR3/PCR4 as AWS derives them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha384};

/// Length of a SHA-384 PCR in bytes; KMS condition values are its 96-char hex form.
pub const PCR_LEN: usize = 48;

/// Highest PCR index an attestation document (and so `kms:RecipientAttestation:PCR<n>`) can carry.
pub const MAX_PCR_INDEX: u8 = 31;

/// Why a string is not a PCR value KMS would match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcrError {
    #[error("PCR value must be 96 hex characters, got {0}")]
    Length(usize),
    #[error("PCR value must be lowercase hex (KMS documents lowercase, no 0x prefix): {0:?}")]
    NotLowercaseHex(String),
    #[error("PCR index {0} is out of range 0..=31")]
    Index(u32),
}

/// One SHA-384 PCR register value.
///
/// Only 96 lowercase hex characters parse: that is the form KMS documents for the
/// `kms:RecipientAttestation:PCR<n>` condition keys, and anything else either never
/// matches (case-sensitive operators, `0x` prefixes) or hides a typo.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PcrValue([u8; PCR_LEN]);

impl PcrValue {
    /// The register value debug-mode enclaves report for PCR0/1/2 (and PCR8).
    pub const ZERO: PcrValue = PcrValue([0; PCR_LEN]);

    pub const fn from_bytes(bytes: [u8; PCR_LEN]) -> Self {
        PcrValue(bytes)
    }

    /// All-zero registers mean a debug-mode enclave, whose memory the parent can read.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; PCR_LEN]
    }

    /// Lowercase hex, the form written into key policies.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for PcrValue {
    type Err = PcrError;

    fn from_str(s: &str) -> Result<Self, PcrError> {
        if s.len() != PCR_LEN * 2 {
            return Err(PcrError::Length(s.len()));
        }
        if !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(PcrError::NotLowercaseHex(s.to_owned()));
        }
        let mut bytes = [0; PCR_LEN];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| PcrError::NotLowercaseHex(s.to_owned()))?;
        Ok(PcrValue(bytes))
    }
}

impl fmt::Display for PcrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PcrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PcrValue({})", self.to_hex())
    }
}

/// A PCR register number, 0..=31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PcrIndex(u8);

impl PcrIndex {
    /// The EIF image register, which KMS also exposes as `ImageSha384`.
    pub const PCR0: PcrIndex = PcrIndex(0);

    pub fn new(index: u32) -> Result<Self, PcrError> {
        u8::try_from(index)
            .ok()
            .filter(|i| *i <= MAX_PCR_INDEX)
            .map(PcrIndex)
            .ok_or(PcrError::Index(index))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for PcrIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The registers of one enclave (from an attestation document or a build's measurements).
pub type PcrSet = BTreeMap<PcrIndex, PcrValue>;

/// PCR3 for an enclave whose parent instance has the IAM role `role_arn`.
///
/// AWS, Nitro Enclaves User Guide, "Where to get an enclave's measurements" (PCR3):
/// `sha384(b'\0' * 48 + role_arn.encode('utf-8'))` — one SHA-384 over 48 zero bytes
/// followed by the ARN itself (not over a hash of the ARN). Its example,
/// `arn:aws:iam::123456789012:role/Webserver` → `78fce75d…6921e6`, is a unit test.
pub fn pcr3_for_role_arn(role_arn: &str) -> PcrValue {
    extend_zero(role_arn)
}

/// PCR4 for an enclave whose parent instance is `instance_id`.
///
/// Same formula and source as [`pcr3_for_role_arn`] (section "PCR4"); the guide's example
/// `i-1234567890abcdef0` → `08f996b5…e79ce0` is a unit test.
pub fn pcr4_for_instance_id(instance_id: &str) -> PcrValue {
    extend_zero(instance_id)
}

fn extend_zero(input: &str) -> PcrValue {
    let mut hasher = Sha384::new();
    hasher.update([0u8; PCR_LEN]);
    hasher.update(input.as_bytes());
    PcrValue(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr3_matches_the_user_guide_example() {
        assert_eq!(
            pcr3_for_role_arn("arn:aws:iam::123456789012:role/Webserver").to_hex(),
            "78fce75db17cd4e0a3fb8dad3ad128ca5e77edbb2b2c7f75329dccd99aa5f6ef4fc1f1a452e315b9e98f9e312e6921e6"
        );
    }

    #[test]
    fn pcr4_matches_the_user_guide_example() {
        assert_eq!(
            pcr4_for_instance_id("i-1234567890abcdef0").to_hex(),
            "08f996b5d43e047a9eb51e7f548bfee7e164fd7dc8f65541f2ac09d6545ac812719327281c401a67a10fcba87ae79ce0"
        );
    }

    #[test]
    fn only_lowercase_96_hex_parses() {
        let good = "ab".repeat(48);
        assert_eq!(
            good.parse::<PcrValue>().map(|p| p.to_hex()),
            Ok(good.clone())
        );
        assert_eq!("ab".parse::<PcrValue>(), Err(PcrError::Length(2)));
        assert!(matches!(
            good.to_uppercase().parse::<PcrValue>(),
            Err(PcrError::NotLowercaseHex(_))
        ));
        let prefixed = format!("0x{}", &good[2..]);
        assert!(matches!(
            prefixed.parse::<PcrValue>(),
            Err(PcrError::NotLowercaseHex(_))
        ));
        assert!("0"
            .repeat(96)
            .parse::<PcrValue>()
            .is_ok_and(|p| p.is_zero()));
    }

    #[test]
    fn index_range() {
        assert!(PcrIndex::new(31).is_ok());
        assert_eq!(PcrIndex::new(32), Err(PcrError::Index(32)));
    }
}
