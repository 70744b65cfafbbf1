//! The typed `enclave.yaml` schema. Every struct denies unknown fields so a typo is an error, never
//! a silently ignored setting. Defaults live here, next to the field they belong to, and are
//! documented in `enclave.yaml.example`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One enclave deployment: everything `nitro-provision` renders, builds and reconciles.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deployment name: becomes the stack name and the prefix of every named resource.
    pub name: String,
    pub region: String,
    /// The 12-digit AWS account id the stack is deployed to.
    pub account: String,
    /// Production deployments refuse debug enclaves and debug (all-zero) PCRs.
    #[serde(default, deserialize_with = "core_bool")]
    pub production: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub instance: Instance,
    pub enclave: Enclave,
    pub image: Image,
    #[serde(default)]
    pub kms: Kms,
    /// SSM parameter name → environment variable the enclave receives it as.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub supervisor: Supervisor,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub rollout: Rollout,
    #[serde(default)]
    pub alerts: Alerts,
}

/// The parent EC2 instance(s).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    #[serde(rename = "type")]
    pub instance_type: String,
    /// 1 = a single instance; more = launch template + Auto Scaling group behind an NLB.
    #[serde(default = "default_count")]
    pub count: u32,
    /// An AMI id (`ami-…`) or an SSM parameter (`ssm:/path`) resolved by CloudFormation;
    /// default: Amazon Linux 2023's public parameter for the instance's architecture.
    pub ami: Option<String>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub ingress: Vec<Ingress>,
    /// The Network Load Balancer in front of an Auto Scaling group (`count > 1`).
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    #[serde(default = "default_root_volume_gib")]
    pub root_volume_gib: u32,
    /// SSH is off unless a key pair is named; SSM Session Manager is the default way in.
    #[serde(default)]
    pub ssh: Option<Ssh>,
}

/// Where the instances live: an existing VPC and subnets, or a VPC the stack creates.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub vpc_id: Option<String>,
    #[serde(default)]
    pub subnet_ids: Vec<String>,
    /// CIDR of the VPC the stack creates when `vpc_id` is not given; with `vpc_id`, the existing
    /// VPC's CIDR (NLB health checks come from its addresses, so the instances admit it).
    pub vpc_cidr: Option<String>,
}

impl Network {
    /// The VPC's CIDR: as configured, else the default of a created VPC.
    pub fn vpc_cidr(&self) -> &str {
        self.vpc_cidr.as_deref().unwrap_or(DEFAULT_VPC_CIDR)
    }
}

/// The Network Load Balancer of an Auto Scaling group.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancer {
    #[serde(default)]
    pub scheme: Scheme,
}

/// Who can reach the load balancer: the internet (public subnets), or only the VPC and what is
/// routed to it (private subnets, peering, VPN).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    #[default]
    InternetFacing,
    Internal,
}

impl Scheme {
    /// The value of `AWS::ElasticLoadBalancingV2::LoadBalancer.Scheme`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::InternetFacing => "internet-facing",
            Scheme::Internal => "internal",
        }
    }
}

/// A port the instances accept traffic on (forwarded to the enclave by the supervisor).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    pub port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    pub cidrs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ssh {
    pub key_name: String,
    pub cidrs: Vec<String>,
}

/// Resources carved out of the parent for the enclave (written to the allocator config).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enclave {
    pub cpu_count: u32,
    pub memory_mib: u64,
    #[serde(default = "default_cid")]
    pub cid: u32,
    /// Debug enclaves attest all-zero PCRs; refused when `production: true`.
    #[serde(default, deserialize_with = "core_bool")]
    pub debug: bool,
}

/// The user's application image and the pinned inputs of the EIF build.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// `docker-archive:PATH[:REF]`, `oci-archive:PATH[:REF]`, `oci:DIR[:REF]` or `rootfs:DIR`
    /// (see [`crate::ImageRef`]).
    pub source: String,
    /// Pinned manifest digest (`sha256:…`), checked when given.
    pub digest: Option<String>,
    /// Replaces the image's Entrypoint + Cmd.
    pub cmd: Option<Vec<String>>,
    /// Added to (and overriding) the image's environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub blobs: Blobs,
    /// The `enclave-runtime` binary; default: next to the `nitro-provision` executable.
    pub runtime: Option<PathBuf>,
    pub signing: Option<Signing>,
    /// Fixed mtime of every ramdisk entry, like `SOURCE_DATE_EPOCH`.
    #[serde(default)]
    pub source_date_epoch: u64,
}

/// Kernel blobs, each pinned by SHA-384 so a swapped kernel is an error, not a new PCR.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Blobs {
    #[serde(default = "default_blobs_dir")]
    pub dir: PathBuf,
    /// File name in `dir` → SHA-384 (96 lowercase hex).
    #[serde(default)]
    pub sha384: BTreeMap<String, String>,
}

/// Signing key for the EIF; its certificate becomes PCR8.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// The deployment's KMS key and the keys of independent key holders.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kms {
    /// PCRs pinned in the key policy; default 0, 1, 2 (+ 8 when signing).
    pub pcrs: Option<Vec<u8>>,
    /// Administer the key (keep kms:PutKeyPolicy); default the account root.
    #[serde(default)]
    pub admins: Vec<String>,
    /// May kms:Encrypt (seal secrets); default the admins.
    #[serde(default)]
    pub writers: Vec<String>,
    /// Explicitly deny Decrypt to anything but the released enclaves.
    #[serde(default = "default_true", deserialize_with = "core_bool")]
    pub deny_unattested: bool,
    #[serde(default = "default_pending_window_days")]
    pub pending_window_days: u32,
    #[serde(default)]
    pub key_holders: Vec<KeyHolder>,
}

/// An independent party holding its own key (usually in its own account).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyHolder {
    pub name: String,
    pub account: String,
    pub admin: String,
    /// AWS profile with the holder's credentials (for `policy diff/apply --holder`).
    pub profile: Option<String>,
    /// The holder's key: ARN, key id or `alias/NAME` (for `policy diff/apply --holder`).
    pub key: Option<String>,
}

/// Encrypted state the enclave keeps in the stack's bucket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default = "default_storage_prefix")]
    pub prefix: String,
}

/// The host-side `enclave-supervisor`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Supervisor {
    /// Management API port on 127.0.0.1.
    #[serde(default = "default_supervisor_port")]
    pub port: u16,
    #[serde(default = "default_backoff_min")]
    pub backoff_min_secs: u32,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: u32,
    /// How long a freshly started enclave may take before health checks count.
    #[serde(default = "default_boot_grace")]
    pub boot_grace_secs: u32,
    /// The `enclave-supervisor` binary; default: next to the `nitro-provision` executable.
    pub binary: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default = "default_log_format")]
    pub format: String,
    /// CloudWatch Logs retention of the stack's log group.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

/// Health-gated rollouts: CloudFormation waits for each instance's supervisor to signal.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// How long CloudFormation waits for an instance's signal (CreationPolicy and the Auto
    /// Scaling group's rolling update) before it rolls back.
    #[serde(default = "default_signal_timeout")]
    pub signal_timeout_secs: u32,
}

/// Where the "no healthy enclave" alarm notifies.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// An existing SNS topic; without it the alarm only shows in the console.
    pub sns_topic_arn: Option<String>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            signal_timeout_secs: default_signal_timeout(),
        }
    }
}

impl Default for Kms {
    fn default() -> Self {
        Kms {
            pcrs: None,
            admins: Vec::new(),
            writers: Vec::new(),
            deny_unattested: true,
            pending_window_days: default_pending_window_days(),
            key_holders: Vec::new(),
        }
    }
}

impl Default for Blobs {
    fn default() -> Self {
        Blobs {
            dir: default_blobs_dir(),
            sha384: BTreeMap::new(),
        }
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            prefix: default_storage_prefix(),
        }
    }
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            port: default_supervisor_port(),
            backoff_min_secs: default_backoff_min(),
            backoff_max_secs: default_backoff_max(),
            boot_grace_secs: default_boot_grace(),
            binary: None,
        }
    }
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            level: default_log_level(),
            format: default_log_format(),
            retention_days: default_retention_days(),
        }
    }
}

/// Amazon Linux 2023's public SSM parameters: always the region's current AMI.
pub const DEFAULT_AMI_X86_64: &str =
    "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";
pub const DEFAULT_AMI_ARM64: &str =
    "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64";
/// CIDR of a created VPC when `instance.network.vpc_cidr` is not given.
pub const DEFAULT_VPC_CIDR: &str = "10.80.0.0/16";
/// Where `aws-nitro-enclaves-cli` installs the kernel blobs.
pub const DEFAULT_BLOBS_DIR: &str = "/usr/share/nitro_enclaves/blobs";
/// The kernel blobs an EIF is built from.
pub const BLOB_NAMES: [&str; 4] = ["bzImage", "cmdline", "init", "nsm.ko"];

fn default_count() -> u32 {
    1
}
fn default_root_volume_gib() -> u32 {
    30
}
fn default_protocol() -> String {
    "tcp".to_string()
}
fn default_cid() -> u32 {
    16
}
fn default_blobs_dir() -> PathBuf {
    PathBuf::from(DEFAULT_BLOBS_DIR)
}
fn default_true() -> bool {
    true
}
fn default_pending_window_days() -> u32 {
    30
}
fn default_storage_prefix() -> String {
    "state/".to_string()
}
fn default_supervisor_port() -> u16 {
    8443
}
fn default_backoff_min() -> u32 {
    1
}
fn default_backoff_max() -> u32 {
    60
}
fn default_boot_grace() -> u32 {
    30
}
fn default_signal_timeout() -> u32 {
    900
}
fn default_log_level() -> String {
    "info".to_string()
}
fn default_log_format() -> String {
    "json".to_string()
}
fn default_retention_days() -> u32 {
    30
}

/// Booleans as YAML 1.2's core schema has them: plain `true`/`false` (any case form the schema
/// allows) and nothing else — not `yes`/`on`/`y` (YAML 1.1) and not quoted strings, which a
/// reader of the file would take for text.
fn core_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct CoreBool;
    impl serde::de::Visitor<'_> for CoreBool {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("true or false")
        }
        fn visit_bool<E>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
    }
    d.deserialize_any(CoreBool)
}
