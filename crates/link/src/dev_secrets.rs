//! The dev secrets service of a local run: the runtime names the environment variables its
//! measured config lists, the local supervisor answers with plain values from the developer's
//! file. Only a runtime config with `secrets_source: local_dev` (refused with `production:
//! true`) asks, and only a supervisor run by `nitro-provision run --local` serves: on an
//! instance the port is not even bound. Values are zeroized on drop and never printed.

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::codec::Framed;
use zeroize::Zeroizing;

use crate::frame::{messages, Codec, Limits};
use crate::transport::Transport;
use crate::{ports, LinkError};

/// Most variables one request may name.
pub const MAX_NAMES: usize = 256;

messages! {
    /// Frames of the dev secrets service (kinds 0x50–0x5f).
    DevSecretsMsg {
        /// Enclave → parent: the values of these variables.
        0x51 => Request(Request),
        0x52 => Values(Values),
        /// The parent cannot serve them (a name missing from the file, an unreadable file).
        0x53 => Error(DevSecretsError),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub names: Vec<String>,
}

/// One variable and its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Value {
    pub name: String,
    pub value: Zeroizing<String>,
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value({} = <redacted>)", self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSecretsError {
    pub message: String,
}

impl Limits for Request {
    fn check(&self) -> Result<(), String> {
        if self.names.len() > MAX_NAMES {
            return Err(format!("more than {MAX_NAMES} names"));
        }
        Ok(())
    }
}
impl Limits for Values {}
impl Limits for DevSecretsError {}

/// Enclave side: asks the parent for `names`; the answer holds exactly those, in that order.
pub async fn fetch(transport: &dyn Transport, names: &[String]) -> Result<Vec<Value>, LinkError> {
    let stream = transport.connect(ports::DEV_SECRETS).await.map_err(|e| {
        LinkError::Io(std::io::Error::new(
            e.kind(),
            format!("the supervisor offers no dev secrets (only `nitro-provision run --local` does): {e}"),
        ))
    })?;
    let mut framed = Framed::new(stream, Codec::<DevSecretsMsg>::default());
    framed
        .send(DevSecretsMsg::Request(Request {
            names: names.to_vec(),
        }))
        .await?;
    let values = match framed.next().await {
        None => return Err(LinkError::Closed),
        Some(Err(e)) => return Err(e.into()),
        Some(Ok(DevSecretsMsg::Values(v))) => v.values,
        Some(Ok(DevSecretsMsg::Error(e))) => return Err(LinkError::Refused(e.message)),
        Some(Ok(other)) => return Err(LinkError::Unexpected(format!("{other:?}"))),
    };
    let answered: Vec<&str> = values.iter().map(|v| v.name.as_str()).collect();
    if answered != names.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(LinkError::Unexpected(format!(
            "dev secrets for {answered:?}, asked for {names:?}"
        )));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode, encode};

    #[test]
    fn values_are_redacted_and_requests_bounded() {
        let v = Value {
            name: "DB_PASSWORD".into(),
            value: Zeroizing::new("hunter2".into()),
        };
        assert_eq!(format!("{v:?}"), "Value(DB_PASSWORD = <redacted>)");
        let mut buf = bytes::BytesMut::new();
        let msg = DevSecretsMsg::Values(Values { values: vec![v] });
        encode(&msg, &mut buf).unwrap();
        assert_eq!(decode::<DevSecretsMsg>(&mut buf).unwrap(), Some(msg));
        let too_many = Request {
            names: vec!["A".into(); MAX_NAMES + 1],
        };
        assert!(too_many.check().is_err());
    }
}
