//! Host side of the dev secrets service, offered only when the config names a dev secrets file
//! (`link.dev_secrets`, written by `nitro-provision run --local`, never by an instance's
//! user_data). The file is read again for every request, so an edit reaches the next boot.
//! Values are logged never; the names served are.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use companion_config::{DevSecrets, DevSecretsService};
use enclave_link::dev_secrets::{DevSecretsError, DevSecretsMsg, Value, Values};
use enclave_link::frame::{read_one, write_one, Message};
use enclave_link::Stream;
use zeroize::Zeroizing;

use super::link::Ctx;
use super::{ServiceError, ServiceMetrics};

pub(crate) const SERVICE: &str = "dev_secrets";
/// How long the enclave has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn start(ctx: &Ctx, config: &DevSecretsService) -> Result<(), ServiceError> {
    let listener = ctx
        .listen(SERVICE, enclave_link::ports::DEV_SECRETS)
        .await?;
    tracing::warn!(file = %config.file.display(), "DEV SECRETS: serving plain values from a local file to the enclave (local runs only, never KMS)");
    let file = Arc::new(config.file.clone());
    let metrics = ctx.metrics.clone();
    ctx.serve(SERVICE, listener, move |stream| {
        serve(stream, file.clone(), metrics.clone())
    });
    Ok(())
}

async fn serve(mut stream: Stream, file: Arc<PathBuf>, metrics: Arc<ServiceMetrics>) {
    let names = match tokio::time::timeout(REQUEST_TIMEOUT, read_one(&mut stream)).await {
        Ok(Ok(DevSecretsMsg::Request(r))) => r.names,
        Ok(Ok(other)) => {
            let e = enclave_link::FrameError::UnknownKind(other.kind());
            return metrics.frame_rejected(SERVICE, &e);
        }
        Ok(Err(enclave_link::FrameError::Io(_))) | Err(_) => return,
        Ok(Err(e)) => return metrics.frame_rejected(SERVICE, &e),
    };
    let reply = match answer(&file, &names) {
        Ok(values) => {
            tracing::info!(?names, "dev secrets served");
            DevSecretsMsg::Values(Values { values })
        }
        Err(message) => {
            tracing::error!(%message, "dev secrets refused");
            DevSecretsMsg::Error(DevSecretsError { message })
        }
    };
    let _ = write_one(&mut stream, &reply).await;
}

/// The values of `names` from the file, in order; an error names what is missing.
fn answer(file: &std::path::Path, names: &[String]) -> Result<Vec<Value>, String> {
    let secrets = DevSecrets::load(file).map_err(|e| e.to_string())?;
    let missing: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| secrets.get(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the dev secrets file {} has no value for {}",
            file.display(),
            missing.join(", ")
        ));
    }
    Ok(names
        .iter()
        .filter_map(|n| {
            Some(Value {
                name: n.clone(),
                value: Zeroizing::new(secrets.get(n)?.to_string()),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_order_or_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secrets.local.env");
        std::fs::write(&file, "B=two\nA=one\n").unwrap();
        let values = answer(&file, &["A".into(), "B".into()]).unwrap();
        let got: Vec<(&str, &str)> = values
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(got, [("A", "one"), ("B", "two")]);
        let err = answer(&file, &["A".into(), "C".into(), "D".into()]).unwrap_err();
        assert!(err.ends_with("has no value for C, D"), "{err}");
        assert!(!err.contains("one"), "{err}");
        std::fs::write(&file, "A=one\nbad line\n").unwrap();
        let err = answer(&file, &["A".into()]).unwrap_err();
        assert!(err.contains("line 2: expected NAME=value"), "{err}");
    }
}
