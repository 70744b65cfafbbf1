//! A build's files are written into a temporary directory beside (or inside) the output
//! directory and renamed into it only once all exist: a failed or interrupted build leaves the
//! output directory as it was (and does not create it).

use std::fs;
use std::path::{Path, PathBuf};

use super::{io_at, BuildError};

/// Files of a build in progress.
pub(super) struct Staging {
    dir: tempfile::TempDir,
    out: PathBuf,
}

impl Staging {
    /// A temporary directory on the output directory's filesystem (so renames are atomic):
    /// inside it when it exists, else in its parent.
    pub fn new(out: &Path) -> Result<Self, BuildError> {
        let host = if out.is_dir() {
            out.to_path_buf()
        } else {
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            fs::create_dir_all(&parent).map_err(io_at(&parent))?;
            parent
        };
        let dir = tempfile::Builder::new()
            .prefix(".nitro-provision-build.")
            .tempdir_in(&host)
            .map_err(io_at(&host))?;
        Ok(Staging {
            dir,
            out: out.to_path_buf(),
        })
    }

    /// Where a file of the build is written while staged.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), BuildError> {
        let path = self.path(name);
        fs::write(&path, bytes).map_err(io_at(&path))
    }

    /// Moves `files`, then `last`, into the output directory. The previous `last` (the build
    /// record, which makes a build reusable) is removed first, so a crash half-way leaves no
    /// record pointing at a mix of old and new files.
    pub fn publish(self, files: &[&str], last: &str) -> Result<(), BuildError> {
        fs::create_dir_all(&self.out).map_err(io_at(&self.out))?;
        let old = self.out.join(last);
        match fs::remove_file(&old) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&old)(e)),
            _ => {}
        }
        for name in files.iter().chain([&last]) {
            let to = self.out.join(name);
            fs::rename(self.path(name), &to).map_err(io_at(&to))?;
        }
        Ok(())
    }
}
