//! Where the VM stack lives: `$NP_CACHE/vm/` as `scripts/test-tools/vm-*.sh` installs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// A part of the stack is not installed.
#[derive(Debug, Error)]
pub enum StackError {
    #[error(
        "{what} not found at {path} (install the VM stack: scripts/test-tools/vm-{script}.sh)"
    )]
    Missing {
        what: &'static str,
        path: PathBuf,
        script: &'static str,
    },
    #[error("{path}: {reason}")]
    BadListing { path: PathBuf, reason: String },
}

/// The installed binaries and kernel blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStack {
    /// `qemu-system-x86_64` built with the `nitro-enclave` machine.
    pub qemu: PathBuf,
    /// `vhost-device-vsock` with the CID-3 patch.
    pub vhost_device_vsock: PathBuf,
    pub blobs: Blobs,
}

impl VmStack {
    /// The stack in `$NITRO_PROVISION_CACHE/vm` (default `~/.cache/nitro-provision/vm`), the
    /// same cache `scripts/env.sh` uses.
    pub fn locate() -> Result<Self, StackError> {
        let cache = match std::env::var_os("NITRO_PROVISION_CACHE") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/nitro-provision"),
        };
        Self::in_cache(&cache)
    }

    /// The stack under `cache/vm`; every file must exist.
    pub fn in_cache(cache: &Path) -> Result<Self, StackError> {
        let vm = cache.join("vm");
        let stack = VmStack {
            qemu: vm.join("qemu/bin/qemu-system-x86_64"),
            vhost_device_vsock: vm.join("vhost-device-vsock/bin/vhost-device-vsock"),
            blobs: Blobs {
                dir: vm.join("blobs/x86_64"),
            },
        };
        require("QEMU with the nitro-enclave machine", &stack.qemu, "qemu")?;
        require(
            "vhost-device-vsock",
            &stack.vhost_device_vsock,
            "vhost-device-vsock",
        )?;
        for path in stack.blobs.files() {
            require("enclave kernel blob", &path, "blobs")?;
        }
        Ok(stack)
    }
}

fn require(what: &'static str, path: &Path, script: &'static str) -> Result<(), StackError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(StackError::Missing {
            what,
            path: path.to_path_buf(),
            script,
        })
    }
}

/// A kernel blobs directory as nitro-cli installs one (`bzImage`, `cmdline`, `init`, `nsm.ko`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blobs {
    pub dir: PathBuf,
}

impl Blobs {
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("bzImage")
    }
    pub fn cmdline(&self) -> PathBuf {
        self.dir.join("cmdline")
    }
    pub fn init(&self) -> PathBuf {
        self.dir.join("init")
    }
    pub fn nsm_ko(&self) -> PathBuf {
        self.dir.join("nsm.ko")
    }
    /// The `sha384sum` listing written beside the blobs.
    pub fn listing(&self) -> PathBuf {
        self.dir.join("sha384")
    }

    fn files(&self) -> [PathBuf; 5] {
        [
            self.kernel(),
            self.cmdline(),
            self.init(),
            self.nsm_ko(),
            self.listing(),
        ]
    }

    /// The SHA-384 of each blob by name, from the listing (for pinning in `enclave.yaml`).
    pub fn sha384(&self) -> Result<BTreeMap<String, String>, StackError> {
        let path = self.listing();
        let bad = |reason: String| StackError::BadListing {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        text.lines()
            .map(|line| match line.split_once("  ") {
                Some((hash, name)) if hash.len() == 96 => Ok((name.to_owned(), hash.to_owned())),
                _ => Err(bad(format!("not a sha384sum line: {line:?}"))),
            })
            .collect()
    }
}
