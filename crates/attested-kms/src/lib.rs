//! KMS from inside an enclave with attestation: every Decrypt, GenerateDataKey and
//! GenerateRandom carries a `Recipient` (a fresh RSA-2048 key per call, `RSAES_OAEP_SHA_256`, its
//! DER SPKI in the NSM document's `public_key`), so KMS evaluates the key policy's PCR
//! conditions and answers with a CMS EnvelopedData only this call's key can open.
//!
//! - [`AttestedKms`]: the three operations over a caller-built `aws_sdk_kms::Client` (see the
//!   `aws-egress` crate for one whose TLS terminates in this process) and any [`nitro_nsm::Nsm`].
//! - [`RecipientKey`]: the one-shot key; [`RecipientKey::open`] fails with the single
//!   [`Undecryptable`] error whatever went wrong.
//! - [`cms`]: the strict BER reader for `CiphertextForRecipient`.
//!
//! Plaintexts ([`Plaintext`]) and private keys are zeroized on drop. There is no Encrypt.

mod client;
pub mod cms;
mod recipient;

pub use client::{AttestedKms, DataKey, KmsError};
pub use recipient::{KeyGenerationError, Plaintext, RecipientKey, Undecryptable, RSA_BITS};
