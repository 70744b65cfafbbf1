//! Prints numbers, asserts nothing about speed: RSA-2048 recipient key generation per call, and
//! attested Decrypts per second through the awsim front (TLS, SigV4, document verification, CMS)
//! at 1 and 16 concurrent calls.
//!
//!     cargo bench -p attested-kms --bench kms

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attested_kms::{AttestedKms, RecipientKey};
use aws_egress::{sdk_config, Credentials, EgressConfig, TcpDialer};
use aws_sdk_kms::primitives::Blob;
use harness::{Awsim, Keys};
use nitro_nsm::simulator::{Pcrs, Simulator, TestPki};
use serde_json::json;

fn keygen() {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let start = Instant::now();
            RecipientKey::generate().unwrap();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "RSA-2048 keygen (rsa 0.9, 20 keys): min {:?}  median {:?}  max {:?}",
        times[0], times[10], times[19]
    );
}

fn client(awsim: &Awsim, keys: &Keys) -> aws_sdk_kms::Client {
    let egress = EgressConfig {
        region: "us-east-1".into(),
        endpoint_url: Some(awsim.endpoint()),
        extra_test_root_pem: Some(awsim.tls_ca_pem.clone()),
    };
    let creds = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "bench",
    );
    aws_sdk_kms::Client::new(&sdk_config(&egress, Arc::new(TcpDialer), creds).unwrap())
}

async fn decrypts() {
    let pki = TestPki::generate(3).unwrap();
    let awsim = Awsim::start(&pki.root_pem());
    let ids = awsim.bootstrap(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}));
    let admin = client(&awsim, &ids.admin);
    let policy = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{}:root", ids.account)},
         "Action": "kms:*", "Resource": "*"}]});
    let key = admin
        .create_key()
        .policy(policy.to_string())
        .send()
        .await
        .unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_owned();
    let blob = admin
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(vec![1u8; 32]))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec();
    let measurements =
        json!({"PCR0": "0a".repeat(48), "PCR1": "1b".repeat(48), "PCR2": "2c".repeat(48)});
    let sim = Simulator::new(
        pki,
        Pcrs::from_measurements_json(&measurements.to_string()).unwrap(),
    );
    let kms = AttestedKms::new(client(&awsim, &ids.role), Arc::new(sim));
    for concurrency in [1usize, 16] {
        let calls = 48;
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..concurrency {
            let (kms, blob) = (kms.clone(), blob.clone());
            let share = calls / concurrency + usize::from(worker < calls % concurrency);
            tasks.spawn(async move {
                for _ in 0..share {
                    kms.decrypt(&blob, None, &HashMap::new()).await.unwrap();
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        let elapsed = start.elapsed();
        println!(
            "attested Decrypt through awsim, concurrency {concurrency}: {calls} calls in {elapsed:.2?} = {:.1}/s, 0 failures",
            calls as f64 / elapsed.as_secs_f64()
        );
    }
}

fn main() {
    keygen();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(decrypts());
}
