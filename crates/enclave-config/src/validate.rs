//! Semantic checks that a type system cannot express: resource splits, AWS naming rules, PCR
//! sets, and the production safety rules. Each check reports at the offending key's position.

use std::collections::BTreeSet;

use super::error::{did_you_mean, Diagnostic};
use super::image_ref::{ImageRef, Transport};
use super::instance_types::{self, Arch, UnsupportedType};
use super::names;
use super::regions;
use super::schema::{Config, BLOB_NAMES};
use super::source::{KeyPath, Pos, SourceMap};

/// PCRs a key policy may pin: image (0), kernel+bootstrap (1), application (2), parent role (3),
/// parent instance (4), signing certificate (8).
pub const PINNABLE_PCRS: [u8; 6] = [0, 1, 2, 3, 4, 8];
/// CloudWatch Logs accepts only these retention periods.
const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// The parent keeps at least this much for the OS, the supervisor and vsock proxies.
const PARENT_MIN_MIB: u64 = 1024;
const PARENT_MIN_VCPUS: u32 = 2;
/// Tags nitro-provision adds to every resource (`managed-by`, `nitro-provision:deployment`).
const OWN_TAGS: usize = 2;
/// Listeners per Network Load Balancer (the default quota; one per ingress port).
const MAX_LISTENERS: usize = 50;

/// Turns a deserialization error into a diagnostic at its key path, with a suggestion for
/// misspelled keys.
pub fn from_serde(e: &serde_saphyr::Error, map: &SourceMap) -> Diagnostic {
    let pos = e
        .location()
        .map(|l| Pos {
            line: l.line() as usize,
            column: l.column() as usize,
        })
        .unwrap_or(Pos { line: 1, column: 1 });
    let raw = e.without_snippet().to_string();
    let message = match raw.rfind(" at line ") {
        Some(i) => raw[..i].to_string(),
        None => raw,
    };
    let mut path = map
        .path_at(pos)
        .or_else(|| map.path_on_line(pos))
        .unwrap_or_default();
    let (message, hint) = explain_serde_message(&message);
    if message.starts_with("missing required key") {
        // serde reports a missing key somewhere inside the mapping that lacks it: name the
        // mapping, at its own key.
        if map.key_pos(&path).is_some() {
            path = path.parent().unwrap_or_default();
        }
        let pos = if path.0.is_empty() {
            Pos { line: 1, column: 1 }
        } else {
            map.value_pos(&path)
        };
        return Diagnostic {
            pos,
            path,
            message,
            hint,
        };
    }
    // A value of the wrong type is pointed at itself, not at its key.
    let about_key = message.starts_with("unknown key") || message.starts_with("duplicate");
    let pos = if !about_key && map.key_pos(&path) == Some(pos) {
        map.value_pos(&path)
    } else {
        pos
    };
    Diagnostic {
        pos,
        path,
        message,
        hint,
    }
}

/// Rewrites serde's terse messages into what a user needs to read.
fn explain_serde_message(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let expected = expected_names(expected);
            let hint = match did_you_mean(field, expected.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            return (format!("unknown key `{field}`"), Some(hint));
        }
    }
    for (ty, what) in [
        ("u8", "a whole number 0–255"),
        ("u16", "a whole number 0–65535"),
        ("u32", "a whole number 0–4294967295"),
        ("u64", "a non-negative whole number"),
        ("bool", "true or false"),
    ] {
        if message == format!("invalid {ty}") {
            return (format!("expected {what}"), None);
        }
    }
    if let Some(got) = message
        .strip_prefix("invalid type: ")
        .and_then(|r| r.strip_suffix(", expected true or false"))
    {
        return (
            format!("expected true or false, got {got}"),
            Some("booleans are YAML 1.2's plain true/false: not yes/no/on/off, not quoted".into()),
        );
    }
    if message.contains("expected true or false") || message.contains("boolean") {
        return (
            "expected true or false".into(),
            Some("booleans are YAML 1.2's plain true/false: not yes/no/on/off, not quoted".into()),
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((value, expected)) = rest.split_once('`') {
            let expected = expected_names(expected);
            let hint = match did_you_mean(value, expected.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("expected one of: {}", expected.join(", ")),
            };
            return (format!("`{value}` is not allowed here"), Some(hint));
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        return (format!("missing required key `{field}`"), None);
    }
    plain_parser_message(message)
}

/// The YAML parser's own messages, without its option and type names (`DuplicateKeyPolicy`,
/// `Option<String>`, `ignore_binary_tag_for_string`), which mean nothing to someone editing enclave.yaml.
fn plain_parser_message(message: &str) -> (String, Option<String>) {
    if let Some(rest) = message.strip_prefix("duplicate mapping key") {
        let key = rest.split(", set ").next().unwrap_or_default();
        return (
            format!("duplicate mapping key{key}"),
            Some("each key may appear once in a mapping".into()),
        );
    }
    if message.starts_with("cannot deserialize null into string") {
        return ("expected a string, got nothing (null)".into(), None);
    }
    if message.starts_with("!!binary scalar is not valid UTF-8") {
        return (
            "a !!binary value that is not UTF-8 text cannot be a string".into(),
            None,
        );
    }
    (message.to_string(), None)
}

/// The candidate names in serde's "expected one of a, b, c" / "expected `a` or `b`" tails.
fn expected_names(tail: &str) -> Vec<String> {
    let tail = tail.trim_start_matches(',').trim();
    let tail = tail.strip_prefix("expected").unwrap_or(tail).trim();
    let tail = tail.strip_prefix("one of").unwrap_or(tail).trim();
    tail.split(", ")
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty() && s != "there are no fields")
        .collect()
}

/// Collects diagnostics; `at` locates a dotted path in the source.
struct Checker<'a> {
    map: &'a SourceMap,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, path: &KeyPath, message: impl Into<String>, hint: Option<String>) {
        self.out.push(Diagnostic {
            pos: self.map.value_pos(path),
            path: path.clone(),
            message: message.into(),
            hint,
        });
    }

    /// For problems with a key itself (unknown names), point at the key, not its value.
    fn err_key(&mut self, path: &KeyPath, message: impl Into<String>, hint: Option<String>) {
        let before = self.out.len();
        self.err(path, message, hint);
        if let (Some(d), Some(pos)) = (self.out.get_mut(before), self.map.key_pos(path)) {
            d.pos = pos;
        }
    }

    fn check(&mut self, path: &KeyPath, result: Result<(), String>) {
        if let Err(m) = result {
            self.err(path, m, None);
        }
    }
}

fn p(dotted: &str) -> KeyPath {
    KeyPath::parse(dotted)
}

/// Runs every semantic check; returns the diagnostics in source order.
pub fn check(c: &Config, map: &SourceMap) -> Vec<Diagnostic> {
    let mut k = Checker {
        map,
        out: Vec::new(),
    };
    k.check(&p("name"), names::check_deployment_name(&c.name));
    check_region(&mut k, c);
    k.check(&p("account"), names::check_account(&c.account));
    if c.tags.len() + OWN_TAGS > names::MAX_TAGS {
        k.err(
            &p("tags"),
            format!(
                "{} tags: AWS allows {} per resource and nitro-provision adds {OWN_TAGS}",
                c.tags.len(),
                names::MAX_TAGS
            ),
            Some(format!("at most {}", names::MAX_TAGS - OWN_TAGS)),
        );
    }
    for (key, value) in &c.tags {
        let path = p("tags").key(key);
        k.check(&path, names::check_tag(key, value));
        if key == "managed-by" || key == "nitro-provision:deployment" {
            k.err(
                &path,
                format!("tag `{key}` is set by nitro-provision itself"),
                None,
            );
        }
    }
    let arch = check_instance(&mut k, c);
    check_enclave(&mut k, c, arch);
    check_image(&mut k, c);
    check_kms(&mut k, c);
    check_secrets(&mut k, c);
    check_services(&mut k, c);
    check_partitions(&mut k, c);
    k.out.sort_by_key(|d| d.pos);
    k.out
}

fn check_region(k: &mut Checker, c: &Config) {
    if regions::partition_of(&c.region).is_none() {
        let hint = match did_you_mean(&c.region, regions::names()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => "e.g. us-east-1, eu-west-1, cn-north-1, us-gov-west-1".into(),
        };
        k.err(
            &p("region"),
            format!("`{}` is not an AWS region", c.region),
            Some(hint),
        );
    }
}

/// Every ARN must be in the region's partition: `arn:aws:` principals do not exist in China or
/// GovCloud, and the reverse.
fn check_partitions(k: &mut Checker, c: &Config) {
    let Some(partition) = regions::partition_of(&c.region) else {
        return;
    };
    let mut arns: Vec<(KeyPath, &str)> = Vec::new();
    for (list, name) in [(&c.kms.admins, "admins"), (&c.kms.writers, "writers")] {
        for (n, arn) in list.iter().enumerate() {
            arns.push((p("kms").key(name).index(n), arn));
        }
    }
    for (n, h) in c.kms.key_holders.iter().enumerate() {
        let path = p("kms.key_holders").index(n);
        arns.push((path.key("admin"), &h.admin));
        if let Some(key) = h.key.as_deref().filter(|k| k.starts_with("arn:")) {
            arns.push((path.key("key"), key));
        }
    }
    for (path, arn) in arns {
        match arn.split(':').nth(1) {
            Some(found) if found != partition => k.err(
                &path,
                format!(
                    "`{arn}` is in partition `{found}`, but {} is in `{partition}`",
                    c.region
                ),
                Some(format!("write arn:{partition}:…")),
            ),
            _ => {}
        }
    }
}

fn check_instance(k: &mut Checker, c: &Config) -> Option<(Arch, u32, u64)> {
    let i = &c.instance;
    let shape = match instance_types::lookup(&i.instance_type) {
        Ok(s) => Some(s),
        Err(e) => {
            let hint = match &e {
                UnsupportedType::UnknownFamily {
                    suggestion: Some(s),
                    ..
                } => Some(format!("did you mean the `{s}` family?")),
                UnsupportedType::UnknownFamily { .. } => {
                    Some("see the instance type table in the README".to_string())
                }
                _ => None,
            };
            k.err(&p("instance.type"), e.to_string(), hint);
            None
        }
    };
    if i.count == 0 || i.count > 100 {
        k.err(
            &p("instance.count"),
            format!("must be 1–100, got {}", i.count),
            None,
        );
    }
    if let Some(ami) = &i.ami {
        let ok = if let Some(param) = ami.strip_prefix("ssm:") {
            param.starts_with('/')
        } else {
            ami.strip_prefix("ami-").is_some_and(|h| {
                (h.len() == 8 || h.len() == 17) && names::check_hex(h, h.len()).is_ok()
            })
        };
        if !ok {
            k.err(
                &p("instance.ami"),
                format!("`{ami}` is neither an AMI id (ami-…) nor an SSM parameter (ssm:/…)"),
                None,
            );
        }
    }
    let net = &i.network;
    if let Some(vpc) = &net.vpc_id {
        if !is_aws_id(vpc, "vpc-") {
            k.err(
                &p("instance.network.vpc_id"),
                format!("`{vpc}` is not a VPC id (vpc-…)"),
                None,
            );
        }
        if net.subnet_ids.is_empty() {
            k.err(
                &p("instance.network.vpc_id"),
                "an existing VPC needs `subnet_ids`",
                None,
            );
        }
    } else if !net.subnet_ids.is_empty() {
        k.err(
            &p("instance.network.subnet_ids"),
            "`subnet_ids` needs `vpc_id` (the VPC they belong to)",
            None,
        );
    }
    for (n, s) in net.subnet_ids.iter().enumerate() {
        if !is_aws_id(s, "subnet-") {
            k.err(
                &p("instance.network.subnet_ids").index(n),
                format!("`{s}` is not a subnet id (subnet-…)"),
                None,
            );
        }
    }
    if i.count > 1 && net.vpc_id.is_some() && net.subnet_ids.len() < 2 {
        k.err(&p("instance.network.subnet_ids"), "an Auto Scaling group behind a load balancer needs subnets in at least 2 availability zones", None);
    }
    check_vpc_cidr(k, c);
    let mut ports = BTreeSet::new();
    let load_balanced = i.count > 1;
    if load_balanced && i.ingress.len() > MAX_LISTENERS {
        k.err(
            &p("instance.ingress"),
            format!(
                "{} ports: a Network Load Balancer has at most {MAX_LISTENERS} listeners (one per port)",
                i.ingress.len()
            ),
            None,
        );
    }
    for (n, ing) in i.ingress.iter().enumerate() {
        let path = p("instance.ingress").index(n);
        if ing.port == 0 {
            k.err(&path.key("port"), "port 0 is not a port", None);
        }
        if !ports.insert((ing.port, ing.protocol.clone())) {
            k.err(
                &path.key("port"),
                format!("port {} is listed twice", ing.port),
                None,
            );
        }
        if ing.port == c.supervisor.port {
            k.err(
                &path.key("port"),
                format!(
                    "port {} is the supervisor's loopback-only management port",
                    ing.port
                ),
                None,
            );
        }
        match ing.protocol.as_str() {
            "tcp" => {}
            // The supervisor relays ingress as streams over the enclave's vsock link, which
            // carries no datagrams: a UDP port would pass here and stop the supervisor on the host.
            "udp" => k.err(
                &path.key("protocol"),
                "UDP ingress is not supported: the supervisor relays TCP streams to the enclave",
                Some("serve the application over TCP".into()),
            ),
            other => k.err(
                &path.key("protocol"),
                format!("`{other}` is not `tcp`"),
                None,
            ),
        }
        if ing.cidrs.is_empty() {
            k.err(
                &path.key("cidrs"),
                "list at least one CIDR allowed to connect",
                None,
            );
        }
        for (m, cidr) in ing.cidrs.iter().enumerate() {
            k.check(&path.key("cidrs").index(m), names::check_cidr(cidr));
        }
    }
    if !(8..=16384).contains(&i.root_volume_gib) {
        k.err(
            &p("instance.root_volume_gib"),
            format!("must be 8–16384 GiB, got {}", i.root_volume_gib),
            None,
        );
    }
    if let Some(ssh) = &i.ssh {
        if ssh.key_name.is_empty() {
            k.err(
                &p("instance.ssh.key_name"),
                "must name an EC2 key pair",
                None,
            );
        }
        for (m, cidr) in ssh.cidrs.iter().enumerate() {
            k.check(&p("instance.ssh.cidrs").index(m), names::check_cidr(cidr));
        }
        if c.production && names::covers_everything(&ssh.cidrs) {
            let path = match ssh.cidrs.iter().position(|c| c.ends_with("/0")) {
                Some(m) => p("instance.ssh.cidrs").index(m),
                None => p("instance.ssh.cidrs"),
            };
            k.err(
                &path,
                "SSH open to the whole internet is refused in production (together these CIDRs cover every address)",
                Some("use SSM Session Manager, or a narrow CIDR".into()),
            );
        }
    }
    shape.map(|s| (s.arch, s.vcpus, s.memory_mib))
}

/// A created VPC is split into two subnets (/16–/24); an existing VPC's CIDR is needed when a
/// load balancer health-checks the instances from it, and must be a VPC's size (/16–/28).
fn check_vpc_cidr(k: &mut Checker, c: &Config) {
    let i = &c.instance;
    let net = &i.network;
    let existing = net.vpc_id.is_some();
    let health_checked = i.count > 1 && !i.ingress.is_empty();
    let Some(cidr) = net.vpc_cidr.as_deref() else {
        if existing && health_checked {
            k.err(
                &p("instance.network.vpc_id"),
                "behind a load balancer, an existing VPC needs `vpc_cidr` (its CIDR block): the instances admit the load balancer's health checks from it",
                Some(format!(
                    "aws ec2 describe-vpcs --vpc-ids {} --query 'Vpcs[0].CidrBlock'",
                    net.vpc_id.as_deref().unwrap_or("vpc-…")
                )),
            );
        }
        return;
    };
    let path = p("instance.network.vpc_cidr");
    if let Err(m) = names::check_cidr(cidr) {
        return k.err(&path, m, None);
    }
    let len: u32 = cidr
        .rsplit('/')
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    if !existing && !(16..=24).contains(&len) {
        k.err(
            &path,
            "the created VPC's prefix must be /16 to /24 (it is split into two subnets)",
            None,
        );
    } else if existing && !(16..=28).contains(&len) {
        k.err(&path, "a VPC's prefix is /16 to /28", None);
    }
}

fn is_aws_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|h| (h.len() == 8 || h.len() == 17) && names::check_hex(h, h.len()).is_ok())
}

fn check_enclave(k: &mut Checker, c: &Config, shape: Option<(Arch, u32, u64)>) {
    let e = &c.enclave;
    if e.cpu_count < 2 {
        k.err(
            &p("enclave.cpu_count"),
            format!("must be at least 2, got {}", e.cpu_count),
            None,
        );
    } else if !e.cpu_count.is_multiple_of(2) && !matches!(shape, Some((Arch::Arm64, ..))) {
        k.err(
            &p("enclave.cpu_count"),
            format!(
                "must be even on x86_64 (whole cores: both hyperthreads go to the enclave), got {}",
                e.cpu_count
            ),
            None,
        );
    }
    if e.memory_mib < 64 {
        k.err(
            &p("enclave.memory_mib"),
            format!("must be at least 64, got {}", e.memory_mib),
            None,
        );
    }
    if let Some((_, vcpus, mib)) = shape {
        if e.cpu_count + PARENT_MIN_VCPUS > vcpus {
            k.err(
                &p("enclave.cpu_count"),
                format!(
                    "{} has {vcpus} vCPUs and the parent keeps at least {PARENT_MIN_VCPUS}",
                    c.instance.instance_type
                ),
                Some(format!(
                    "at most {}",
                    vcpus.saturating_sub(PARENT_MIN_VCPUS)
                )),
            );
        }
        if e.memory_mib + PARENT_MIN_MIB > mib {
            k.err(
                &p("enclave.memory_mib"),
                format!(
                    "{} has {mib} MiB and the parent keeps at least {PARENT_MIN_MIB} MiB",
                    c.instance.instance_type
                ),
                Some(format!("at most {}", mib.saturating_sub(PARENT_MIN_MIB))),
            );
        }
    }
    if e.cid < 4 || e.cid == u32::MAX {
        k.err(
            &p("enclave.cid"),
            format!("CIDs 0–3 and 4294967295 are reserved, got {}", e.cid),
            None,
        );
    }
    if e.debug && c.production {
        k.err(&p("enclave.debug"), "debug enclaves attest all-zero PCRs and expose the console; refused when `production: true`", None);
    }
}

fn check_image(k: &mut Checker, c: &Config) {
    let img = &c.image;
    match ImageRef::parse(&img.source) {
        Err(e) => k.err(&p("image.source"), e.message, e.hint),
        Ok(r) if r.transport == Transport::Rootfs && img.digest.is_some() => k.err(
            &p("image.digest"),
            "a rootfs directory has no manifest digest to pin",
            None,
        ),
        Ok(_) => {}
    }
    if let Some(d) = &img.digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| names::check_hex(h, 64).is_ok());
        if !ok {
            k.err(
                &p("image.digest"),
                format!("`{d}` is not a sha256:<64 hex> digest"),
                None,
            );
        }
    }
    if let Some(cmd) = &img.cmd {
        if cmd.first().is_none_or(|a| a.is_empty()) {
            k.err(&p("image.cmd"), "must name a program to run", None);
        }
        for (n, arg) in cmd.iter().enumerate() {
            k.check(&p("image.cmd").index(n), init_line(arg));
        }
    }
    for (name, value) in &img.env {
        let path = p("image.env").key(name);
        if let Err(m) = names::check_env_name(name) {
            k.err_key(&path, m, None);
        }
        k.check(&path, init_line(value));
    }
    if img.source_date_epoch > u64::from(u32::MAX) {
        k.err(
            &p("image.source_date_epoch"),
            format!(
                "{} is past 2106: cpio stores 32-bit times",
                img.source_date_epoch
            ),
            Some(format!("at most {}", u32::MAX)),
        );
    }
    for (name, digest) in &img.blobs.sha384 {
        let path = p("image.blobs.sha384").key(name);
        if !BLOB_NAMES.contains(&name.as_str()) {
            let hint = did_you_mean(name, BLOB_NAMES).map(|s| format!("did you mean `{s}`?"));
            k.err_key(
                &path,
                format!("`{name}` is not a kernel blob ({})", BLOB_NAMES.join(", ")),
                hint,
            );
        }
        k.check(&path, names::check_hex(digest, 96));
    }
    for blob in BLOB_NAMES {
        if !img.blobs.sha384.contains_key(blob) {
            k.err(
                &p("image.blobs.sha384"),
                format!("missing the pinned SHA-384 of `{blob}`"),
                Some(format!("`sha384sum {}/{blob}`", img.blobs.dir.display())),
            );
        }
    }
}

/// Arguments and environment values reach the enclave as lines of init's `cmd` and `env`
/// files, and then as C strings: a newline would split one, a NUL cut it short.
fn init_line(value: &str) -> Result<(), String> {
    match value.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        Some(c) => Err(format!(
            "contains {c:?}: the enclave's init reads one value per line, as a C string"
        )),
        None => Ok(()),
    }
}

fn check_kms(k: &mut Checker, c: &Config) {
    let kms = &c.kms;
    if let Some(pcrs) = &kms.pcrs {
        let mut seen = BTreeSet::new();
        for (n, &pcr) in pcrs.iter().enumerate() {
            let path = p("kms.pcrs").index(n);
            if !PINNABLE_PCRS.contains(&pcr) {
                k.err(
                    &path,
                    format!("PCR{pcr} cannot be pinned"),
                    Some("choose from 0, 1, 2, 3, 4, 8".into()),
                );
            }
            if !seen.insert(pcr) {
                k.err(&path, format!("PCR{pcr} is listed twice"), None);
            }
            if pcr == 8 && c.image.signing.is_none() {
                k.err(
                    &path,
                    "PCR8 measures the signing certificate, but `image.signing` is not set",
                    None,
                );
            }
            if pcr == 4 {
                k.err(&path, "PCR4 pins one EC2 instance id, which does not exist before the stack creates it (and changes on every replacement)", Some("pin PCR3 (the instance role) instead".into()));
            }
        }
        if !seen.contains(&0) {
            k.err(
                &p("kms.pcrs"),
                "must include PCR0: it measures the whole image, and each release's statement and the Deny are keyed on it",
                Some("e.g. [0, 1, 2]".into()),
            );
        }
    }
    for (list, name) in [(&kms.admins, "admins"), (&kms.writers, "writers")] {
        for (n, arn) in list.iter().enumerate() {
            k.check(
                &p("kms").key(name).index(n),
                names::check_principal_arn(arn),
            );
        }
    }
    if !(7..=30).contains(&kms.pending_window_days) {
        k.err(
            &p("kms.pending_window_days"),
            format!("KMS accepts 7–30 days, got {}", kms.pending_window_days),
            None,
        );
    }
    let mut holder_names = BTreeSet::new();
    for (n, h) in kms.key_holders.iter().enumerate() {
        let path = p("kms.key_holders").index(n);
        let valid_name = !h.name.is_empty()
            && h.name.len() <= 32
            && h.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid_name {
            k.err(
                &path.key("name"),
                format!(
                    "`{}` must be 1–32 lowercase letters, digits or hyphens",
                    h.name
                ),
                None,
            );
        }
        if !holder_names.insert(&h.name) {
            k.err(
                &path.key("name"),
                format!("key holder `{}` is listed twice", h.name),
                None,
            );
        }
        k.check(&path.key("account"), names::check_account(&h.account));
        match names::check_principal_arn(&h.admin) {
            Err(m) => k.err(&path.key("admin"), m, None),
            Ok(()) => {
                if h.admin.split(':').nth(4) != Some(h.account.as_str()) {
                    k.err(
                        &path.key("admin"),
                        format!(
                            "the admin principal is not in the holder's account {}",
                            h.account
                        ),
                        None,
                    );
                }
            }
        }
    }
}

fn check_secrets(k: &mut Checker, c: &Config) {
    let mut envs = BTreeSet::new();
    for (param, env) in &c.secrets {
        let path = p("secrets").key(param);
        if let Err(m) = names::check_ssm_name(param) {
            k.err_key(&path, m, None);
        }
        k.check(&path, names::check_env_name(env));
        if !envs.insert(env) {
            k.err(
                &path,
                format!("environment variable `{env}` receives two secrets"),
                None,
            );
        }
        if c.image.env.contains_key(env) {
            k.err(&path, format!("`{env}` is also set in `image.env`; a secret must not be shadowed by a plain value"), None);
        }
    }
}

fn check_services(k: &mut Checker, c: &Config) {
    let prefix = &c.storage.prefix;
    let ok = !prefix.is_empty()
        && !prefix.starts_with('/')
        && prefix.ends_with('/')
        && prefix
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_./".contains(ch));
    if !ok {
        k.err(
            &p("storage.prefix"),
            format!(
                "`{prefix}` must be a relative S3 prefix ending in `/` (letters, digits, `-_./`)"
            ),
            None,
        );
    } else if prefix.starts_with("artifacts/") {
        k.err(
            &p("storage.prefix"),
            "`artifacts/` holds the EIF and supervisor uploads",
            None,
        );
    }
    let s = &c.supervisor;
    if s.port == 0 {
        k.err(&p("supervisor.port"), "port 0 is not a port", None);
    }
    if s.backoff_min_secs == 0 {
        k.err(
            &p("supervisor.backoff_min_secs"),
            "must be at least 1 second",
            None,
        );
    }
    if s.backoff_max_secs < s.backoff_min_secs {
        k.err(
            &p("supervisor.backoff_max_secs"),
            format!("must be at least backoff_min_secs ({})", s.backoff_min_secs),
            None,
        );
    }
    if s.boot_grace_secs > 3600 {
        k.err(
            &p("supervisor.boot_grace_secs"),
            "must be at most 3600 seconds",
            None,
        );
    }
    let l = &c.logging;
    const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];
    if !LEVELS.contains(&l.level.as_str()) {
        k.err(
            &p("logging.level"),
            format!("`{}` is not a log level", l.level),
            Some(format!("one of {}", LEVELS.join(", "))),
        );
    }
    if !matches!(l.format.as_str(), "json" | "text") {
        k.err(
            &p("logging.format"),
            format!("`{}` is not `json` or `text`", l.format),
            None,
        );
    }
    check_rollout(k, c);
    if !RETENTION_DAYS.contains(&l.retention_days) {
        let nearest = RETENTION_DAYS
            .iter()
            .min_by_key(|d| d.abs_diff(l.retention_days))
            .copied()
            .unwrap_or(30);
        k.err(
            &p("logging.retention_days"),
            format!("CloudWatch Logs does not accept {} days", l.retention_days),
            Some(format!("nearest allowed: {nearest}")),
        );
    }
}

/// CloudFormation's signal timeouts go up to 12 hours; under a minute no enclave boots.
fn check_rollout(k: &mut Checker, c: &Config) {
    let t = c.rollout.signal_timeout_secs;
    if !(60..=43_200).contains(&t) {
        k.err(
            &p("rollout.signal_timeout_secs"),
            format!("CloudFormation waits 60–43200 seconds for a signal, got {t}"),
            None,
        );
    } else if t <= c.supervisor.boot_grace_secs {
        k.err(
            &p("rollout.signal_timeout_secs"),
            format!(
                "must be longer than supervisor.boot_grace_secs ({})",
                c.supervisor.boot_grace_secs
            ),
            None,
        );
    }
    if let Some(arn) = &c.alerts.sns_topic_arn {
        let parts: Vec<&str> = arn.split(':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "sns"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].chars().all(|ch| ch.is_ascii_digit())
            && !parts[5].is_empty();
        if !ok {
            k.err(
                &p("alerts.sns_topic_arn"),
                format!("`{arn}` is not an SNS topic ARN"),
                Some("arn:aws:sns:REGION:ACCOUNT:NAME".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_serde_candidate_lists() {
        assert_eq!(
            expected_names(", expected one of cpu_count, memory_mib, cid"),
            ["cpu_count", "memory_mib", "cid"]
        );
        assert_eq!(expected_names(", expected `a` or `b`"), ["a", "b"]);
    }
}
