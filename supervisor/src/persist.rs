//! State that must survive a supervisor restart, in `state_dir/state.json`: the operator's
//! desired state (the stop latch) and the enclave the supervisor last started (so an adopted
//! enclave keeps its start time). Written atomically (temporary file, fsync, rename, fsync of
//! the directory): a crash leaves the old file or the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }
}

/// The enclave this supervisor (or a previous run of it) started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnclaveRecord {
    pub id: String,
    pub process_id: u32,
    /// Milliseconds since the Unix epoch.
    pub started_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format_version: u32,
    desired: Desired,
    /// Milliseconds since the Unix epoch of the last change of `desired`.
    desired_changed_at_ms: u64,
    enclave: Option<EnclaveRecord>,
}

/// The state file and its in-memory copy.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    state: Mutex<StateFile>,
    /// Set when the file existed but could not be read: the supervisor then stays stopped.
    pub recovered_from: Option<String>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Creates `dir` (0700) if missing; refuses a directory others can write to.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "{} is writable by group or others (mode {:o}); chmod 0700 it",
            dir.display(),
            mode & 0o7777
        )));
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) `dir/state.json`. A file that cannot be parsed is moved aside and the
    /// desired state becomes *stopped*: an operator's stop must never be undone by a damaged
    /// file; `POST /v1/start` recovers.
    pub fn open(dir: &Path) -> io::Result<Store> {
        ensure_private_dir(dir)?;
        let path = dir.join("state.json");
        let (state, recovered_from) = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(s) if s.format_version == 1 => (s, None),
                parsed => {
                    let why = match parsed {
                        Ok(s) => format!("format_version {} is not supported", s.format_version),
                        Err(e) => e.to_string(),
                    };
                    let aside = dir.join(format!("state.json.unreadable-{}", now_ms()));
                    fs::rename(&path, &aside)?;
                    (
                        fresh(Desired::Stopped),
                        Some(format!(
                            "{}: {why} (kept as {})",
                            path.display(),
                            aside.display()
                        )),
                    )
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => (fresh(Desired::Running), None),
            Err(e) => return Err(e),
        };
        let store = Store {
            path,
            state: Mutex::new(state),
            recovered_from,
        };
        store.write(&store.lock())?;
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StateFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn desired(&self) -> Desired {
        self.lock().desired
    }

    pub fn enclave(&self) -> Option<EnclaveRecord> {
        self.lock().enclave.clone()
    }

    /// Persists the desired state before returning (so an accepted stop survives a crash).
    pub fn set_desired(&self, desired: Desired) -> io::Result<()> {
        let mut s = self.lock();
        if s.desired == desired {
            return Ok(());
        }
        let mut next = s.clone();
        next.desired = desired;
        next.desired_changed_at_ms = now_ms();
        self.write(&next)?;
        *s = next;
        Ok(())
    }

    pub fn set_enclave(&self, enclave: Option<EnclaveRecord>) -> io::Result<()> {
        let mut s = self.lock();
        if s.enclave == enclave {
            return Ok(());
        }
        let mut next = s.clone();
        next.enclave = enclave;
        self.write(&next)?;
        *s = next;
        Ok(())
    }

    fn write(&self, s: &StateFile) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(s).map_err(io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn fresh(desired: Desired) -> StateFile {
    StateFile {
        format_version: 1,
        desired,
        desired_changed_at_ms: now_ms(),
        enclave: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_latch_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("state");
        let s = Store::open(&sd).unwrap();
        assert_eq!(s.desired(), Desired::Running);
        s.set_desired(Desired::Stopped).unwrap();
        let rec = EnclaveRecord {
            id: "i-1-enc2".into(),
            process_id: 9,
            started_at_ms: 5,
        };
        s.set_enclave(Some(rec.clone())).unwrap();
        drop(s);
        let s = Store::open(&sd).unwrap();
        assert_eq!(s.desired(), Desired::Stopped);
        assert_eq!(s.enclave(), Some(rec));
        let mode = fs::metadata(sd.join("state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::metadata(&sd).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_damaged_file_means_stopped_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        fs::write(dir.path().join("state.json"), "{\"desired\": \"run").unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.desired(), Desired::Stopped);
        assert!(s.recovered_from.as_deref().unwrap().contains("unreadable"));
        let kept = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("state.json.unreadable-")
            })
            .count();
        assert_eq!(kept, 1);
    }

    #[test]
    fn refuses_a_world_writable_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }
}
