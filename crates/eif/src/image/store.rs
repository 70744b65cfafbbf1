//! Where an image's blobs are: an OCI layout directory, a tar archive (oci-archive,
//! docker-archive) indexed by member name, or plain layer files.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::path::normalize;
use super::{oci_digest, ImageError};

/// JSON documents (index, manifest, config) larger than this are refused.
pub(crate) const MAX_JSON: u64 = 16 << 20;
const BLOCK: u64 = 512;

/// Blob storage: a directory, a tar archive indexed by member name, or plain file paths.
pub(crate) enum Store {
    Dir(PathBuf),
    Files,
    Archive {
        path: PathBuf,
        members: HashMap<Vec<u8>, (u64, u64)>,
    },
}

impl Store {
    /// Indexes the regular files of a tar archive. An archive that ends before its
    /// end-of-archive marker (or inside a member's data) is truncated: said so, rather than
    /// reporting whichever member happens to be missing.
    pub fn archive(path: &Path) -> Result<Self, ImageError> {
        let ctx = || path.display().to_string();
        let f = File::open(path).map_err(ImageError::io(ctx()))?;
        let file_len = f.metadata().map_err(ImageError::io(ctx()))?.len();
        let mut archive = tar::Archive::new(f);
        let mut members = HashMap::new();
        let corrupt = |e: io::Error| ImageError::Io {
            context: format!("{}: corrupt or truncated archive", ctx()),
            source: e,
        };
        // Where the last member's data (padded to a block) ends.
        let mut end = 0u64;
        for entry in archive.entries_with_seek().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let data_end = entry.raw_file_position().saturating_add(entry.size());
            end = end.max(data_end.div_ceil(BLOCK).saturating_mul(BLOCK));
            if entry.header().entry_type().is_file() {
                if let Ok(Some(name)) = normalize(&entry.path_bytes()) {
                    members.insert(name, (entry.raw_file_position(), entry.size()));
                }
            }
        }
        // An intact archive has at least one zero block after the last member.
        if file_len == 0 || end.saturating_add(BLOCK) > file_len {
            return Err(ImageError::Truncated {
                path: ctx(),
                reason: if file_len == 0 {
                    "the file is empty".into()
                } else if end > file_len {
                    format!("a member's data runs past the end of the file ({file_len} bytes)")
                } else {
                    format!("it ends after {file_len} bytes, before the end-of-archive marker")
                },
            });
        }
        Ok(Store::Archive {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Whether the store has a member (archive) or file (directory) named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.region(name).is_ok()
    }

    /// `(file, offset, length)` of a member.
    pub fn region(&self, name: &str) -> Result<(PathBuf, u64, u64), ImageError> {
        if let Store::Files = self {
            let meta = std::fs::metadata(name).map_err(ImageError::io(name.to_string()))?;
            return Ok((PathBuf::from(name), 0, meta.len()));
        }
        let rel = normalize(name.as_bytes())
            .ok()
            .flatten()
            .ok_or_else(|| ImageError::Missing(name.into()))?;
        match self {
            Store::Files => Err(ImageError::Missing(name.into())),
            Store::Dir(dir) => {
                let p = dir.join(std::ffi::OsStr::from_bytes(&rel));
                let meta = std::fs::metadata(&p).map_err(|_| ImageError::Missing(name.into()))?;
                Ok((p, 0, meta.len()))
            }
            Store::Archive { path, members } => {
                let (off, len) = members
                    .get(&rel)
                    .ok_or_else(|| ImageError::Missing(name.into()))?;
                Ok((path.clone(), *off, *len))
            }
        }
    }

    /// Reads a JSON document (checking its digest when one is given); also returns its bytes'
    /// digest.
    pub fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
        digest: Option<&str>,
    ) -> Result<(T, String), ImageError> {
        let (path, off, len) = self.region(name)?;
        if len > MAX_JSON {
            return Err(ImageError::TooLarge(MAX_JSON));
        }
        let mut buf = vec![0u8; len as usize];
        let f = File::open(&path).map_err(ImageError::io(path.display().to_string()))?;
        f.read_exact_at(&mut buf, off)
            .map_err(ImageError::io(name.to_string()))?;
        let actual = oci_digest(Sha256::new_with_prefix(&buf));
        if let Some(d) = digest {
            super::source::check_digest(name, d, &actual)?;
        }
        let doc = serde_json::from_slice(&buf).map_err(|source| ImageError::Json {
            what: name.into(),
            source,
        })?;
        Ok((doc, actual))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn truncated_archives_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let whole = tar_of(&[("index.json", b"{}"), ("blobs/sha256/aa", &[7u8; 3000])]);
        let path = dir.path().join("a.tar");
        std::fs::write(&path, &whole).unwrap();
        assert!(Store::archive(&path).unwrap().contains("index.json"));
        // Cut inside the second member's data, at its end, and after it (no end marker).
        for len in [1024 + 512 + 100, 1024 + 512 + 3072, 2048] {
            std::fs::write(&path, &whole[..len]).unwrap();
            let e = Store::archive(&path).err().map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(|e| e.contains("truncated")),
                "cut at {len}: {e:?}"
            );
        }
        std::fs::write(&path, b"").unwrap();
        assert!(Store::archive(&path)
            .err()
            .is_some_and(|e| e.to_string().contains("empty")));
    }
}
