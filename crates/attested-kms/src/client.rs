//! The three KMS operations that take a `Recipient`, each with its own fresh key and document.
//! There is deliberately no Encrypt: the enclave never encrypts under its KMS key (Encrypt
//! ignores `Recipient`, so a policy cannot tie it to attestation).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::{DataKeySpec, KeyEncryptionMechanism, RecipientInfo};
use aws_smithy_types::Blob;
use nitro_nsm::{AttestationRequest, Nsm, NsmError};
use thiserror::Error;

use crate::recipient::{KeyGenerationError, Plaintext, RecipientKey, Undecryptable};

/// Why an attested KMS call gave no plaintext.
#[derive(Debug, Error)]
pub enum KmsError {
    #[error("attestation: {0}")]
    Attestation(#[from] NsmError),
    #[error(transparent)]
    KeyGeneration(#[from] KeyGenerationError),
    #[error("KMS denied {operation}: {message}")]
    AccessDenied {
        operation: &'static str,
        message: String,
    },
    #[error("KMS {operation} failed: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("KMS {operation} could not be reached: {source}")]
    Transport {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// KMS (or something posing as it) answered with the plaintext in the clear: refused, the
    /// plaintext is dropped unread.
    #[error("KMS {0} answered without CiphertextForRecipient (plaintext in the clear refused)")]
    NotForRecipient(&'static str),
    #[error(transparent)]
    Undecryptable(#[from] Undecryptable),
    #[error("background task failed: {0}")]
    Task(String),
}

/// A data key from GenerateDataKey: the plaintext for this enclave, the KMS-encrypted copy to
/// store beside the data.
#[derive(Debug)]
pub struct DataKey {
    pub plaintext: Plaintext,
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
}

/// KMS with `Recipient` on every call.
#[derive(Debug, Clone)]
pub struct AttestedKms {
    kms: aws_sdk_kms::Client,
    nsm: Arc<dyn Nsm>,
}

impl AttestedKms {
    /// `kms` is built by the caller (aws-egress gives one whose TLS ends in this process).
    pub fn new(kms: aws_sdk_kms::Client, nsm: Arc<dyn Nsm>) -> Self {
        Self { kms, nsm }
    }

    /// Decrypt with `encryption_context` (must equal the one used at Encrypt); `key_id` pins
    /// which key KMS may use.
    pub async fn decrypt(
        &self,
        ciphertext_blob: &[u8],
        key_id: Option<&str>,
        encryption_context: &HashMap<String, String>,
    ) -> Result<Plaintext, KmsError> {
        const OP: &str = "Decrypt";
        let (key, recipient) = self.recipient().await?;
        let output = self
            .kms
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext_blob))
            .set_key_id(key_id.map(str::to_owned))
            .set_encryption_context(context(encryption_context))
            .recipient(recipient)
            .send()
            .await
            .map_err(|e| service_error(OP, e))?;
        refuse_clear(OP, output.plaintext())?;
        open(OP, key, output.ciphertext_for_recipient()).await
    }

    /// A 256-bit data key under `key_id`.
    pub async fn generate_data_key(
        &self,
        key_id: &str,
        encryption_context: &HashMap<String, String>,
    ) -> Result<DataKey, KmsError> {
        const OP: &str = "GenerateDataKey";
        let (key, recipient) = self.recipient().await?;
        let output = self
            .kms
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(context(encryption_context))
            .recipient(recipient)
            .send()
            .await
            .map_err(|e| service_error(OP, e))?;
        refuse_clear(OP, output.plaintext())?;
        let ciphertext_blob = output
            .ciphertext_blob()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| missing(OP, "CiphertextBlob"))?;
        let key_id = output.key_id().unwrap_or(key_id).to_owned();
        let plaintext = open(OP, key, output.ciphertext_for_recipient()).await?;
        Ok(DataKey {
            plaintext,
            ciphertext_blob,
            key_id,
        })
    }

    /// `number_of_bytes` (1–1024) random bytes from KMS's HSMs.
    pub async fn generate_random(&self, number_of_bytes: u16) -> Result<Plaintext, KmsError> {
        const OP: &str = "GenerateRandom";
        let (key, recipient) = self.recipient().await?;
        let output = self
            .kms
            .generate_random()
            .number_of_bytes(i32::from(number_of_bytes))
            .recipient(recipient)
            .send()
            .await
            .map_err(|e| service_error(OP, e))?;
        refuse_clear(OP, output.plaintext())?;
        open(OP, key, output.ciphertext_for_recipient()).await
    }

    /// A fresh key and a document binding its SPKI: both blocking (CPU, ioctl), so off the
    /// executor.
    async fn recipient(&self) -> Result<(RecipientKey, RecipientInfo), KmsError> {
        let nsm = Arc::clone(&self.nsm);
        let (key, document) = tokio::task::spawn_blocking(move || {
            let key = RecipientKey::generate()?;
            let request = AttestationRequest::for_public_key(key.spki_der().to_vec())?;
            let document = nsm.attest(&request)?;
            Ok::<_, KmsError>((key, document))
        })
        .await
        .map_err(|e| KmsError::Task(e.to_string()))??;
        let recipient = RecipientInfo::builder()
            .key_encryption_algorithm(KeyEncryptionMechanism::RsaesOaepSha256)
            .attestation_document(Blob::new(document))
            .build();
        Ok((key, recipient))
    }
}

fn context(map: &HashMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// With a Recipient, KMS leaves `Plaintext` empty; anything else means the request was not
/// honoured as attested (e.g. a KMS look-alike that ignores Recipient).
fn refuse_clear(operation: &'static str, plaintext: Option<&Blob>) -> Result<(), KmsError> {
    match plaintext {
        Some(p) if !p.as_ref().is_empty() => Err(KmsError::NotForRecipient(operation)),
        _ => Ok(()),
    }
}

async fn open(
    operation: &'static str,
    key: RecipientKey,
    cms: Option<&Blob>,
) -> Result<Plaintext, KmsError> {
    let cms = cms
        .map(|b| b.as_ref().to_vec())
        .ok_or(KmsError::NotForRecipient(operation))?;
    tokio::task::spawn_blocking(move || key.open(&cms))
        .await
        .map_err(|e| KmsError::Task(e.to_string()))?
        .map_err(KmsError::from)
}

fn missing(operation: &'static str, field: &str) -> KmsError {
    KmsError::Service {
        operation,
        code: "InvalidResponse".into(),
        message: format!("response lacks {field}"),
    }
}

fn service_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let http_status = err.raw_response().map(|r| r.status().as_u16());
    match &err {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let code = err.code().unwrap_or_default().to_owned();
            let message = err.message().unwrap_or_default().to_owned();
            // moto answers auth failures of JSON protocols with an XML 403 the SDK cannot type.
            if code.contains("AccessDenied") || http_status == Some(403) {
                KmsError::AccessDenied {
                    operation,
                    message: if message.is_empty() { code } else { message },
                }
            } else {
                KmsError::Service {
                    operation,
                    code,
                    message,
                }
            }
        }
        _ => KmsError::Transport {
            operation,
            source: Box::new(err),
        },
    }
}
