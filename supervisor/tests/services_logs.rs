//! A log flood from a fake enclave: nothing blocks (neither the enclave's `log` calls nor the
//! control service next to it), drops are counted on both sides, and every record is accounted
//! for: forwarded + dropped by the host + dropped by the enclave = queued.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use enclave_link::control::ControlClient;
use enclave_link::logs::{Level, LogSender, LogStream};

/// A deliberately slow journald: every line takes 100 µs to write.
#[derive(Clone, Default)]
struct SlowSink(Arc<Mutex<Vec<String>>>);

impl Write for SlowSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_micros(100));
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const RECORDS: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_dropped_and_counted_on_both_sides_without_blocking() {
    let sink = SlowSink::default();
    let writer = sink.clone();
    tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config(dir.path());
    config.link.logs.buffer_records = 64;
    let run = common::start(&config).await;
    let enclave = common::enclave_side(dir.path());
    let logs = LogSender::spawn(enclave.clone(), 256);
    let mut control = ControlClient::connect(&*enclave).await.unwrap();

    let mut refused = 0;
    for i in 0..RECORDS {
        let stream = if i % 2 == 0 {
            LogStream::Stdout
        } else {
            LogStream::Stderr
        };
        if !logs.log(Level::Info, stream, &format!("record {i}")) {
            refused += 1;
        }
        if i == RECORDS / 2 {
            // The control service answers while the log service is flooded.
            control
                .app_exited(Some(0), None, Duration::from_secs(10))
                .await
                .unwrap();
        }
    }
    let stats = logs.shutdown(Duration::from_secs(30)).await;
    assert_eq!(stats.queued, RECORDS);
    assert!(refused > 0 && stats.dropped >= refused, "{stats:?}");

    // The final drop count reaches the host, and every record sent is forwarded or dropped.
    run.wait_metric(
        "nitro_enclave_log_events_dropped_total{side=\"enclave\"}",
        stats.dropped as f64,
    )
    .await;
    let host_dropped = "nitro_enclave_log_events_dropped_total{side=\"host\"}";
    let forwarded = "nitro_enclave_log_events_forwarded_total";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while run.metric(forwarded) + run.metric(host_dropped) < stats.sent as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            run.metrics_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (f, h, e) = (
        run.metric(forwarded) as u64,
        run.metric(host_dropped) as u64,
        stats.dropped,
    );
    assert!(
        h > 0,
        "the slow writer made the host drop some: {f} {h} {e}"
    );
    assert!(f > 0);
    assert_eq!(f + h + e, RECORDS, "forwarded {f} + host {h} + enclave {e}");
    assert_eq!(run.metrics.log_forwarded(), f);
    assert_eq!(run.metrics.log_dropped(), h + e);

    // Re-logged as JSON with source "enclave", the stream and the sequence number.
    let lines = sink.0.lock().unwrap().clone();
    let relogged: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["source"] == "enclave")
        .collect();
    assert_eq!(relogged.len() as u64, f);
    let first = &relogged[0];
    assert_eq!(first["target"], "enclave");
    assert_eq!(first["level"], "INFO");
    assert!(first["fields"]["message"]
        .as_str()
        .unwrap()
        .starts_with("record "));
    assert!(first["fields"]["seq"].is_u64() && first["fields"]["enclave_time"].is_string());
    assert!(relogged.iter().any(|v| v["fields"]["stream"] == "stderr"));
    run.services.shutdown().await;
}
