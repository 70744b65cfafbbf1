//! The one-shot recipient key: a fresh RSA-2048 key pair whose public half goes into the
//! attestation document and whose private half opens exactly one `CiphertextForRecipient`.
//!
//! One key per call is what makes the `rsa` crate's non-constant-time decryption
//! (RUSTSEC-2023-0071, Marvin) harmless here: a timing oracle needs many ciphertexts under the
//! same key, and each key decrypts one and is dropped (its limbs zeroized by `rsa`).

use std::fmt;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use rand_core::OsRng;
use rsa::pkcs8::EncodePublicKey;
use rsa::{Oaep, RsaPrivateKey};
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::cms;

/// The only size AWS documents for `Recipient` keys.
pub const RSA_BITS: usize = 2048;
const CEK_LEN: usize = 32;

/// Decrypted bytes, zeroized on drop and never printed.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Decrypted bytes, or bytes that did not come from KMS but go where plaintexts go (a local
/// run's dev secrets), with the same zeroizing and redaction.
impl From<Zeroizing<Vec<u8>>> for Plaintext {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext({} bytes, redacted)", self.0.len())
    }
}

/// Every way a `CiphertextForRecipient` can fail to open — malformed CMS, another recipient,
/// bad OAEP, bad padding — is this one error, so nothing downstream can become an oracle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("CiphertextForRecipient could not be decrypted")]
pub struct Undecryptable;

#[derive(Debug, Error)]
#[error("RSA-{RSA_BITS} key generation failed: {0}")]
pub struct KeyGenerationError(String);

/// A fresh key pair for one KMS call.
pub struct RecipientKey {
    private: RsaPrivateKey,
    spki_der: Vec<u8>,
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecipientKey(RSA-2048, private half redacted)")
    }
}

impl RecipientKey {
    /// Generates RSA-2048 (e = 65537) from the OS RNG (in an enclave, the kernel's pool fed by
    /// `nsm-hwrng`). Takes on the order of 100 ms: run it off the async executor.
    pub fn generate() -> Result<Self, KeyGenerationError> {
        let private = RsaPrivateKey::new(&mut OsRng, RSA_BITS)
            .map_err(|e| KeyGenerationError(e.to_string()))?;
        let spki_der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| KeyGenerationError(e.to_string()))?
            .into_vec();
        Ok(Self { private, spki_der })
    }

    /// The DER SubjectPublicKeyInfo for the attestation document's `public_key`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Opens a `CiphertextForRecipient` addressed to this key, consuming the key.
    pub fn open(self, cms_bytes: &[u8]) -> Result<Plaintext, Undecryptable> {
        let envelope = cms::parse(cms_bytes).map_err(|_| Undecryptable)?;
        let cek = Zeroizing::new(
            self.private
                .decrypt(Oaep::new::<Sha256>(), envelope.encrypted_key)
                .map_err(|_| Undecryptable)?,
        );
        if cek.len() != CEK_LEN {
            return Err(Undecryptable);
        }
        let decryptor = cbc::Decryptor::<aes::Aes256>::new_from_slices(&cek, &envelope.iv)
            .map_err(|_| Undecryptable)?;
        let mut buffer = Zeroizing::new(envelope.ciphertext);
        let len = decryptor
            .decrypt_padded_mut::<Pkcs7>(&mut buffer)
            .map_err(|_| Undecryptable)?
            .len();
        buffer.truncate(len);
        Ok(Plaintext::from(buffer))
    }
}
