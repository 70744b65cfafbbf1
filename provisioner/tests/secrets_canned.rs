//! `secret put` against canned AWS answers, for what moto does not say the way AWS does: the
//! exact requests (key alias, the encryption context of the contract, base64 of the returned
//! blob, String type, no overwrite unless asked, the Advanced tier only past 4 KiB), and AWS's
//! own `AccessDeniedException` from KMS and SSM (moto answers an untyped 403, which
//! `secrets_moto.rs` covers). Nothing reaches SSM when Encrypt fails.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_kms::operation::encrypt::{EncryptError, EncryptOutput};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_ssm::operation::put_parameter::{PutParameterError, PutParameterOutput};
use aws_sdk_ssm::types::{ParameterTier, ParameterType};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use base64::Engine as _;
use nitro_provision::aws::Aws;
use nitro_provision::secrets::{value, SecretError, SecretStore, SecretValue};

const CALLER: &str = "arn:aws:iam::123456789012:user/carol";
const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn denied(message: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("AccessDeniedException")
        .message(message)
        .build()
}

fn store(kms: &[&Rule], ssm: &[&Rule]) -> SecretStore {
    use aws_config::{BehaviorVersion, Region};
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .build();
    let who = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput::builder()
            .account("123456789012")
            .arn(CALLER)
            .build()
    });
    let aws = Aws {
        cfn: aws_sdk_cloudformation::Client::new(&conf),
        s3: aws_sdk_s3::Client::new(&conf),
        kms: mock_client!(aws_sdk_kms, RuleMode::MatchAny, kms),
        sts: mock_client!(aws_sdk_sts, RuleMode::MatchAny, &[&who]),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
        region: "us-east-1".into(),
    };
    SecretStore::new(
        aws,
        mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm),
        "demo",
    )
}

fn secret(bytes: &[u8]) -> SecretValue {
    value::read_all(&mut &bytes[..], "test", false).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What PutParameter was sent.
#[derive(Clone, Debug)]
struct Put {
    name: String,
    value: String,
    kind: Option<ParameterType>,
    overwrite: Option<bool>,
    tier: Option<ParameterTier>,
}

#[derive(Default, Debug)]
struct Seen {
    key_id: Option<String>,
    context: Option<HashMap<String, String>>,
    plaintext: Option<Vec<u8>>,
    put: Option<Put>,
}

/// Encrypt answers a blob of `blob_len` bytes; PutParameter answers version 3 with `tier`.
fn recording(blob_len: usize, seen: &Arc<Mutex<Seen>>) -> (Rule, Rule) {
    let s = seen.clone();
    let encrypt = mock!(aws_sdk_kms::Client::encrypt).then_compute_output(move |req| {
        let mut s = s.lock().unwrap();
        s.key_id = req.key_id().map(String::from);
        s.context = req.encryption_context().cloned();
        s.plaintext = req.plaintext().map(|b| b.as_ref().to_vec());
        EncryptOutput::builder()
            .key_id(KEY_ARN)
            .ciphertext_blob(Blob::new(vec![0xa5; blob_len]))
            .build()
    });
    let s = seen.clone();
    let put = mock!(aws_sdk_ssm::Client::put_parameter).then_compute_output(move |req| {
        s.lock().unwrap().put = Some(Put {
            name: req.name().unwrap().to_string(),
            value: req.value().unwrap().to_string(),
            kind: req.r#type().cloned(),
            overwrite: req.overwrite(),
            tier: req.tier().cloned(),
        });
        PutParameterOutput::builder()
            .version(3)
            .set_tier(req.tier().cloned())
            .build()
    });
    (encrypt, put)
}

#[test]
fn put_sends_the_contract_context_and_base64_of_the_blob() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (encrypt, put) = recording(200, &seen);
    let sealed = rt()
        .block_on(store(&[&encrypt], &[&put]).put("/demo/db", &secret(b"pw"), false))
        .unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.key_id.as_deref(), Some("alias/demo"));
    assert_eq!(s.plaintext.as_deref(), Some(&b"pw"[..]));
    let expected: HashMap<String, String> =
        companion_config::secret_encryption_context("demo", "/demo/db")
            .into_iter()
            .collect();
    assert_eq!(s.context.as_ref(), Some(&expected));
    let put = s.put.clone().unwrap();
    assert_eq!(put.name, "/demo/db");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(&put.value)
            .unwrap(),
        vec![0xa5; 200]
    );
    assert_eq!(put.kind, Some(ParameterType::String));
    assert_eq!(put.overwrite, Some(false));
    assert_eq!(put.tier, None, "Standard unless the base64 exceeds 4 KiB");
    assert_eq!(sealed.key_id, KEY_ARN);
    assert_eq!((sealed.plaintext_bytes, sealed.version), (2, 3));
    assert_eq!(sealed.tier, "Standard");
}

#[test]
fn base64_over_4_kib_goes_to_the_advanced_tier_and_overwrite_is_passed_on() {
    // 3072 bytes → exactly 4096 base64 characters: still Standard; one byte more is not.
    for (blob, tier) in [(3072, None), (3073, Some(ParameterTier::Advanced))] {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (encrypt, put) = recording(blob, &seen);
        rt().block_on(store(&[&encrypt], &[&put]).put("/demo/db", &secret(b"pw"), true))
            .unwrap();
        let put = seen.lock().unwrap().put.clone().unwrap();
        assert_eq!(put.value.len(), blob.div_ceil(3) * 4);
        assert_eq!((put.overwrite, put.tier), (Some(true), tier));
    }
}

#[test]
fn kms_access_denied_names_the_caller_and_kms_writers_and_nothing_is_written() {
    let encrypt = mock!(aws_sdk_kms::Client::encrypt).then_error(|| {
        EncryptError::generic(denied(
            "User: arn:aws:iam::123456789012:user/carol is not authorized to perform: kms:Encrypt",
        ))
    });
    let put = mock!(aws_sdk_ssm::Client::put_parameter)
        .then_output(|| PutParameterOutput::builder().version(1).build());
    let e = rt()
        .block_on(store(&[&encrypt], &[&put]).put("/demo/db", &secret(b"pw"), false))
        .unwrap_err();
    assert!(matches!(e, SecretError::NotWriter { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "{CALLER} may not kms:Encrypt with alias/demo: add that principal to `kms.writers`"
        )),
        "{text}"
    );
    assert!(text.contains("AccessDeniedException"), "{text}");
    assert_eq!(put.num_calls(), 0);
}

#[test]
fn ssm_access_denied_and_an_existing_parameter_are_said_plainly() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (encrypt, _) = recording(100, &seen);
    let put = mock!(aws_sdk_ssm::Client::put_parameter)
        .then_error(|| PutParameterError::generic(denied("not authorized: ssm:PutParameter")));
    let e = rt()
        .block_on(store(&[&encrypt], &[&put]).put("/demo/db", &secret(b"pw"), false))
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "{CALLER} may not ssm:PutParameter on parameter /demo/db"
        )),
        "{e}"
    );

    let exists = mock!(aws_sdk_ssm::Client::put_parameter).then_error(|| {
        PutParameterError::ParameterAlreadyExists(
            aws_sdk_ssm::types::error::ParameterAlreadyExists::builder()
                .message("The parameter already exists.")
                .meta(
                    ErrorMetadata::builder()
                        .code("ParameterAlreadyExists")
                        .build(),
                )
                .build(),
        )
    });
    let e = rt()
        .block_on(store(&[&encrypt], &[&exists]).put("/demo/db", &secret(b"pw"), false))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parameter /demo/db already exists: pass --overwrite to replace its value"
    );
}
