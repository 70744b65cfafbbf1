//! Numbers for the README (prints them; no assertions on time): boot to app start with 10
//! secrets, 100 concurrent attested decrypts through the egress link, storage PUT/GET MB/s
//! through the internal API, the runtime's idle RSS. Same real parts as the tests
//! (`tests/common`): awsim + moto, ImdsSim, the supervisor's services, the real binary.
//!
//! `cargo bench -p enclave-runtime --features simulator --bench runtime`

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attested_kms::AttestedKms;
use common::*;
use enclave_link::credentials::CredentialsClient;
use enclave_link::transport::Unix;
use enclave_supervisor::services::EnclaveEvent;
use nitro_nsm::simulator::{Pcrs, Simulator, TestPki};

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut w = World::start().await;
    boot_with_ten_secrets(&mut w).await;
    concurrent_decrypts(&w).await;
    storage_throughput_and_rss(&mut w).await;
}

async fn boot_with_ten_secrets(w: &mut World) {
    let names: Vec<(String, String)> = (0..10)
        .map(|i| (format!("/demo/secret-{i}"), format!("SECRET_{i}")))
        .collect();
    for (p, _) in &names {
        w.put_secret(p, b"0123456789abcdef0123456789abcdef").await;
    }
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(|(p, e)| (p.as_str(), e.as_str()))
        .collect();
    let config = w.runtime_config(&pairs, ADMITTED_PCR2);
    let mut times = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let child = w.spawn(&config, "exit 0");
        w.events_until(
            120,
            |e| matches!(e, EnclaveEvent::Stage { stage, .. } if stage == "app"),
        )
        .await;
        times.push(started.elapsed());
        w.events_until(60, |e| matches!(e, EnclaveEvent::AppExited { .. }))
            .await;
        wait_exit(child, 30);
    }
    times.sort();
    println!(
        "boot to app start, 10 secrets: median {:?} (min {:?}, max {:?}, 3 runs)",
        times[1], times[0], times[2]
    );
}

async fn concurrent_decrypts(w: &World) {
    w.put_secret("/demo/bench", b"bench-value").await;
    let ciphertext = {
        let p = aws_sdk_ssm::Client::new(&w.admin)
            .get_parameter()
            .name("/demo/bench")
            .send()
            .await
            .unwrap();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(p.parameter.unwrap().value.unwrap())
            .unwrap()
    };
    let transport: Arc<dyn enclave_link::Transport> = Arc::new(Unix {
        listen_prefix: w.path("bench-enclave"),
        connect_prefix: w.path("parent"),
    });
    let egress = aws_egress::EgressConfig {
        region: "us-east-1".into(),
        endpoint_url: Some(w.awsim.endpoint()),
        extra_test_root_pem: Some(w.awsim.tls_ca_pem.clone()),
    };
    let credentials = Arc::new(CredentialsClient::new(
        transport.clone(),
        Duration::from_secs(300),
    ));
    let sdk = enclave_runtime::aws::sdk_config(&egress, transport, credentials).unwrap();
    let pki = TestPki::load(&w.path("pki")).unwrap();
    let pcrs = Pcrs::from_measurements_json(&measurements(ADMITTED_PCR2).to_string()).unwrap();
    let kms = Arc::new(AttestedKms::new(
        aws_sdk_kms::Client::new(&sdk),
        Arc::new(Simulator::new(pki, pcrs)),
    ));
    let context: HashMap<String, String> =
        companion_config::secret_encryption_context(DEPLOYMENT, "/demo/bench")
            .into_iter()
            .collect();
    let started = Instant::now();
    let calls = (0..100).map(|_| {
        let kms = kms.clone();
        let (ct, ctx) = (ciphertext.clone(), context.clone());
        tokio::spawn(async move { kms.decrypt(&ct, Some(ALIAS), &ctx).await.map(|p| p.len()) })
    });
    let results = futures_util::future::join_all(calls).await;
    let elapsed = started.elapsed();
    let ok = results.iter().filter(|r| matches!(r, Ok(Ok(11)))).count();
    let mut errors: Vec<String> = results
        .iter()
        .filter_map(|r| match r {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(format!("{e:?}")),
            Err(e) => Some(e.to_string()),
        })
        .collect();
    errors.sort();
    errors.dedup();
    for e in errors.iter().take(3) {
        println!("  failure: {}", &e[..e.len().min(400)]);
    }
    println!(
        "100 concurrent attested decrypts through the egress link: {ok}/100 ok in {elapsed:?} ({:.1}/s)",
        100.0 / elapsed.as_secs_f64()
    );
}

async fn storage_throughput_and_rss(w: &mut World) {
    let config = w.runtime_config(&[], ADMITTED_PCR2);
    let out = w.path("bench-env.txt");
    let child = w.spawn(
        &config,
        &format!("env > {0}.tmp; mv {0}.tmp {0}; sleep 600", out.display()),
    );
    w.events_until(120, |e| matches!(e, EnclaveEvent::Ready))
        .await;
    wait_for_file(&out);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap()
        .to_string();
    println!(
        "runtime idle RSS after ready: {}",
        rss.trim_start_matches("VmRSS:").trim()
    );
    let env = read_env(&out);
    let port: u16 = env["NITRO_API_URL"]
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = env["NITRO_API_TOKEN"].clone();
    for size_mib in [1usize, 8] {
        let value = vec![0x5au8; size_mib << 20];
        let rounds = 3;
        let (put, get) = tokio::task::spawn_blocking({
            let token = token.clone();
            move || {
                let started = Instant::now();
                for i in 0..rounds {
                    assert_eq!(
                        http(
                            port,
                            "PUT",
                            &format!("/v1/storage/bench-{i}"),
                            &token,
                            &value
                        )
                        .0,
                        204
                    );
                }
                let put = started.elapsed();
                let started = Instant::now();
                for i in 0..rounds {
                    let (status, body) =
                        http(port, "GET", &format!("/v1/storage/bench-{i}"), &token, b"");
                    assert_eq!((status, body.len()), (200, value.len()));
                }
                (put, started.elapsed())
            }
        })
        .await
        .unwrap();
        let mib = (size_mib * rounds) as f64;
        println!(
            "storage {size_mib} MiB values: PUT {:.1} MiB/s, GET {:.1} MiB/s ({rounds} each)",
            mib / put.as_secs_f64(),
            mib / get.as_secs_f64()
        );
    }
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    wait_exit(child, 30);
}
