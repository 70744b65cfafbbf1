//! The management API on 127.0.0.1 (axum). Reads are open on loopback; `POST /v1/start|stop|
//! restart` need the bearer token. Everything answers JSON, errors included, and every request
//! is logged as JSON with `method`, `path`, `status` and `duration_ms`. Deleting the key is
//! deliberately not here: the instance role never holds `kms:ScheduleKeyDeletion`.

mod auth;
mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub use auth::{Token, TOKEN_FILE};
pub use error::ApiError;

use crate::metrics::{HttpLabel, Metrics, RUNTIME_COUNTERS};
use crate::persist::{Desired, Store};
use crate::services::ServiceMetrics;
use crate::status::Snapshot;
use crate::watchdog::Command;

/// Largest request body accepted (the action bodies are tiny).
const MAX_BODY: usize = 4096;

/// What the handlers share.
pub struct ApiState {
    pub status: watch::Receiver<Snapshot>,
    pub commands: mpsc::Sender<Command>,
    pub store: Arc<Store>,
    pub token: Token,
    pub registry: Registry,
    pub metrics: Arc<Metrics>,
    pub services: Arc<ServiceMetrics>,
}

type Shared = State<Arc<ApiState>>;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/enclave-info", get(enclave_info))
        .route("/metrics", get(metrics))
        .route("/v1/start", post(start))
        .route("/v1/stop", post(stop))
        .route("/v1/restart", post(restart))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .with_state(state)
}

/// 200 `{"status":"ready"}` when healthy, else 503 with the state and the reason.
async fn health(State(api): Shared) -> Response {
    let s = api.status.borrow().clone();
    if s.healthy {
        (StatusCode::OK, Json(json!({"status": "ready"}))).into_response()
    } else {
        let body = json!({
            "status": "not_ready",
            "state": s.state,
            "desired_state": s.desired_state,
            "reason": s.reason,
        });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

async fn enclave_info(State(api): Shared) -> Json<Value> {
    let s = api.status.borrow().clone();
    let mut metrics = serde_json::Map::new();
    for (name, _) in RUNTIME_COUNTERS {
        metrics.insert(
            name.into(),
            s.runtime_counters.get(name).copied().unwrap_or(0).into(),
        );
    }
    metrics.insert("log_forwarded".into(), api.services.log_forwarded().into());
    metrics.insert("log_dropped".into(), api.services.log_dropped().into());
    let mut v = serde_json::to_value(&s).unwrap_or_default();
    v["metrics"] = Value::Object(metrics);
    Json(v)
}

async fn metrics(State(api): Shared) -> Response {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &api.registry) {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// Optional body of the actions: a reason, logged for the audit trail.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    reason: Option<String>,
}

async fn start(State(api): Shared, req: Request) -> Result<Response, ApiError> {
    act(&api, Command::Start, req).await
}

async fn stop(State(api): Shared, req: Request) -> Result<Response, ApiError> {
    act(&api, Command::Stop, req).await
}

async fn restart(State(api): Shared, req: Request) -> Result<Response, ApiError> {
    act(&api, Command::Restart, req).await
}

/// Token first, then the body; the desired state is on disk before the answer.
async fn act(api: &ApiState, command: Command, req: Request) -> Result<Response, ApiError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !api.token.admits(authorization) {
        tracing::warn!(action = ?command, "management API: refused an unauthenticated action");
        return Err(ApiError::unauthorized());
    }
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body must be at most {MAX_BODY} bytes"),
            )
        })?;
    let body: ActionBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body must be empty or {{\"reason\": \"...\"}}: {e}"),
            )
        })?
    };
    let desired = match command {
        Command::Stop => Desired::Stopped,
        Command::Start | Command::Restart => Desired::Running,
    };
    api.store.set_desired(desired).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "state_not_saved",
            format!("the desired state could not be saved, nothing changed: {e}"),
        )
    })?;
    api.commands.try_send(command).map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many queued commands; retry shortly (the desired state is saved)",
        )
    })?;
    tracing::info!(action = ?command, reason = body.reason.as_deref(), "management API action accepted");
    let state = api.status.borrow().state;
    let action = match command {
        Command::Start => "start",
        Command::Stop => "stop",
        Command::Restart => "restart",
    };
    let body = json!({
        "action": action,
        "accepted": true,
        "desired_state": desired,
        "state": state,
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no endpoint {}; see GET /health, GET /v1/enclave-info, GET /metrics, POST /v1/start|stop|restart",
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(method: Method, req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", req.uri().path()),
    )
}

async fn access_log(State(api): Shared, req: Request<Body>, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/health") => "/health",
        Some("/v1/enclave-info") => "/v1/enclave-info",
        Some("/metrics") => "/metrics",
        Some("/v1/start") => "/v1/start",
        Some("/v1/stop") => "/v1/stop",
        Some("/v1/restart") => "/v1/restart",
        _ => "other",
    };
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "access",
        method = %method,
        path = %path,
        status,
        duration_ms = (duration_ms * 1000.0).round() / 1000.0,
        "request"
    );
    api.metrics
        .http
        .get_or_create(&HttpLabel {
            method: if route == "other" {
                "other".into()
            } else {
                method.to_string()
            },
            route,
            status,
        })
        .inc();
    response
}
