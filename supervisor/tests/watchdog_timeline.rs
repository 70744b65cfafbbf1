//! The watchdog loop (the real `Runner`) on tokio's paused clock with the in-process fake
//! driver: every delay is exact virtual time, nothing sleeps for real.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use enclave_supervisor::backoff::{Backoff, Jitter};
use enclave_supervisor::measure::{to_map, EifRefusal};
use enclave_supervisor::metrics::Metrics;
use enclave_supervisor::persist::{Desired, Store};
use enclave_supervisor::services::EnclaveEvent;
use enclave_supervisor::settings::WatchdogParams;
use enclave_supervisor::status::{Configured, Snapshot, Wall};
use enclave_supervisor::watchdog::{Command, EifCheck, Heartbeat, Inputs, Runner, Watchdog};
use nitro_cli_driver::{CommandKind, EnclaveDriver, FakeDriver, RunSpec, Scripted, Timeouts};
use nitro_eif::pcr::{Measurements, Pcr};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

const NAME: &str = "demo";

fn pcrs(b: u8) -> Measurements {
    Measurements {
        hash_algorithm: nitro_eif::pcr::HASH_ALGORITHM.into(),
        pcr0: Pcr([b; 48]),
        pcr1: Pcr([b.wrapping_add(1); 48]),
        pcr2: Pcr([b.wrapping_add(2); 48]),
        pcr8: None,
    }
}

fn params() -> WatchdogParams {
    WatchdogParams {
        poll: Duration::from_secs(5),
        boot_grace: Duration::from_secs(30),
        stable: Duration::from_secs(20),
        backoff_min: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
    }
}

type Verdict = Arc<Mutex<Result<Measurements, EifRefusal>>>;

struct H {
    fake: FakeDriver,
    status: watch::Receiver<Snapshot>,
    commands: mpsc::Sender<Command>,
    events: mpsc::Sender<EnclaveEvent>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Watchdog>,
    verdict: Verdict,
    store: Arc<Store>,
    t0: Instant,
}

/// Starts the loop over `fake` with a state directory `dir`.
fn start(fake: FakeDriver, dir: &std::path::Path, params: WatchdogParams) -> H {
    let store = Arc::new(Store::open(dir).unwrap());
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let now = Instant::now();
    let machine = Watchdog::new(
        NAME.into(),
        params,
        Some(pcrs(1)),
        Backoff::new(params.backoff_min, params.backoff_max, Jitter::seeded(42)),
        store.desired(),
        store.enclave(),
        now,
    );
    let configured = Configured {
        cid: 16,
        cpu_count: 2,
        memory_mib: 512,
        debug: false,
    };
    let wall = Wall::now();
    let (status_tx, status) = watch::channel(Snapshot::of(
        &machine,
        now,
        &wall,
        &configured,
        SystemTime::now(),
    ));
    let (commands, command_rx) = mpsc::channel(8);
    let (events, event_rx) = mpsc::channel(8);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let verdict: Verdict = Arc::new(Mutex::new(Ok(pcrs(1))));
    let v = verdict.clone();
    let runner = Runner {
        driver: Arc::new(fake.clone()) as Arc<dyn EnclaveDriver>,
        machine,
        spec: RunSpec {
            name: NAME.into(),
            eif_path: "/nonexistent/demo.eif".into(),
            cpu_count: 2,
            memory_mib: 512,
            cid: 16,
            debug: false,
        },
        eif_check: EifCheck::Given(Arc::new(move || v.lock().unwrap().clone())),
        timeouts: Timeouts {
            describe: Duration::from_secs(10),
            terminate: Duration::from_secs(30),
            run: Some(Duration::from_secs(60)),
        },
        store: store.clone(),
        metrics,
        status: status_tx,
        heartbeat: Arc::new(Heartbeat::default()),
        configured,
        wall,
        started: SystemTime::now(),
    };
    let task = tokio::spawn(runner.run(Inputs {
        commands: command_rx,
        events: event_rx,
        shutdown: shutdown_rx,
    }));
    H {
        fake,
        status,
        commands,
        events,
        shutdown,
        task,
        verdict,
        store,
        t0: now,
    }
}

impl H {
    /// Waits (virtual time) for a snapshot matching `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let r = tokio::time::timeout(
            Duration::from_secs(24 * 3600),
            self.status.wait_for(|s| pred(s)),
        )
        .await
        .map(|r| r.map(|s| s.clone()));
        match r {
            Ok(Ok(s)) => s,
            _ => panic!("never reached: {what}; last: {:#?}", *self.status.borrow()),
        }
    }

    fn at(&self) -> Duration {
        Instant::now() - self.t0
    }

    async fn ready(&mut self) -> Snapshot {
        self.until("booting", |s| {
            s.state == "booting" && s.measurements.matches == Some(true)
        })
        .await;
        self.events.send(EnclaveEvent::Ready).await.unwrap();
        self.until("ready", |s| s.state == "ready").await
    }

    fn runs(&self) -> usize {
        self.fake.calls().iter().filter(|c| *c == "run").count()
    }

    async fn stop(self) -> Watchdog {
        self.shutdown.send(true).unwrap();
        self.task.await.unwrap()
    }
}

fn fake() -> FakeDriver {
    FakeDriver::new(to_map(&pcrs(1)))
}

fn within(d: f64, base: f64) -> bool {
    (base * 0.8 - 1e-9..=base * 1.2 + 1e-9).contains(&d)
}

#[tokio::test(start_paused = true)]
async fn starts_and_becomes_healthy_when_the_runtime_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let s = h.ready().await;
    assert!(s.healthy && s.reason.is_none());
    assert_eq!(h.at(), Duration::ZERO, "no delay before the first start");
    assert_eq!(s.measurements.measured, Some(to_map(&pcrs(1))));
    assert_eq!(s.enclave_cid, 16);
    assert_eq!(h.fake.calls()[..3], ["describe", "run", "describe"]);
    let record = h.store.enclave().unwrap();
    assert_eq!(Some(record.id), s.enclave_id);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_enclave_is_restarted_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let first = h.ready().await;
    let killed_at = h.at();
    h.fake.kill(&nitro_cli_driver::EnclaveId(
        first.enclave_id.clone().unwrap(),
    ));
    let s = h.until("backoff", |s| s.state == "backoff").await;
    let detected = h.at() - killed_at;
    assert!(
        detected <= Duration::from_secs(5),
        "found at the next poll: {detected:?}"
    );
    let exit = s.last_exit.clone().unwrap();
    assert_eq!(exit.inner.reason.as_str(), "process_dead");
    let delay = s.backoff_secs.unwrap();
    assert!(within(delay, 1.0), "{delay}");
    let backoff_at = h.at();
    let s = h
        .until("restarted", |s| s.state == "booting" && s.restarts == 1)
        .await;
    assert_ne!(s.enclave_id, first.enclave_id);
    let waited = (h.at() - backoff_at).as_secs_f64();
    assert!(
        (waited - delay).abs() < 1e-3,
        "waited {waited}, backoff {delay}"
    );
    assert_eq!(h.fake.enclaves().len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn repeated_deaths_grow_the_backoff_to_the_max_and_health_resets_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let mut delays = Vec::new();
    for k in 0..6u64 {
        let s = h
            .until("booting", |s| {
                s.state == "booting" && s.restarts == k && s.enclave_id.is_some()
            })
            .await;
        h.fake
            .exit(&nitro_cli_driver::EnclaveId(s.enclave_id.unwrap()));
        let s = h
            .until("backoff", |s| s.state == "backoff" && s.restarts == k + 1)
            .await;
        assert_eq!(s.last_exit.unwrap().inner.reason.as_str(), "exited");
        delays.push(s.backoff_secs.unwrap());
    }
    for (d, base) in delays.iter().zip([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]) {
        assert!(within(*d, base) && *d <= 8.0, "{delays:?}");
    }
    // Healthy for less than the stable period: the next death still backs off at the max.
    h.ready().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(h.status.borrow().consecutive_failures, 6);
    // Past the stable period: reset.
    let s = h.until("reset", |s| s.consecutive_failures == 0).await;
    assert!(s.healthy);
    h.fake
        .kill(&nitro_cli_driver::EnclaveId(s.enclave_id.unwrap()));
    let s = h
        .until("backoff", |s| s.state == "backoff" && s.restarts == 7)
        .await;
    assert!(within(s.backoff_secs.unwrap(), 1.0), "{:?}", s.backoff_secs);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn no_ready_report_within_the_boot_grace_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let s = h.until("booting", |s| s.state == "booting").await;
    assert!(s.reason.unwrap().contains("boot grace"));
    h.events
        .send(EnclaveEvent::Stage {
            stage: "attestation".into(),
            detail: None,
        })
        .await
        .unwrap();
    let s = h.until("restart", |s| s.restarts == 1).await;
    // The grace is 30 s, polls every 5 s: found at the 30 s poll.
    assert_eq!(h.at(), Duration::from_secs(30));
    let e = s.last_error.unwrap();
    assert!(
        e.inner
            .message
            .contains("30 s boot grace (last stage: attestation)"),
        "{}",
        e.inner.message
    );
    assert_eq!(s.last_exit.unwrap().inner.reason.as_str(), "not_ready");
    assert!(h.fake.calls().iter().any(|c| c.starts_with("terminate ")));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn describe_errors_alone_never_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    h.ready().await;
    // E39 listings that still list ours are not failures.
    for _ in 0..3 {
        h.fake.script(CommandKind::Describe, Scripted::Fail("E39"));
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(h.status.borrow().describe_failures, 0);
    // Describe calls that time out, six in a row: counted and reported, never a restart.
    for _ in 0..6 {
        h.fake.script(
            CommandKind::Describe,
            Scripted::Hang(Duration::from_secs(10)),
        );
    }
    let s = h
        .until("describe failures", |s| s.describe_failures == 6)
        .await;
    assert!(s
        .last_error
        .unwrap()
        .inner
        .message
        .contains("no answer within 10.0 s"));
    tokio::time::sleep(Duration::from_secs(120)).await;
    let s = h.status.borrow().clone();
    assert_eq!((s.restarts, h.runs()), (0, 1), "{s:#?}");
    assert!(s.healthy);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_partial_listing_without_the_enclave_restarts_only_when_its_process_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let s = h.ready().await;
    // Another enclave's stale socket: every listing is partial (E39) but still lists ours.
    let other = h.fake.insert("other", BTreeMap::new());
    h.fake.kill(&other.id);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(h.status.borrow().restarts, 0);
    assert!(
        h.status.borrow().describe_failures == 0,
        "ours listed: not a failure"
    );
    // Ours dies too: partial listing without it and a dead process.
    h.fake
        .kill(&nitro_cli_driver::EnclaveId(s.enclave_id.unwrap()));
    let s = h.until("restart", |s| s.restarts == 1).await;
    assert_eq!(s.last_exit.unwrap().inner.reason.as_str(), "process_dead");
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn run_failures_back_off_and_configuration_errors_wait_the_max() {
    let dir = tempfile::tempdir().unwrap();
    let f = fake();
    f.script(CommandKind::Run, Scripted::Fail("E29"));
    f.script(CommandKind::Run, Scripted::Fail("E36"));
    f.script(CommandKind::Run, Scripted::Fail("E26"));
    let mut h = start(f, dir.path(), params());
    let s = h
        .until("first failure", |s| s.consecutive_failures == 1)
        .await;
    assert!(within(s.backoff_secs.unwrap(), 1.0));
    let err = s.last_error.unwrap();
    assert_eq!(err.inner.driver.as_ref().unwrap().codes, ["E29"]);
    let s = h
        .until("second failure", |s| s.consecutive_failures == 2)
        .await;
    assert!(within(s.backoff_secs.unwrap(), 2.0));
    let s = h
        .until("config failure", |s| s.consecutive_failures == 3)
        .await;
    assert_eq!(
        s.backoff_secs,
        Some(8.0),
        "configuration errors wait the maximum"
    );
    let t = h.at();
    h.ready().await;
    assert_eq!(h.at() - t, Duration::from_secs(8));
    assert_eq!(h.runs(), 4);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_run_looks_before_starting_again() {
    let dir = tempfile::tempdir().unwrap();
    let f = fake();
    f.script(CommandKind::Run, Scripted::Hang(Duration::from_secs(60)));
    let mut h = start(f.clone(), dir.path(), params());
    h.until("starting", |s| s.state == "starting").await;
    // The enclave comes up although nitro-cli never answers (it is killed at the bound).
    tokio::time::sleep(Duration::from_secs(30)).await;
    f.insert(NAME, to_map(&pcrs(1)));
    let s = h.until("adopted", |s| s.adopted).await;
    assert!(s.last_error.unwrap().inner.driver.unwrap().timed_out);
    assert_eq!(
        h.at(),
        Duration::from_secs(60),
        "looked right after the timeout"
    );
    assert_eq!(h.runs(), 1, "no second run-enclave");
    assert_eq!(h.fake.enclaves().len(), 1);
    assert!(s.enclave_id.is_some());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn adopts_ours_terminates_a_stale_release_and_leaves_others_alone() {
    let dir = tempfile::tempdir().unwrap();
    let f = fake();
    let ours = f.insert(NAME, to_map(&pcrs(1)));
    let foreign = f.insert("someone-else", to_map(&pcrs(7)));
    let mut h = start(f.clone(), dir.path(), params());
    let s = h
        .until("adopted", |s| s.adopted && s.state == "booting")
        .await;
    assert_eq!(s.enclave_id.as_deref(), Some(ours.id.0.as_str()));
    assert_eq!(s.foreign_enclaves, std::slice::from_ref(&foreign.id.0));
    h.events.send(EnclaveEvent::Ready).await.unwrap();
    h.until("ready", |s| s.healthy).await;
    assert_eq!(h.runs(), 0);
    h.stop().await;

    // Our name, another PCR0 (an older release): terminated, then ours started.
    let dir = tempfile::tempdir().unwrap();
    let f = fake();
    let old = f.insert(NAME, to_map(&pcrs(5)));
    let mut h = start(f.clone(), dir.path(), params());
    let s = h
        .until("started", |s| s.state == "booting" && !s.adopted)
        .await;
    assert_ne!(s.enclave_id.as_deref(), Some(old.id.0.as_str()));
    assert!(f.calls().contains(&format!("terminate {}", old.id)));
    assert_eq!(f.enclaves().len(), 1);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn operator_stop_is_a_persisted_latch() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    h.ready().await;
    // The API persists before sending; the test does the same.
    h.store.set_desired(Desired::Stopped).unwrap();
    h.commands.send(Command::Stop).await.unwrap();
    h.until("stopped", |s| s.state == "stopped").await;
    assert!(h.fake.enclaves().is_empty());
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!((h.runs(), h.status.borrow().restarts), (1, 0));
    let f = h.fake.clone();
    h.stop().await;

    // A new supervisor on the same state directory stays stopped.
    let mut h = start(f.clone(), dir.path(), params());
    let s = h.until("stopped again", |s| s.state == "stopped").await;
    assert_eq!(s.desired_state, Desired::Stopped);
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(f.calls().iter().filter(|c| *c == "run").count(), 1);
    // Start clears the latch.
    h.store.set_desired(Desired::Running).unwrap();
    h.commands.send(Command::Start).await.unwrap();
    h.ready().await;
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn operator_restart_terminates_and_starts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    let first = h.ready().await;
    let t = h.at();
    h.commands.send(Command::Restart).await.unwrap();
    let s = h
        .until("restarted", |s| s.state == "booting" && s.restarts == 1)
        .await;
    assert_eq!(h.at(), t, "no backoff for an operator restart");
    assert_ne!(s.enclave_id, first.enclave_id);
    assert_eq!(s.last_exit.unwrap().inner.reason.as_str(), "operator");
    assert_eq!(s.consecutive_failures, 0);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn measurements_that_differ_after_start_terminate_and_hold() {
    let dir = tempfile::tempdir().unwrap();
    let f = FakeDriver::new(to_map(&pcrs(9)));
    let mut h = start(f.clone(), dir.path(), params());
    let s = h.until("failed", |s| s.state == "failed").await;
    assert_eq!(s.measurements.matches, Some(false));
    let msg = s.last_error.unwrap().inner.message;
    assert!(
        msg.contains("describe-enclaves measures the running enclave differently"),
        "{msg}"
    );
    assert!(msg.contains("PCR0 is 0909"), "{msg}");
    assert!(f.enclaves().is_empty(), "terminated");
    assert_eq!(s.next_attempt_at, None, "held until an operator acts");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(h.runs(), 1);
    // Fixed; an operator start runs it again.
    f.set_measurements(to_map(&pcrs(1)));
    h.commands.send(Command::Start).await.unwrap();
    h.ready().await;
    assert_eq!(h.runs(), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_eif_that_does_not_measure_as_rendered_is_refused_and_rechecked() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    *h.verdict.lock().unwrap() = Err(EifRefusal::Mismatch {
        measured: Box::new(pcrs(3)),
        message: "the EIF /x.eif does not measure as rendered: PCR0 is 0303…".into(),
    });
    let s = h.until("refused", |s| s.state == "failed").await;
    assert!(!s.healthy);
    assert!(s.reason.unwrap().contains("does not measure as rendered"));
    assert_eq!(s.measurements.eif, Some(to_map(&pcrs(3))));
    assert_eq!(h.runs(), 0);
    assert_eq!(s.backoff_secs, Some(8.0));
    // Re-checked every backoff_max; once the EIF is right again it starts.
    *h.verdict.lock().unwrap() = Ok(pcrs(1));
    let t = h.at();
    h.ready().await;
    assert_eq!(h.at() - t, Duration::from_secs(8));
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn runtime_events_feed_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = start(fake(), dir.path(), params());
    h.ready().await;
    h.events
        .send(EnclaveEvent::Counters(BTreeMap::from([(
            "http_requests".into(),
            12,
        )])))
        .await
        .unwrap();
    h.until("counters", |s| {
        s.runtime_counters.get("http_requests") == Some(&12)
    })
    .await;
    h.events
        .send(EnclaveEvent::AppExited {
            code: Some(3),
            signal: None,
        })
        .await
        .unwrap();
    h.events
        .send(EnclaveEvent::Fatal {
            stage: "app".into(),
            message: "exited with 3".into(),
        })
        .await
        .unwrap();
    let s = h.until("unready", |s| s.state == "unready").await;
    assert!(s.reason.unwrap().contains("waiting for the runtime"));
    assert_eq!(s.last_error.unwrap().inner.message, "app: exited with 3");
    h.fake
        .exit(&nitro_cli_driver::EnclaveId(s.enclave_id.unwrap()));
    let s = h.until("gone", |s| s.state == "backoff").await;
    let exit = s.last_exit.unwrap().inner;
    assert_eq!(
        (exit.app_exit_code, exit.reason.as_str()),
        (Some(3), "exited")
    );
    h.stop().await;
}
