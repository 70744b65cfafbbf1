//! Every rendered variant passes cfn-lint with zero errors and zero warnings.

mod common;

use common::*;

fn variants() -> Vec<(&'static str, String)> {
    let example =
        std::fs::read_to_string(harness::repo_root().join("enclave.yaml.example")).unwrap();
    vec![
        ("example", example),
        ("single", BASE.to_string()),
        ("asg", base_with("  type: m6i.xlarge\n", "  type: m6i.2xlarge\n  count: 3\n")),
        (
            "asg-alerts",
            base_with("  type: m6i.xlarge\n", "  type: m6i.2xlarge\n  count: 2\n")
                + "rollout:\n  signal_timeout_secs: 1800\nalerts:\n  sns_topic_arn: arn:aws:sns:us-east-1:123456789012:on-call\n",
        ),
        (
            "signed",
            base_with(
                "  source: rootfs:app\n",
                "  source: rootfs:app\n  signing:\n    certificate: c.pem\n    private_key: k.pem\n",
            ) + "kms:\n  pcrs: [0, 1, 2, 8]\n",
        ),
        (
            "key-holders",
            BASE.to_string()
                + "kms:\n  admins: [arn:aws:iam::123456789012:role/admin]\n  key_holders:\n"
                + "    - {name: a, account: \"111111111111\", admin: arn:aws:iam::111111111111:role/x}\n"
                + "    - {name: b, account: \"222222222222\", admin: arn:aws:iam::222222222222:root, profile: b}\n",
        ),
        (
            "custom-network",
            base_with(
                "  type: m6i.xlarge\n",
                "  type: m6i.xlarge\n  count: 2\n  network:\n    vpc_id: vpc-0123456789abcdef0\n    subnet_ids: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]\n    vpc_cidr: 172.31.0.0/16\n",
            ),
        ),
        (
            // Internal NLB; one ingress rule already is the VPC's CIDR (no duplicate rule);
            // no port below 1024.
            "asg-internal",
            base_with(
                "  type: m6i.xlarge\n  ingress:\n    - port: 443\n      cidrs: [0.0.0.0/0]\n",
                "  type: m6i.2xlarge\n  count: 2\n  load_balancer:\n    scheme: internal\n  ingress:\n    - port: 8080\n      cidrs: [10.80.0.0/16, 192.168.0.0/16]\n    - port: 5353\n      cidrs: [10.0.0.0/8]\n",
            ),
        ),
        (
            "graviton-ssh-ami",
            base_with(
                "  type: m6i.xlarge\n",
                "  type: m7g.xlarge\n  ami: ami-0123456789abcdef0\n  ssh:\n    key_name: ops\n    cidrs: [203.0.113.0/24]\n",
            ),
        ),
    ]
}

#[test]
fn every_variant_passes_cfn_lint() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, text) in variants() {
        let cfg = config(&text);
        for (suffix, artifacts) in [
            ("unbuilt", Default::default()),
            ("built", built(release(name, &[0, 1, 2, 8]))),
        ] {
            let rendered = render_config(cfg.clone(), artifacts);
            let path = dir.path().join(format!("{name}-{suffix}.yaml"));
            std::fs::write(&path, &rendered.template).unwrap();
            files.push(path);
        }
    }
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| harness::cfn_lint(f, "warning").err())
        .collect();
    assert!(
        failures.is_empty(),
        "cfn-lint findings:\n{}",
        failures.join("\n")
    );
}

#[test]
fn variants_render_the_resources_they_promise() {
    let types = |text: &str| -> Vec<String> {
        render_config(config(text), Default::default())
            .resources
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    };
    let single = types(BASE);
    assert!(single.contains(&"AWS::EC2::Instance".to_string()));
    assert!(!single.contains(&"AWS::AutoScaling::AutoScalingGroup".to_string()));
    assert!(
        single.contains(&"AWS::EC2::VPC".to_string()),
        "no vpc_id: the stack creates one"
    );
    let asg = types(&base_with(
        "  type: m6i.xlarge\n",
        "  type: m6i.2xlarge\n  count: 3\n",
    ));
    for t in [
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "AWS::ElasticLoadBalancingV2::Listener",
    ] {
        assert!(asg.contains(&t.to_string()), "{t} missing");
    }
    assert!(!asg.contains(&"AWS::EC2::Instance".to_string()));
    let existing = variants()
        .into_iter()
        .find(|(name, _)| *name == "custom-network")
        .unwrap()
        .1;
    let existing = types(&existing);
    assert!(
        !existing.contains(&"AWS::EC2::VPC".to_string()),
        "existing VPC must not be created"
    );
}

/// The template's resource `id` as JSON.
fn resource(text: &str, id: &str) -> serde_json::Value {
    let rendered = render_config(config(text), Default::default());
    let doc: serde_json::Value = serde_saphyr::from_str(&rendered.template).unwrap();
    doc["Resources"][id].clone()
}

#[test]
fn rollouts_wait_for_signals_and_the_alarm_watches_the_health_metric() {
    let single = resource(BASE, "Instance");
    assert_eq!(
        single["CreationPolicy"],
        serde_json::json!({"ResourceSignal": {"Count": 1, "Timeout": "PT900S"}})
    );
    let text = base_with("  type: m6i.xlarge\n", "  type: m6i.2xlarge\n  count: 3\n")
        + "rollout:\n  signal_timeout_secs: 1800\nalerts:\n  sns_topic_arn: arn:aws:sns:us-east-1:123456789012:on-call\n";
    let asg = resource(&text, "AutoScalingGroup");
    assert_eq!(
        asg["CreationPolicy"],
        serde_json::json!({"ResourceSignal": {"Count": 3, "Timeout": "PT1800S"}})
    );
    assert_eq!(
        asg["UpdatePolicy"]["AutoScalingRollingUpdate"],
        serde_json::json!({
            "MinInstancesInService": 3,
            "MaxBatchSize": 1,
            "MinSuccessfulInstancesPercent": 100,
            "PauseTime": "PT1800S",
            "WaitOnResourceSignals": true
        })
    );
    let alarm = resource(&text, "NoHealthyEnclaveAlarm")["Properties"].clone();
    assert_eq!(alarm["Namespace"], "NitroProvision");
    assert_eq!(alarm["MetricName"], "EnclaveHealthy");
    assert_eq!(
        alarm["Dimensions"],
        serde_json::json!([{"Name": "Deployment", "Value": "demo"}])
    );
    assert_eq!(alarm["TreatMissingData"], "breaching");
    assert_eq!(
        alarm["AlarmActions"],
        serde_json::json!(["arn:aws:sns:us-east-1:123456789012:on-call"])
    );
    let quiet = resource(BASE, "NoHealthyEnclaveAlarm")["Properties"].clone();
    assert!(quiet.get("AlarmActions").is_none(), "{quiet}");
}
