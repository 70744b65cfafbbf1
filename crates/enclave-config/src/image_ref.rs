//! `image.source` as skopeo, buildah and podman users write image references
//! (containers-transports(5)): `TRANSPORT:PATH[:REFERENCE]`, split at the first two colons, so a
//! path cannot contain `:` (as in skopeo) while a reference may (`oci:img:app:v1`).

use std::fmt;

/// Where an image is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `docker save` / `podman save` output; the reference is a tag (`app:v1`) or `@N`.
    DockerArchive,
    /// An OCI layout packed in a tar; the reference is an `org.opencontainers.image.ref.name`.
    OciArchive,
    /// An OCI layout directory; the reference is an `org.opencontainers.image.ref.name`.
    Oci,
    /// A plain directory used as the root filesystem (no reference, no digest).
    Rootfs,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::DockerArchive,
        Transport::OciArchive,
        Transport::Oci,
        Transport::Rootfs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Transport::DockerArchive => "docker-archive",
            Transport::OciArchive => "oci-archive",
            Transport::Oci => "oci",
            Transport::Rootfs => "rootfs",
        }
    }

    /// How a source of this transport is written, for messages.
    pub fn syntax(self) -> &'static str {
        match self {
            Transport::DockerArchive => "docker-archive:PATH[:NAME:TAG|:@INDEX]",
            Transport::OciArchive => "oci-archive:PATH[:REF]",
            Transport::Oci => "oci:DIR[:REF]",
            Transport::Rootfs => "rootfs:DIR",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed `image.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub transport: Transport,
    /// As written (relative paths resolve against the config file's directory).
    pub path: String,
    /// Which image of a layout or archive holding several; `None`: the only one.
    pub reference: Option<String>,
}

/// Why a source string is not an image reference: a message and, where we can tell, a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRefError {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ImageRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImageRefError {}

fn error(message: String, hint: Option<String>) -> ImageRefError {
    ImageRefError { message, hint }
}

impl ImageRef {
    /// Parses `TRANSPORT:PATH[:REFERENCE]`; checks the reference's syntax for its transport.
    pub fn parse(source: &str) -> Result<ImageRef, ImageRefError> {
        let all = || {
            Transport::ALL
                .iter()
                .map(|t| t.syntax())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some((kind, rest)) = source.split_once(':') else {
            return Err(error(
                format!("`{source}` names no transport"),
                Some(format!("write {}", all())),
            ));
        };
        let Some(transport) = Transport::ALL.into_iter().find(|t| t.name() == kind) else {
            let hint = match crate::did_you_mean(kind, Transport::ALL.map(Transport::name)) {
                Some(s) => format!("did you mean `{s}:`?"),
                None => format!("expected one of {}", all()),
            };
            return Err(error(
                format!("unknown image transport `{kind}`"),
                Some(hint),
            ));
        };
        let (path, reference) = match transport {
            // A directory path, verbatim: there is nothing to select in a rootfs.
            Transport::Rootfs => (rest, None),
            _ => match rest.split_once(':') {
                Some((path, reference)) => (path, Some(reference)),
                None => (rest, None),
            },
        };
        if path.is_empty() {
            return Err(error(
                format!("`{kind}:` needs a path"),
                Some(format!("write {}", transport.syntax())),
            ));
        }
        if let Some(r) = reference {
            check_reference(transport, r)?;
        }
        Ok(ImageRef {
            transport,
            path: path.to_string(),
            reference: reference.map(str::to_string),
        })
    }
}

fn check_reference(transport: Transport, r: &str) -> Result<(), ImageRefError> {
    if r.is_empty() {
        return Err(error(
            "the reference after the path's `:` is empty".into(),
            Some(format!("write {}", transport.syntax())),
        ));
    }
    match transport {
        Transport::DockerArchive => {
            if let Some(index) = r.strip_prefix('@') {
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(error(
                        format!("`@{index}` is not an image index"),
                        Some("`@0` is the archive's first image".into()),
                    ));
                }
            } else if r.contains('@') {
                return Err(error(
                    format!("`{r}`: a docker-archive reference cannot contain a digest"),
                    Some("name the image by its tag, or pin its ID with image.digest".into()),
                ));
            } else if r.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(error(format!("`{r}` is not an image name"), None));
            }
        }
        Transport::Oci | Transport::OciArchive => {
            if !is_oci_ref_name(r) {
                return Err(error(
                    format!("`{r}` is not an OCI reference name"),
                    Some(
                        "letters, digits and `-._:@+/`, starting and ending with a letter or digit"
                            .into(),
                    ),
                ));
            }
        }
        Transport::Rootfs => {}
    }
    Ok(())
}

/// The OCI image layout's grammar for `org.opencontainers.image.ref.name`:
/// `component ("/" component)*`, `component ::= alphanum (separator alphanum)*`,
/// `separator ::= [-._:@+] | "--"`.
fn is_oci_ref_name(r: &str) -> bool {
    r.split('/').all(|component| {
        let b = component.as_bytes();
        let edges_ok = b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric);
        let chars_ok = b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-._:@+".contains(c));
        // Separators are single characters, except "--".
        let separators_ok = b
            .windows(2)
            .all(|w| w[0].is_ascii_alphanumeric() || w[1].is_ascii_alphanumeric() || w == b"--");
        edges_ok && chars_ok && separators_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(Transport, String, Option<String>), String> {
        ImageRef::parse(s)
            .map(|r| (r.transport, r.path, r.reference))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn splits_like_skopeo() {
        use Transport::*;
        assert_eq!(parse("oci:img"), Ok((Oci, "img".into(), None)));
        assert_eq!(
            parse("oci:img:app:v1"),
            Ok((Oci, "img".into(), Some("app:v1".into())))
        );
        assert_eq!(
            parse("docker-archive:/tmp/a.tar:busybox:latest"),
            Ok((
                DockerArchive,
                "/tmp/a.tar".into(),
                Some("busybox:latest".into())
            ))
        );
        assert_eq!(
            parse("docker-archive:a.tar:@1"),
            Ok((DockerArchive, "a.tar".into(), Some("@1".into())))
        );
        assert_eq!(
            parse("oci-archive:a.tar:v2"),
            Ok((OciArchive, "a.tar".into(), Some("v2".into())))
        );
        assert_eq!(parse("rootfs:a:b"), Ok((Rootfs, "a:b".into(), None)));
    }

    #[test]
    fn refuses_what_skopeo_refuses() {
        assert!(parse("docker:busybox")
            .unwrap_err()
            .contains("docker-archive:"));
        assert!(parse("oci:").unwrap_err().contains("needs a path"));
        assert!(parse("oci:img:").unwrap_err().contains("empty"));
        assert!(parse("img").unwrap_err().contains("names no transport"));
        assert!(parse("docker-archive:a.tar:app@sha256:00")
            .unwrap_err()
            .contains("cannot contain a digest"));
        assert!(parse("docker-archive:a.tar:@x").is_err());
        assert!(parse("oci:img:-v1").is_err());
        assert!(parse("oci:img:a b").is_err());
        assert!(parse("oci:img:a..b").is_err());
        assert!(parse("oci:img:a--b").is_ok());
        assert!(parse("oci:img:docker.io/library/alpine:3.19").is_ok());
    }
}
