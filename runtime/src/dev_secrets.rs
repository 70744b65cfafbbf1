//! Secrets of a local run (`secrets_source: local_dev` in the measured config, refused with
//! `production: true`): plain values asked of the local supervisor over the link, which serves
//! them from the developer's file. No credentials, no KMS, no sealed storage: the values go
//! where KMS plaintexts go, the application's environment only.

use companion_config::Secret;
use enclave_link::Transport;
use zeroize::Zeroizing;

use crate::secrets::EnvSecret;

/// The boot stage detail: loud, so nobody mistakes a local run's secrets for attested ones.
pub(crate) fn stage_detail(count: usize) -> String {
    format!("{count} secret(s) from the LOCAL DEV secrets file: plain values, not KMS (never production)")
}

/// Every secret of `secrets` by its environment name, or the first failure. None declared:
/// nothing is asked (a local run without a secrets file offers no service).
pub(crate) async fn fetch(
    transport: &dyn Transport,
    secrets: &[Secret],
) -> Result<Vec<EnvSecret>, enclave_link::LinkError> {
    if secrets.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = secrets.iter().map(|s| s.env.clone()).collect();
    let values = enclave_link::dev_secrets::fetch(transport, &names).await?;
    Ok(values
        .into_iter()
        .map(|v| EnvSecret {
            value: Zeroizing::new(v.value.as_bytes().to_vec()).into(),
            env: v.name,
        })
        .collect())
}
