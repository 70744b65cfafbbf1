//! The shipper against moto's CloudWatch Logs over the real wire protocol: order per stream,
//! an outage (moto stopped, then restarted with its state gone), the API's batch limits under
//! oversized and high-rate input, and the retry loop on a test-controlled clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_cloudwatchlogs::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_cloudwatchlogs::config::{ConfigBag, Credentials, Intercept, RuntimeComponents};
use aws_sdk_cloudwatchlogs::error::BoxError;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsInput;
use aws_sdk_cloudwatchlogs::Client;
use cloudwatch_log_shipping::{
    Bounds, Buffer, Clock, Record, Shipper, ShipperConfig, Sleep, Source, TokioClock,
    MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_BATCH_SPAN_MS, MAX_EVENT_BYTES, MAX_MESSAGE_BYTES,
};
use harness::Moto;
use tokio::sync::{mpsc, Semaphore};

const GROUP: &str = "/nitro-provision/demo";
const INSTANCE: &str = "i-0123456789abcdef0";

/// Every PutLogEvents request the SDK is about to send: (events, bytes incl. overhead, span,
/// time-ordered).
#[derive(Debug, Default)]
struct Requests(Mutex<Vec<(usize, usize, i64, bool)>>);

#[derive(Debug)]
struct Recorder(Arc<Requests>);

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "put-log-events-recorder"
    }

    fn read_before_serialization(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = ctx.input().downcast_ref::<PutLogEventsInput>() {
            let events = input.log_events();
            let bytes = events.iter().map(|e| e.message().len() + 26).sum();
            let ts: Vec<i64> = events.iter().map(|e| e.timestamp()).collect();
            let span = ts.iter().max().unwrap_or(&0) - ts.iter().min().unwrap_or(&0);
            let ordered = ts.windows(2).all(|w| w[0] <= w[1]);
            self.0
                 .0
                .lock()
                .unwrap()
                .push((events.len(), bytes, span, ordered));
        }
        Ok(())
    }
}

async fn client(moto: &Moto, requests: Option<Arc<Requests>>) -> Client {
    let shared = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(moto.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut conf = aws_sdk_cloudwatchlogs::config::Builder::from(&shared);
    if let Some(r) = requests {
        conf = conf.interceptor(Recorder(r));
    }
    Client::from_conf(conf.build())
}

async fn create_group(client: &Client) {
    client
        .create_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .expect("create log group");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rec(ts: i64, source: Source, message: String) -> Record {
    Record {
        timestamp_ms: ts,
        source,
        message,
    }
}

fn shipper(client: Client, buffer: &Arc<Buffer>, clock: Arc<dyn Clock>) -> Shipper {
    Shipper::new(
        client,
        buffer.clone(),
        ShipperConfig::new(GROUP, INSTANCE),
        clock,
    )
}

fn big() -> Bounds {
    Bounds {
        records: 100_000,
        bytes: 64 << 20,
    }
}

/// Every message of one stream, oldest first.
async fn read_stream(client: &Client, source: Source) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .get_log_events()
            .log_group_name(GROUP)
            .log_stream_name(source.stream_name(INSTANCE))
            .start_from_head(true)
            .set_next_token(token.clone())
            .send()
            .await
            .expect("get log events");
        let events = page.events();
        out.extend(
            events
                .iter()
                .map(|e| e.message().unwrap_or_default().to_string()),
        );
        let next = page.next_forward_token().map(str::to_string);
        if events.is_empty() || next == token {
            return out;
        }
        token = next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_in_order_one_stream_per_instance_and_source() {
    let moto = Moto::start();
    let client = client(&moto, None).await;
    create_group(&client).await;
    let buffer = Buffer::new(big());
    let t0 = now_ms();
    for i in 0..40 {
        let source = if i % 2 == 0 {
            Source::Supervisor
        } else {
            Source::Enclave
        };
        buffer.push(rec(t0 + i, source, format!("line {i}")));
    }
    let mut shipper = shipper(client.clone(), &buffer, Arc::new(TokioClock));
    shipper.flush().await.expect("flush");

    let sup = read_stream(&client, Source::Supervisor).await;
    let enc = read_stream(&client, Source::Enclave).await;
    let expect = |parity| {
        (0..40)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(sup, expect(0));
    assert_eq!(enc, expect(1));
    let s = buffer.snapshot();
    assert_eq!((s.shipped, s.dropped, s.buffered), (40, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing_up_to_the_bound_and_counts_the_drops() {
    let mut moto = Moto::start();
    let client = client(&moto, None).await;
    create_group(&client).await;
    let buffer = Buffer::new(Bounds {
        records: 100,
        bytes: 1 << 20,
    });
    let mut shipper = shipper(client.clone(), &buffer, Arc::new(TokioClock));
    let t0 = now_ms();
    let line = |i: i64| rec(t0 + i, Source::Supervisor, format!("line {i}"));
    for i in 0..10 {
        buffer.push(line(i));
    }
    shipper.flush().await.expect("flush before the outage");

    moto.stop();
    for i in 10..40 {
        buffer.push(line(i));
    }
    let err = shipper.flush().await.expect_err("moto is down");
    assert!(!err.to_string().is_empty());
    // The failed batch is held by the shipper; the buffer keeps filling behind it.
    for i in 40..190 {
        buffer.push(line(i));
    }
    assert!(shipper.flush().await.is_err(), "still down");
    let s = buffer.snapshot();
    assert_eq!((s.buffered, s.dropped), (100, 50));

    // Back, with its state gone: the shipper re-creates the stream it had made before.
    moto.restart();
    create_group(&client).await;
    shipper.flush().await.expect("flush after the outage");
    let got = read_stream(&client, Source::Supervisor).await;
    let want: Vec<String> = (10..40)
        .chain(90..190)
        .map(|i| format!("line {i}"))
        .collect();
    assert_eq!(got, want, "the held batch, then the newest 100");
    let s = buffer.snapshot();
    assert_eq!((s.shipped, s.dropped, s.buffered), (140, 50, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_high_rate_input_stays_within_the_api_limits() {
    let moto = Moto::start();
    let requests = Arc::new(Requests::default());
    let client = client(&moto, Some(requests.clone())).await;
    create_group(&client).await;
    let buffer = Buffer::new(big());
    let t0 = now_ms() - 2 * MAX_BATCH_SPAN_MS + 60_000;
    // 25,000 small lines over two days of timestamps, slightly out of order, and six lines
    // bigger than one event may be.
    for i in 0..25_000i64 {
        let jitter = if i % 7 == 0 { -3 } else { 0 };
        let ts = t0 + i * (2 * MAX_BATCH_SPAN_MS / 25_000) + jitter;
        buffer.push(rec(ts, Source::Enclave, format!("event {i:05}")));
    }
    for i in 0..6 {
        buffer.push(rec(
            now_ms(),
            Source::Supervisor,
            format!("{i}{}", "é".repeat(MAX_EVENT_BYTES)),
        ));
    }
    assert_eq!(buffer.snapshot().truncated, 6);
    let mut shipper = shipper(client.clone(), &buffer, Arc::new(TokioClock));
    shipper.flush().await.expect("flush");

    let sent = requests.0.lock().unwrap().clone();
    assert!(sent.len() >= 5, "{} requests", sent.len());
    for (events, bytes, span, ordered) in &sent {
        assert!(*events <= MAX_BATCH_EVENTS, "{events} events");
        assert!(*bytes <= MAX_BATCH_BYTES, "{bytes} bytes");
        assert!(*span <= MAX_BATCH_SPAN_MS, "{span} ms");
        assert!(ordered, "batch not time-ordered");
    }
    let total: usize = sent.iter().map(|r| r.0).sum();
    assert_eq!(total, 25_006);
    let s = buffer.snapshot();
    assert_eq!(s.shipped + s.rejected, 25_006, "{s:?}");
    let big_lines = read_stream(&client, Source::Supervisor).await;
    assert_eq!(big_lines.len(), 6);
    assert!(big_lines.iter().all(|m| m.len() <= MAX_MESSAGE_BYTES));
}

/// A clock whose sleeps wait for the test: each requested delay is reported, and the sleep ends
/// when the test grants a step.
struct SteppedClock {
    requested: mpsc::UnboundedSender<Duration>,
    steps: Semaphore,
}

impl Clock for SteppedClock {
    fn sleep(&self, duration: Duration) -> Sleep<'_> {
        Box::pin(async move {
            self.requested.send(duration).expect("test listening");
            self.steps.acquire().await.expect("open").forget();
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_retries_with_growing_backoff_until_cloudwatch_is_back() {
    let mut moto = Moto::start();
    let client = client(&moto, None).await;
    moto.stop();
    let buffer = Buffer::new(big());
    let (tx, mut requested) = mpsc::unbounded_channel();
    let clock = Arc::new(SteppedClock {
        requested: tx,
        steps: Semaphore::new(0),
    });
    let task = tokio::spawn(shipper(client.clone(), &buffer, clock.clone()).run());
    buffer.push(rec(
        now_ms(),
        Source::Supervisor,
        "during the outage".into(),
    ));

    let linger = requested.recv().await.unwrap();
    assert_eq!(linger, Duration::from_secs(1));
    clock.steps.add_permits(1);
    let mut delays = Vec::new();
    for _ in 0..4 {
        delays.push(requested.recv().await.unwrap());
        clock.steps.add_permits(1);
    }
    // 200 ms doubling, each within ±20 % jitter.
    for (n, d) in delays.iter().enumerate() {
        let nominal = 200.0 * 2f64.powi(n as i32);
        let ms = d.as_secs_f64() * 1000.0;
        assert!(
            ms >= nominal * 0.8 - 1.0 && ms <= nominal * 1.2 + 1.0,
            "{delays:?}"
        );
    }
    // The fifth retry waits for us; bring CloudWatch back first.
    let _fifth = requested.recv().await.unwrap();
    moto.restart();
    create_group(&client).await;
    buffer.close();
    clock.steps.add_permits(1);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("run returns after the close")
        .unwrap();
    assert_eq!(
        read_stream(&client, Source::Supervisor).await,
        ["during the outage"]
    );
    assert_eq!(buffer.snapshot().shipped, 1);
}
