//! Choosing one image from a layout or archive that holds several, by the reference skopeo,
//! buildah and podman users write (containers-transports(5)): an OCI layout's
//! `org.opencontainers.image.ref.name`, a docker archive's `RepoTags` (or `@INDEX`).

use super::ImageError;

/// The annotation naming an image in an OCI layout's `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Indexes of the OCI index entries `reference` selects: those whose ref name is `reference`
/// (or the same docker reference, normalized: `alpine` = `docker.io/library/alpine:latest`).
/// Without a reference every entry is a candidate, unless they carry several different names:
/// then the user must say which.
pub(crate) fn oci_candidates(
    names: &[Option<&str>],
    reference: Option<&str>,
) -> Result<Vec<usize>, ImageError> {
    let mut distinct: Vec<&str> = Vec::new();
    for n in names.iter().flatten() {
        if !distinct.contains(n) {
            distinct.push(n);
        }
    }
    let Some(wanted) = reference else {
        if distinct.len() > 1 {
            return Err(ImageError::AmbiguousImage {
                count: distinct.len(),
                references: distinct.join(", "),
            });
        }
        return Ok((0..names.len()).collect());
    };
    let exact: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] == Some(wanted))
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let normalized = normalize_docker(wanted);
    let loose: Vec<usize> = (0..names.len())
        .filter(|&i| normalized.is_some() && names[i].and_then(normalize_docker) == normalized)
        .collect();
    if loose.is_empty() {
        return Err(ImageError::NoSuchReference {
            reference: wanted.into(),
            available: listing(&distinct),
        });
    }
    Ok(loose)
}

/// The index of the docker-archive image `reference` selects (`@N`, or a tag of `RepoTags`).
pub(crate) fn docker_entry(
    repo_tags: &[Vec<String>],
    reference: Option<&str>,
) -> Result<usize, ImageError> {
    let all = || {
        repo_tags
            .iter()
            .enumerate()
            .map(|(i, tags)| match tags.as_slice() {
                [] => format!("@{i} (untagged)"),
                tags => tags.join(", "),
            })
            .collect::<Vec<_>>()
    };
    match reference {
        None => match repo_tags.len() {
            1 => Ok(0),
            0 => Err(ImageError::Missing("manifest.json: an image".into())),
            n => Err(ImageError::AmbiguousImage {
                count: n,
                references: all().join("; "),
            }),
        },
        Some(r) => {
            if let Some(index) = r.strip_prefix('@') {
                return index
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < repo_tags.len())
                    .ok_or_else(|| ImageError::NoSuchReference {
                        reference: r.into(),
                        available: format!("@0 … @{}", repo_tags.len().saturating_sub(1)),
                    });
            }
            let wanted = normalize_docker(r).ok_or_else(|| ImageError::BadReference(r.into()))?;
            repo_tags
                .iter()
                .position(|tags| {
                    tags.iter()
                        .any(|t| normalize_docker(t).as_deref() == Some(&wanted))
                })
                .ok_or_else(|| ImageError::NoSuchReference {
                    reference: r.into(),
                    available: all().join("; "),
                })
        }
    }
}

fn listing(names: &[&str]) -> String {
    if names.is_empty() {
        "(no named images)".into()
    } else {
        names.join(", ")
    }
}

/// A docker reference in its canonical form, as Docker and skopeo compare them:
/// `alpine` → `docker.io/library/alpine:latest`, `localhost:5000/app` → itself + `:latest`.
/// `None` when `r` is not a reference (uppercase repository, bad tag, empty component).
pub fn normalize_docker(r: &str) -> Option<String> {
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first != first.to_lowercase() =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(x))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    };
    let tag_ok = |t: &str| {
        t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    if domain.is_empty() || !path.split('/').all(component_ok) || !tag.is_none_or(tag_ok) {
        return None;
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => out.push_str(&format!(":{t}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push_str(&format!("@{d}"));
    }
    Some(out)
}

/// The repository part of a reference, for the EIF's `ImageName` (`app:v1` → `app`,
/// `localhost:5000/app:v1` → `localhost:5000/app`). `None` for a bare tag (`v1`), which OCI
/// layouts often use as the whole ref name.
pub(crate) fn repository(reference: &str) -> Option<String> {
    let name = reference.split('@').next().unwrap_or(reference);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let name = match name[last_slash..].rfind(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    };
    let looks_like_a_name = reference.contains(['/', ':']) && !name.is_empty();
    looks_like_a_name.then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let n = |s: &str| normalize_docker(s);
        assert_eq!(
            n("alpine").as_deref(),
            Some("docker.io/library/alpine:latest")
        );
        assert_eq!(n("alpine:3.19"), n("docker.io/library/alpine:3.19"));
        assert_eq!(n("index.docker.io/library/alpine"), n("alpine"));
        assert_eq!(n("user/app:v1").as_deref(), Some("docker.io/user/app:v1"));
        assert_eq!(
            n("localhost:5000/app").as_deref(),
            Some("localhost:5000/app:latest")
        );
        assert_eq!(
            n("quay.io/org/app:1.0").as_deref(),
            Some("quay.io/org/app:1.0")
        );
        assert_eq!(n("App"), None);
        assert_eq!(n("app:bad tag"), None);
        assert_eq!(n("app:"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn selects_docker_archive_images() {
        let tags = vec![
            vec!["app:v1".to_string()],
            vec![],
            vec!["docker.io/library/busybox:latest".to_string()],
        ];
        assert_eq!(docker_entry(&tags, Some("app:v1")).unwrap(), 0);
        assert_eq!(docker_entry(&tags, Some("busybox")).unwrap(), 2);
        assert_eq!(docker_entry(&tags, Some("@1")).unwrap(), 1);
        let e = docker_entry(&tags, None).unwrap_err().to_string();
        assert!(e.contains("app:v1") && e.contains("@1 (untagged)"), "{e}");
        let e = docker_entry(&tags, Some("app:v2")).unwrap_err().to_string();
        assert!(e.contains("app:v2") && e.contains("busybox"), "{e}");
        assert!(docker_entry(&tags, Some("@3")).is_err());
        assert_eq!(docker_entry(&tags[..1], None).unwrap(), 0);
    }

    #[test]
    fn selects_oci_entries_by_ref_name() {
        let names = [Some("v1"), Some("v2"), Some("v2"), None];
        assert_eq!(oci_candidates(&names, Some("v2")).unwrap(), [1, 2]);
        let e = oci_candidates(&names, None).unwrap_err().to_string();
        assert!(e.contains("v1, v2"), "{e}");
        let e = oci_candidates(&names, Some("v3")).unwrap_err().to_string();
        assert!(e.contains("v3") && e.contains("v1, v2"), "{e}");
        assert_eq!(oci_candidates(&[None, None], None).unwrap(), [0, 1]);
        let full = [Some("docker.io/library/alpine:3.19")];
        assert_eq!(oci_candidates(&full, Some("alpine:3.19")).unwrap(), [0]);
    }

    #[test]
    fn repository_names_for_metadata() {
        assert_eq!(repository("app:v1").as_deref(), Some("app"));
        assert_eq!(
            repository("localhost:5000/app:v1").as_deref(),
            Some("localhost:5000/app")
        );
        assert_eq!(repository("v1"), None);
        assert_eq!(repository("org/app").as_deref(), Some("org/app"));
    }
}
