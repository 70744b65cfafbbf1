//! One deployment end to end, all real parts on loopback: moto behind the attested-KMS front
//! (SigV4 and IAM checked, Recipient documents verified against the simulator's test root,
//! key-policy PCR conditions evaluated), the IMDSv2 simulator handing out the moto role
//! session's keys, the supervisor's link services (unix sockets), and the real
//! `enclave-runtime` binary with the simulator NSM.
#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_egress::{sdk_config, Credentials, EgressConfig, TcpDialer};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use companion_config::*;
use enclave_supervisor::services::{EnclaveEvent, ServiceMetrics, Services};
use harness::{Awsim, Identities, ImdsSim, Keys};
use nitro_nsm::simulator::TestPki;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub const DEPLOYMENT: &str = "demo";
pub const ALIAS: &str = "alias/demo";
pub const BUCKET: &str = "demo-state";

pub fn pcr(byte: u8) -> String {
    format!("{byte:02x}").repeat(48)
}

/// The admitted release's PCRs; tests change PCR2 for a release the policy does not admit.
pub fn measurements(pcr2: u8) -> Value {
    json!({"Measurements": {"HashAlgorithm": "Sha384 { ... }", "PCR0": pcr(0x0a), "PCR1": pcr(0x1b), "PCR2": pcr(pcr2)}})
}

pub const ADMITTED_PCR2: u8 = 0x2c;

pub struct World {
    pub dir: tempfile::TempDir,
    pub awsim: Awsim,
    pub ids: Identities,
    pub imds: ImdsSim,
    pub pki: TestPki,
    pub services: Option<Services>,
    pub events: mpsc::Receiver<EnclaveEvent>,
    pub metrics: Arc<ServiceMetrics>,
    pub admin: aws_types::SdkConfig,
}

fn sdk(awsim: &Awsim, keys: &Keys) -> aws_types::SdkConfig {
    let egress = EgressConfig {
        region: "us-east-1".into(),
        endpoint_url: Some(awsim.endpoint()),
        extra_test_root_pem: Some(awsim.tls_ca_pem.clone()),
    };
    let credentials = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "test",
    );
    sdk_config(&egress, Arc::new(TcpDialer), credentials).unwrap()
}

pub fn s3(config: &aws_types::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

/// What nitro-provision deploys, in miniature: the admin may encrypt (seal secrets) but not
/// decrypt; the enclave role may Decrypt/GenerateDataKey only from the admitted PCRs.
fn key_policy(ids: &Identities) -> Value {
    let admin = format!("arn:aws:iam::{}:user/admin", ids.account);
    json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": admin},
         "Action": ["kms:Encrypt", "kms:DescribeKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy", "kms:CreateAlias"],
         "Resource": "*"},
        {"Sid": "EnclaveRelease", "Effect": "Allow", "Principal": {"AWS": ids.role_arn},
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringEqualsIgnoreCase": {
             "kms:RecipientAttestation:PCR0": pcr(0x0a),
             "kms:RecipientAttestation:PCR1": pcr(0x1b),
             "kms:RecipientAttestation:PCR2": pcr(ADMITTED_PCR2)}}},
        {"Sid": "DenyOutsideRelease", "Effect": "Deny", "Principal": "*",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR2": pcr(ADMITTED_PCR2)}}}
    ]})
}

fn role_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ssm:GetParameter", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": format!("arn:aws:s3:::{BUCKET}/enclave/*")},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{BUCKET}")}
    ]})
}

impl World {
    /// Starts everything but the runtime: key, alias, bucket, supervisor services.
    pub async fn start() -> World {
        Self::start_with_ingress(&[]).await
    }

    /// [`World::start`] with the supervisor forwarding an ephemeral host port to each of
    /// `vsock_ports`.
    pub async fn start_with_ingress(vsock_ports: &[u16]) -> World {
        Self::start_with(|supervisor| {
            supervisor.proxies = vsock_ports
                .iter()
                .map(|&p| Proxy {
                    protocol: "tcp".into(),
                    host_port: 0,
                    vsock_port: p.into(),
                })
                .collect();
        })
        .await
    }

    /// [`World::start`] with the supervisor's config changed by `adjust` first.
    pub async fn start_with(adjust: impl FnOnce(&mut SupervisorConfig)) -> World {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(2).unwrap();
        pki.write(&dir.path().join("pki")).unwrap();
        let awsim = Awsim::start(&pki.root_pem());
        let ids = awsim.bootstrap(role_policy());
        let admin = sdk(&awsim, &ids.admin);
        let kms = aws_sdk_kms::Client::new(&admin);
        let key = kms
            .create_key()
            .policy(key_policy(&ids).to_string())
            .send()
            .await
            .unwrap();
        let key_id = key.key_metadata().unwrap().key_id().to_owned();
        kms.create_alias()
            .alias_name(ALIAS)
            .target_key_id(&key_id)
            .send()
            .await
            .unwrap();
        s3(&admin)
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();

        let keys = dir.path().join("role-keys.json");
        std::fs::write(
            &keys,
            json!({"access_key_id": ids.role.access_key_id, "secret_access_key": ids.role.secret_access_key,
                   "session_token": ids.role.session_token}).to_string(),
        )
        .unwrap();
        let imds = ImdsSim::start(&["--keys-file", keys.to_str().unwrap()]);

        let (tx, events) = mpsc::channel(4096);
        let metrics = Arc::new(ServiceMetrics::new());
        let mut supervisor = supervisor_config(dir.path(), &awsim, &imds);
        adjust(&mut supervisor);
        let services = Services::start(&supervisor, tx, metrics.clone())
            .await
            .expect("supervisor services start");
        World {
            dir,
            awsim,
            ids,
            imds,
            pki,
            services: Some(services),
            events,
            metrics,
            admin,
        }
    }

    /// Seals `value` into SSM parameter `name` as `nitro-provision secret put` does.
    pub async fn put_secret(&self, name: &str, value: &[u8]) {
        let context: HashMap<String, String> = secret_encryption_context(DEPLOYMENT, name)
            .into_iter()
            .collect();
        let blob = aws_sdk_kms::Client::new(&self.admin)
            .encrypt()
            .key_id(ALIAS)
            .plaintext(Blob::new(value.to_vec()))
            .set_encryption_context(Some(context))
            .send()
            .await
            .unwrap()
            .ciphertext_blob()
            .unwrap()
            .as_ref()
            .to_vec();
        aws_sdk_ssm::Client::new(&self.admin)
            .put_parameter()
            .name(name)
            .value(base64::engine::general_purpose::STANDARD.encode(blob))
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    /// A runtime config for this world; tests adjust fields before [`World::spawn`].
    pub fn runtime_config(&self, secrets: &[(&str, &str)], pcr2: u8) -> RuntimeConfig {
        let measurements = self
            .dir
            .path()
            .join(format!("measurements-{pcr2:02x}.json"));
        std::fs::write(&measurements, measurements_json(pcr2)).unwrap();
        RuntimeConfig {
            format_version: FORMAT_VERSION,
            deployment: DEPLOYMENT.into(),
            region: "us-east-1".into(),
            secrets: secrets
                .iter()
                .map(|(p, e)| Secret {
                    parameter: (*p).into(),
                    env: (*e).into(),
                })
                .collect(),
            storage_prefix: "enclave/".into(),
            logging: Logging {
                level: "info".into(),
                format: "json".into(),
            },
            production: false,
            kms_key: ALIAS.into(),
            nsm: nitro_nsm::Backend::Simulator {
                pki_dir: self.dir.path().join("pki"),
                measurements,
            },
            platform: Platform::Simulated {
                hwrng: "nsm-hwrng".into(),
                clocksource: "kvm-clock".into(),
                clock_offset_ms: 3,
            },
            link: RuntimeLink {
                transport: LinkTransport::Unix {
                    listen_prefix: self.dir.path().join("enclave"),
                    connect_prefix: self.dir.path().join("parent"),
                },
                ..RuntimeLink::default()
            },
            app: App {
                stop_grace_secs: 2,
                ..App::default()
            },
            api: Api { port: free_port() },
            storage: Some(Storage {
                bucket: BUCKET.into(),
            }),
            ingress_ports: vec![],
            log_forwarding: true,
            aws_test_endpoint: Some(AwsTestEndpoint {
                endpoint_url: self.awsim.endpoint(),
                root_pem: self.awsim.tls_ca_pem.clone(),
            }),
            secrets_source: SecretsSource::Kms,
        }
    }

    /// Starts the real runtime binary with `config` and the app `sh -c SCRIPT`.
    pub fn spawn(&self, config: &RuntimeConfig, script: &str) -> Child {
        let path = self.dir.path().join("runtime.json");
        std::fs::write(&path, config.to_json()).unwrap();
        Command::new(env!("CARGO_BIN_EXE_enclave-runtime"))
            .arg("--config")
            .arg(&path)
            .args(["--", "/bin/sh", "-c", script])
            .env("SEEN_BY_APP", "from-image-env")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start enclave-runtime")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Events until `done` matches one (it is included), or a panic after `secs`.
    pub async fn events_until(
        &mut self,
        secs: u64,
        done: impl Fn(&EnclaveEvent) -> bool,
    ) -> Vec<EnclaveEvent> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    let stop = done(&e);
                    seen.push(e);
                    if stop {
                        return seen;
                    }
                }
                Ok(None) => panic!("events closed: {seen:#?}"),
                Err(_) => panic!("timed out after {secs} s; events so far: {seen:#?}"),
            }
        }
    }

    /// The services' metric sample (`name{labels}` as exposed), 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let mut registry = prometheus_client::registry::Registry::default();
        self.metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out.lines()
            .filter_map(|l| l.rsplit_once(' '))
            .find(|(name, _)| *name == sample)
            .map_or(0.0, |(_, v)| v.parse().unwrap())
    }
}

fn measurements_json(pcr2: u8) -> String {
    measurements(pcr2).to_string()
}

fn supervisor_config(dir: &Path, awsim: &Awsim, imds: &ImdsSim) -> SupervisorConfig {
    SupervisorConfig {
        format_version: FORMAT_VERSION,
        deployment: DEPLOYMENT.into(),
        region: "us-east-1".into(),
        eif_path: "/nonexistent.eif".into(),
        enclave: EnclaveResources {
            cpu_count: 2,
            memory_mib: 1024,
            cid: 16,
            debug: false,
        },
        listen: "127.0.0.1:8443".into(),
        watchdog: Watchdog {
            backoff_min_secs: 1,
            backoff_max_secs: 60,
            boot_grace_secs: 30,
            poll_interval_ms: 100,
            stable_secs: 2,
        },
        proxies: vec![],
        log_group: "/nitro-provision/demo".into(),
        logging: Logging {
            level: "info".into(),
            format: "json".into(),
        },
        link: Link {
            transport: LinkTransport::Unix {
                listen_prefix: dir.join("parent"),
                connect_prefix: dir.join("enclave"),
            },
            ingress: IngressService {
                listen: "127.0.0.1".into(),
                ..IngressService::default()
            },
            credentials: CredentialService {
                imds_endpoint: imds.endpoint(),
                ..CredentialService::default()
            },
            egress: EgressService {
                allowlist: vec![EgressTarget {
                    host: "localhost".into(),
                    port: awsim.port,
                }],
                ..EgressService::default()
            },
            ..Link::default()
        },
        expected_measurements: None,
        state_dir: dir.join("state"),
        nitro_cli: NitroCli {
            describe_timeout_secs: 2,
            terminate_timeout_secs: 10,
            run_timeout_secs: Some(10),
        },
        rollout: None,
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for the runtime to exit (up to `secs`), returning its code and stderr.
pub fn wait_exit(mut child: Child, secs: u64) -> (Option<i32>, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the runtime did not exit within {secs} s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `KEY=VALUE` lines of a file the app wrote with `env`.
pub fn read_env(path: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A one-shot HTTP/1.1 request to 127.0.0.1:`port`; (status, body).
pub fn http(port: u16, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Waits (up to 30 s) until the app created `path`.
pub fn wait_for_file(path: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
