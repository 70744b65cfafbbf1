//! `build-manifest.json`: every input of a build and its digest, so a key holder can rebuild
//! from the same inputs and compare, and a reviewer can see what a release is made of. No
//! paths of the building machine: two key holders' manifests for one release are identical.

use companion_config::RuntimeConfig;
use nitro_eif::image::Provenance;
use nitro_eif::pcr::Measurements;
use nitro_eif::{BuildOutput, BuildSpec, InputDigest};
use serde::Serialize;

use super::{Blobs, BuildError};
use crate::config::Loaded;

#[derive(Debug, Serialize)]
pub(super) struct Manifest<'a> {
    format_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    deployment: &'a str,
    config_sha256: &'a str,
    /// Kernel, cmdline, init, nsm.ko, the injected files (by their path in the image: the
    /// runtime binary and its config) and the signing certificate, each with its SHA-384.
    inputs: Vec<InputDigest>,
    image: ImageInputs<'a>,
    argv: &'a [String],
    env_keys: Vec<&'a str>,
    /// What the runtime starts the application as (the image config's `User`, `WorkingDir`).
    user: Option<&'a str>,
    working_dir: Option<&'a str>,
    eif_sha384: &'a str,
    measurements: &'a Measurements,
}

/// The image as enclave.yaml names it, and what it resolved to.
#[derive(Debug, Serialize)]
struct ImageInputs<'a> {
    source: &'a str,
    digest: &'a Option<String>,
    #[serde(flatten)]
    provenance: &'a Provenance,
}

impl<'a> Manifest<'a> {
    pub fn new(
        loaded: &'a Loaded,
        spec: &BuildSpec,
        blobs: &Blobs,
        output: &'a BuildOutput,
        runtime: &'a RuntimeConfig,
        eif_sha384: &'a str,
    ) -> Result<Self, BuildError> {
        let c = &loaded.config;
        let mut inputs = output.inputs.clone();
        // The cmdline reaches the EIF as text; its file's digest is what enclave.yaml pins.
        inputs.insert(
            1,
            InputDigest {
                name: "cmdline".into(),
                sha384: blobs.cmdline_sha384.clone(),
            },
        );
        if let Some(s) = &spec.signing {
            let sha384 =
                nitro_eif::sha384_file(&s.certificate).map_err(|source| BuildError::Io {
                    path: s.certificate.clone(),
                    source,
                })?;
            inputs.push(InputDigest {
                name: "signing-certificate".into(),
                sha384,
            });
        }
        Ok(Manifest {
            format_version: 1,
            tool: "nitro-provision",
            tool_version: env!("CARGO_PKG_VERSION"),
            deployment: &c.name,
            config_sha256: &loaded.sha256,
            inputs,
            image: ImageInputs {
                source: &c.image.source,
                digest: &output.image_digest,
                provenance: &output.image,
            },
            argv: &output.argv,
            // Keys only: values may be sensitive and are in the image anyway.
            env_keys: output
                .env
                .iter()
                .map(|e| e.split('=').next().unwrap_or(""))
                .collect(),
            user: runtime.app.user.as_deref(),
            working_dir: runtime.app.working_dir.as_deref(),
            eif_sha384,
            measurements: &output.measurements,
        })
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}
