//! AWS access: clients built from `aws-config` (env, profiles, SSO, region), an endpoint
//! override for every service (S3 then uses path-style addressing), and bounded retries.
//! A named profile is used alone: its credentials, or an error — never a silent fall back to
//! other credentials (environment variables would otherwise win over it).
//! Each submodule wraps one concern: CloudFormation stacks and change sets, artifact uploads,
//! KMS keys and their policies, the deployment's CloudWatch Logs (log lines, health records).

pub mod artifacts;
pub mod events;
pub mod kms;
pub mod logs;
pub mod stack;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_sts::config::ProvideCredentials;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: String,
    pub profile: Option<String>,
    /// Every service at this URL (a local moto server, a VPC endpoint, …).
    pub endpoint_url: Option<String>,
    /// Attempts per call, including the first.
    pub max_attempts: u32,
}

/// The service clients one command uses.
#[derive(Clone)]
pub struct Aws {
    pub cfn: aws_sdk_cloudformation::Client,
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub sts: aws_sdk_sts::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub region: String,
}

/// An AWS call that failed, with the service's own code and message.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{operation}: {message}")]
    Call {
        operation: &'static str,
        message: String,
    },
    #[error("credentials are for account {actual}, but enclave.yaml deploys to {expected}; refusing to touch another account")]
    WrongAccount { expected: String, actual: String },
    #[error("AWS profile `{profile}` cannot be used: {message}")]
    Profile { profile: String, message: String },
    #[error("{0}")]
    Unexpected(String),
}

impl AwsError {
    /// Wraps an SDK error, keeping the service's error code and message (the SDK's Display
    /// says only "unhandled error" for errors a service model does not name).
    pub fn call<E, R>(
        operation: &'static str,
        e: aws_sdk_cloudformation::error::SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + 'static,
        R: std::fmt::Debug,
    {
        let message = match e.as_service_error() {
            Some(s) => match (s.code(), s.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                (Some(code), None) => code.to_string(),
                // No code: the service answered with something unmodelled (e.g. an HTTP 500).
                _ => causes(&e),
            },
            None => causes(&e),
        };
        AwsError::Call { operation, message }
    }
}

/// An error and its causes in words, `a: b: c`, each said once. (The SDK's
/// `DisplayErrorContext` appends its Debug form, `DispatchFailure(ConnectorError { … })`.)
fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

impl Aws {
    /// Builds the clients (see [`sdk_config`]).
    pub async fn connect(opts: &AwsOptions) -> Result<Self, AwsError> {
        Ok(Self::from_config(&sdk_config(opts).await?, opts))
    }

    /// The clients of one loaded configuration. With an endpoint override (env or flag), S3
    /// virtual-host addressing would resolve BUCKET.localhost: it then uses path style.
    pub fn from_config(conf: &aws_config::SdkConfig, opts: &AwsOptions) -> Self {
        let path_style = opts.endpoint_url.is_some() || conf.endpoint_url().is_some();
        let s3_conf = aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(path_style)
            .build();
        Aws {
            cfn: aws_sdk_cloudformation::Client::new(conf),
            s3: aws_sdk_s3::Client::from_conf(s3_conf),
            kms: aws_sdk_kms::Client::new(conf),
            sts: aws_sdk_sts::Client::new(conf),
            logs: aws_sdk_cloudwatchlogs::Client::new(conf),
            region: opts.region.clone(),
        }
    }

    /// The account the credentials belong to.
    pub async fn caller_account(&self) -> Result<String, AwsError> {
        let who = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| AwsError::call("sts:GetCallerIdentity", e))?;
        Ok(who.account().unwrap_or_default().to_string())
    }

    /// Refuses to continue when the credentials belong to another account than the config's.
    pub async fn check_account(&self, expected: &str) -> Result<(), AwsError> {
        let actual = self.caller_account().await?;
        if actual != expected {
            return Err(AwsError::WrongAccount {
                expected: expected.to_string(),
                actual,
            });
        }
        Ok(())
    }
}

/// Loads the AWS configuration every client of a command shares. Credentials and (unless given)
/// the endpoint come from the usual AWS environment variables and profiles; a named profile is
/// the only source of credentials, and one that is missing or unusable is an error here.
pub async fn sdk_config(opts: &AwsOptions) -> Result<aws_config::SdkConfig, AwsError> {
    let attempts = if opts.max_attempts == 0 {
        3
    } else {
        opts.max_attempts
    };
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(opts.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(attempts));
    if let Some(p) = &opts.profile {
        let provider_config = aws_config::provider_config::ProviderConfig::default()
            .with_region(Some(Region::new(opts.region.clone())));
        let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
            .configure(&provider_config)
            .profile_name(p)
            .build();
        provider
            .provide_credentials()
            .await
            .map_err(|e| AwsError::Profile {
                profile: p.clone(),
                message: crate::output::error_text(&e),
            })?;
        loader = loader.profile_name(p).credentials_provider(provider);
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    Ok(loader.load().await)
}
