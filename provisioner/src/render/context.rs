//! The values templates see. `Deployment` derives every name, ARN and split once from the
//! configuration, so the templates stay declarative and the plan reports the same values.

use std::collections::BTreeMap;

use companion_config::{
    health, EgressService, EgressTarget, EnclaveResources, Link, Logging, Measurements, NitroCli,
    Proxy, RolloutTarget, SupervisorConfig, Watchdog, FORMAT_VERSION, SUPERVISOR_CONFIG_PATH,
    SUPERVISOR_STATE_DIR,
};
use serde::Serialize;
use serde_json::{json, Value};

use super::{Artifacts, Release};
use crate::config::{instance_types, Config, DEFAULT_AMI_ARM64, DEFAULT_AMI_X86_64};

/// Uploads live under this prefix of the stack's bucket, content-addressed by digest.
pub const ARTIFACT_PREFIX: &str = "artifacts/";
const EIF_PATH: &str = "/var/lib/nitro-provision/enclave.eif";
/// Shown wherever a value only exists once the EIF is built.
pub const UNKNOWN: &str = "(known after build)";

/// The alias of a deployment's KMS key: what writers seal with and the stack creates.
pub fn key_alias(deployment: &str) -> String {
    format!("alias/{deployment}")
}

/// A configuration plus everything derived from it that rendering and planning share.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    pub config: Config,
    pub partition: &'static str,
    pub bucket: String,
    pub role_name: String,
    pub role_arn: String,
    pub key_alias: String,
    pub log_group: String,
    pub deployment_parameter: String,
    pub artifacts: Artifacts,
    /// Releases the key policy admits: one normally, two during a rotation.
    pub releases: Vec<Release>,
    pub pinned_pcr_indices: Vec<u8>,
    pub vcpus: u32,
    pub memory_mib: u64,
}

impl Deployment {
    /// Derives names from a validated config; `artifacts` carries the build's digests, if any.
    pub fn new(config: Config, artifacts: Artifacts) -> Self {
        let c = &config;
        let partition = crate::config::partition(&c.region);
        let role_name = format!("{}-enclave", c.name);
        let pinned_pcr_indices = c.kms.pcrs.clone().unwrap_or_else(|| {
            let mut v = vec![0, 1, 2];
            if c.image.signing.is_some() {
                v.push(8);
            }
            v
        });
        let releases = artifacts
            .eif
            .as_ref()
            .map(|e| Release {
                pcrs: e
                    .release
                    .pcrs
                    .iter()
                    .filter(|(i, _)| pinned_pcr_indices.contains(i) || **i == 0)
                    .map(|(i, v)| (*i, v.clone()))
                    .collect(),
            })
            .into_iter()
            .collect();
        let shape = instance_types::lookup(&c.instance.instance_type).ok();
        Deployment {
            partition,
            bucket: bucket_name(c),
            role_arn: format!("arn:{partition}:iam::{}:role/{role_name}", c.account),
            role_name,
            key_alias: key_alias(&c.name),
            log_group: log_group_name(&c.name),
            deployment_parameter: format!("/nitro-provision/{}/deployment", c.name),
            artifacts,
            releases,
            pinned_pcr_indices,
            vcpus: shape.map_or(0, |s| s.vcpus),
            memory_mib: shape.map_or(0, |s| s.memory_mib),
            config,
        }
    }

    /// Replaces the admitted releases (a rotation admits the old and the new one).
    pub fn with_releases(mut self, releases: Vec<Release>) -> Self {
        self.releases = releases;
        self
    }

    fn admins(&self) -> Vec<String> {
        if self.config.kms.admins.is_empty() {
            vec![format!(
                "arn:{}:iam::{}:root",
                self.partition, self.config.account
            )]
        } else {
            self.config.kms.admins.clone()
        }
    }

    pub fn eif_key(&self) -> Option<String> {
        self.artifacts
            .eif
            .as_ref()
            .map(|e| format!("{ARTIFACT_PREFIX}eif/{}.eif", e.sha384))
    }

    pub fn supervisor_key(&self) -> Option<String> {
        self.artifacts
            .supervisor_sha256
            .as_ref()
            .map(|d| format!("{ARTIFACT_PREFIX}supervisor/{d}"))
    }

    /// Pinned PCR index → value (None until built), for outputs and plans.
    pub fn pinned_pcrs(&self) -> Vec<(u8, Option<String>)> {
        let release = self.releases.last();
        self.pinned_pcr_indices
            .iter()
            .map(|i| (*i, release.and_then(|r| r.pcrs.get(i).cloned())))
            .collect()
    }

    fn pinned_pcrs_text(&self) -> String {
        self.pinned_pcrs()
            .iter()
            .map(|(i, v)| format!("PCR{i}={}", v.as_deref().unwrap_or(UNKNOWN)))
            .collect::<Vec<_>>()
            .join(";")
    }

    /// The key policy's inputs: admins keep PutKeyPolicy, the instance role may decrypt only as
    /// one of the releases, writers may seal secrets.
    pub fn policy_context(&self) -> Result<kms_policy::PolicyContext, super::RenderError> {
        let c = &self.config;
        let pinned: Vec<kms_policy::PcrIndex> = self
            .pinned_pcr_indices
            .iter()
            .filter_map(|i| kms_policy::PcrIndex::new(u32::from(*i)).ok())
            .collect();
        let releases = self
            .releases
            .iter()
            .map(|r| {
                let mut pcrs = r.pcrs.clone();
                // PCR3 measures the parent's IAM role: known from the role ARN alone.
                pcrs.entry(3)
                    .or_insert_with(|| kms_policy::pcr3_for_role_arn(&self.role_arn).to_hex());
                let set = Release { pcrs }
                    .pcr_set()
                    .map_err(kms_policy::RenderError::from)?;
                kms_policy::Release::new(set)?.pinned(&pinned)
            })
            .collect::<Result<Vec<_>, kms_policy::RenderError>>()?;
        let writers = if c.kms.writers.is_empty() {
            self.admins()
        } else {
            c.kms.writers.clone()
        };
        Ok(kms_policy::PolicyContext {
            policy_id: format!("nitro-provision-{}", c.name),
            admins: self.admins(),
            enclave_principals: vec![self.role_arn.clone()],
            releases,
            writers,
            migration_principals: Vec::new(),
            deny_unattested: c.kms.deny_unattested,
        })
    }

    /// The SSM parameters the instance role may read: its deployment record and its secrets.
    pub fn ssm_parameters(&self) -> Vec<String> {
        let mut v = vec![self.deployment_parameter.clone()];
        v.extend(self.config.secrets.keys().map(|k| {
            if k.starts_with('/') {
                k.clone()
            } else {
                format!("/{k}")
            }
        }));
        v
    }

    pub fn role_policy_context(&self) -> Value {
        let c = &self.config;
        json!({
            "partition": self.partition,
            "region": c.region,
            "account": c.account,
            "bucket": self.bucket,
            "storage_prefix": c.storage.prefix,
            "ssm_parameters": self.ssm_parameters(),
            "log_group": self.log_group,
            "key_arn": {"Fn::GetAtt": ["EnclaveKey", "Arn"]},
            // The supervisor signals its own stack's rollout and nothing else.
            "stack_id": {"Ref": "AWS::StackId"},
        })
    }

    pub fn supervisor_config(&self) -> SupervisorConfig {
        let c = &self.config;
        SupervisorConfig {
            format_version: FORMAT_VERSION,
            deployment: c.name.clone(),
            region: c.region.clone(),
            eif_path: EIF_PATH.into(),
            enclave: EnclaveResources {
                cpu_count: c.enclave.cpu_count,
                memory_mib: c.enclave.memory_mib,
                cid: c.enclave.cid,
                debug: c.enclave.debug,
            },
            listen: format!("127.0.0.1:{}", c.supervisor.port),
            watchdog: Watchdog {
                backoff_min_secs: c.supervisor.backoff_min_secs,
                backoff_max_secs: c.supervisor.backoff_max_secs,
                boot_grace_secs: c.supervisor.boot_grace_secs,
                poll_interval_ms: 5_000,
                stable_secs: 120,
            },
            proxies: c
                .instance
                .ingress
                .iter()
                .map(|i| Proxy {
                    protocol: i.protocol.clone(),
                    host_port: i.port,
                    vsock_port: i.port.into(),
                })
                .collect(),
            log_group: self.log_group.clone(),
            logging: Logging {
                level: c.logging.level.clone(),
                format: c.logging.format.clone(),
            },
            link: Link {
                egress: EgressService {
                    allowlist: self.egress_allowlist(),
                    ..EgressService::default()
                },
                ..Link::default()
            },
            expected_measurements: self.artifacts.eif.as_ref().and_then(|e| {
                let pcr = |i: u8| e.release.pcrs.get(&i).cloned();
                Some(Measurements {
                    pcr0: pcr(0)?,
                    pcr1: pcr(1)?,
                    pcr2: pcr(2)?,
                    pcr8: pcr(8),
                })
            }),
            state_dir: SUPERVISOR_STATE_DIR.into(),
            nitro_cli: NitroCli {
                describe_timeout_secs: 10,
                terminate_timeout_secs: 30,
                run_timeout_secs: None,
            },
            rollout: Some(RolloutTarget {
                stack_name: c.name.clone(),
                logical_id: if c.instance.count == 1 {
                    "Instance"
                } else {
                    "AutoScalingGroup"
                }
                .into(),
            }),
        }
    }

    /// The AWS endpoints the enclave reaches through the supervisor's egress pass-through: KMS,
    /// S3 (regional, and the stack bucket's virtual host), SSM, STS and CloudWatch Logs of the
    /// deployment's region, under its partition's DNS suffix; HTTPS only.
    pub fn egress_allowlist(&self) -> Vec<EgressTarget> {
        let region = &self.config.region;
        let suffix = dns_suffix(self.partition);
        let regional = |service: &str| format!("{service}.{region}.{suffix}");
        [
            regional("kms"),
            regional("s3"),
            format!("{}.{}", self.bucket, regional("s3")),
            regional("ssm"),
            regional("sts"),
            regional("logs"),
        ]
        .into_iter()
        .map(|host| EgressTarget { host, port: 443 })
        .collect()
    }

    pub fn unit_context(&self) -> Value {
        json!({
            "name": self.config.name,
            "version": env!("CARGO_PKG_VERSION"),
            "supervisor_config_path": SUPERVISOR_CONFIG_PATH,
            // systemd's StateDirectory= is relative to /var/lib.
            "state_directory": SUPERVISOR_STATE_DIR.trim_start_matches("/var/lib/"),
            "bind_privileged_ports": self.binds_privileged_ports(),
        })
    }

    /// The unprivileged supervisor listens on every ingress port: below 1024 it needs
    /// `CAP_NET_BIND_SERVICE`, and exactly then the unit grants it.
    pub fn binds_privileged_ports(&self) -> bool {
        self.config.instance.ingress.iter().any(|i| i.port < 1024)
    }

    /// A load balancer health-checks its targets over TCP from its own addresses in the VPC,
    /// which the ingress CIDRs need not include: without these rules the checks fail and the
    /// Auto Scaling group replaces healthy instances forever. Rules the ingress already has
    /// are not repeated (EC2 refuses duplicate permissions).
    fn health_check_rules(&self, existing: &[Value]) -> Vec<Value> {
        let c = &self.config;
        if c.instance.count < 2 {
            return Vec::new();
        }
        let cidr = c.instance.network.vpc_cidr();
        let mut rules: Vec<Value> = Vec::new();
        for port in c.instance.ingress.iter().map(|i| i.port) {
            let rule = json!({"protocol": "tcp", "port": port, "cidr": cidr, "description": format!("load balancer health checks of port {port} (from the VPC)")});
            let same = |r: &Value| {
                r["protocol"] == rule["protocol"]
                    && r["port"] == rule["port"]
                    && r["cidr"] == rule["cidr"]
            };
            if !existing.iter().chain(&rules).any(same) {
                rules.push(rule);
            }
        }
        rules
    }

    pub fn user_data_context(&self, supervisor: &SupervisorConfig, unit: &str) -> Value {
        use companion_config::ConfigFile;
        let c = &self.config;
        let unknown = "UNKNOWN-not-built";
        json!({
            "name": c.name,
            "version": env!("CARGO_PKG_VERSION"),
            "region": c.region,
            "bucket": self.bucket,
            "enclave": {"cpu_count": c.enclave.cpu_count, "memory_mib": c.enclave.memory_mib},
            // Unknown digests render as a value no file can match: the boot then stops.
            "eif": {
                "key": self.eif_key().unwrap_or_else(|| format!("{ARTIFACT_PREFIX}eif/{unknown}")),
                "sha384": self.artifacts.eif.as_ref().map_or(unknown, |e| e.sha384.as_str()),
            },
            "supervisor": {
                "key": self.supervisor_key().unwrap_or_else(|| format!("{ARTIFACT_PREFIX}supervisor/{unknown}")),
                "sha256": self.artifacts.supervisor_sha256.as_deref().unwrap_or(unknown),
            },
            "supervisor_config_path": SUPERVISOR_CONFIG_PATH,
            "supervisor_config": supervisor.to_json(),
            "supervisor_unit": unit.trim_end(),
        })
    }

    /// The deployment record in SSM: what is running, for `status` and the supervisor.
    fn deployment_record(&self) -> String {
        let pcrs: BTreeMap<String, Value> = self
            .pinned_pcrs()
            .into_iter()
            .map(|(i, v)| (format!("PCR{i}"), v.map_or(Value::Null, Value::String)))
            .collect();
        json!({
            "format_version": 1,
            "eif": {"key": self.eif_key(), "sha384": self.artifacts.eif.as_ref().map(|e| &e.sha384)},
            "supervisor": {"key": self.supervisor_key(), "sha256": self.artifacts.supervisor_sha256},
            "pcrs": pcrs,
        })
        .to_string()
    }

    pub fn stack_context(
        &self,
        key_policy_json: &str,
        role_policy_json: &str,
        user_data: &str,
    ) -> Value {
        let c = &self.config;
        let mut tags = vec![
            json!({"Key": "managed-by", "Value": "nitro-provision"}),
            json!({"Key": "nitro-provision:deployment", "Value": c.name}),
        ];
        tags.extend(c.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})));
        let net = &c.instance.network;
        let create = net.vpc_id.is_none();
        let (subnets, subnet_refs, vpc_ref): (Vec<Value>, Vec<Value>, Value) = if create {
            let halves = split_cidr(net.vpc_cidr());
            let subnets: Vec<Value> = halves
                .iter()
                .enumerate()
                .map(|(n, cidr)| json!({"logical_id": format!("Subnet{}", (b'A' + n as u8) as char), "cidr": cidr}))
                .collect();
            let refs = subnets
                .iter()
                .map(|s| json!({"Ref": s["logical_id"]}))
                .collect();
            (subnets, refs, json!({"Ref": "Vpc"}))
        } else {
            (
                vec![],
                net.subnet_ids.iter().map(|s| json!(s)).collect(),
                json!(net.vpc_id),
            )
        };
        let mut ingress_rules: Vec<Value> = Vec::new();
        for i in &c.instance.ingress {
            for cidr in &i.cidrs {
                ingress_rules.push(json!({"protocol": i.protocol, "port": i.port, "cidr": cidr, "description": format!("{} {} to the enclave", i.protocol, i.port)}));
            }
        }
        ingress_rules.extend(self.health_check_rules(&ingress_rules));
        if let Some(ssh) = &c.instance.ssh {
            for cidr in &ssh.cidrs {
                ingress_rules.push(json!({"protocol": "tcp", "port": 22, "cidr": cidr, "description": "SSH (explicitly enabled)"}));
            }
        }
        let lb_ports: Vec<Value> = c
            .instance
            .ingress
            .iter()
            .map(|i| {
                json!({
                    "port": i.port,
                    "protocol": i.protocol.to_ascii_uppercase(),
                    "health_check_port": i.port,
                })
            })
            .collect();
        let arm = instance_types::lookup(&c.instance.instance_type)
            .is_ok_and(|s| s.arch == instance_types::Arch::Arm64);
        let ami_choice = c.instance.ami.clone().unwrap_or_else(|| {
            if arm {
                DEFAULT_AMI_ARM64
            } else {
                DEFAULT_AMI_X86_64
            }
            .to_string()
        });
        let ami = match ami_choice.strip_prefix("ssm:") {
            Some(param) => json!({"parameter": param, "image_id": {"Ref": "ParentAmi"}}),
            None => json!({"parameter": null, "image_id": ami_choice}),
        };
        json!({
            "name": c.name,
            "version": env!("CARGO_PKG_VERSION"),
            "partition": self.partition,
            "tags": tags,
            "network": {
                "create": create,
                "vpc_cidr": net.vpc_cidr(),
                "subnets": subnets,
                "subnet_refs": subnet_refs,
                "vpc_ref": vpc_ref,
                "public_ip": create,
            },
            "ingress_rules": ingress_rules,
            "lb_ports": lb_ports,
            "load_balancer": {"scheme": c.instance.load_balancer.scheme.as_str()},
            "role_name": self.role_name,
            "role_policy": role_policy_json,
            "kms": {
                "pending_window_days": c.kms.pending_window_days,
                "key_policy_json": key_policy_json,
                "alias": self.key_alias,
            },
            "bucket": self.bucket,
            "deployment_parameter": {"name": self.deployment_parameter, "value": self.deployment_record()},
            "log_group": {"name": self.log_group, "retention_days": c.logging.retention_days},
            "ami": ami,
            "instance": {
                "type": c.instance.instance_type,
                "count": c.instance.count,
                "root_volume_gib": c.instance.root_volume_gib,
                "ssh_key": c.instance.ssh.as_ref().map(|s| &s.key_name),
            },
            "user_data": user_data,
            "signal_timeout_secs": c.rollout.signal_timeout_secs,
            "alerts": {"sns_topic_arn": c.alerts.sns_topic_arn},
            "metrics": {
                "namespace": health::METRIC_NAMESPACE,
                "healthy": health::METRIC_HEALTHY,
                "deployment_dimension": health::DIMENSION_DEPLOYMENT,
            },
            "health_check_grace_secs": c.supervisor.boot_grace_secs.max(60) + 240,
            "supervisor_port": c.supervisor.port,
            "pinned_pcrs_text": self.pinned_pcrs_text(),
            "releases": self.releases.iter().map(|r| {
                r.pcrs.iter().map(|(i, v)| (format!("PCR{i}"), v.clone())).collect::<BTreeMap<_, _>>()
            }).collect::<Vec<_>>(),
        })
    }
}

/// The stack's bucket (artifacts, and the runtime's sealed storage under `storage.prefix`).
pub fn bucket_name(c: &Config) -> String {
    format!("{}-{}-{}", c.name, c.account, c.region)
}

/// The deployment's CloudWatch Logs group: the supervisors write it, `logs` and `status`
/// read it (from the name alone, so they work while a stack is half-made).
pub fn log_group_name(deployment: &str) -> String {
    format!("/nitro-provision/{deployment}")
}

/// The DNS suffix of a partition's service endpoints.
fn dns_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}

/// Splits a /16–/24 block into its two halves (one subnet per availability zone).
fn split_cidr(cidr: &str) -> Vec<String> {
    let Some((addr, len)) = cidr.split_once('/') else {
        return vec![];
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<std::net::Ipv4Addr>(), len.parse::<u32>()) else {
        return vec![];
    };
    let base = u32::from(addr);
    let half = 1u32 << (32 - (len + 1));
    (0..2)
        .map(|n| format!("{}/{}", std::net::Ipv4Addr::from(base + n * half), len + 1))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_cidr_in_halves() {
        assert_eq!(
            super::split_cidr("10.80.0.0/16"),
            ["10.80.0.0/17", "10.80.128.0/17"]
        );
        assert_eq!(
            super::split_cidr("192.168.4.0/24"),
            ["192.168.4.0/25", "192.168.4.128/25"]
        );
    }
}
