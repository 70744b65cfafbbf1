//! The test PKI whose chain signs simulator documents: root → intermediate(s), all ECDSA P-384
//! with SHA-384 like AWS's Nitro PKI, plus a fresh leaf per document. Every subject says
//! "NOT AWS" so a simulator certificate cannot be mistaken for a real one in a report.

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use der::asn1::{BitString, OctetString};
use der::oid::AssociatedOid;
use der::{Decode, Encode};
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{DerSignature, SigningKey, VerifyingKey};
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand_core::{OsRng, RngCore};
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};

use crate::NsmError;

const ECDSA_WITH_SHA_384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// How long the real NSM's per-enclave leaf certificates live (about three hours).
pub const LEAF_LIFETIME: Duration = Duration::from_secs(3 * 3600);
const ROOT_FILE: &str = "root.pem";
const CHAIN_FILE: &str = "chain.pem";
const ISSUER_KEY_FILE: &str = "issuer-key.pem";

/// A CA chain, root first, and the private key of its last CA (the one that signs leaves).
pub struct TestPki {
    chain: Vec<Vec<u8>>,
    issuer_key: SigningKey,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A leaf certificate and its signing key: what signs one document.
pub(crate) struct Leaf {
    pub(crate) der: Vec<u8>,
    pub(crate) key: SigningKey,
}

impl TestPki {
    /// A new root and `intermediates` CAs below it (AWS's chain has three), valid from an hour
    /// ago for ten years.
    pub fn generate(intermediates: usize) -> Result<Self, NsmError> {
        let now = SystemTime::now();
        let not_before = now - Duration::from_secs(3600);
        let not_after = now + Duration::from_secs(10 * 365 * 86400);
        let root_key = SigningKey::random(&mut OsRng);
        let root_name = name("CN=nitro-provision test root (NOT AWS),O=nitro-provision")?;
        let depth = u8::try_from(intermediates).map_err(|_| sim("too many intermediates"))?;
        let root = certificate(&CertSpec {
            subject: &root_name,
            subject_key: root_key.verifying_key(),
            issuer: &root_name,
            issuer_key: &root_key,
            not_before,
            not_after,
            ca_path_len: Some(depth),
        })?;
        let mut chain = vec![root];
        let (mut issuer_name, mut issuer_key) = (root_name, root_key);
        for level in 1..=intermediates {
            let key = SigningKey::random(&mut OsRng);
            let subject = name(&format!(
                "CN=nitro-provision test intermediate {level} (NOT AWS),O=nitro-provision"
            ))?;
            let path_len = u8::try_from(intermediates - level).map_err(|_| sim("depth"))?;
            chain.push(certificate(&CertSpec {
                subject: &subject,
                subject_key: key.verifying_key(),
                issuer: &issuer_name,
                issuer_key: &issuer_key,
                not_before,
                not_after,
                ca_path_len: Some(path_len),
            })?);
            (issuer_name, issuer_key) = (subject, key);
        }
        Ok(Self { chain, issuer_key })
    }

    /// DER certificates, root first: the document's `cabundle`.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// The root certificate as PEM, for `attest verify --root` and the test KMS front.
    pub fn root_pem(&self) -> String {
        pem("CERTIFICATE", &self.chain[0])
    }

    /// Writes `root.pem`, `chain.pem` (root first) and `issuer-key.pem` (PKCS#8) into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), NsmError> {
        let io = |e: std::io::Error| sim(format!("{}: {e}", dir.display()));
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(dir.join(ROOT_FILE), self.root_pem()).map_err(io)?;
        let chain: String = self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        std::fs::write(dir.join(CHAIN_FILE), chain).map_err(io)?;
        let key = self
            .issuer_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| sim(format!("encode issuer key: {e}")))?;
        std::fs::write(dir.join(ISSUER_KEY_FILE), key.as_bytes()).map_err(io)
    }

    /// Reads what [`TestPki::write`] wrote.
    pub fn load(dir: &Path) -> Result<Self, NsmError> {
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map_err(|e| sim(format!("{}: {e}", dir.join(file).display())))
        };
        let chain = pem_certificates(&read(CHAIN_FILE)?)?;
        if chain.is_empty() {
            return Err(sim(format!(
                "{}: no certificates",
                dir.join(CHAIN_FILE).display()
            )));
        }
        let issuer_key = SigningKey::from_pkcs8_pem(&read(ISSUER_KEY_FILE)?)
            .map_err(|e| sim(format!("{ISSUER_KEY_FILE}: {e}")))?;
        Ok(Self { chain, issuer_key })
    }

    /// A fresh leaf valid from a minute before `now` for [`LEAF_LIFETIME`].
    pub(crate) fn issue_leaf(&self, module_id: &str, now: SystemTime) -> Result<Leaf, NsmError> {
        let issuer_der = self.chain.last().ok_or_else(|| sim("empty chain"))?;
        let issuer = Certificate::from_der(issuer_der)
            .map_err(|e| sim(format!("issuer certificate: {e}")))?
            .tbs_certificate
            .subject;
        let key = SigningKey::random(&mut OsRng);
        let subject = name(&format!(
            "CN={module_id} (NOT AWS),O=nitro-provision simulator"
        ))?;
        let der = certificate(&CertSpec {
            subject: &subject,
            subject_key: key.verifying_key(),
            issuer: &issuer,
            issuer_key: &self.issuer_key,
            not_before: now - Duration::from_secs(60),
            not_after: now + LEAF_LIFETIME,
            ca_path_len: None,
        })?;
        Ok(Leaf { der, key })
    }
}

struct CertSpec<'a> {
    subject: &'a Name,
    subject_key: &'a VerifyingKey,
    issuer: &'a Name,
    issuer_key: &'a SigningKey,
    not_before: SystemTime,
    not_after: SystemTime,
    /// `Some(n)`: a CA allowing `n` CAs below it; `None`: a signing leaf.
    ca_path_len: Option<u8>,
}

fn certificate(spec: &CertSpec<'_>) -> Result<Vec<u8>, NsmError> {
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA_384,
        parameters: None,
    };
    let spki_der = spec
        .subject_key
        .to_public_key_der()
        .map_err(|e| sim(format!("encode key: {e}")))?;
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(encode)?;
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] &= 0x7f;
    serial[0] |= 0x01; // positive and minimally encoded
    let (constraints, usage) = match spec.ca_path_len {
        Some(n) => (
            BasicConstraints {
                ca: true,
                path_len_constraint: Some(n),
            },
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature),
        ),
        None => (
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            },
            KeyUsage(KeyUsages::DigitalSignature.into()),
        ),
    };
    let extensions = vec![extension(&constraints)?, extension(&usage)?];
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(encode)?,
        signature: algorithm.clone(),
        issuer: spec.issuer.clone(),
        validity: Validity {
            not_before: time(spec.not_before)?,
            not_after: time(spec.not_after)?,
        },
        subject: spec.subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der().map_err(encode)?;
    let signature: DerSignature = spec.issuer_key.sign(&tbs_der);
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(signature.as_bytes()).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

/// Both extensions the chain check reads are critical, as on AWS's certificates.
fn extension<E: AssociatedOid + Encode>(value: &E) -> Result<Extension, NsmError> {
    let der = value.to_der().map_err(encode)?;
    Ok(Extension {
        extn_id: E::OID,
        critical: true,
        extn_value: OctetString::new(der).map_err(encode)?,
    })
}

fn time(t: SystemTime) -> Result<Time, NsmError> {
    // Whole seconds: X.509 times carry no fractions.
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| sim("time before 1970"))?
        .as_secs();
    Time::try_from(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).map_err(encode)
}

fn name(s: &str) -> Result<Name, NsmError> {
    Name::from_str(s).map_err(encode)
}

fn pem(label: &str, der: &[u8]) -> String {
    // Encoding a byte string as PEM cannot fail for a valid label.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Every `CERTIFICATE` block of a PEM text, in order.
fn pem_certificates(text: &str) -> Result<Vec<Vec<u8>>, NsmError> {
    const END: &str = "-----END CERTIFICATE-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..]
            .find(END)
            .map(|i| start + i + END.len())
            .ok_or_else(|| sim("unterminated PEM certificate"))?;
        let (label, der) = der::pem::decode_vec(&rest.as_bytes()[start..end])
            .map_err(|e| sim(format!("PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(sim(format!("PEM block {label} is not a certificate")));
        }
        out.push(der);
        rest = &rest[end..];
    }
    Ok(out)
}

fn encode(e: der::Error) -> NsmError {
    sim(format!("DER: {e}"))
}

fn sim(message: impl Into<String>) -> NsmError {
    NsmError::Simulator(message.into())
}
