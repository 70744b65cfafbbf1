//! The three attested operations end to end: simulator NSM → aws-egress (TLS in process) →
//! awsim front (verifies the document against the simulator's root, evaluates the key
//! policy's PCR conditions independently) → moto in SigV4/IAM mode.

use std::collections::HashMap;
use std::sync::Arc;

use attested_kms::{AttestedKms, KmsError};
use aws_egress::{sdk_config, Credentials, EgressConfig, TcpDialer};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyEncryptionMechanism, RecipientInfo};
use harness::{Awsim, Identities, Keys};
use nitro_nsm::simulator::{Pcrs, Simulator, TestPki};
use nitro_nsm::{AttestationRequest, Nsm};
use serde_json::{json, Value};

const PCR0: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a";

fn pcr(byte: u8) -> String {
    format!("{byte:02x}").repeat(48)
}

fn measurements(pcr2: u8) -> Pcrs {
    let json = json!({"Measurements": {"PCR0": PCR0, "PCR1": pcr(0x1b), "PCR2": pcr(pcr2)}});
    Pcrs::from_measurements_json(&json.to_string()).unwrap()
}

struct Setup {
    awsim: Awsim,
    ids: Identities,
    pki_root: String,
    key_id: String,
    ciphertext: Vec<u8>,
    context: HashMap<String, String>,
}

fn sdk(awsim: &Awsim, keys: &Keys) -> aws_sdk_kms::Client {
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
        "awsim",
    );
    aws_sdk_kms::Client::new(&sdk_config(&egress, Arc::new(TcpDialer), credentials).unwrap())
}

/// The key policy nitro-provision deploys, in miniature: admin without decrypt, the enclave role
/// pinned to PCR0/1/2, and optionally the Deny guard.
fn key_policy(ids: &Identities, deny_guard: bool) -> Value {
    let admin = format!("arn:aws:iam::{}:user/admin", ids.account);
    let mut statements = vec![
        json!({"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": admin},
               "Action": ["kms:Encrypt", "kms:DescribeKey", "kms:PutKeyPolicy", "kms:GetKeyPolicy"],
               "Resource": "*"}),
        json!({"Sid": "EnclaveRelease", "Effect": "Allow", "Principal": {"AWS": ids.role_arn},
               "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"], "Resource": "*",
               "Condition": {"StringEqualsIgnoreCase": {
                   "kms:RecipientAttestation:PCR0": PCR0.to_uppercase(),
                   "kms:RecipientAttestation:PCR1": pcr(0x1b),
                   "kms:RecipientAttestation:PCR2": pcr(0x2c)}}}),
    ];
    if deny_guard {
        statements.push(
            json!({"Sid": "DenyOutsideRelease", "Effect": "Deny", "Principal": "*",
            "Action": "kms:Decrypt", "Resource": "*",
            "Condition": {"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": PCR0}}}),
        );
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

async fn setup(deny_guard: bool) -> (Setup, TestPki) {
    let pki = TestPki::generate(3).unwrap();
    let awsim = Awsim::start(&pki.root_pem());
    let ids = awsim.bootstrap(json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:GenerateRandom"],
         "Resource": "*"}]}));
    let admin = sdk(&awsim, &ids.admin);
    let key_id = admin
        .create_key()
        .policy(key_policy(&ids, deny_guard).to_string())
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let context = HashMap::from([("deployment".to_owned(), "demo".to_owned())]);
    let ciphertext = admin
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"db-password".to_vec()))
        .set_encryption_context(Some(context.clone()))
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec();
    awsim.clear_log();
    let pki_root = pki.root_pem();
    (
        Setup {
            awsim,
            ids,
            pki_root,
            key_id,
            ciphertext,
            context,
        },
        pki,
    )
}

impl Setup {
    fn client(&self, nsm: impl Nsm + 'static) -> AttestedKms {
        AttestedKms::new(sdk(&self.awsim, &self.ids.role), Arc::new(nsm))
    }

    async fn decrypt(&self, kms: &AttestedKms) -> Result<Vec<u8>, KmsError> {
        kms.decrypt(&self.ciphertext, Some(&self.key_id), &self.context)
            .await
            .map(|p| p.as_bytes().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn decrypt_generate_data_key_and_random_with_the_admitted_pcrs() {
    let (s, pki) = setup(true).await;
    let kms = s.client(Simulator::new(pki, measurements(0x2c)));
    // Several rounds so the front rotates through every CMS shape and Plaintext form.
    for _ in 0..3 {
        assert_eq!(s.decrypt(&kms).await.unwrap(), b"db-password");
    }
    let data_key = kms.generate_data_key(&s.key_id, &s.context).await.unwrap();
    assert_eq!(data_key.plaintext.len(), 32);
    let again = kms
        .decrypt(&data_key.ciphertext_blob, Some(&s.key_id), &s.context)
        .await
        .unwrap();
    assert_eq!(again.as_bytes(), data_key.plaintext.as_bytes());
    assert_eq!(kms.generate_random(64).await.unwrap().len(), 64);

    let log = s.awsim.log();
    let kms_calls: Vec<&Value> = log.iter().filter(|e| e["target"] != "").collect();
    assert_eq!(kms_calls.len(), 6, "{log:?}");
    for entry in &kms_calls {
        assert_eq!(
            entry["recipient"], true,
            "never a call without Recipient: {entry}"
        );
        assert_eq!(entry["status"], 200, "{entry}");
        assert_ne!(entry["target"], "TrentService.Encrypt");
    }
    assert!(kms_calls
        .iter()
        .filter(|e| e["target"] != "TrentService.GenerateRandom")
        .all(|e| e["sid"] == "EnclaveRelease"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_the_policy_does_not_admit_is_denied() {
    let (s, pki) = setup(false).await;
    let kms = s.client(Simulator::new(pki, measurements(0x2d)));
    match s.decrypt(&kms).await {
        Err(KmsError::AccessDenied { operation, message }) => {
            assert_eq!(operation, "Decrypt");
            assert!(
                message.contains("not authorized to perform: kms:Decrypt"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        kms.generate_data_key(&s.key_id, &s.context).await,
        Err(KmsError::AccessDenied { .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deny_guard_stops_unattested_decrypts_even_for_the_admitted_role() {
    let (s, _pki) = setup(true).await;
    let role = sdk(&s.awsim, &s.ids.role);
    let err = role
        .decrypt()
        .ciphertext_blob(Blob::new(s.ciphertext.clone()))
        .set_encryption_context(Some(s.context.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    let log = s.awsim.log();
    let last = log.last().unwrap();
    assert_eq!(last["recipient"], false);
    assert_eq!(last["decision"], "deny");
    assert_eq!(last["sid"], "DenyOutsideRelease", "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_from_an_untrusted_chain_or_with_another_algorithm_are_refused() {
    let (s, pki) = setup(false).await;
    let untrusted = s.client(Simulator::new(
        TestPki::generate(3).unwrap(),
        measurements(0x2c),
    ));
    match s.decrypt(&untrusted).await {
        Err(KmsError::Service { code, message, .. }) => {
            assert_eq!(code, "ValidationException");
            assert!(message.contains("trusted root"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // The client only ever sends RSAES_OAEP_SHA_256; a hand-made request with another value is
    // refused by the front as KMS refuses it.
    let sim = Simulator::new(pki, measurements(0x2c));
    let document = sim
        .attest(&AttestationRequest::for_public_key(vec![0x30; 10]).unwrap())
        .unwrap();
    let err = sdk(&s.awsim, &s.ids.role)
        .decrypt()
        .ciphertext_blob(Blob::new(s.ciphertext.clone()))
        .set_encryption_context(Some(s.context.clone()))
        .recipient(
            RecipientInfo::builder()
                .key_encryption_algorithm(KeyEncryptionMechanism::from("RSAES_PKCS1_V1_5"))
                .attestation_document(Blob::new(document))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("ValidationException"),
        "{err:?}"
    );
    assert!(!s.pki_root.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_answers_give_one_uniform_error_and_no_plaintext() {
    let (s, pki) = setup(false).await;
    let kms = s.client(Simulator::new(pki, measurements(0x2c)));
    let mut messages = Vec::new();
    for corruption in ["flip", "v0", "pkcs1v15", "trailing"] {
        s.awsim.set_mode(json!({"corruption": corruption}));
        for _ in 0..3 {
            // Each shape of the rotation once.
            match s.decrypt(&kms).await {
                Err(e @ KmsError::Undecryptable(_)) => messages.push(e.to_string()),
                other => panic!("{corruption}: {other:?}"),
            }
        }
    }
    messages.dedup();
    assert_eq!(messages, ["CiphertextForRecipient could not be decrypted"]);

    s.awsim.set_mode(json!({"clear_plaintext": true}));
    assert!(matches!(
        s.decrypt(&kms).await,
        Err(KmsError::NotForRecipient("Decrypt"))
    ));
    s.awsim.set_mode(json!({}));
    assert_eq!(s.decrypt(&kms).await.unwrap(), b"db-password");
}
