//! IMDSv2 client: a session token (`PUT /latest/api/token` with a TTL), then the instance role's
//! name and its temporary credentials. Plain HTTP/1.1 to the link-local endpoint, one connection
//! per request, a timeout on each.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use zeroize::Zeroizing;

const TOKEN_PATH: &str = "/latest/api/token";
const ROLE_PATH: &str = "/latest/meta-data/iam/security-credentials/";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// IMDS answers are small; anything larger is not IMDS.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ImdsError {
    #[error("IMDS endpoint `{0}` must be http://HOST[:PORT]")]
    Endpoint(String),
    #[error("IMDS {path}: {message}")]
    Request { path: &'static str, message: String },
    #[error("IMDS {path} answered HTTP {status}")]
    Status { path: &'static str, status: u16 },
    #[error("IMDS credentials: {0}")]
    Credentials(String),
}

/// The credentials document IMDS serves (field names as AWS writes them).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    code: String,
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    token: Zeroizing<String>,
    expiration: String,
}

const INSTANCE_ID_PATH: &str = "/latest/meta-data/instance-id";

pub struct Imds {
    authority: String,
    token_ttl: Duration,
    timeout: Duration,
    token: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>>,
}

impl Imds {
    pub fn new(endpoint: &str, token_ttl_secs: u32, timeout: Duration) -> Result<Self, ImdsError> {
        let authority = endpoint
            .strip_prefix("http://")
            .map(|a| a.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| ImdsError::Endpoint(endpoint.into()))?;
        let authority = if authority.contains(':') && !authority.ends_with(']') {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        Ok(Imds {
            authority,
            token_ttl: Duration::from_secs(token_ttl_secs.into()),
            timeout,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// The instance role's current credentials.
    pub async fn credentials(&self) -> Result<enclave_link::credentials::Credentials, ImdsError> {
        let role = self.get_text(ROLE_PATH).await?;
        let role = role
            .lines()
            .next()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ImdsError::Credentials("no instance role attached".into()))?
            .to_string();
        let path = format!("{ROLE_PATH}{role}");
        let body = Zeroizing::new(self.get(&path, "credentials").await?.to_vec());
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| ImdsError::Credentials(format!("unreadable document: {e}")))?;
        if doc.code != "Success" {
            return Err(ImdsError::Credentials(format!("Code {}", doc.code)));
        }
        Ok(enclave_link::credentials::Credentials {
            access_key_id: doc.access_key_id,
            secret_access_key: doc.secret_access_key,
            session_token: doc.token,
            expiration: doc.expiration,
        })
    }

    /// This instance's id (the log streams' and the rollout signal's name for it).
    pub async fn instance_id(&self) -> Result<String, ImdsError> {
        Ok(self.get_text(INSTANCE_ID_PATH).await?.trim().to_string())
    }

    async fn get_text(&self, path: &'static str) -> Result<String, ImdsError> {
        let body = self.get(path, path).await?;
        String::from_utf8(body.to_vec()).map_err(|_| ImdsError::Request {
            path,
            message: "answer is not UTF-8".into(),
        })
    }

    /// GET with the session token; a 401 (token expired or revoked) gets one new token.
    async fn get(&self, path: &str, label: &'static str) -> Result<Bytes, ImdsError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let (status, body) = self
                .request(Method::GET, path, label, (TOKEN_HEADER, token.as_str()))
                .await?;
            match status {
                StatusCode::OK => return Ok(body),
                StatusCode::UNAUTHORIZED if attempt == 0 => *self.token.lock().await = None,
                s => {
                    return Err(ImdsError::Status {
                        path: label,
                        status: s.as_u16(),
                    })
                }
            }
        }
        Err(ImdsError::Status {
            path: label,
            status: 401,
        })
    }

    /// A session token, renewed a minute (or a tenth of its TTL) before it lapses.
    async fn token(&self) -> Result<Zeroizing<String>, ImdsError> {
        let mut slot = self.token.lock().await;
        if let Some((t, until)) = slot.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let ttl = self.token_ttl.as_secs().to_string();
        let (status, body) = self
            .request(Method::PUT, TOKEN_PATH, TOKEN_PATH, (TTL_HEADER, &ttl))
            .await?;
        if status != StatusCode::OK {
            return Err(ImdsError::Status {
                path: TOKEN_PATH,
                status: status.as_u16(),
            });
        }
        let token = Zeroizing::new(String::from_utf8_lossy(&body).trim().to_string());
        let margin = (self.token_ttl / 10).min(Duration::from_secs(60));
        *slot = Some((token.clone(), Instant::now() + self.token_ttl - margin));
        Ok(token)
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        label: &'static str,
        header: (&str, &str),
    ) -> Result<(StatusCode, Bytes), ImdsError> {
        let fail = |message: String| ImdsError::Request {
            path: label,
            message,
        };
        let exchange = async {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .map_err(|e| fail(format!("cannot connect to {}: {e}", self.authority)))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| fail(e.to_string()))?;
            tokio::spawn(conn);
            let req = Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, &self.authority)
                .header(header.0, header.1)
                .body(Empty::<Bytes>::new())
                .map_err(|e| fail(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {:?}", self.timeout)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let t = Duration::from_secs(1);
        assert_eq!(
            Imds::new("http://169.254.169.254", 60, t)
                .unwrap()
                .authority,
            "169.254.169.254:80"
        );
        assert_eq!(
            Imds::new("http://127.0.0.1:8080/", 60, t)
                .unwrap()
                .authority,
            "127.0.0.1:8080"
        );
        assert_eq!(
            Imds::new("http://[fd00:ec2::254]", 60, t)
                .unwrap()
                .authority,
            "[fd00:ec2::254]:80"
        );
        for bad in ["https://x", "169.254.169.254", "http://", "http://x/latest"] {
            assert!(Imds::new(bad, 60, t).is_err(), "{bad}");
        }
    }
}
