//! The internal API for the application, on 127.0.0.1 only (port `api.port`, default 7070;
//! the app finds `NITRO_API_URL` and `NITRO_API_TOKEN` in its environment). Every request needs
//! `Authorization: Bearer TOKEN`, compared in constant time.
//!
//! | method | path | |
//! | --- | --- | --- |
//! | POST | /v1/attestation | `{nonce, user_data, public_key}` (base64) → the raw NSM document (`application/cbor`) |
//! | GET | /v1/storage | `{"keys": [...]}` |
//! | PUT, GET, DELETE | /v1/storage/{name} | sealed values ≤ 10 MiB |
//! | PUT, GET, DELETE | /v1/secrets/{name} | dynamic secrets ≤ 64 KiB |

pub mod request;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nitro_nsm::Nsm;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::counters::{inc, Counters};
use crate::store::{Kind, Store, StoreError};
use request::{attestation_request, check_name, RequestError};

/// Largest storage value.
pub const MAX_STORAGE_VALUE: usize = 10 * 1024 * 1024;
/// Largest dynamic secret.
pub const MAX_SECRET_VALUE: usize = 64 * 1024;
const MAX_ATTESTATION_BODY: usize = 8 * 1024;

/// What the handlers share.
pub struct ApiState {
    pub token: Zeroizing<String>,
    pub nsm: Arc<dyn Nsm>,
    /// None without a storage bucket: storage and secrets answer 503.
    pub store: Option<Arc<Store>>,
    pub counters: Arc<Counters>,
}

/// An error answer: a status and a message that never holds a value.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::Corrupt(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError(status, e.to_string())
    }
}

type Shared = State<Arc<ApiState>>;

/// Binds 127.0.0.1:`port` and serves until the process ends.
pub async fn start(port: u16, state: Arc<ApiState>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "internal API stopped");
        }
    });
    Ok(addr)
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route(
            "/v1/attestation",
            post(attest).layer(DefaultBodyLimit::max(MAX_ATTESTATION_BODY)),
        )
        .route("/v1/storage", get(list_storage))
        .route(
            "/v1/storage/{*name}",
            get(get_storage)
                .put(put_storage)
                .delete(delete_storage)
                .layer(DefaultBodyLimit::max(MAX_STORAGE_VALUE)),
        )
        .route(
            "/v1/secrets/{*name}",
            get(get_secret)
                .put(put_secret)
                .delete(delete_secret)
                .layer(DefaultBodyLimit::max(MAX_SECRET_VALUE)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Counts every request, refuses those without the token (constant-time compare).
async fn authorize(State(state): Shared, request: Request, next: Next) -> Response {
    inc(&state.counters.http_requests);
    let response = if token_matches(request.headers(), &state.token) {
        next.run(request).await
    } else {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
        .into_response()
    };
    if response.status().is_client_error() || response.status().is_server_error() {
        inc(&state.counters.http_errors);
    }
    response
}

fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    bool::from(presented.ct_eq(token.as_bytes()))
}

async fn attest(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    let request = attestation_request(&body)?;
    let nsm = state.nsm.clone();
    let document = tokio::task::spawn_blocking(move || nsm.attest(&request))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/cbor")], document).into_response())
}

fn store(state: &ApiState) -> Result<&Store, ApiError> {
    state.store.as_deref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no storage bucket is configured for this deployment".into(),
        )
    })
}

/// Counts a store operation and its failure.
async fn counted<T>(
    state: &ApiState,
    op: &std::sync::atomic::AtomicU64,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, ApiError> {
    inc(op);
    f.await.map_err(|e| {
        inc(&state.counters.storage_errors);
        tracing::warn!(error = %e, "store operation failed");
        ApiError::from(e)
    })
}

async fn get_value(state: &ApiState, kind: Kind, name: &str) -> Result<Response, ApiError> {
    let name = check_name(name)?;
    let c = &state.counters;
    let op = match kind {
        Kind::Storage => &c.storage_reads,
        Kind::Secret => &c.secret_reads,
    };
    match counted(state, op, store(state)?.get(kind, name)).await? {
        Some(value) => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            value.to_vec(),
        )
            .into_response()),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no {name}"))),
    }
}

async fn put_value(
    state: &ApiState,
    kind: Kind,
    name: &str,
    body: &[u8],
) -> Result<StatusCode, ApiError> {
    let name = check_name(name)?;
    let c = &state.counters;
    let op = match kind {
        Kind::Storage => &c.storage_writes,
        Kind::Secret => &c.secret_writes,
    };
    counted(state, op, store(state)?.put(kind, name, body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_value(state: &ApiState, kind: Kind, name: &str) -> Result<StatusCode, ApiError> {
    let name = check_name(name)?;
    let c = &state.counters;
    let op = match kind {
        Kind::Storage => &c.storage_deletes,
        Kind::Secret => &c.secret_deletes,
    };
    counted(state, op, store(state)?.delete(kind, name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_storage(State(state): Shared) -> Result<Response, ApiError> {
    let keys = counted(
        &state,
        &state.counters.storage_reads,
        store(&state)?.list(Kind::Storage),
    )
    .await?;
    Ok(Json(serde_json::json!({ "keys": keys })).into_response())
}

async fn get_storage(State(state): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    get_value(&state, Kind::Storage, &name).await
}

async fn put_storage(
    State(state): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put_value(&state, Kind::Storage, &name, &body).await
}

async fn delete_storage(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_value(&state, Kind::Storage, &name).await
}

async fn get_secret(State(state): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    get_value(&state, Kind::Secret, &name).await
}

async fn put_secret(
    State(state): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    put_value(&state, Kind::Secret, &name, &body).await
}

async fn delete_secret(
    State(state): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete_value(&state, Kind::Secret, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        let mut h = HeaderMap::new();
        assert!(!token_matches(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(token_matches(&h, "s3cret"));
        assert!(!token_matches(&h, "s3cre"));
        assert!(!token_matches(&h, "s3cret!"));
        h.insert(header::AUTHORIZATION, "s3cret".parse().unwrap());
        assert!(!token_matches(&h, "s3cret"));
    }
}
