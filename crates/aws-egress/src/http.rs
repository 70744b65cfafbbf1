//! The SDK's HTTP client: hyper's pooled HTTP/1.1 client over [`Dialer`] connections wrapped in
//! rustls. Only `https` is spoken, so no request can leave in the clear.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::dialer::{BoxStream, Dialer};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Connect and read timeouts: the SDK's per-operation connector settings.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The `HttpClient` handed to every SDK client built by [`crate::sdk_config`].
#[derive(Clone)]
pub struct EgressHttpClient {
    dialer: Arc<dyn Dialer>,
    tls: TlsConnector,
    /// One pooled connector per timeout setting, as the SDK asks per operation config.
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

impl std::fmt::Debug for EgressHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressHttpClient")
            .field("dialer", &self.dialer)
            .finish_non_exhaustive()
    }
}

impl EgressHttpClient {
    pub(crate) fn new(dialer: Arc<dyn Dialer>, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            dialer,
            tls: TlsConnector::from(tls),
            connectors: Arc::default(),
        }
    }
}

impl HttpClient for EgressHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let key: Timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut cache = self.connectors.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let connect = TlsDial {
                    dialer: Arc::clone(&self.dialer),
                    tls: self.tls.clone(),
                    timeout: key.0,
                };
                SharedHttpConnector::new(Pooled {
                    client: Client::builder(TokioExecutor::new()).build(connect),
                    read_timeout: key.1,
                })
            })
            .clone()
    }
}

/// One timeout setting's pooled client.
#[derive(Clone)]
struct Pooled {
    client: Client<TlsDial, SdkBody>,
    read_timeout: Option<Duration>,
}

impl std::fmt::Debug for Pooled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pooled")
    }
}

impl HttpConnector for Pooled {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|e| ConnectorError::user(Box::new(e)))?;
            let send = this.client.request(request);
            let response = match this.read_timeout {
                Some(limit) => tokio::time::timeout(limit, send)
                    .await
                    .map_err(|e| ConnectorError::timeout(Box::new(e)))?,
                None => send.await,
            }
            .map_err(classify)?;
            let (parts, body) = response.into_parts();
            let response = http::Response::from_parts(parts, SdkBody::from_body_1_x(body));
            HttpResponse::try_from(response).map_err(|e| ConnectorError::other(Box::new(e), None))
        })
    }
}

fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    if error.is_connect() {
        ConnectorError::io(Box::new(error))
    } else {
        ConnectorError::other(Box::new(error), None)
    }
}

/// The hyper connector: dial, then TLS with the URI's host as server name.
#[derive(Clone)]
struct TlsDial {
    dialer: Arc<dyn Dialer>,
    tls: TlsConnector,
    timeout: Option<Duration>,
}

impl tower_service::Service<Uri> for TlsDial {
    type Response = TlsConnection;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConnection, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            if uri.scheme_str() != Some("https") {
                return Err(format!("refusing {uri}: only https leaves the enclave").into());
            }
            let host = uri
                .host()
                .ok_or("URI without host")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let connect = async {
                let stream = this.dialer.dial(&host, port).await?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                this.tls.connect(name, stream).await
            };
            let stream = match this.timeout {
                Some(limit) => tokio::time::timeout(limit, connect).await??,
                None => connect.await?,
            };
            Ok(TlsConnection(TokioIo::new(stream)))
        })
    }
}

/// A TLS stream in hyper's I/O traits.
pub(crate) struct TlsConnection(TokioIo<tokio_rustls::client::TlsStream<BoxStream>>);

impl Connection for TlsConnection {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
