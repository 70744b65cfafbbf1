//! What `render --out` writes for load-balanced and privileged-port deployments, through the
//! real binary: the NLB's scheme, health-check ingress from the VPC, the supervisor unit's
//! capability, and the labelled role-policy fragment.

mod common;

use common::deployment::{output, Dep};
use serde_json::Value;

fn render(d: &Dep) -> (Value, String, std::path::PathBuf) {
    let out = d.path("rendered");
    let o = d.np(&["render", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", output(&o));
    let template: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(out.join("template.yaml")).unwrap())
            .unwrap();
    let user_data = std::fs::read_to_string(out.join("user_data.sh")).unwrap();
    (template, user_data, out)
}

/// `(protocol, port, cidr)` of the instances' security group.
fn ingress(template: &Value) -> Vec<(String, u64, String)> {
    template["Resources"]["InstanceSecurityGroup"]["Properties"]["SecurityGroupIngress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["IpProtocol"].as_str().unwrap().to_string(),
                r["FromPort"].as_u64().unwrap(),
                r["CidrIp"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn rule(p: &str, port: u64, cidr: &str) -> (String, u64, String) {
    (p.into(), port, cidr.into())
}

#[test]
fn load_balanced_instances_admit_health_checks_from_the_vpc() {
    let d = Dep::new();
    d.replace(
        "  count: 1",
        "  count: 2\n  load_balancer:\n    scheme: internal",
    )
    .replace(
        "      cidrs: [0.0.0.0/0]",
        "      cidrs: [203.0.113.0/24]\n    - port: 9000\n      cidrs: [10.80.0.0/16]",
    );
    let (t, user_data, _) = render(&d);
    assert_eq!(
        t["Resources"]["LoadBalancer"]["Properties"]["Scheme"],
        "internal"
    );
    assert_eq!(
        ingress(&t),
        [
            rule("tcp", 443, "203.0.113.0/24"),
            rule("tcp", 9000, "10.80.0.0/16"),
            // Health checks of port 443 from the (created) VPC; 9000's rule already covers it.
            rule("tcp", 443, "10.80.0.0/16"),
        ]
    );
    assert!(user_data.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"));

    // Default scheme; an existing VPC's own CIDR; no port below 1024, so no capability.
    let d = Dep::new();
    d.replace("  count: 1", "  count: 2")
        .replace(
            "    vpc_cidr: 10.80.0.0/16",
            "    vpc_id: vpc-0123456789abcdef0\n    subnet_ids: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]\n    vpc_cidr: 172.31.0.0/16",
        )
        .replace("    - port: 443", "    - port: 8080");
    let (t, user_data, _) = render(&d);
    assert_eq!(
        t["Resources"]["LoadBalancer"]["Properties"]["Scheme"],
        "internet-facing"
    );
    assert_eq!(
        ingress(&t),
        [
            rule("tcp", 8080, "0.0.0.0/0"),
            rule("tcp", 8080, "172.31.0.0/16")
        ]
    );
    assert!(!user_data.contains("AmbientCapabilities"), "{user_data}");

    // A single instance has no load balancer and no health-check rule.
    let (t, _, _) = render(&Dep::new());
    assert_eq!(ingress(&t), [rule("tcp", 443, "0.0.0.0/0")]);
}

#[test]
fn the_role_policy_is_written_as_a_labelled_cloudformation_fragment() {
    let d = Dep::new();
    let (_, _, out) = render(&d);
    assert!(!out.join("policies/instance-role-policy.json").exists());
    let fragment: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("policies/instance-role-policy.cfn.json")).unwrap(),
    )
    .unwrap();
    let key_use = fragment["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "AttestedKeyUse")
        .unwrap();
    assert_eq!(
        key_use["Resource"],
        serde_json::json!({"Fn::GetAtt": ["EnclaveKey", "Arn"]})
    );
    // The key policy file is the document KMS receives, without kms:GenerateRandom.
    let key_policy = std::fs::read_to_string(out.join("policies/kms-key-policy.json")).unwrap();
    let _: Value = serde_json::from_str(&key_policy).unwrap();
    assert!(!key_policy.contains("GenerateRandom"));
}
