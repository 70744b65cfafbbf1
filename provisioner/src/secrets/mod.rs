//! Sealed secrets for the enclave, writer side. A writer (`kms.writers`) encrypts a value with
//! the deployment's KMS key under the encryption context of
//! [`companion_config::secret_encryption_context`] and stores the base64 `CiphertextBlob` as
//! the SSM parameter named in enclave.yaml's `secrets`. Only an attested release can decrypt it
//! (the key policy), and only for that deployment and parameter (the context): a ciphertext
//! copied to another parameter never decrypts. The host only ever relays the ciphertext.

mod terminal;
pub mod value;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use base64::Engine as _;
use serde::Serialize;

use crate::aws::{Aws, AwsError};
use crate::config::Config;
use crate::reconcile::AwsArgs;
pub use value::{SecretValue, ValueError, MAX_VALUE_BYTES};

/// SSM's Standard tier holds values up to 4 KiB; longer ciphertexts need the Advanced tier.
const STANDARD_TIER_MAX: usize = 4096;
/// GetParameters takes at most this many names per call.
const GET_BATCH: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("`{name}` is not one of enclave.yaml's secrets; configured: {configured}")]
    Unknown { name: String, configured: String },
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("{caller} may not kms:Encrypt with {key}: add that principal to `kms.writers` in enclave.yaml and apply, so the key policy lets it seal secrets ({message})")]
    NotWriter {
        caller: String,
        key: String,
        message: String,
    },
    #[error("the deployment's key {key} does not exist in this account and region: apply the stack first ({message})")]
    NoKey { key: String, message: String },
    #[error("parameter {0} already exists: pass --overwrite to replace its value")]
    Exists(String),
    #[error("parameter {0} does not exist")]
    Missing(String),
    #[error("{caller} may not {action} on parameter {parameter} ({message})")]
    SsmDenied {
        caller: String,
        action: &'static str,
        parameter: String,
        message: String,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// The environment variable a configured secret parameter feeds, or an error naming them all.
pub fn configured<'a>(config: &'a Config, parameter: &str) -> Result<&'a str, SecretError> {
    config
        .secrets
        .get(parameter)
        .map(String::as_str)
        .ok_or_else(|| SecretError::Unknown {
            name: parameter.to_string(),
            configured: if config.secrets.is_empty() {
                "none (add them under `secrets:`)".to_string()
            } else {
                config
                    .secrets
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// What `put` did (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub parameter: String,
    /// The key KMS encrypted with (its ARN as KMS reports it).
    pub key_id: String,
    pub plaintext_bytes: usize,
    pub ciphertext_base64_bytes: usize,
    pub version: i64,
    pub tier: String,
}

/// One configured secret as SSM holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    pub parameter: String,
    pub env: String,
    pub state: State,
    /// RFC 3339.
    pub last_modified: Option<String>,
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Present,
    Missing,
    /// The parameter exists but does not hold a sealed value (not a String of base64).
    NotSealed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Missing => "missing",
            State::NotSealed => "not-sealed",
        }
    }
}

/// The KMS and SSM clients of one deployment's secrets.
pub struct SecretStore {
    aws: Aws,
    ssm: aws_sdk_ssm::Client,
    deployment: String,
    key: String,
}

impl SecretStore {
    /// Connects with the writer's credentials and refuses another account than the config's.
    pub async fn connect(args: &AwsArgs, config: &Config) -> Result<Self, SecretError> {
        let opts = args.options(&config.region);
        let conf = crate::aws::sdk_config(&opts).await?;
        let aws = Aws::from_config(&conf, &opts);
        aws.check_account(&config.account).await?;
        Ok(Self::new(
            aws,
            aws_sdk_ssm::Client::new(&conf),
            &config.name,
        ))
    }

    /// The store of `deployment`, sealing with its key alias.
    pub fn new(aws: Aws, ssm: aws_sdk_ssm::Client, deployment: &str) -> Self {
        SecretStore {
            aws,
            ssm,
            deployment: deployment.to_string(),
            key: crate::render::key_alias(deployment),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Encrypts `value` for `parameter` and writes the parameter (replacing an existing value
    /// only when `overwrite`).
    pub async fn put(
        &self,
        parameter: &str,
        value: &SecretValue,
        overwrite: bool,
    ) -> Result<Sealed, SecretError> {
        let (key_id, ciphertext) = self.encrypt(parameter, value).await?;
        let tier = (ciphertext.len() > STANDARD_TIER_MAX).then_some(ParameterTier::Advanced);
        let out = self
            .ssm
            .put_parameter()
            .name(parameter)
            .value(&ciphertext)
            .r#type(ParameterType::String)
            .overwrite(overwrite)
            .set_tier(tier)
            .description(format!(
                "Sealed by nitro-provision for {}: a KMS ciphertext only its attested enclave decrypts",
                self.deployment
            ))
            .send()
            .await
            .map_err(|e| {
                let f = Failure::of("ssm:PutParameter", e);
                match f.code.as_deref() {
                    Some("ParameterAlreadyExists") => SecretError::Exists(parameter.to_string()),
                    _ => f.into_ssm_error(parameter),
                }
            });
        let out = match out {
            Ok(out) => out,
            Err(e) => return Err(self.with_caller(e).await),
        };
        Ok(Sealed {
            parameter: parameter.to_string(),
            key_id,
            plaintext_bytes: value.len(),
            ciphertext_base64_bytes: ciphertext.len(),
            version: out.version(),
            tier: out.tier().map_or("Standard", |t| t.as_str()).to_string(),
        })
    }

    /// KMS Encrypt under the secret's encryption context: (key ARN, base64 ciphertext).
    async fn encrypt(
        &self,
        parameter: &str,
        value: &SecretValue,
    ) -> Result<(String, String), SecretError> {
        let context: HashMap<String, String> =
            companion_config::secret_encryption_context(&self.deployment, parameter)
                .into_iter()
                .collect();
        let result = self
            .aws
            .kms
            .encrypt()
            .key_id(&self.key)
            .plaintext(Blob::new(value.bytes()))
            .set_encryption_context(Some(context))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                let f = Failure::of("kms:Encrypt", e);
                return Err(if f.denied {
                    SecretError::NotWriter {
                        caller: self.caller().await,
                        key: self.key.clone(),
                        message: f.error.to_string(),
                    }
                } else if f.code.as_deref() == Some("NotFoundException") {
                    SecretError::NoKey {
                        key: self.key.clone(),
                        message: f.error.to_string(),
                    }
                } else {
                    SecretError::Aws(f.error)
                });
            }
        };
        let blob = out.ciphertext_blob().ok_or_else(|| {
            AwsError::Unexpected("kms:Encrypt answered without a CiphertextBlob".into())
        })?;
        Ok((
            out.key_id().unwrap_or(&self.key).to_string(),
            base64::engine::general_purpose::STANDARD.encode(blob.as_ref()),
        ))
    }

    /// Every configured secret (`secrets` of enclave.yaml): present, missing or not sealed.
    pub async fn list(
        &self,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Vec<Listed>, SecretError> {
        let names: Vec<&String> = secrets.keys().collect();
        let mut found = BTreeMap::new();
        for batch in names.chunks(GET_BATCH) {
            let out = self
                .ssm
                .get_parameters()
                .set_names(Some(batch.iter().map(|n| n.to_string()).collect()))
                .send()
                .await;
            let out = match out {
                Ok(out) => out,
                Err(e) => {
                    let names: Vec<&str> = batch.iter().map(|n| n.as_str()).collect();
                    let e = Failure::of("ssm:GetParameters", e).into_ssm_error(&names.join(", "));
                    return Err(self.with_caller(e).await);
                }
            };
            for p in out.parameters() {
                found.insert(p.name().unwrap_or_default().to_string(), p.clone());
            }
        }
        Ok(secrets
            .iter()
            .map(|(parameter, env)| {
                let p = found.get(parameter);
                Listed {
                    parameter: parameter.clone(),
                    env: env.clone(),
                    state: p.map_or(State::Missing, |p| {
                        if is_sealed(p.r#type(), p.value()) {
                            State::Present
                        } else {
                            State::NotSealed
                        }
                    }),
                    last_modified: p
                        .and_then(|p| p.last_modified_date())
                        .and_then(|d| d.fmt(Format::DateTime).ok()),
                    version: p.map(|p| p.version()),
                }
            })
            .collect())
    }

    /// Deletes the parameter; a missing one is an error.
    pub async fn remove(&self, parameter: &str) -> Result<(), SecretError> {
        let result = self
            .ssm
            .delete_parameter()
            .name(parameter)
            .send()
            .await
            .map_err(|e| {
                let f = Failure::of("ssm:DeleteParameter", e);
                match f.code.as_deref() {
                    Some("ParameterNotFound") => SecretError::Missing(parameter.to_string()),
                    _ => f.into_ssm_error(parameter),
                }
            });
        match result {
            Ok(_) => Ok(()),
            Err(e) => Err(self.with_caller(e).await),
        }
    }

    /// Whether the parameter exists (what `rm` checks before asking for confirmation).
    pub async fn exists(&self, parameter: &str) -> Result<bool, SecretError> {
        let listed = self
            .list(&BTreeMap::from([(parameter.to_string(), String::new())]))
            .await?;
        Ok(listed.first().is_some_and(|l| l.state != State::Missing))
    }

    /// Names the caller in an access-denied error (a second call, made only on that path).
    async fn with_caller(&self, e: SecretError) -> SecretError {
        match e {
            SecretError::SsmDenied {
                action,
                parameter,
                message,
                ..
            } => SecretError::SsmDenied {
                caller: self.caller().await,
                action,
                parameter,
                message,
            },
            other => other,
        }
    }

    /// The caller's ARN, or a stand-in when even STS refuses.
    async fn caller(&self) -> String {
        match self.aws.sts.get_caller_identity().send().await {
            Ok(who) => who.arn().unwrap_or("these credentials").to_string(),
            Err(_) => "these credentials".to_string(),
        }
    }
}

/// A sealed value is a String parameter holding standard base64 (of a KMS ciphertext).
fn is_sealed(kind: Option<&ParameterType>, value: Option<&str>) -> bool {
    kind == Some(&ParameterType::String)
        && value.is_some_and(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v)
                .is_ok_and(|b| !b.is_empty())
        })
}

/// A failed AWS call: the service's error code, whether it was an access denial, and the error
/// to show.
struct Failure {
    operation: &'static str,
    code: Option<String>,
    denied: bool,
    error: AwsError,
}

impl Failure {
    /// Access denied is AWS's `AccessDeniedException` or an untyped HTTP 403 (what moto's IAM
    /// checks answer on JSON protocols, with an XML body the SDK cannot read: the status then
    /// says it better than the SDK's parse error).
    fn of<E>(operation: &'static str, e: SdkError<E, HttpResponse>) -> Failure
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
    {
        let code = e
            .as_service_error()
            .and_then(|s| s.code())
            .map(String::from);
        let forbidden = e.raw_response().is_some_and(|r| r.status().as_u16() == 403);
        let denied = forbidden
            || matches!(
                code.as_deref(),
                Some("AccessDeniedException" | "AccessDenied")
            );
        let error = if forbidden && code.is_none() {
            AwsError::Call {
                operation,
                message: "HTTP 403 Forbidden".into(),
            }
        } else {
            AwsError::call(operation, e)
        };
        Failure {
            operation,
            code,
            denied,
            error,
        }
    }

    /// The error of an SSM call on `parameter` (the caller is filled in by `with_caller`).
    fn into_ssm_error(self, parameter: &str) -> SecretError {
        if self.denied {
            SecretError::SsmDenied {
                caller: String::new(),
                action: self.operation,
                parameter: parameter.to_string(),
                message: self.error.to_string(),
            }
        } else {
            SecretError::Aws(self.error)
        }
    }
}
