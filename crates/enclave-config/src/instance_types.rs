//! Built-in table of instance families that support Nitro Enclaves, and their sizes.
//!
//! Source: the Nitro Enclaves User Guide ("Requirements"): parents must be Nitro-based Intel or
//! AMD instances with at least 4 vCPUs, or Graviton instances with at least 2 vCPUs; burstable
//! (T-family), A1, Mac and `.metal` sizes are not supported. Memory per vCPU is the family's fixed
//! ratio (m = 4 GiB, c = 2 GiB, r = 8 GiB; c5n = 2.625 GiB).

/// CPU architecture of an instance family; decides the AMI and how vCPUs map to cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    X86_64,
    Arm64,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// What the validator needs to know about one instance type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct InstanceShape {
    pub vcpus: u32,
    pub memory_mib: u64,
    pub arch: Arch,
}

struct Family {
    name: &'static str,
    arch: Arch,
    mib_per_vcpu: u64,
}

const fn fam(name: &'static str, arch: Arch, mib_per_vcpu: u64) -> Family {
    Family {
        name,
        arch,
        mib_per_vcpu,
    }
}

use Arch::{Arm64, X86_64};

const FAMILIES: &[Family] = &[
    fam("c5", X86_64, 2048),
    fam("c5a", X86_64, 2048),
    fam("c5d", X86_64, 2048),
    fam("c5n", X86_64, 2688),
    fam("c6a", X86_64, 2048),
    fam("c6i", X86_64, 2048),
    fam("c6id", X86_64, 2048),
    fam("c6in", X86_64, 2048),
    fam("c7a", X86_64, 2048),
    fam("c7i", X86_64, 2048),
    fam("m5", X86_64, 4096),
    fam("m5a", X86_64, 4096),
    fam("m5d", X86_64, 4096),
    fam("m5n", X86_64, 4096),
    fam("m6a", X86_64, 4096),
    fam("m6i", X86_64, 4096),
    fam("m6id", X86_64, 4096),
    fam("m6in", X86_64, 4096),
    fam("m7a", X86_64, 4096),
    fam("m7i", X86_64, 4096),
    fam("r5", X86_64, 8192),
    fam("r5a", X86_64, 8192),
    fam("r5d", X86_64, 8192),
    fam("r5n", X86_64, 8192),
    fam("r6a", X86_64, 8192),
    fam("r6i", X86_64, 8192),
    fam("r6id", X86_64, 8192),
    fam("r7a", X86_64, 8192),
    fam("r7i", X86_64, 8192),
    fam("c6g", Arm64, 2048),
    fam("c6gn", Arm64, 2048),
    fam("c7g", Arm64, 2048),
    fam("c8g", Arm64, 2048),
    fam("m6g", Arm64, 4096),
    fam("m7g", Arm64, 4096),
    fam("m8g", Arm64, 4096),
    fam("r6g", Arm64, 8192),
    fam("r7g", Arm64, 8192),
    fam("r8g", Arm64, 8192),
];

/// Families that exist but can never host an enclave, with the reason users need to hear.
const UNSUPPORTED_PREFIXES: &[(&str, &str)] = &[
    (
        "t",
        "burstable (T-family) instances do not support Nitro Enclaves",
    ),
    ("a1", "A1 instances do not support Nitro Enclaves"),
    ("mac", "Mac instances do not support Nitro Enclaves"),
];

const SIZES: &[(&str, u32)] = &[
    ("medium", 1),
    ("large", 2),
    ("xlarge", 4),
    ("2xlarge", 8),
    ("4xlarge", 16),
    ("8xlarge", 32),
    ("9xlarge", 36),
    ("12xlarge", 48),
    ("16xlarge", 64),
    ("18xlarge", 72),
    ("24xlarge", 96),
    ("32xlarge", 128),
    ("48xlarge", 192),
];

/// Why an instance type cannot host an enclave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedType {
    #[error("`{0}` is not an instance type (expected FAMILY.SIZE, e.g. m6i.xlarge)")]
    Malformed(String),
    #[error("{reason}")]
    Family { reason: String },
    #[error("`.metal` instances do not support Nitro Enclaves")]
    Metal,
    #[error("`{family}` is not in nitro-provision's table of Nitro Enclaves families")]
    UnknownFamily {
        family: String,
        suggestion: Option<&'static str>,
    },
    #[error("`{size}` is not a size of the {family} family")]
    UnknownSize { family: String, size: String },
    #[error("{ty} has {vcpus} vCPU(s); Nitro Enclaves need at least {min} on {arch} instances")]
    TooSmall {
        ty: String,
        vcpus: u32,
        min: u32,
        arch: Arch,
    },
}

/// Looks `ty` up in the built-in table.
pub fn lookup(ty: &str) -> Result<InstanceShape, UnsupportedType> {
    let (family, size) = ty
        .split_once('.')
        .ok_or_else(|| UnsupportedType::Malformed(ty.to_string()))?;
    if size == "metal" || size.starts_with("metal-") {
        return Err(UnsupportedType::Metal);
    }
    if let Some(f) = FAMILIES.iter().find(|f| f.name == family) {
        let &(_, vcpus) =
            SIZES
                .iter()
                .find(|(s, _)| *s == size)
                .ok_or_else(|| UnsupportedType::UnknownSize {
                    family: family.to_string(),
                    size: size.to_string(),
                })?;
        let min = match f.arch {
            X86_64 => 4,
            Arm64 => 2,
        };
        if vcpus < min {
            return Err(UnsupportedType::TooSmall {
                ty: ty.to_string(),
                vcpus,
                min,
                arch: f.arch,
            });
        }
        return Ok(InstanceShape {
            vcpus,
            memory_mib: vcpus as u64 * f.mib_per_vcpu,
            arch: f.arch,
        });
    }
    for (prefix, reason) in UNSUPPORTED_PREFIXES {
        if family.starts_with(prefix) {
            return Err(UnsupportedType::Family {
                reason: reason.to_string(),
            });
        }
    }
    Err(UnsupportedType::UnknownFamily {
        family: family.to_string(),
        suggestion: super::did_you_mean(family, FAMILIES.iter().map(|f| f.name)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_family_ratio() {
        assert_eq!(
            lookup("m5.xlarge"),
            Ok(InstanceShape {
                vcpus: 4,
                memory_mib: 16 * 1024,
                arch: X86_64
            })
        );
        assert_eq!(lookup("c5n.2xlarge").map(|s| s.memory_mib), Ok(21 * 1024));
        assert_eq!(lookup("r6g.large").map(|s| s.vcpus), Ok(2));
    }

    #[test]
    fn refuses_what_aws_refuses() {
        assert!(matches!(
            lookup("t3.xlarge"),
            Err(UnsupportedType::Family { .. })
        ));
        assert!(matches!(lookup("m5.metal"), Err(UnsupportedType::Metal)));
        assert!(matches!(
            lookup("c6i.large"),
            Err(UnsupportedType::TooSmall { .. })
        ));
        assert!(matches!(
            lookup("m6g.medium"),
            Err(UnsupportedType::TooSmall { .. })
        ));
        assert!(matches!(lookup("m5"), Err(UnsupportedType::Malformed(_))));
        assert!(matches!(
            lookup("m6x.xlarge"),
            Err(UnsupportedType::UnknownFamily {
                suggestion: Some(_),
                ..
            })
        ));
    }
}
