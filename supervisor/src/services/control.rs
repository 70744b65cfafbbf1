//! Host side of the control service: every report becomes an [`EnclaveEvent`]; a fatal error and
//! the application's exit status are acknowledged once the event is queued for the watchdog.

use enclave_link::control::{Ack, ControlMsg};
use enclave_link::frame::Codec;
use enclave_link::{FrameError, Stream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::link::Ctx;
use super::EnclaveEvent;

pub(crate) const SERVICE: &str = "control";

pub(crate) async fn start(
    ctx: &Ctx,
    events: mpsc::Sender<EnclaveEvent>,
) -> Result<(), super::ServiceError> {
    let listener = ctx.listen(SERVICE, enclave_link::ports::CONTROL).await?;
    let metrics = ctx.metrics.clone();
    ctx.serve(SERVICE, listener, move |stream| {
        serve(stream, events.clone(), metrics.clone())
    });
    Ok(())
}

async fn serve(
    stream: Stream,
    events: mpsc::Sender<EnclaveEvent>,
    metrics: std::sync::Arc<super::ServiceMetrics>,
) {
    let _ = events.send(EnclaveEvent::Connected).await;
    let mut framed = Framed::new(stream, Codec::<ControlMsg>::default());
    while let Some(frame) = framed.next().await {
        let msg = match frame {
            Ok(m) => m,
            Err(FrameError::Io(_)) => break,
            Err(e) => {
                metrics.frame_rejected(SERVICE, &e);
                tracing::warn!(service = SERVICE, error = %e, "closing control connection");
                break;
            }
        };
        let (event, ack) = match msg {
            ControlMsg::Stage(s) => (
                EnclaveEvent::Stage {
                    stage: s.stage,
                    detail: s.detail,
                },
                false,
            ),
            ControlMsg::Ready(_) => (EnclaveEvent::Ready, false),
            ControlMsg::Fatal(f) => (
                EnclaveEvent::Fatal {
                    stage: f.stage,
                    message: f.message,
                },
                true,
            ),
            ControlMsg::Counters(c) => (EnclaveEvent::Counters(c.values), false),
            ControlMsg::AppExited(a) => (
                EnclaveEvent::AppExited {
                    code: a.code,
                    signal: a.signal,
                },
                true,
            ),
            ControlMsg::Ack(_) => {
                // Only the parent sends acknowledgements.
                metrics.frame_rejected(SERVICE, &FrameError::UnknownKind(0x1f));
                break;
            }
        };
        if events.send(event).await.is_err() {
            break; // the supervisor is shutting down
        }
        if ack && framed.send(ControlMsg::Ack(Ack {})).await.is_err() {
            break;
        }
    }
    let _ = events.send(EnclaveEvent::Disconnected).await;
}
