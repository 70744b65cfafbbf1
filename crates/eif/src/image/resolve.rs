//! From an image source to its config and layers: index → manifest → config in an OCI layout or
//! oci-archive, `manifest.json` in a docker-archive; the image chosen by reference and platform,
//! every document checked against its digest, the config's platform against the one wanted.

use serde::{Deserialize, Serialize};

use super::config::ImageConfig;
use super::select::{self, REF_NAME};
use super::source::{ImageSource, Platform};
use super::store::Store;
use super::ImageError;

/// Image indexes may nest; deeper nesting than this is refused.
const MAX_INDEX_DEPTH: usize = 4;

/// Which image of a source to use.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// Picks a manifest from an index, and must match the config's `os`/`architecture`.
    pub platform: &'a Platform,
    /// The image of a layout or archive holding several (`org.opencontainers.image.ref.name`,
    /// a docker `RepoTags` entry, or `@INDEX`).
    pub reference: Option<&'a str>,
    /// A digest the image must have: of an index, the manifest or the config (docker-archive:
    /// the config digest, i.e. the image ID).
    pub digest: Option<&'a str>,
}

/// What an image was built from, by digest: for the build manifest and the EIF metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// The image's name in its layout or archive (ref name or RepoTag), if it has one.
    pub name: Option<String>,
    /// `os/architecture[/variant]` from the config.
    pub platform: Option<String>,
    /// Digests of the image indexes passed through (outermost first; `index.json` itself has
    /// no digest).
    pub index: Vec<String>,
    pub manifest: Option<String>,
    pub config: Option<String>,
    pub layers: Vec<LayerProvenance>,
}

/// One layer: its blob digest (when the source has one), its uncompressed digest (the config's
/// diff_id), its media type and stored size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerProvenance {
    pub digest: Option<String>,
    pub diff_id: Option<String>,
    pub media_type: Option<String>,
    pub size: u64,
}

pub(crate) struct LayerRef {
    pub name: String,
    /// Digest of the blob as stored (OCI descriptors; docker archives only in the OCI-style
    /// `blobs/sha256/…` layout docker 25+ writes).
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// Size from the descriptor, checked against the stored blob.
    pub size: Option<u64>,
}

pub(crate) struct Resolved {
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    /// Digests of the documents on the path to the config (index…, manifest, config): a pinned
    /// digest may be any of them.
    pub identities: Vec<String>,
    /// The digest reported as the image's: the manifest's (OCI) or the config's (docker).
    pub digest: Option<String>,
    pub provenance: Provenance,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    platform: Option<DescPlatform>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct DescPlatform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct IndexOrManifest {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Resolves an OCI layout, oci-archive or docker-archive held in `store`, and checks the
/// result against `want` (platform, pinned digest) and the blobs against their descriptors.
pub(crate) fn resolve(
    source: &ImageSource,
    store: &Store,
    want: &Want<'_>,
) -> Result<Resolved, ImageError> {
    let mut resolved = match source {
        ImageSource::DockerArchive(_) => resolve_docker(store, want)?,
        _ => resolve_oci(store, want)?,
    };
    check_platform(&resolved.config, want.platform)?;
    if let Some(pinned) = want.digest {
        if !resolved.identities.iter().any(|d| d == pinned) {
            return Err(ImageError::PinnedDigestNotFound(pinned.into()));
        }
    }
    let diff_ids = expected_diff_ids(source, &resolved)?;
    let c = &resolved.config;
    resolved.provenance.platform = c.architecture.as_ref().map(|a| {
        let mut p = format!("{}/{a}", c.os.as_deref().unwrap_or("linux"));
        if let Some(v) = &c.variant {
            p.push_str(&format!("/{v}"));
        }
        p
    });
    for (i, layer) in resolved.layers.iter().enumerate() {
        let (_, _, stored) = store
            .region(&layer.name)
            .map_err(|_| ImageError::Missing(format!("layer {i} ({})", layer.name)))?;
        if let Some(expected) = layer.size.filter(|s| *s != stored) {
            return Err(ImageError::LayerSize {
                layer: i,
                name: layer.name.clone(),
                expected,
                actual: stored,
            });
        }
        resolved.provenance.layers.push(LayerProvenance {
            digest: layer.digest.clone(),
            diff_id: diff_ids.as_ref().map(|ids| ids[i].clone()),
            media_type: layer.media_type.clone(),
            size: stored,
        });
    }
    Ok(resolved)
}

/// The uncompressed digests the config lists for the layers: required for docker archives
/// (their blobs may carry no other digest), checked for OCI images whose config has them.
pub(crate) fn expected_diff_ids(
    source: &ImageSource,
    resolved: &Resolved,
) -> Result<Option<Vec<String>>, ImageError> {
    let ids = match (source, &resolved.config.rootfs) {
        (ImageSource::LayerTars(_), _) => return Ok(None),
        (ImageSource::DockerArchive(_), rootfs) => rootfs
            .as_ref()
            .map(|r| r.diff_ids.clone())
            .unwrap_or_default(),
        (_, Some(rootfs)) => rootfs.diff_ids.clone(),
        (_, None) => return Ok(None),
    };
    if ids.len() != resolved.layers.len() {
        return Err(ImageError::Missing(format!(
            "one config diff_id per layer ({} for {} layers)",
            ids.len(),
            resolved.layers.len()
        )));
    }
    Ok(Some(ids))
}

/// GOARCH names, with the kernel's spellings some tools write.
fn canonical_arch(a: &str) -> &str {
    match a {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An image's config names the platform its binaries are for: it must be the EIF's.
fn check_platform(config: &ImageConfig, want: &Platform) -> Result<(), ImageError> {
    let arch = config.architecture.as_deref().map(canonical_arch);
    let os = config.os.as_deref();
    let arch_ok = arch.is_none_or(|a| a == canonical_arch(&want.architecture));
    let os_ok = os.is_none_or(|o| o == want.os);
    if arch_ok && os_ok {
        return Ok(());
    }
    Err(ImageError::WrongPlatform {
        image: format!(
            "{}/{}",
            os.unwrap_or("linux"),
            config.architecture.as_deref().unwrap_or("?")
        ),
        wanted: want.to_string(),
    })
}

/// Blob path of a content-addressed digest; only `sha256:<64 hex>` is accepted.
fn blob_name(digest: &str) -> Result<String, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(format!("blobs/sha256/{h}"))
        }
        _ => Err(ImageError::UnsupportedDigest(digest.into())),
    }
}

/// The digest a `blobs/sha256/HEX` member name stands for (docker 25+ archives).
fn digest_of_blob_name(name: &str) -> Option<String> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    let d = format!("sha256:{hex}");
    blob_name(&d).ok().map(|_| d)
}

fn resolve_oci(store: &Store, want: &Want<'_>) -> Result<Resolved, ImageError> {
    if !store.contains("index.json") {
        return Err(ImageError::Missing(
            "index.json (not an OCI image layout: `skopeo copy … oci:DIR` writes one)".into(),
        ));
    }
    let (top, _): (IndexOrManifest, _) = store.read_json("index.json", None)?;
    let manifests = top
        .manifests
        .ok_or_else(|| ImageError::Missing("index.json: manifests".into()))?;
    let names: Vec<Option<&str>> = manifests.iter().map(ref_name).collect();
    let selected = select::oci_candidates(&names, want.reference)?;
    let mut pool: Vec<Descriptor> = manifests
        .into_iter()
        .enumerate()
        .filter(|(i, _)| selected.contains(i))
        .map(|(_, d)| d)
        .collect();
    let mut provenance = Provenance::default();
    let mut identities = Vec::new();
    for depth in 0..=MAX_INDEX_DEPTH {
        let chosen = choose_manifest(pool, want.platform)?;
        if depth == 0 {
            provenance.name = ref_name(&chosen).map(str::to_string);
        }
        identities.push(chosen.digest.clone());
        let (doc, _): (IndexOrManifest, _) =
            store.read_json(&blob_name(&chosen.digest)?, Some(&chosen.digest))?;
        match doc.manifests {
            Some(nested) => {
                provenance.index.push(chosen.digest);
                pool = nested;
            }
            None => return finish_oci(store, doc, provenance, identities),
        }
    }
    Err(ImageError::IndexTooDeep(MAX_INDEX_DEPTH))
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// The manifest reached: its config and layers.
fn finish_oci(
    store: &Store,
    manifest: IndexOrManifest,
    mut provenance: Provenance,
    mut identities: Vec<String>,
) -> Result<Resolved, ImageError> {
    let config_desc = manifest
        .config
        .ok_or_else(|| ImageError::Missing("the manifest's config".into()))?;
    let (config, _): (ImageConfig, _) =
        store.read_json(&blob_name(&config_desc.digest)?, Some(&config_desc.digest))?;
    let layers = manifest
        .layers
        .into_iter()
        .map(|l| {
            Ok(LayerRef {
                name: blob_name(&l.digest)?,
                digest: Some(l.digest),
                media_type: l.media_type,
                size: l.size,
            })
        })
        .collect::<Result<_, ImageError>>()?;
    let digest = identities.last().cloned();
    provenance.manifest = digest.clone();
    provenance.config = Some(config_desc.digest.clone());
    identities.push(config_desc.digest);
    Ok(Resolved {
        config,
        layers,
        identities,
        digest,
        provenance,
    })
}

/// The manifest for `want` among `manifests`: the only one when it names no platform.
fn choose_manifest(
    mut manifests: Vec<Descriptor>,
    want: &Platform,
) -> Result<Descriptor, ImageError> {
    if manifests.len() == 1 && manifests[0].platform.is_none() {
        return Ok(manifests.remove(0));
    }
    let found = manifests.iter().position(|d| {
        d.platform.as_ref().is_some_and(|p| {
            p.os == want.os
                && canonical_arch(&p.architecture) == canonical_arch(&want.architecture)
                && (want.variant.is_none() || p.variant == want.variant)
        })
    });
    match found {
        Some(i) => Ok(manifests.swap_remove(i)),
        None => Err(ImageError::NoMatchingPlatform {
            wanted: want.to_string(),
            available: manifests
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => format!("{}/{}", p.os, p.architecture),
                    None => "(no platform)".into(),
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

fn resolve_docker(store: &Store, want: &Want<'_>) -> Result<Resolved, ImageError> {
    if !store.contains("manifest.json") {
        return Err(ImageError::Missing(
            "manifest.json (not a docker archive: `docker save` writes one)".into(),
        ));
    }
    let (manifests, _): (Vec<DockerManifest>, _) = store.read_json("manifest.json", None)?;
    let tags: Vec<Vec<String>> = manifests
        .iter()
        .map(|m| m.repo_tags.clone().unwrap_or_default())
        .collect();
    let i = select::docker_entry(&tags, want.reference)?;
    let m = &manifests[i];
    let name = match want.reference {
        Some(r) if !r.starts_with('@') => {
            let wanted = select::normalize_docker(r);
            tags[i]
                .iter()
                .find(|t| select::normalize_docker(t) == wanted)
                .cloned()
        }
        _ => tags[i].first().cloned(),
    };
    let (config, id): (ImageConfig, _) = store.read_json(&m.config, None)?;
    Ok(Resolved {
        config,
        layers: m
            .layers
            .iter()
            .map(|l| LayerRef {
                name: l.clone(),
                digest: digest_of_blob_name(l),
                media_type: None,
                size: None,
            })
            .collect(),
        identities: vec![id.clone()],
        digest: Some(id.clone()),
        provenance: Provenance {
            name,
            config: Some(id),
            ..Provenance::default()
        },
    })
}
