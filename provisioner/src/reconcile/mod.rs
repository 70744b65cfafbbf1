//! Reconciling a deployment with AWS through CloudFormation change sets: `plan` creates one and
//! never executes it, `apply` executes exactly what was planned, `destroy` deletes with consent,
//! `status` reports. Long waits stream stack events.

pub mod apply;
pub mod destroy;
pub mod health;
pub mod key_policy;
pub mod online_plan;
pub mod ownership;
pub mod prompt;
pub mod refresh;
pub mod rotation;
pub mod saved_plan;
pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::aws::{Aws, AwsOptions};
use crate::build::{self, Built};
use crate::config::Loaded;
use crate::render::{self, Artifacts, Deployment, EifArtifact, Release, Rendered, Templates};

/// Options shared by the AWS commands.
#[derive(Debug, Clone)]
pub struct AwsArgs {
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// Delay between polls of CloudFormation (events, change set status).
    pub poll: Duration,
}

impl AwsArgs {
    pub async fn connect(&self, region: &str) -> Result<Aws, crate::aws::AwsError> {
        Aws::connect(&self.options(region)).await
    }

    /// The connection options for `region`.
    pub fn options(&self, region: &str) -> AwsOptions {
        AwsOptions {
            region: region.to_string(),
            profile: self.profile.clone(),
            endpoint_url: self.endpoint_url.clone(),
            max_attempts: 3,
        }
    }
}

/// Everything local that plan and apply need: the build, the supervisor binary, the rendering.
pub struct Prepared {
    pub templates: Templates,
    pub built: Built,
    pub supervisor: PathBuf,
    pub supervisor_sha256: String,
    pub rendered: Rendered,
    pub template_sha256: String,
    /// The build's release as the key policy pins it (whatever `rendered` admits).
    pub new_release: Release,
}

/// What exists locally for a deployment: the build, unless the enclave-runtime binary is
/// missing, and the supervisor's digest, unless its binary is missing — with warnings saying
/// what is missing or a stand-in.
pub struct Local {
    pub built: Option<Built>,
    pub missing_runtime: Option<PathBuf>,
    pub supervisor: PathBuf,
    pub supervisor_sha256: Option<String>,
    pub warnings: Vec<String>,
}

/// Builds (or reuses) the EIF under `build_dir` and hashes the supervisor binary. Only a
/// missing binary is tolerated; any other build problem is an error.
pub fn local(
    loaded: &Loaded,
    build_dir: &Path,
    progress: &dyn nitro_eif::Progress,
) -> Result<Local, build::BuildError> {
    let mut warnings = Vec::new();
    let (built, missing_runtime) = match build::build(loaded, build_dir, progress) {
        Ok(b) => (Some(b), None),
        Err(build::BuildError::RuntimeMissing(path)) => {
            warnings.push(format!(
                "enclave-runtime not found at {} (run `cargo build --bins`): the EIF cannot be built, PCRs are unknown",
                path.display()
            ));
            (None, Some(path))
        }
        Err(e) => return Err(e),
    };
    let supervisor = build::supervisor_binary(loaded);
    let supervisor_sha256 = build::supervisor_digest(loaded, &supervisor)?;
    if supervisor_sha256.is_none() {
        warnings.push(format!(
            "enclave-supervisor not found at {}: its digest is unknown",
            supervisor.display()
        ));
    }
    if built.as_ref().is_some_and(|b| b.standin) {
        warnings.push(build::STANDIN_WARNING.to_string());
    }
    Ok(Local {
        built,
        missing_runtime,
        supervisor,
        supervisor_sha256,
        warnings,
    })
}

impl Prepared {
    /// Builds (or reuses) the EIF under `build_dir`, hashes the supervisor, renders. Plan and
    /// apply need both binaries: a missing one is an error here.
    pub fn new(
        loaded: &Loaded,
        templates: Templates,
        build_dir: &Path,
        progress: &dyn nitro_eif::Progress,
    ) -> anyhow::Result<Self> {
        let local = local(loaded, build_dir, progress)?;
        let Some(built) = local.built else {
            return Err(build::BuildError::RuntimeMissing(
                local.missing_runtime.unwrap_or_default(),
            )
            .into());
        };
        let Some(supervisor_sha256) = local.supervisor_sha256 else {
            anyhow::bail!(
                "the enclave-supervisor binary {} cannot be read (build it with `cargo build -p enclave-supervisor`, or set supervisor.binary)",
                local.supervisor.display()
            );
        };
        let supervisor = local.supervisor;
        let artifacts = artifacts_of(Some(&built), Some(supervisor_sha256.clone()));
        let dep = Deployment::new(loaded.config.clone(), artifacts);
        let new_release = dep
            .releases
            .first()
            .cloned()
            .unwrap_or_else(|| release_of(&built));
        let rendered = render::render(&templates, &dep)?;
        let template_sha256 = hex::encode(Sha256::digest(rendered.template.as_bytes()));
        Ok(Prepared {
            templates,
            built,
            supervisor,
            supervisor_sha256,
            rendered,
            template_sha256,
            new_release,
        })
    }

    /// The same build rendered to admit `releases` (a rotation admits the old and the new).
    pub fn with_releases(self, releases: Vec<Release>) -> anyhow::Result<Self> {
        let dep = self.rendered.deployment.clone().with_releases(releases);
        let rendered = render::render(&self.templates, &dep)?;
        let template_sha256 = hex::encode(Sha256::digest(rendered.template.as_bytes()));
        Ok(Prepared {
            rendered,
            template_sha256,
            ..self
        })
    }

    /// The artifacts apply uploads, content-addressed.
    pub fn uploads(&self) -> Vec<(String, PathBuf, String)> {
        let dep = &self.rendered.deployment;
        vec![
            (
                "eif".into(),
                self.built.eif.clone(),
                dep.eif_key().unwrap_or_default(),
            ),
            (
                "enclave-supervisor".into(),
                self.supervisor.clone(),
                dep.supervisor_key().unwrap_or_default(),
            ),
        ]
    }

    pub fn sha256_of(&self, name: &str) -> String {
        if name == "eif" {
            self.built.eif_sha256.clone()
        } else {
            self.supervisor_sha256.clone()
        }
    }
}

/// What rendering knows about the artifacts: a build (if any) and the supervisor's digest.
pub fn artifacts_of(built: Option<&Built>, supervisor_sha256: Option<String>) -> Artifacts {
    Artifacts {
        eif: built.map(|b| EifArtifact {
            sha384: b.eif_sha384.clone(),
            size: b.eif_size,
            release: release_of(b),
        }),
        supervisor_sha256,
    }
}

/// The release a build produces: its PCRs, as the key policy pins them.
pub fn release_of(built: &Built) -> Release {
    Release {
        pcrs: build::pcr_map(&built.measurements),
    }
}

/// Template parameters passed explicitly (none: every value is rendered in, and parameters
/// with defaults such as the AMI's SSM path resolve in CloudFormation); hashed into saved plans.
pub fn parameters() -> BTreeMap<String, String> {
    BTreeMap::new()
}

pub fn parameters_sha256(params: &BTreeMap<String, String>) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(params).unwrap_or_default(),
    ))
}

/// Writes `text` to `path` whole or not at all: a temporary file beside it, renamed over it.
pub fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(path).map(|_| ()).map_err(|e| e.error)
}

/// A unique, sortable change set name.
pub fn change_set_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("nitro-provision-{now}")
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch (CloudWatch's timestamps).
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Tags CloudFormation propagates to every resource it can: the ownership marks, then the user's.
pub fn stack_tags(dep: &Deployment) -> Vec<(String, String)> {
    let extra: Vec<(String, String)> = dep
        .config
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    ownership::stack_tags(&dep.config.name, &extra)
}
