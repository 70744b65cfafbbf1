//! Rendered policies parse as JSON and contain exactly the expected statements and conditions.

mod common;

use common::*;
use nitro_provision::render::{Deployment, Templates};
use serde_json::{json, Value};

fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {policy:#}"))
}

fn sids(policy: &Value) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap().to_string())
        .collect()
}

fn pcr_condition(r: &nitro_provision::render::Release, indices: &[u8]) -> Value {
    let mut m = serde_json::Map::new();
    for i in indices {
        m.insert(format!("kms:RecipientAttestation:PCR{i}"), json!(r.pcrs[i]));
    }
    json!({ "StringEqualsIgnoreCase": m })
}

#[test]
fn steady_key_policy_has_exactly_the_expected_statements() {
    let r = release("v1", &[0, 1, 2]);
    let rendered = render_config(config(BASE), built(r.clone()));
    let p = &rendered.key_policy;
    let label = &r.pcrs[&0][..16];
    assert_eq!(
        sids(p),
        [
            "KeyAdministration",
            &format!("EnclaveRelease{label}"),
            "SealSecrets",
            "DenyDecryptOutsideReleasedEnclaves"
        ]
    );
    let admin = statement(p, "KeyAdministration");
    assert_eq!(
        admin["Principal"],
        json!({"AWS": "arn:aws:iam::123456789012:root"})
    );
    let actions: Vec<&str> = admin["Action"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"kms:PutKeyPolicy"),
        "admins keep PutKeyPolicy"
    );
    for forbidden in [
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:ReEncryptFrom",
        "kms:CreateGrant",
    ] {
        assert!(
            !actions.contains(&forbidden),
            "admin statement grants {forbidden}"
        );
    }
    let enclave = statement(p, &format!("EnclaveRelease{label}"));
    assert_eq!(
        enclave["Principal"],
        json!({"AWS": "arn:aws:iam::123456789012:role/demo-enclave"})
    );
    // kms:GenerateRandom is not an action on a key: it has no place in a key policy.
    assert_eq!(
        enclave["Action"],
        json!(["kms:Decrypt", "kms:GenerateDataKey"])
    );
    assert!(
        !p.to_string().contains("GenerateRandom"),
        "no statement of the key policy names kms:GenerateRandom: {p:#}"
    );
    assert_eq!(enclave["Condition"], pcr_condition(&r, &[0, 1, 2]));
    let deny = statement(p, "DenyDecryptOutsideReleasedEnclaves");
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(
        deny["Condition"],
        json!({"StringNotEqualsIgnoreCase": {"kms:RecipientAttestation:PCR0": r.pcrs[&0]}})
    );
}

#[test]
fn transitional_policy_has_one_statement_per_release() {
    let (old, new) = (release("v1", &[0, 1, 2]), release("v2", &[0, 1, 2]));
    let templates = Templates::load(None).unwrap();
    let dep = Deployment::new(config(BASE), built(new.clone()))
        .with_releases(vec![old.clone(), new.clone()]);
    let rendered = nitro_provision::render::render(&templates, &dep).unwrap();
    let p = &rendered.key_policy;
    for r in [&old, &new] {
        let s = statement(p, &format!("EnclaveRelease{}", &r.pcrs[&0][..16]));
        // Never value lists: each statement pins exactly one release's registers.
        assert_eq!(s["Condition"], pcr_condition(r, &[0, 1, 2]));
    }
    let deny = statement(p, "DenyDecryptOutsideReleasedEnclaves");
    assert_eq!(
        deny["Condition"]["StringNotEqualsIgnoreCase"]["kms:RecipientAttestation:PCR0"],
        json!([old.pcrs[&0], new.pcrs[&0]])
    );
}

#[test]
fn signed_builds_pin_pcr8_and_custom_pcr_sets_are_honoured() {
    let signed = base_with(
        "  source: rootfs:app\n",
        "  source: rootfs:app\n  signing:\n    certificate: c.pem\n    private_key: k.pem\n",
    );
    let r = release("s", &[0, 1, 2, 8]);
    let p = render_config(config(&signed), built(r.clone())).key_policy;
    assert_eq!(
        statement(
            &p,
            &format!(
                "EnclaveRelease{}Signer{}",
                &r.pcrs[&0][..16],
                &r.pcrs[&8][..8]
            )
        )["Condition"],
        pcr_condition(&r, &[0, 1, 2, 8])
    );

    let only_pcr0 = BASE.to_string() + "kms:\n  pcrs: [0]\n  deny_unattested: false\n";
    let p = render_config(config(&only_pcr0), built(r.clone())).key_policy;
    assert_eq!(sids(&p).len(), 3, "no deny statement when disabled: {p:#}");
    assert_eq!(
        statement(&p, &format!("EnclaveRelease{}", &r.pcrs[&0][..16]))["Condition"],
        pcr_condition(&r, &[0])
    );
}

#[test]
fn unbuilt_policy_admits_no_enclave() {
    let p = render_config(config(BASE), Default::default()).key_policy;
    assert_eq!(sids(&p), ["KeyAdministration", "SealSecrets"]);
}

#[test]
fn instance_role_policy_is_least_privilege() {
    let text = BASE.to_string() + "secrets:\n  /demo/api-token: API_TOKEN\n";
    let p = render_config(config(&text), built(release("v1", &[0, 1, 2]))).role_policy;
    assert_eq!(
        sids(&p),
        [
            "ReadArtifacts",
            "ReadWriteState",
            "ListState",
            "ReadOwnParameters",
            "AttestedKeyUse",
            "ShipLogs",
            "SignalRollout"
        ]
    );
    let logs = statement(&p, "ShipLogs");
    assert_eq!(
        logs["Action"],
        json!(["logs:CreateLogStream", "logs:PutLogEvents"])
    );
    assert_eq!(
        logs["Resource"],
        "arn:aws:logs:us-east-1:123456789012:log-group:/nitro-provision/demo:log-stream:*"
    );
    let signal = statement(&p, "SignalRollout");
    assert_eq!(signal["Action"], "cloudformation:SignalResource");
    assert_eq!(signal["Resource"], json!({"Ref": "AWS::StackId"}));
    assert_eq!(
        statement(&p, "ReadArtifacts")["Resource"],
        "arn:aws:s3:::demo-123456789012-us-east-1/artifacts/*"
    );
    assert_eq!(
        statement(&p, "ReadWriteState")["Resource"],
        "arn:aws:s3:::demo-123456789012-us-east-1/state/*"
    );
    assert_eq!(
        statement(&p, "ReadOwnParameters")["Resource"],
        json!([
            "arn:aws:ssm:us-east-1:123456789012:parameter/nitro-provision/demo/deployment",
            "arn:aws:ssm:us-east-1:123456789012:parameter/demo/api-token"
        ])
    );
    let kms = statement(&p, "AttestedKeyUse");
    assert_eq!(
        kms["Resource"],
        json!({"Fn::GetAtt": ["EnclaveKey", "Arn"]})
    );
    assert_eq!(
        kms["Condition"],
        json!({"Null": {"kms:RecipientAttestation:PCR0": "false"}})
    );
    for s in p["Statement"].as_array().unwrap() {
        assert_ne!(s["Resource"], "*", "wildcard resource in {s}");
    }
}

#[test]
fn user_data_pins_artifact_digests_and_fits_ec2_limits() {
    let artifacts = built(release("v1", &[0, 1, 2]));
    let eif = artifacts.eif.clone().unwrap().sha384;
    let rendered = render_config(config(BASE), artifacts);
    let ud = &rendered.user_data;
    assert!(ud.len() <= nitro_provision::render::USER_DATA_LIMIT);
    assert!(
        ud.contains(&format!(
            "fetch artifacts/eif/{eif}.eif /var/lib/nitro-provision/enclave.eif sha384 {eif}"
        )),
        "{ud}"
    );
    assert!(ud.contains(&format!("sha256 {}", "ab".repeat(32))));
    assert!(ud.contains("memory_mib: 2048\ncpu_count: 2\n"));
    assert!(ud.contains("Restart=always"));
    // The embedded supervisor config is the typed one, verbatim.
    use companion_config::ConfigFile;
    assert!(ud.contains(&rendered.supervisor_config.to_json()));
    // Unbuilt: the digests are a value no download can match, so the boot stops.
    let unbuilt = render_config(config(BASE), Default::default()).user_data;
    assert!(unbuilt.contains("sha384 UNKNOWN-not-built"));
}

#[test]
fn supervisor_egress_allowlist_names_the_regions_aws_endpoints_in_its_partition() {
    let hosts = |text: &str| -> Vec<String> {
        render_config(config(text), Default::default())
            .supervisor_config
            .link
            .egress
            .allowlist
            .iter()
            .map(|t| format!("{}:{}", t.host, t.port))
            .collect()
    };
    assert_eq!(
        hosts(BASE),
        [
            "kms.us-east-1.amazonaws.com:443",
            "s3.us-east-1.amazonaws.com:443",
            "demo-123456789012-us-east-1.s3.us-east-1.amazonaws.com:443",
            "ssm.us-east-1.amazonaws.com:443",
            "sts.us-east-1.amazonaws.com:443",
            "logs.us-east-1.amazonaws.com:443",
        ]
    );
    let china = hosts(&BASE.replace("region: us-east-1", "region: cn-north-1"));
    assert_eq!(china[0], "kms.cn-north-1.amazonaws.com.cn:443");
    assert_eq!(
        china[2],
        "demo-123456789012-cn-north-1.s3.cn-north-1.amazonaws.com.cn:443"
    );
    assert!(china.iter().all(|h| h.ends_with(".amazonaws.com.cn:443")));
}
