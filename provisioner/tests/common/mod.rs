//! Helpers shared by the provisioner's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use nitro_provision::config::{parse_str, Config};
use nitro_provision::render::{
    self, Artifacts, Deployment, EifArtifact, Release, Rendered, Templates,
};
use sha2::{Digest, Sha384};

/// A small valid configuration; tests derive variants from it by text replacement.
pub const BASE: &str = r#"name: demo
region: us-east-1
account: "123456789012"
instance:
  type: m6i.xlarge
  ingress:
    - port: 443
      cidrs: [0.0.0.0/0]
enclave:
  cpu_count: 2
  memory_mib: 2048
image:
  source: rootfs:app
  blobs:
    sha384:
      bzImage: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001
      cmdline: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002
      init: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000003
      nsm.ko: 000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000004
"#;

/// `BASE` with `from` replaced by `to` (which must occur).
pub fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "BASE does not contain {from:?}");
    BASE.replacen(from, to, 1)
}

pub fn config(text: &str) -> Config {
    parse_str(text, "test.yaml").unwrap_or_else(|e| panic!("config should be valid:\n{e}"))
}

/// A stand-in release whose PCR values are derived from `seed` (distinct per seed, never zero).
pub fn release(seed: &str, indices: &[u8]) -> Release {
    Release {
        pcrs: indices
            .iter()
            .map(|i| (*i, hex::encode(Sha384::digest(format!("{seed}/{i}")))))
            .collect::<BTreeMap<_, _>>(),
    }
}

pub fn built(release: Release) -> Artifacts {
    Artifacts {
        eif: Some(EifArtifact {
            sha384: hex::encode(Sha384::digest(b"eif")),
            size: 1,
            release,
        }),
        supervisor_sha256: Some("ab".repeat(32)),
    }
}

pub fn render_config(config: Config, artifacts: Artifacts) -> Rendered {
    let templates = Templates::load(None).expect("embedded templates load");
    render::render(&templates, &Deployment::new(config, artifacts)).expect("render")
}
pub mod deployment;
