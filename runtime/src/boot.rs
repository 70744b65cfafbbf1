//! The boot sequence, every stage reported to the supervisor: control → config → logs →
//! loopback → entropy → clock → attestation → credentials → secrets → api → ingress → app
//! (a local run's dev secrets skip credentials: they come from the local supervisor, not KMS).
//! Any failure is reported as `fatal` with its stage and an explanation (acknowledged by the
//! supervisor, since init reboots the enclave the moment we exit), then the runtime exits 1.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use attested_kms::AttestedKms;
use companion_config::{RuntimeConfig, SecretsSource};
use enclave_link::control::ControlClient;
use enclave_link::logs::LogSender;
use enclave_link::Transport;
use nitro_nsm::{AttestationRequest, Nsm};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::api::{self, ApiState};
use crate::aws::{self, Clients};
use crate::child::{self, Exit, Running};
use crate::counters::Counters;
use crate::logging::Forward;
use crate::platform::{self, MAX_CLOCK_OFFSET};
use crate::secrets::{EnvSecret, Fetcher};
use crate::store::Store;
use crate::{config, dev_secrets, ingress, readiness, user};

/// The hardware RNG an enclave's kernel must use (registered by nsm.ko).
const NSM_HWRNG: &str = "nsm-hwrng";
/// Records waiting for the log connection; beyond it they are dropped and counted.
const LOG_QUEUE: usize = 4096;
const LOG_FLUSH: Duration = Duration::from_secs(3);
const COUNTER_INTERVAL: Duration = Duration::from_secs(10);
const CONTROL_ATTEMPTS: u32 = 25;

/// A stage that failed, and why.
#[derive(Debug)]
pub struct Failure {
    pub stage: &'static str,
    pub message: String,
}

fn at<E: Display>(stage: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| Failure {
        stage,
        message: e.to_string(),
    }
}

/// The control connection, shared by the sequence and the counter relay.
struct Reporter {
    control: Mutex<ControlClient>,
    ack: Duration,
}

impl Reporter {
    async fn stage(&self, stage: &str, detail: &str) {
        tracing::info!(stage, detail, "boot stage");
        if let Err(e) = self.control.lock().await.stage(stage, Some(detail)).await {
            tracing::warn!(stage, error = %e, "cannot report the stage");
        }
    }

    async fn fatal(&self, f: &Failure) {
        tracing::error!(stage = f.stage, message = %f.message, "fatal");
        let mut c = self.control.lock().await;
        if let Err(e) = c.fatal(f.stage, &f.message, self.ack).await {
            tracing::error!(error = %e, "the supervisor did not acknowledge the fatal error");
        }
    }
}

/// Runs the enclave's life; returns the runtime's exit code.
pub async fn run(config: RuntimeConfig, argv: Vec<String>, forward: Forward) -> i32 {
    let transport = match config::transport(&config) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(stage = "control", error = %e, "fatal: no link to the supervisor");
            return 1;
        }
    };
    let control = match connect_control(&*transport).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(stage = "control", error = %e, "fatal: no link to the supervisor");
            return 1;
        }
    };
    let reporter = Arc::new(Reporter {
        control: Mutex::new(control),
        ack: Duration::from_millis(config.link.ack_timeout_ms.into()),
    });
    reporter.stage("control", "connected").await;
    let outcome = match signals() {
        Ok(sig) => {
            Life {
                config: &config,
                argv: &argv,
                transport,
                reporter: reporter.clone(),
                forward: forward.clone(),
                counters: Arc::default(),
                sig,
            }
            .live()
            .await
        }
        Err(e) => Err(at("control")(e)),
    };
    let code = match outcome {
        Ok(exit) => exit.as_code(),
        Err(f) => {
            reporter.fatal(&f).await;
            1
        }
    };
    if let Some(stats) = forward.shutdown(LOG_FLUSH).await {
        tracing::info!(
            sent = stats.sent,
            dropped = stats.dropped,
            "log forwarding stopped"
        );
    }
    code
}

/// The supervisor binds before it starts the enclave, but give a slow host a few seconds.
async fn connect_control(
    transport: &dyn Transport,
) -> Result<ControlClient, enclave_link::LinkError> {
    let mut attempt = 0;
    loop {
        match ControlClient::connect(transport).await {
            Ok(c) => return Ok(c),
            Err(e) if attempt + 1 >= CONTROL_ATTEMPTS => return Err(e),
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM and SIGINT, caught from the start so a stop during boot is reported too.
struct Signals {
    term: Signal,
    int: Signal,
}

fn signals() -> std::io::Result<Signals> {
    Ok(Signals {
        term: signal(SignalKind::terminate())?,
        int: signal(SignalKind::interrupt())?,
    })
}

impl Signals {
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.int.recv() => libc::SIGINT,
        }
    }
}

struct Life<'a> {
    config: &'a RuntimeConfig,
    argv: &'a [String],
    transport: Arc<dyn Transport>,
    reporter: Arc<Reporter>,
    forward: Forward,
    counters: Arc<Counters>,
    sig: Signals,
}

impl Life<'_> {
    async fn live(mut self) -> Result<Exit, Failure> {
        let booted = {
            let boot = boot(
                self.config,
                self.argv,
                &self.transport,
                &self.reporter,
                &self.forward,
                &self.counters,
            );
            tokio::select! {
                b = boot => b,
                s = self.sig.next() => Err(Failure { stage: "boot", message: format!("stopped by signal {s} before the application started") }),
            }
        };
        let mut running = booted?;
        tokio::spawn(relay_counters(self.reporter.clone(), self.counters.clone()));
        let exit = self.supervise(&mut running).await?;
        let _ = tokio::time::timeout(LOG_FLUSH, running.drain_pipes()).await;
        let _ = self
            .reporter
            .control
            .lock()
            .await
            .counters(self.counters.snapshot())
            .await;
        let (code, signal) = match exit {
            Exit::Code(c) => (Some(c), None),
            Exit::Signal(s) => (None, Some(s)),
        };
        tracing::info!(?code, ?signal, "application exited");
        let mut c = self.reporter.control.lock().await;
        if let Err(e) = c.app_exited(code, signal, self.reporter.ack).await {
            tracing::error!(error = %e, "the supervisor did not acknowledge the exit status");
        }
        Ok(exit)
    }

    /// Readiness, then signals forwarded until the app exits (SIGKILL to its group after the
    /// grace).
    async fn supervise(&mut self, running: &mut Running) -> Result<Exit, Failure> {
        let grace = Duration::from_secs(self.config.app.stop_grace_secs.into());
        let probe = self.config.app.readiness.clone();
        let ready = async {
            match &probe {
                Some(p) => readiness::wait(p).await,
                None => Ok("no readiness probe".into()),
            }
        };
        tokio::pin!(ready);
        let mut readied = false;
        let mut kill_at: Option<tokio::time::Instant> = None;
        loop {
            let deadline = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                exit = &mut running.exit => return exit.map_err(|_| Failure { stage: "app", message: "lost the application's status".into() }),
                r = &mut ready, if !readied => {
                    readied = true;
                    match r {
                        Ok(detail) => {
                            self.reporter.stage("ready", &detail).await;
                            let _ = self.reporter.control.lock().await.ready().await;
                        }
                        Err(e) => {
                            child::signal(running.pid, libc::SIGKILL, true);
                            return Err(Failure { stage: "ready", message: e });
                        }
                    }
                }
                s = self.sig.next() => {
                    tracing::info!(signal = s, "forwarding to the application");
                    child::signal(running.pid, s, false);
                    kill_at.get_or_insert(tokio::time::Instant::now() + grace);
                }
                _ = deadline => {
                    tracing::warn!(?grace, "the application outlived its stop grace: SIGKILL");
                    child::signal(running.pid, libc::SIGKILL, true);
                    kill_at = None;
                }
            }
        }
    }
}

async fn relay_counters(reporter: Arc<Reporter>, counters: Arc<Counters>) {
    let mut tick = tokio::time::interval(COUNTER_INTERVAL);
    loop {
        tick.tick().await;
        let _ = reporter
            .control
            .lock()
            .await
            .counters(counters.snapshot())
            .await;
    }
}

/// Every stage up to the started application.
async fn boot(
    config: &RuntimeConfig,
    argv: &[String],
    transport: &Arc<dyn Transport>,
    reporter: &Reporter,
    forward: &Forward,
    counters: &Arc<Counters>,
) -> Result<Running, Failure> {
    let violations = config::production_violations(config);
    if !violations.is_empty() {
        return Err(Failure {
            stage: "config",
            message: format!("`production: true` refuses {}", violations.join(", ")),
        });
    }
    reporter
        .stage(
            "config",
            &format!(
                "deployment {}, production {}",
                config.deployment, config.production
            ),
        )
        .await;
    if config.log_forwarding {
        forward.attach(Arc::new(LogSender::spawn(transport.clone(), LOG_QUEUE)));
        reporter.stage("logs", "forwarding to the supervisor").await;
    } else {
        reporter.stage("logs", "forwarding off: console only").await;
    }
    check_platform(config, reporter).await?;
    let nsm = attest_self(config, reporter).await?;

    let (secrets, store) = match config.secrets_source {
        SecretsSource::Kms => attested_secrets(config, transport, reporter, counters, &nsm).await?,
        SecretsSource::LocalDev => {
            let secrets = dev_secrets::fetch(&**transport, &config.secrets)
                .await
                .map_err(at("secrets"))?;
            reporter
                .stage("secrets", &dev_secrets::stage_detail(secrets.len()))
                .await;
            (secrets, None)
        }
    };

    let token = api_token().map_err(at("api"))?;
    let state = Arc::new(ApiState {
        token: token.clone(),
        nsm: nsm.clone(),
        store,
        counters: counters.clone(),
    });
    let addr = api::start(config.api.port, state)
        .await
        .map_err(at("api"))?;
    reporter.stage("api", &format!("http://{addr}")).await;

    ingress::start(transport, &config.ingress_ports)
        .await
        .map_err(at("ingress"))?;
    reporter
        .stage(
            "ingress",
            &format!("vsock → 127.0.0.1 for ports {:?}", config.ingress_ports),
        )
        .await;

    let running = start_app(config, argv, &secrets, &addr.to_string(), &token, forward)?;
    drop(secrets);
    reporter.stage("app", &format!("pid {}", running.pid)).await;
    Ok(running)
}

/// The instance role's credentials, then every secret decrypted by KMS with our attestation,
/// and sealed storage under the same key.
async fn attested_secrets(
    config: &RuntimeConfig,
    transport: &Arc<dyn Transport>,
    reporter: &Reporter,
    counters: &Arc<Counters>,
    nsm: &Arc<dyn Nsm>,
) -> Result<(Vec<EnvSecret>, Option<Arc<Store>>), Failure> {
    let credentials = aws::credentials_client(transport.clone());
    let creds = credentials.get().await.map_err(at("credentials"))?;
    reporter
        .stage(
            "credentials",
            &format!("instance role credentials until {}", creds.expiration),
        )
        .await;

    let clients = Clients::new(config, transport.clone(), credentials).map_err(at("secrets"))?;
    let kms = Arc::new(AttestedKms::new(clients.kms.clone(), nsm.clone()));
    let fetcher = Fetcher {
        ssm: clients.ssm.clone(),
        kms: kms.clone(),
        deployment: config.deployment.clone(),
        kms_key: config.kms_key.clone(),
        counters: counters.clone(),
    };
    let secrets = fetcher
        .fetch_all(&config.secrets)
        .await
        .map_err(at("secrets"))?;
    reporter
        .stage(
            "secrets",
            &format!("{} secret(s) decrypted with attestation", secrets.len()),
        )
        .await;
    let store = config.storage.as_ref().map(|s| {
        Arc::new(Store {
            s3: clients.s3.clone(),
            bucket: s.bucket.clone(),
            prefix: config.storage_prefix.clone(),
            kms,
            kms_key: config.kms_key.clone(),
            deployment: config.deployment.clone(),
            counters: counters.clone(),
        })
    });
    Ok((secrets, store))
}

async fn check_platform(config: &RuntimeConfig, reporter: &Reporter) -> Result<(), Failure> {
    let platform = platform::from_config(&config.platform);
    let lo = platform.loopback_up().map_err(at("loopback"))?;
    reporter.stage("loopback", lo).await;

    let hwrng = match platform.hwrng() {
        Ok(h) if h == NSM_HWRNG => format!("hwrng {h}"),
        other if config.production => {
            let seen = other.map_or_else(|e| e.to_string(), |h| format!("`{h}`"));
            return Err(Failure {
                stage: "entropy",
                message: format!("the kernel's hwrng is {seen}, not {NSM_HWRNG}: refusing to make keys without the NSM's entropy (production)"),
            });
        }
        Ok(h) => format!("hwrng `{h}`, not {NSM_HWRNG} (allowed outside production)"),
        Err(e) => format!("hwrng unreadable: {e} (allowed outside production)"),
    };
    reporter.stage("entropy", &hwrng).await;

    let clock = platform.clock().map_err(at("clock"))?;
    let detail = match clock.offset_ms {
        Some(ms) if ms.unsigned_abs() > MAX_CLOCK_OFFSET.as_millis() as u64 => {
            return Err(Failure {
                stage: "clock",
                message: format!("the clock is {ms} ms off the hypervisor's (more than SigV4's {MAX_CLOCK_OFFSET:?})"),
            })
        }
        Some(ms) => format!("clocksource {}, offset {ms} ms", clock.clocksource),
        None => format!("clocksource {}, no /dev/ptp0: offset not measured", clock.clocksource),
    };
    reporter.stage("clock", &detail).await;
    Ok(())
}

/// Opens the configured NSM and attests ourselves.
async fn attest_self(config: &RuntimeConfig, reporter: &Reporter) -> Result<Arc<dyn Nsm>, Failure> {
    let nsm: Arc<dyn Nsm> = nitro_nsm::open(&config.nsm, config.production)
        .map_err(at("attestation"))?
        .into();
    let detail = self_attest(&*nsm, config.production)?;
    reporter.stage("attestation", &detail).await;
    Ok(nsm)
}

/// Refuses debug mode (all-zero PCR0: memory and console open to the host) in production, and
/// proves the NSM signs a document; returns the stage detail.
fn self_attest(nsm: &dyn Nsm, production: bool) -> Result<String, Failure> {
    let pcr0 = nsm.describe_pcr(0).map_err(at("attestation"))?.value;
    let debug = pcr0.iter().all(|&b| b == 0);
    if debug && production {
        return Err(Failure {
            stage: "attestation",
            message: "PCR0 is all zeros: the enclave runs in debug mode (its memory and console are open to the host); refused with `production: true`".into(),
        });
    }
    let mut nonce = [0u8; 32];
    getrandom::getrandom(&mut nonce).map_err(at("attestation"))?;
    let request =
        AttestationRequest::new(None, Some(nonce.to_vec()), None).map_err(at("attestation"))?;
    let document = nsm.attest(&request).map_err(at("attestation"))?;
    let pcr0_hex: String = pcr0.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "document {} bytes, PCR0 {pcr0_hex}…{}{}",
        document.len(),
        if debug { " (debug mode)" } else { "" },
        if nsm.is_simulated() {
            ", SIMULATED NSM"
        } else {
            ""
        }
    ))
}

/// 32 random bytes, hex: the app's bearer token for the internal API.
fn api_token() -> Result<Zeroizing<String>, getrandom::Error> {
    let mut raw = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(&mut raw[..])?;
    Ok(Zeroizing::new(
        raw.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

fn start_app(
    config: &RuntimeConfig,
    argv: &[String],
    secrets: &[EnvSecret],
    api_addr: &str,
    token: &str,
    forward: &Forward,
) -> Result<Running, Failure> {
    child::become_subreaper().map_err(at("app"))?;
    let ids = config
        .app
        .user
        .as_deref()
        .map(|u| user::resolve(u, std::path::Path::new("/etc")))
        .transpose()
        .map_err(at("app"))?;
    let url = format!("http://{api_addr}");
    let mut env: Vec<(&str, &[u8])> = vec![
        ("NITRO_API_URL", url.as_bytes()),
        ("NITRO_API_TOKEN", token.as_bytes()),
    ];
    env.extend(secrets.iter().map(|s| (s.env.as_str(), s.value.as_bytes())));
    child::spawn(child::Spec {
        argv,
        env,
        ids,
        working_dir: config.app.working_dir.as_deref().unwrap_or("/"),
        logs: forward.sender(),
    })
    .map_err(at("app"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitro_nsm::simulator::{Pcrs, Simulator, TestPki};

    fn nsm(pcr0: &str) -> Simulator {
        let json =
            serde_json::json!({"PCR0": pcr0, "PCR1": "1b".repeat(48), "PCR2": "2c".repeat(48)});
        let pcrs = Pcrs::from_measurements_json(&json.to_string()).unwrap();
        Simulator::new(TestPki::generate(1).unwrap(), pcrs)
    }

    #[test]
    fn debug_mode_is_refused_in_production_only() {
        let debug = nsm(&"00".repeat(48));
        let refused = self_attest(&debug, true).unwrap_err();
        assert_eq!(refused.stage, "attestation");
        assert!(
            refused.message.contains("debug mode"),
            "{}",
            refused.message
        );
        let allowed = self_attest(&debug, false).unwrap();
        assert!(
            allowed.contains("(debug mode)") && allowed.contains("SIMULATED"),
            "{allowed}"
        );

        let release = self_attest(&nsm(&"0a".repeat(48)), true).unwrap();
        assert!(
            release.contains("PCR0 0a0a0a") && !release.contains("debug"),
            "{release}"
        );
    }
}
