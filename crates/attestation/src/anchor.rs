//! The trust anchor a document's chain must start from. Everything defaults to the pinned AWS
//! Nitro Enclaves Root-G1; another root (the NSM simulator's test root) is only ever used when a
//! caller names it explicitly, and [`TrustAnchor::is_aws`] lets reports say so.

use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::der::Decode;
use x509_cert::Certificate;

use crate::chain::AWS_NITRO_ROOT_G1_SHA256;
use crate::{parse_parts, Policy, VerifiedDocument, VerifyError};

/// A root certificate, pinned by the SHA-256 of its DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustAnchor {
    sha256: [u8; 32],
}

/// Why a root certificate cannot serve as an anchor.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AnchorError {
    #[error("no PEM CERTIFICATE block found")]
    NoCertificate,
    #[error("more than one certificate given; a trust anchor is exactly one root")]
    SeveralCertificates,
    #[error("not a valid PEM certificate: {0}")]
    Pem(String),
    #[error("not a valid X.509 certificate: {0}")]
    Certificate(String),
}

impl TrustAnchor {
    /// AWS Nitro Enclaves Root-G1, the default everywhere.
    pub const AWS_NITRO_ROOT_G1: TrustAnchor = TrustAnchor {
        sha256: AWS_NITRO_ROOT_G1_SHA256,
    };

    /// Pins a root given as DER (it must parse as a certificate).
    pub fn from_der(der: &[u8]) -> Result<Self, AnchorError> {
        Certificate::from_der(der).map_err(|e| AnchorError::Certificate(e.to_string()))?;
        Ok(Self {
            sha256: Sha256::digest(der).into(),
        })
    }

    /// Pins the single certificate of a PEM text.
    pub fn from_pem(text: &str) -> Result<Self, AnchorError> {
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        let start = text.find(BEGIN).ok_or(AnchorError::NoCertificate)?;
        if text[start + BEGIN.len()..].contains(BEGIN) {
            return Err(AnchorError::SeveralCertificates);
        }
        let (label, der) = x509_cert::der::pem::decode_vec(text[start..].trim_end().as_bytes())
            .map_err(|e| AnchorError::Pem(e.to_string()))?;
        if label != "CERTIFICATE" {
            return Err(AnchorError::NoCertificate);
        }
        Self::from_der(&der)
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// True only for AWS's root: anything else means the documents are not from real enclaves.
    pub fn is_aws(&self) -> bool {
        self.sha256 == AWS_NITRO_ROOT_G1_SHA256
    }
}

impl Default for TrustAnchor {
    fn default() -> Self {
        Self::AWS_NITRO_ROOT_G1
    }
}

/// [`crate::verify`] with an explicit trust anchor instead of the pinned AWS root.
pub fn verify_with_anchor(
    doc: &[u8],
    anchor: &TrustAnchor,
    policy: &Policy,
    at: std::time::SystemTime,
) -> Result<VerifiedDocument, VerifyError> {
    let (cose, document) = parse_parts(doc)?;
    let leaf_key = crate::chain::verify(&document.certificate, &document.cabundle, anchor, at)?;
    if !cose.verify(&leaf_key) {
        return Err(VerifyError::Signature);
    }
    policy.check(&document, at)?;
    Ok(VerifiedDocument {
        document,
        checked_at: at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS_ROOT_PEM: &str = include_str!("../tests/data/aws_nitro_root_g1.pem");

    #[test]
    fn the_aws_pem_is_the_pinned_root() {
        let anchor = TrustAnchor::from_pem(AWS_ROOT_PEM).expect("AWS root parses");
        assert!(anchor.is_aws());
        assert_eq!(anchor, TrustAnchor::default());
    }

    #[test]
    fn rejects_non_certificates_and_bundles() {
        assert_eq!(
            TrustAnchor::from_pem("hello"),
            Err(AnchorError::NoCertificate)
        );
        let two = format!("{AWS_ROOT_PEM}\n{AWS_ROOT_PEM}");
        assert_eq!(
            TrustAnchor::from_pem(&two),
            Err(AnchorError::SeveralCertificates)
        );
        assert!(matches!(
            TrustAnchor::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]),
            Err(AnchorError::Certificate(_))
        ));
    }
}
