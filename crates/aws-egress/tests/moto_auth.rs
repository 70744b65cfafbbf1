//! SSM and S3 through aws-egress against moto in SigV4/IAM mode (behind the awsim front, over
//! TLS with the front's test CA): real signatures, real session tokens, real IAM decisions.

use std::sync::Arc;

use aws_egress::{sdk_config, Credentials, EgressConfig, TcpDialer};
use aws_sdk_s3::primitives::ByteStream;
use harness::{Awsim, Keys};
use serde_json::json;

const BUCKET: &str = "enclave-state";

fn awsim() -> Awsim {
    let root = std::fs::read_to_string(
        harness::repo_root().join("crates/attestation/tests/data/aws_nitro_root_g1.pem"),
    )
    .unwrap();
    Awsim::start(&root)
}

fn config(awsim: &Awsim, keys: &Keys, trust_test_ca: bool) -> aws_types::SdkConfig {
    let egress = EgressConfig {
        region: "us-east-1".into(),
        endpoint_url: Some(awsim.endpoint()),
        extra_test_root_pem: trust_test_ca.then(|| awsim.tls_ca_pem.clone()),
    };
    let credentials = Credentials::new(
        &keys.access_key_id,
        &keys.secret_access_key,
        keys.session_token.clone(),
        None,
        "awsim",
    );
    sdk_config(&egress, Arc::new(TcpDialer), credentials).unwrap()
}

fn s3(config: &aws_types::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build(),
    )
}

fn role_policy() -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": format!("arn:aws:s3:::{BUCKET}/storage/*")},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": format!("arn:aws:s3:::{BUCKET}")}
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn ssm_and_s3_calls_are_signed_and_authorised_under_real_iam() {
    let awsim = awsim();
    let ids = awsim.bootstrap(role_policy());
    let admin = config(&awsim, &ids.admin, true);
    let role = config(&awsim, &ids.role, true);

    aws_sdk_ssm::Client::new(&admin)
        .put_parameter()
        .name("/demo/db-password")
        .value("c2VjcmV0")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    s3(&admin)
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();

    let ssm = aws_sdk_ssm::Client::new(&role);
    let got = ssm
        .get_parameter()
        .name("/demo/db-password")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().and_then(|p| p.value()), Some("c2VjcmV0"));
    let write = ssm
        .put_parameter()
        .name("/demo/other")
        .value("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(write.raw_response().map(|r| r.status().as_u16()), Some(403));

    let s3 = s3(&role);
    let body = vec![7u8; 3 << 20];
    s3.put_object()
        .bucket(BUCKET)
        .key("storage/a")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let read = s3
        .get_object()
        .bucket(BUCKET)
        .key("storage/a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        read.body.collect().await.unwrap().into_bytes().as_ref(),
        body
    );
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("storage/")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["storage/a"]);
    s3.delete_object()
        .bucket(BUCKET)
        .key("storage/a")
        .send()
        .await
        .unwrap();

    let outside = s3
        .put_object()
        .bucket(BUCKET)
        .key("elsewhere/b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{outside:?}").contains("AccessDenied"),
        "{outside:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_secret_and_untrusted_tls_fail() {
    let awsim = awsim();
    let ids = awsim.bootstrap(role_policy());
    let mut forged = ids.role.clone();
    forged.secret_access_key = "0".repeat(40);
    let err = aws_sdk_ssm::Client::new(&config(&awsim, &forged, true))
        .get_parameter()
        .name("/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(403),
        "{err:?}"
    );

    // Without the test CA the endpoint's certificate is not trusted: the compiled-in roots
    // are all there is.
    let err = aws_sdk_ssm::Client::new(&config(&awsim, &ids.role, false))
        .get_parameter()
        .name("/x")
        .send()
        .await
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(err.raw_response().is_none(), "no HTTP exchange: {text}");
    assert!(
        text.contains("UnknownIssuer") || text.contains("certificate"),
        "{text}"
    );
    let log = awsim.log();
    assert_eq!(
        log.len(),
        1,
        "only the forged request reached the front: {log:?}"
    );
}
