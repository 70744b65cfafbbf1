//! What a verifier expects of a correctly signed document.
//!
//! A valid AWS signature only proves that *some* enclave produced the document. The policy
//! pins *which* enclave (PCRs), *when* (nonce and maximum age; the certificate chain's
//! validity window is not a freshness check) and refuses debug-mode enclaves, whose memory
//! the parent instance can read, unless explicitly allowed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::document::AttestationDocument;
use crate::report::rfc3339;

/// How far the document's timestamp may lie ahead of the check time (NSM and verifier
/// clocks are independent).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Expectations checked after the signature and chain; the default expects nothing beyond
/// a non-debug document that is not from the future.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Required PCR values by index (0–31), e.g. from `measurements.json` or `--pcr N=HEX`.
    pub expected_pcrs: BTreeMap<u8, Vec<u8>>,
    /// The verifier's challenge; the document must carry exactly these bytes.
    pub nonce: Option<Vec<u8>>,
    /// Maximum `check time − document timestamp`.
    pub max_age: Option<Duration>,
    /// Accept documents whose PCR0, PCR1 and PCR2 are all zero.
    pub allow_debug: bool,
    pub user_data: Option<Vec<u8>>,
    pub public_key: Option<Vec<u8>>,
}

/// The policy check that failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("document is from a debug-mode enclave (PCR0, PCR1 and PCR2 are all zero)")]
    DebugMode,
    #[error("document lacks PCR{0}")]
    PcrMissing(u8),
    #[error("PCR{index} is {actual}, expected {expected}")]
    PcrMismatch {
        index: u8,
        expected: String,
        actual: String,
    },
    #[error("document has no {0}, but one is expected")]
    FieldMissing(&'static str),
    #[error("document {0} does not match the expected value")]
    FieldMismatch(&'static str),
    #[error("document is {} old, more than the allowed {}", humantime::format_duration(*.age), humantime::format_duration(*.max_age))]
    TooOld { age: Duration, max_age: Duration },
    #[error("document timestamp {} is after the check time {}", rfc3339(*.timestamp), rfc3339(*.at))]
    FromTheFuture {
        timestamp: SystemTime,
        at: SystemTime,
    },
}

impl Policy {
    /// Checks `doc` against the policy at check time `at`.
    pub fn check(&self, doc: &AttestationDocument, at: SystemTime) -> Result<(), PolicyError> {
        if doc.is_debug() && !self.allow_debug {
            return Err(PolicyError::DebugMode);
        }
        for (&index, expected) in &self.expected_pcrs {
            let actual = doc.pcrs.get(&index).ok_or(PolicyError::PcrMissing(index))?;
            if !bool::from(actual.ct_eq(expected)) {
                return Err(PolicyError::PcrMismatch {
                    index,
                    expected: hex::encode(expected),
                    actual: hex::encode(actual),
                });
            }
        }
        check_field("nonce", self.nonce.as_deref(), doc.nonce.as_deref())?;
        check_field(
            "user_data",
            self.user_data.as_deref(),
            doc.user_data.as_deref(),
        )?;
        check_field(
            "public_key",
            self.public_key.as_deref(),
            doc.public_key.as_deref(),
        )?;
        self.check_age(doc, at)
    }

    fn check_age(&self, doc: &AttestationDocument, at: SystemTime) -> Result<(), PolicyError> {
        let timestamp = UNIX_EPOCH + Duration::from_millis(doc.timestamp_ms);
        match at.duration_since(timestamp) {
            Ok(age) => match self.max_age {
                Some(max_age) if age > max_age => Err(PolicyError::TooOld { age, max_age }),
                _ => Ok(()),
            },
            Err(ahead) if ahead.duration() > MAX_CLOCK_SKEW => {
                Err(PolicyError::FromTheFuture { timestamp, at })
            }
            Err(_) => Ok(()),
        }
    }
}

fn check_field(
    name: &'static str,
    expected: Option<&[u8]>,
    actual: Option<&[u8]>,
) -> Result<(), PolicyError> {
    match (expected, actual) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(PolicyError::FieldMissing(name)),
        (Some(expected), Some(actual)) if bool::from(expected.ct_eq(actual)) => Ok(()),
        (Some(_), Some(_)) => Err(PolicyError::FieldMismatch(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pcr0: u8) -> AttestationDocument {
        AttestationDocument {
            module_id: "i-1".into(),
            timestamp_ms: 1_000_000,
            pcrs: (0..3).map(|i| (i, vec![pcr0; 48])).collect(),
            certificate: vec![],
            cabundle: vec![],
            public_key: None,
            user_data: Some(b"hello".to_vec()),
            nonce: None,
        }
    }

    fn at_ms(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn debug_documents_need_explicit_permission() {
        let debug = doc(0);
        assert_eq!(
            Policy::default().check(&debug, at_ms(1_000_000)),
            Err(PolicyError::DebugMode)
        );
        let allow = Policy {
            allow_debug: true,
            ..Policy::default()
        };
        assert_eq!(allow.check(&debug, at_ms(1_000_000)), Ok(()));
        assert_eq!(Policy::default().check(&doc(1), at_ms(1_000_000)), Ok(()));
    }

    #[test]
    fn pcrs_must_be_present_and_equal() {
        let policy = |index, value: Vec<u8>| Policy {
            expected_pcrs: BTreeMap::from([(index, value)]),
            ..Policy::default()
        };
        let d = doc(1);
        assert_eq!(policy(2, vec![1; 48]).check(&d, at_ms(1_000_000)), Ok(()));
        assert_eq!(
            policy(31, vec![1; 48]).check(&d, at_ms(1_000_000)),
            Err(PolicyError::PcrMissing(31))
        );
        assert!(matches!(
            policy(0, vec![2; 48]).check(&d, at_ms(1_000_000)),
            Err(PolicyError::PcrMismatch { index: 0, .. })
        ));
        // A prefix of the right value is not a match.
        assert!(matches!(
            policy(0, vec![1; 32]).check(&d, at_ms(1_000_000)),
            Err(PolicyError::PcrMismatch { index: 0, .. })
        ));
    }

    #[test]
    fn optional_fields_are_bound_when_expected() {
        let d = doc(1);
        let nonce = Policy {
            nonce: Some(b"n".to_vec()),
            ..Policy::default()
        };
        assert_eq!(
            nonce.check(&d, at_ms(1_000_000)),
            Err(PolicyError::FieldMissing("nonce"))
        );
        let user_data = |v: &[u8]| Policy {
            user_data: Some(v.to_vec()),
            ..Policy::default()
        };
        assert_eq!(user_data(b"hello").check(&d, at_ms(1_000_000)), Ok(()));
        assert_eq!(
            user_data(b"hellO").check(&d, at_ms(1_000_000)),
            Err(PolicyError::FieldMismatch("user_data"))
        );
    }

    #[test]
    fn age_is_measured_from_the_document_timestamp() {
        let d = doc(1);
        let policy = Policy {
            max_age: Some(Duration::from_secs(300)),
            ..Policy::default()
        };
        assert_eq!(policy.check(&d, at_ms(1_000_000 + 300_000)), Ok(()));
        assert_eq!(
            policy.check(&d, at_ms(1_000_000 + 300_001)),
            Err(PolicyError::TooOld {
                age: Duration::from_millis(300_001),
                max_age: Duration::from_secs(300)
            })
        );
        assert_eq!(policy.check(&d, at_ms(1_000_000 - 60_000)), Ok(()));
        assert!(matches!(
            Policy::default().check(&d, at_ms(1_000_000 - 60_001)),
            Err(PolicyError::FromTheFuture { .. })
        ));
    }
}
