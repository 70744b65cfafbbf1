//! Malformed configurations: each names its position, key path and the specific problem.

mod common;

use common::*;
use nitro_provision::config::parse_str;

/// (case, config text, expected "LINE:COLUMN: PATH: message" prefix of one diagnostic, which
/// is printed as "FILE:LINE:COLUMN: error: PATH: message").
fn cases() -> Vec<(&'static str, String, &'static str)> {
    vec![
        ("misspelled key", base_with("  cpu_count: 2", "  cpu_cont: 2"), "10:3: enclave.cpu_cont: unknown key `cpu_cont` (did you mean `cpu_count`?)"),
        ("unknown top-level key", BASE.to_string() + "regoin: x\n", "20:1: regoin: unknown key `regoin` (did you mean `region`?)"),
        ("missing required key", base_with("region: us-east-1\n", ""), "1:1: (document): missing required key `region`"),
        ("wrong type", base_with("  cpu_count: 2", "  cpu_count: two"), "10:14: enclave.cpu_count: expected a whole number 0–4294967295"),
        ("negative number", base_with("  memory_mib: 2048", "  memory_mib: -5"), "11:15: enclave.memory_mib: expected a non-negative whole number"),
        ("duplicate key", base_with("region: us-east-1\n", "region: us-east-1\nregion: eu-west-1\n"), "3:1: region: duplicate mapping key: region"),
        ("bad yaml", base_with("  type: m6i.xlarge", "  type: [m6i.xlarge"), "5:9: instance.type:"),
        ("odd cpu count", base_with("  cpu_count: 2", "  cpu_count: 3"), "10:14: enclave.cpu_count: must be even on x86_64"),
        ("cpu left to parent", base_with("  cpu_count: 2", "  cpu_count: 4"), "10:14: enclave.cpu_count: m6i.xlarge has 4 vCPUs and the parent keeps at least 2 (at most 2)"),
        ("memory left to parent", base_with("  memory_mib: 2048", "  memory_mib: 16000"), "11:15: enclave.memory_mib: m6i.xlarge has 16384 MiB and the parent keeps at least 1024 MiB (at most 15360)"),
        ("too little memory", base_with("  memory_mib: 2048", "  memory_mib: 32"), "11:15: enclave.memory_mib: must be at least 64, got 32"),
        ("reserved cid", base_with("  memory_mib: 2048\n", "  memory_mib: 2048\n  cid: 3\n"), "12:8: enclave.cid: CIDs 0–3 and 4294967295 are reserved, got 3"),
        ("burstable instance", base_with("  type: m6i.xlarge", "  type: t3.xlarge"), "5:9: instance.type: burstable (T-family) instances do not support Nitro Enclaves"),
        ("metal instance", base_with("  type: m6i.xlarge", "  type: m6i.metal"), "5:9: instance.type: `.metal` instances do not support Nitro Enclaves"),
        ("too small instance", base_with("  type: m6i.xlarge", "  type: c6i.large"), "5:9: instance.type: c6i.large has 2 vCPU(s); Nitro Enclaves need at least 4 on x86_64 instances"),
        ("unknown family", base_with("  type: m6i.xlarge", "  type: c7gx.xlarge"), "5:9: instance.type: `c7gx` is not in nitro-provision's table of Nitro Enclaves families (did you mean the `c7g` family?)"),
        ("debug in production", base_with("  memory_mib: 2048\n", "  memory_mib: 2048\n  debug: true\n") + "production: true\n", "12:10: enclave.debug: debug enclaves attest all-zero PCRs"),
        ("bad secret parameter", BASE.to_string() + "secrets:\n  /aws/token: TOKEN\n", "21:3: secrets[\"/aws/token\"]: names beginning with `aws` or `ssm` are reserved by AWS"),
        ("bad account", base_with("account: \"123456789012\"", "account: \"12345\""), "3:10: account: `12345` is not a 12-digit AWS account id"),
        ("bad name", base_with("name: demo", "name: Demo_App"), "1:7: name: must start with a lowercase letter"),
        ("bad region", base_with("region: us-east-1", "region: moon"), "2:9: region: `moon` is not an AWS region (e.g. us-east-1"),
        ("short pcr pin", base_with("      init: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003", "      init: abc"), "18:13: image.blobs.sha384.init: expected 96 lowercase hex characters, got `abc`"),
        ("uppercase pcr pin", base_with("      init: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003", "      init: 00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000A"), "18:13: image.blobs.sha384.init: expected 96 lowercase hex characters"),
        ("missing blob pin", base_with("      nsm.ko: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004\n", ""), "15:5: image.blobs.sha384: missing the pinned SHA-384 of `nsm.ko`"),
        ("unknown blob", base_with("      init:", "      initrd:"), "18:7: image.blobs.sha384.initrd: `initrd` is not a kernel blob"),
        ("image kind", base_with("  source: rootfs:app", "  source: docker:app"), "13:11: image.source: unknown image transport `docker` (did you mean `docker-archive:`?)"),
        ("pcr8 without signing", BASE.to_string() + "kms:\n  pcrs: [0, 8]\n", "21:13: kms.pcrs[1]: PCR8 measures the signing certificate, but `image.signing` is not set"),
        ("pcr set without pcr0", BASE.to_string() + "kms:\n  pcrs: [1, 2]\n", "21:3: kms.pcrs: must include PCR0"),
        ("pending window", BASE.to_string() + "kms:\n  pending_window_days: 3\n", "21:24: kms.pending_window_days: KMS accepts 7–30 days, got 3"),
        ("wildcard admin", BASE.to_string() + "kms:\n  admins: [\"arn:aws:iam::123456789012:role/*\"]\n", "21:12: kms.admins[0]: wildcards are not allowed"),
        ("holder admin account", BASE.to_string() + "kms:\n  key_holders:\n    - {name: a, account: \"111111111111\", admin: arn:aws:iam::222222222222:root}\n", "22:49: kms.key_holders[0].admin: the admin principal is not in the holder's account 111111111111"),
        ("bad cidr", base_with("      cidrs: [0.0.0.0/0]", "      cidrs: [10.0.0.1/8]"), "8:15: instance.ingress[0].cidrs[0]: `10.0.0.1/8` has host bits set"),
        ("secret env name", BASE.to_string() + "secrets:\n  /demo/token: 1TOKEN\n", "21:16: secrets[\"/demo/token\"]: `1TOKEN` is not a valid environment variable name"),
        ("retention", BASE.to_string() + "logging:\n  retention_days: 10\n", "21:19: logging.retention_days: CloudWatch Logs does not accept 10 days (nearest allowed: 7)"),
        ("region typo", base_with("region: us-east-1", "region: us-eest-1"), "2:9: region: `us-eest-1` is not an AWS region (did you mean `us-east-1`?)"),
        ("partition mismatch", base_with("region: us-east-1", "region: cn-north-1") + "kms:\n  admins: [\"arn:aws:iam::123456789012:role/admin\"]\n", "21:12: kms.admins[0]: `arn:aws:iam::123456789012:role/admin` is in partition `aws`, but cn-north-1 is in `aws-cn` (write arn:aws-cn:…)"),
        ("yaml 1.1 boolean", BASE.to_string() + "production: on\n", "20:13: production: expected true or false, got string \"on\""),
        ("quoted boolean", BASE.to_string() + "production: \"off\"\n", "20:13: production: expected true or false, got string \"off\""),
        ("y is no boolean", base_with("  memory_mib: 2048\n", "  memory_mib: 2048\n  debug: y\n"), "12:10: enclave.debug: expected true or false, got string \"y\""),
        ("quoted true", BASE.to_string() + "kms:\n  deny_unattested: \"true\"\n", "21:20: kms.deny_unattested: expected true or false, got string \"true\""),
        ("too many tags", BASE.to_string() + "tags:\n" + &(0..49).map(|i| format!("  t{i}: v\n")).collect::<String>(), "20:1: tags: 49 tags: AWS allows 50 per resource and nitro-provision adds 2 (at most 48)"),
        ("tag characters", BASE.to_string() + "tags:\n  owner: \"a,b\"\n", "21:10: tags.owner: tag value `a,b` contains ','"),
        ("env newline", base_with("  source: rootfs:app\n", "  source: rootfs:app\n  env:\n    GREETING: \"a\\nb\"\n"), "15:15: image.env.GREETING: contains '\\n'"),
        ("cmd nul", base_with("  source: rootfs:app\n", "  source: rootfs:app\n  cmd: [\"/app\", \"a\\0b\"]\n"), "14:17: image.cmd[1]: contains '\\0'"),
        ("ssh union covers all", base_with("  type: m6i.xlarge\n", "  type: m6i.xlarge\n  ssh:\n    key_name: ops\n    cidrs: [0.0.0.0/1, 128.0.0.0/1]\n") + "production: true\n", "8:5: instance.ssh.cidrs: SSH open to the whole internet is refused in production (together these CIDRs cover every address)"),
        ("udp ingress", base_with("      cidrs: [0.0.0.0/0]\n", "      cidrs: [0.0.0.0/0]\n    - port: 53\n      protocol: udp\n      cidrs: [0.0.0.0/0]\n"), "10:17: instance.ingress[1].protocol: UDP ingress is not supported: the supervisor relays TCP streams to the enclave (serve the application over TCP)"),
        ("too many listeners", base_with("  ingress:\n    - port: 443\n      cidrs: [0.0.0.0/0]\n", &format!("  count: 2\n  ingress:\n{}", (1000..1051).map(|p| format!("    - {{port: {p}, cidrs: [10.0.0.0/8]}}\n")).collect::<String>())), "7:3: instance.ingress: 51 ports: a Network Load Balancer has at most 50 listeners (one per port)"),
        ("existing vpc behind lb needs its cidr", base_with("  type: m6i.xlarge\n", "  type: m6i.xlarge\n  count: 2\n  network:\n    vpc_id: vpc-0123456789abcdef0\n    subnet_ids: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]\n"), "8:13: instance.network.vpc_id: behind a load balancer, an existing VPC needs `vpc_cidr` (its CIDR block)"),
        ("lb scheme", base_with("  type: m6i.xlarge\n", "  type: m6i.xlarge\n  load_balancer:\n    scheme: private\n"), "7:13: instance.load_balancer.scheme: `private` is not allowed here (expected one of: internet-facing, internal)"),
        ("epoch past 2106", base_with("  source: rootfs:app\n", "  source: rootfs:app\n  source_date_epoch: 4294967296\n"), "14:22: image.source_date_epoch: 4294967296 is past 2106: cpio stores 32-bit times (at most 4294967295)"),
        ("empty reference", base_with("  source: rootfs:app", "  source: \"oci:img:\""), "13:11: image.source: the reference after the path's `:` is empty (write oci:DIR[:REF])"),
        ("docker-archive digest reference", base_with("  source: rootfs:app", "  source: docker-archive:a.tar:app@sha256:0000"), "13:11: image.source: `app@sha256:0000`: a docker-archive reference cannot contain a digest"),
        ("rollout typo", BASE.to_string() + "rollout:\n  signal_timeout: 600\n", "21:3: rollout.signal_timeout: unknown key `signal_timeout` (did you mean `signal_timeout_secs`?)"),
        ("rollout timeout", BASE.to_string() + "rollout:\n  signal_timeout_secs: 50000\n", "21:24: rollout.signal_timeout_secs: CloudFormation waits 60–43200 seconds for a signal, got 50000"),
        ("rollout shorter than boot grace", BASE.to_string() + "supervisor:\n  boot_grace_secs: 600\nrollout:\n  signal_timeout_secs: 300\n", "23:24: rollout.signal_timeout_secs: must be longer than supervisor.boot_grace_secs (600)"),
        ("bad sns topic", BASE.to_string() + "alerts:\n  sns_topic_arn: arn:aws:sqs:us-east-1:123456789012:q\n", "21:18: alerts.sns_topic_arn: `arn:aws:sqs:us-east-1:123456789012:q` is not an SNS topic ARN"),
        ("subnets without vpc", base_with("  type: m6i.xlarge\n", "  type: m6i.xlarge\n  network:\n    subnet_ids: [subnet-0123456789abcdef0]\n"), "7:5: instance.network.subnet_ids: `subnet_ids` needs `vpc_id`"),
    ]
}

#[test]
fn each_malformed_config_names_its_position_and_problem() {
    let mut failures = Vec::new();
    for (case, text, expected) in cases() {
        match parse_str(&text, "test.yaml") {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(e) => {
                let text = e.to_string();
                let (pos, rest) = expected.split_once(": ").unwrap();
                let want = format!("test.yaml:{pos}: error: {rest}");
                if !text.lines().any(|l| l.starts_with(&want)) {
                    failures.push(format!("{case}:\n  expected: {want}\n  actual:   {text}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n")
    );
}

/// The same cases through `nitro-provision validate`: each diagnostic reaches the user as
/// `FILE:LINE:COLUMN: error: PATH: message`, exit 1.
#[test]
fn each_malformed_config_is_reported_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("test.yaml");
    let mut failures = Vec::new();
    for (case, text, expected) in cases() {
        std::fs::write(&file, &text).unwrap();
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_nitro-provision"))
            .arg("-f")
            .arg(&file)
            .arg("validate")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        let (pos, rest) = expected.split_once(": ").unwrap();
        let want = format!("{}:{pos}: error: {rest}", file.display());
        if o.status.code() != Some(1) || !stderr.lines().any(|l| l.starts_with(&want)) {
            failures.push(format!(
                "{case}: exit {:?}\n  expected: {want}\n  actual:   {stderr}",
                o.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_semantic_errors_are_listed_in_source_order() {
    let text = base_with("  cpu_count: 2", "  cpu_count: 3")
        .replace("name: demo", "name: Demo")
        .replace("  memory_mib: 2048", "  memory_mib: 32");
    let err = parse_str(&text, "test.yaml").unwrap_err();
    let lines: Vec<(usize, usize)> = err
        .diagnostics()
        .iter()
        .map(|d| (d.pos.line, d.pos.column))
        .collect();
    assert_eq!(lines, vec![(1, 7), (10, 14), (10, 14), (11, 15)]);
    assert!(err.to_string().ends_with("4 errors in test.yaml"), "{err}");
}

#[test]
fn the_example_is_valid() {
    let text = std::fs::read_to_string(harness::repo_root().join("enclave.yaml.example")).unwrap();
    parse_str(&text, "enclave.yaml.example").unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap, deterministic complement to the cargo-fuzz target: every prefix of valid and
    // malformed inputs must produce Ok or a diagnostic.
    for (_, text, _) in cases() {
        for end in (0..text.len())
            .step_by(7)
            .filter(|i| text.is_char_boundary(*i))
        {
            let _ = parse_str(&text[..end], "t");
        }
    }
}
