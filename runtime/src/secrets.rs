//! The deployment's sealed secrets: each SSM parameter holds the standard base64 of a KMS
//! ciphertext made with [`companion_config::secret_encryption_context`]; it is decrypted with
//! `Recipient` under the deployment's key and handed to the application's environment only.

use std::collections::HashMap;
use std::sync::Arc;

use attested_kms::{AttestedKms, KmsError, Plaintext};
use aws_sdk_ssm::error::DisplayErrorContext;
use base64::Engine;
use companion_config::{secret_encryption_context, Secret};
use futures_util::future::try_join_all;

use crate::counters::{inc, Counters};

/// One decrypted secret, bound for the app's environment; zeroized on drop.
pub struct EnvSecret {
    pub env: String,
    pub value: Plaintext,
}

impl std::fmt::Debug for EnvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvSecret({} = <redacted>)", self.env)
    }
}

/// Why a secret could not be had; names the parameter, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("SSM parameter {parameter}: {message}")]
    Ssm { parameter: String, message: String },
    #[error("SSM parameter {parameter} is not the base64 of a KMS ciphertext")]
    NotBase64 { parameter: String },
    #[error("secret {parameter}: {source}")]
    Kms {
        parameter: String,
        #[source]
        source: KmsError,
    },
    #[error("secret {parameter} for {env}: an environment value cannot hold a NUL byte")]
    Nul { parameter: String, env: String },
}

/// What fetching needs.
pub struct Fetcher {
    pub ssm: aws_sdk_ssm::Client,
    pub kms: Arc<AttestedKms>,
    pub deployment: String,
    pub kms_key: String,
    pub counters: Arc<Counters>,
}

impl Fetcher {
    /// All secrets (concurrently), or the first failure: the app never starts with some.
    pub async fn fetch_all(&self, secrets: &[Secret]) -> Result<Vec<EnvSecret>, SecretError> {
        try_join_all(secrets.iter().map(|s| self.fetch(s))).await
    }

    async fn fetch(&self, secret: &Secret) -> Result<EnvSecret, SecretError> {
        let parameter = &secret.parameter;
        let text = self
            .ssm
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| SecretError::Ssm {
                parameter: parameter.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?
            .parameter
            .and_then(|p| p.value)
            .unwrap_or_default();
        let ciphertext = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::NotBase64 {
                parameter: parameter.clone(),
            })?;
        let context: HashMap<String, String> =
            secret_encryption_context(&self.deployment, parameter)
                .into_iter()
                .collect();
        inc(&self.counters.kms_operations);
        let value = self
            .kms
            .decrypt(&ciphertext, Some(&self.kms_key), &context)
            .await
            .map_err(|source| {
                inc(&self.counters.kms_errors);
                SecretError::Kms {
                    parameter: parameter.clone(),
                    source,
                }
            })?;
        if value.as_bytes().contains(&0) {
            return Err(SecretError::Nul {
                parameter: parameter.clone(),
                env: secret.env.clone(),
            });
        }
        Ok(EnvSecret {
            env: secret.env.clone(),
            value,
        })
    }
}
