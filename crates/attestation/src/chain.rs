//! Certificate path validation from the document's leaf to the pinned AWS root.
//!
//! The path is `cabundle[0] → cabundle[1] → … → cabundle[N] → certificate`, where
//! `cabundle[0]` must hash to the pinned AWS root fingerprint: a bundle can carry any root,
//! so it is never trusted on its own. Every link must be ECDSA P-384 / SHA-384 (the only
//! algorithm the Nitro PKI uses, matching the ES384 document signature), every certificate
//! must be valid at the check time, CAs need basicConstraints `cA` and keyUsage
//! `keyCertSign` within their path length, and the leaf needs `digitalSignature`.
//! Revocation is not checked: AWS's validation procedure disables CRLs.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::oid::db::rfc5912::{ECDSA_WITH_SHA_384, ID_EC_PUBLIC_KEY, SECP_384_R_1};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Header, Reader, SliceReader, Tag};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::{Certificate, Version};

use crate::anchor::TrustAnchor;
use crate::report::rfc3339;

/// SHA-256 of the DER of "AWS Nitro Enclaves Root-G1" (valid 2019-10-28 to 2049-10-28),
/// as published by AWS. Pinning the hash is equivalent to pinning the certificate's bytes.
pub const AWS_NITRO_ROOT_G1_SHA256: [u8; 32] = [
    0x64, 0x1a, 0x03, 0x21, 0xa3, 0xe2, 0x44, 0xef, 0xe4, 0x56, 0x46, 0x31, 0x95, 0xd6, 0x06, 0x31,
    0x7e, 0xd7, 0xcd, 0xcc, 0x3c, 0x17, 0x56, 0xe0, 0x98, 0x93, 0xf3, 0xc6, 0x8f, 0x79, 0xbb, 0x5b,
];

/// Where a certificate sits in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertPosition {
    /// The document's `certificate` field.
    Leaf,
    /// `cabundle[i]`; index 0 is the root.
    CaBundle(usize),
}

impl fmt::Display for CertPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf => f.write_str("leaf certificate"),
            Self::CaBundle(i) => write!(f, "cabundle[{i}]"),
        }
    }
}

/// Which chain check failed, for which certificate.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChainError {
    #[error("{0} is not a valid X.509 certificate: {1}")]
    Malformed(CertPosition, String),
    #[error("cabundle[0] is not the pinned AWS Nitro Enclaves root (its SHA-256 is {0})")]
    UntrustedRoot(String),
    #[error(
        "cabundle[0] is not the given trusted root (its SHA-256 is {found}, the root's {expected})"
    )]
    NotTheGivenRoot { found: String, expected: String },
    #[error("{0} is not an X.509 v3 certificate")]
    NotV3(CertPosition),
    #[error("{0} was not issued by the subject of the certificate before it")]
    IssuerMismatch(CertPosition),
    #[error("{0} is not signed with ECDSA P-384/SHA-384")]
    UnsupportedAlgorithm(CertPosition),
    #[error("{0} does not hold a P-384 public key")]
    UnsupportedKey(CertPosition),
    #[error("signature on {0} does not verify with its issuer's key")]
    BadSignature(CertPosition),
    #[error("{cert} is not valid before {}", rfc3339(*.not_before))]
    NotYetValid {
        cert: CertPosition,
        not_before: SystemTime,
    },
    #[error("{cert} expired at {}", rfc3339(*.not_after))]
    Expired {
        cert: CertPosition,
        not_after: SystemTime,
    },
    #[error("{0} is used as a CA but lacks basicConstraints cA=true")]
    NotCa(CertPosition),
    #[error("{0} is used as a CA but lacks keyUsage keyCertSign")]
    NoKeyCertSign(CertPosition),
    #[error("{0} allows {1} intermediate CA(s) below it, but the path has more")]
    PathTooLong(CertPosition, u8),
    #[error("leaf certificate is a CA certificate")]
    LeafIsCa,
    #[error("leaf certificate lacks keyUsage digitalSignature")]
    LeafNotForSigning,
    #[error("{0} has an unsupported critical extension {1}")]
    UnknownCriticalExtension(CertPosition, ObjectIdentifier),
    #[error("{0} repeats extension {1}")]
    DuplicateExtension(CertPosition, ObjectIdentifier),
}

/// Validates the path from `anchor` through `cabundle` to `leaf` at `at`, returning
/// the leaf's key, which is the only key allowed to sign the document.
pub(crate) fn verify(
    leaf: &[u8],
    cabundle: &[Vec<u8>],
    anchor: &TrustAnchor,
    at: SystemTime,
) -> Result<VerifyingKey, ChainError> {
    let root = cabundle.first().ok_or(ChainError::Malformed(
        CertPosition::CaBundle(0),
        "absent".into(),
    ))?;
    let root_fingerprint = Sha256::digest(root);
    if root_fingerprint[..] != anchor.sha256() {
        return Err(if anchor.is_aws() {
            ChainError::UntrustedRoot(hex::encode(root_fingerprint))
        } else {
            ChainError::NotTheGivenRoot {
                found: hex::encode(root_fingerprint),
                expected: hex::encode(anchor.sha256()),
            }
        });
    }
    let at = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);

    let path: Vec<(CertPosition, &[u8])> = cabundle
        .iter()
        .enumerate()
        .map(|(i, der)| (CertPosition::CaBundle(i), der.as_slice()))
        .chain([(CertPosition::Leaf, leaf)])
        .collect();
    let certs = path
        .iter()
        .map(|&(position, der)| {
            Certificate::from_der(der).map_err(|e| ChainError::Malformed(position, e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let leaf_index = certs.len() - 1;
    // Key of the last certificate accepted so far: the next one's issuer, finally the leaf's.
    let mut key = p384_key(
        CertPosition::CaBundle(0),
        &certs[0].tbs_certificate.subject_public_key_info,
    )?;
    for (index, (cert, &(position, der))) in certs.iter().zip(&path).enumerate() {
        let tbs = &cert.tbs_certificate;
        if tbs.version != Version::V3 {
            return Err(ChainError::NotV3(position));
        }
        check_validity(position, cert, at)?;
        let extensions = Extensions::of(position, cert)?;
        if index < leaf_index {
            check_ca(position, &extensions, leaf_index - index - 1)?;
        } else {
            check_leaf(&extensions)?;
        }
        // The root is trusted by its pinned fingerprint; every later certificate must be
        // signed by the certificate before it.
        if index > 0 {
            if tbs.issuer != certs[index - 1].tbs_certificate.subject {
                return Err(ChainError::IssuerMismatch(position));
            }
            check_signature(position, cert, der, &key)?;
            key = p384_key(position, &tbs.subject_public_key_info)?;
        }
    }
    Ok(key)
}

fn check_validity(
    position: CertPosition,
    cert: &Certificate,
    at: Duration,
) -> Result<(), ChainError> {
    let validity = &cert.tbs_certificate.validity;
    let not_before = validity.not_before.to_unix_duration();
    let not_after = validity.not_after.to_unix_duration();
    if at < not_before {
        return Err(ChainError::NotYetValid {
            cert: position,
            not_before: UNIX_EPOCH + not_before,
        });
    }
    if at > not_after {
        return Err(ChainError::Expired {
            cert: position,
            not_after: UNIX_EPOCH + not_after,
        });
    }
    Ok(())
}

/// The extensions the checks look at; any other critical extension fails the path.
struct Extensions {
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
}

impl Extensions {
    fn of(position: CertPosition, cert: &Certificate) -> Result<Self, ChainError> {
        let mut found = Self {
            basic_constraints: None,
            key_usage: None,
        };
        let list = cert
            .tbs_certificate
            .extensions
            .as_deref()
            .unwrap_or_default();
        for (i, ext) in list.iter().enumerate() {
            if list[..i]
                .iter()
                .any(|earlier| earlier.extn_id == ext.extn_id)
            {
                return Err(ChainError::DuplicateExtension(position, ext.extn_id));
            }
            let value = ext.extn_value.as_bytes();
            let malformed =
                |e: x509_cert::der::Error| ChainError::Malformed(position, e.to_string());
            if ext.extn_id == BasicConstraints::OID {
                found.basic_constraints =
                    Some(BasicConstraints::from_der(value).map_err(malformed)?);
            } else if ext.extn_id == KeyUsage::OID {
                found.key_usage = Some(KeyUsage::from_der(value).map_err(malformed)?);
            } else if ext.critical {
                return Err(ChainError::UnknownCriticalExtension(position, ext.extn_id));
            }
        }
        Ok(found)
    }
}

/// `cas_below` is how many CA certificates follow this one before the leaf.
fn check_ca(position: CertPosition, ext: &Extensions, cas_below: usize) -> Result<(), ChainError> {
    let constraints = ext
        .basic_constraints
        .as_ref()
        .filter(|bc| bc.ca)
        .ok_or(ChainError::NotCa(position))?;
    if !ext.key_usage.is_some_and(|ku| ku.key_cert_sign()) {
        return Err(ChainError::NoKeyCertSign(position));
    }
    match constraints.path_len_constraint {
        Some(limit) if usize::from(limit) < cas_below => {
            Err(ChainError::PathTooLong(position, limit))
        }
        _ => Ok(()),
    }
}

fn check_leaf(ext: &Extensions) -> Result<(), ChainError> {
    if ext.basic_constraints.as_ref().is_some_and(|bc| bc.ca) {
        return Err(ChainError::LeafIsCa);
    }
    if !ext.key_usage.is_some_and(|ku| ku.digital_signature()) {
        return Err(ChainError::LeafNotForSigning);
    }
    Ok(())
}

fn check_signature(
    position: CertPosition,
    cert: &Certificate,
    der: &[u8],
    issuer_key: &VerifyingKey,
) -> Result<(), ChainError> {
    let algorithm = &cert.signature_algorithm;
    if algorithm.oid != ECDSA_WITH_SHA_384
        || algorithm.parameters.is_some()
        || cert.tbs_certificate.signature != *algorithm
    {
        return Err(ChainError::UnsupportedAlgorithm(position));
    }
    let signature = cert
        .signature
        .as_bytes()
        .and_then(|bytes| Signature::from_der(bytes).ok())
        .ok_or(ChainError::BadSignature(position))?;
    let tbs = tbs_bytes(der).map_err(|e| ChainError::Malformed(position, e.to_string()))?;
    issuer_key
        .verify(tbs, &signature)
        .map_err(|_| ChainError::BadSignature(position))
}

/// The TBSCertificate exactly as encoded, since the signature covers those bytes.
fn tbs_bytes(cert_der: &[u8]) -> x509_cert::der::Result<&[u8]> {
    let mut reader = SliceReader::new(cert_der)?;
    Header::decode(&mut reader)?.tag.assert_eq(Tag::Sequence)?;
    reader.tlv_bytes()
}

fn p384_key(
    position: CertPosition,
    spki: &SubjectPublicKeyInfoOwned,
) -> Result<VerifyingKey, ChainError> {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY || curve != Some(SECP_384_R_1) {
        return Err(ChainError::UnsupportedKey(position));
    }
    VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .map_err(|_| ChainError::UnsupportedKey(position))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The path check against the pinned AWS root, as every test here uses it.
    fn verify(
        leaf: &[u8],
        cabundle: &[Vec<u8>],
        at: SystemTime,
    ) -> Result<VerifyingKey, ChainError> {
        super::verify(leaf, cabundle, &TrustAnchor::AWS_NITRO_ROOT_G1, at)
    }

    /// Leaf, CA bundle and creation time of a real document (see `tests/data/README.md`).
    fn real_chain() -> (Vec<u8>, Vec<Vec<u8>>, SystemTime) {
        let doc = crate::parse(include_bytes!("../tests/data/marlin-oyster.cose"))
            .expect("fixture parses");
        let at = UNIX_EPOCH + Duration::from_millis(doc.timestamp_ms);
        (doc.certificate, doc.cabundle, at)
    }

    #[test]
    fn real_chain_has_root_three_intermediates_and_leaf() {
        let (leaf, bundle, at) = real_chain();
        assert_eq!(bundle.len(), 4);
        assert!(verify(&leaf, &bundle, at).is_ok());
    }

    #[test]
    fn intermediates_out_of_order_exceed_path_length() {
        let (leaf, mut bundle, at) = real_chain();
        bundle.swap(1, 2);
        assert!(matches!(
            verify(&leaf, &bundle, at),
            Err(ChainError::PathTooLong(CertPosition::CaBundle(1), _))
        ));
    }

    #[test]
    fn missing_intermediate_breaks_the_issuer_chain() {
        let (leaf, mut bundle, at) = real_chain();
        bundle.remove(1);
        assert_eq!(
            verify(&leaf, &bundle, at).err(),
            Some(ChainError::IssuerMismatch(CertPosition::CaBundle(1)))
        );
    }

    #[test]
    fn leaf_cannot_act_as_ca_nor_ca_as_leaf() {
        let (leaf, mut bundle, at) = real_chain();
        let mut leaf_as_ca = bundle.clone();
        leaf_as_ca[3] = leaf.clone();
        assert_eq!(
            verify(&leaf, &leaf_as_ca, at).err(),
            Some(ChainError::NotCa(CertPosition::CaBundle(3)))
        );
        let last_ca = bundle.pop().expect("intermediate");
        assert_eq!(
            verify(&last_ca, &bundle, at).err(),
            Some(ChainError::LeafIsCa)
        );
    }

    #[test]
    fn altered_leaf_fails_its_signature() {
        let (mut leaf, bundle, at) = real_chain();
        let key = Certificate::from_der(&leaf)
            .expect("leaf parses")
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        let at_key = leaf
            .windows(key.len())
            .position(|w| w == key.as_slice())
            .expect("key bytes in leaf");
        leaf[at_key + key.len() - 1] ^= 0x01;
        assert_eq!(
            verify(&leaf, &bundle, at).err(),
            Some(ChainError::BadSignature(CertPosition::Leaf))
        );
    }

    #[test]
    fn empty_bundle_and_garbage_certificates_are_errors() {
        let (leaf, bundle, at) = real_chain();
        assert!(matches!(
            verify(&leaf, &[], at),
            Err(ChainError::Malformed(CertPosition::CaBundle(0), _))
        ));
        assert!(matches!(
            verify(&[0x30, 0x00], &bundle, at),
            Err(ChainError::Malformed(CertPosition::Leaf, _))
        ));
    }
}
