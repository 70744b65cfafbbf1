//! Sealed objects in S3 under the deployment's storage prefix: `data/NAME` for storage values,
//! `secrets/NAME` for dynamic secrets. Every write takes a fresh data key from GenerateDataKey
//! (with `Recipient`, and an encryption context naming the object), so the wrapped key beside
//! the data opens only in an admitted enclave and only for that name.

use std::collections::HashMap;
use std::sync::Arc;

use attested_kms::{AttestedKms, KmsError};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use companion_config::CONTEXT_DEPLOYMENT;
use zeroize::Zeroizing;

use crate::counters::{inc, Counters};
use crate::sealed::{self, Binding, Corrupt};

/// Encryption-context key naming the sealed object (`storage/NAME`, `secret/NAME`).
pub const CONTEXT_OBJECT: &str = "nitro-provision:object";

/// Storage values and dynamic secrets live side by side, never under each other's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Storage,
    Secret,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Storage => "storage",
            Kind::Secret => "secret",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Kind::Storage => "data/",
            Kind::Secret => "secrets/",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error("KMS: {0}")]
    Kms(#[from] KmsError),
    #[error("S3: {0}")]
    S3(String),
}

/// The sealed store of one deployment.
pub struct Store {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
    pub kms: Arc<AttestedKms>,
    pub kms_key: String,
    pub deployment: String,
    pub counters: Arc<Counters>,
}

fn s3_error<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::S3(DisplayErrorContext(&e).to_string())
}

impl Store {
    fn object_key(&self, kind: Kind, name: &str) -> String {
        format!("{}{}{name}", self.prefix, kind.dir())
    }

    fn context(&self, kind: Kind, name: &str) -> HashMap<String, String> {
        HashMap::from([
            (CONTEXT_DEPLOYMENT.to_string(), self.deployment.clone()),
            (
                CONTEXT_OBJECT.to_string(),
                format!("{}/{name}", kind.as_str()),
            ),
        ])
    }

    fn binding<'a>(&'a self, kind: Kind, name: &'a str) -> Binding<'a> {
        Binding {
            deployment: &self.deployment,
            kind: kind.as_str(),
            name,
        }
    }

    fn kms_failed(&self, e: KmsError) -> StoreError {
        inc(&self.counters.kms_errors);
        StoreError::Kms(e)
    }

    pub async fn put(&self, kind: Kind, name: &str, value: &[u8]) -> Result<(), StoreError> {
        inc(&self.counters.kms_operations);
        let key = self
            .kms
            .generate_data_key(&self.kms_key, &self.context(kind, name))
            .await
            .map_err(|e| self.kms_failed(e))?;
        let object = sealed::seal(
            &self.binding(kind, name),
            key.plaintext.as_bytes(),
            &key.ciphertext_blob,
            value,
        )?;
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(kind, name))
            .body(ByteStream::from(object))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    /// None when there is no such object.
    pub async fn get(
        &self,
        kind: Kind,
        name: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let got = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(kind, name))
            .send()
            .await;
        let body = match got {
            Ok(out) => out.body.collect().await.map_err(s3_error)?.into_bytes(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(s3_error(e)),
        };
        let parsed = sealed::parse(&body)?;
        inc(&self.counters.kms_operations);
        let data_key = self
            .kms
            .decrypt(
                parsed.wrapped_key,
                Some(&self.kms_key),
                &self.context(kind, name),
            )
            .await
            .map_err(|e| match e {
                // The wrapped key was made for another name (or changed): not a KMS outage.
                KmsError::Service { .. } | KmsError::AccessDenied { .. } => {
                    inc(&self.counters.kms_errors);
                    StoreError::Corrupt(Corrupt)
                }
                e => self.kms_failed(e),
            })?;
        Ok(Some(sealed::open(
            &self.binding(kind, name),
            &parsed,
            data_key.as_bytes(),
        )?))
    }

    pub async fn delete(&self, kind: Kind, name: &str) -> Result<(), StoreError> {
        self.s3
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(kind, name))
            .send()
            .await
            .map_err(s3_error)?;
        Ok(())
    }

    /// Names under `kind`, sorted (every page).
    pub async fn list(&self, kind: Kind) -> Result<Vec<String>, StoreError> {
        let prefix = self.object_key(kind, "");
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(s3_error)?;
            names.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key()?.strip_prefix(&prefix).map(str::to_owned)),
            );
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        names.sort();
        Ok(names)
    }
}
