//! The bearer token that guards the mutating endpoints: 32 random bytes (hex) in a file only
//! the supervisor's user can read (0600), created on first start and kept across restarts.
//! Compared in constant time.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use subtle::ConstantTimeEq;

/// The token's file name inside the state directory.
pub const TOKEN_FILE: &str = "api-token";

pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        // Best effort: overwrite the bytes before the allocation is freed.
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

impl Token {
    /// Reads the token, or creates it (0600, never replacing an existing file). Refuses a file
    /// that others can read, or one too short to be ours.
    pub fn load_or_create(path: &Path) -> io::Result<Token> {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                let mut raw = [0u8; 32];
                fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
                let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                raw.fill(0);
                f.write_all(hex.as_bytes())?;
                f.write_all(b"\n")?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created the management API token");
                Ok(Token(hex.into_bytes()))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(e),
        }
    }

    fn load(path: &Path) -> io::Result<Token> {
        let meta = fs::symlink_metadata(path)?;
        if !meta.file_type().is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(io::Error::other(format!(
                "{} is readable by group or others (mode {mode:o}); chmod 0600 it",
                path.display()
            )));
        }
        // SAFETY: geteuid has no preconditions.
        if meta.uid() != unsafe { libc::geteuid() } {
            return Err(io::Error::other(format!(
                "{} belongs to another user",
                path.display()
            )));
        }
        let text = fs::read_to_string(path)?;
        let token = text.trim().to_string();
        if token.len() < 32 {
            return Err(io::Error::other(format!(
                "{} holds a token shorter than 32 characters",
                path.display()
            )));
        }
        Ok(Token(token.into_bytes()))
    }

    /// `Authorization: Bearer <token>`, compared in constant time.
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some(presented) = value
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case(b"bearer "))
            .map(|_| value[7..].trim_ascii())
        else {
            return false;
        };
        bool::from(presented.ct_eq(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TOKEN_FILE);
        let t = Token::load_or_create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = Token::load_or_create(&path).unwrap();
        let header = format!("Bearer {}", text.trim());
        assert!(t.admits(Some(header.as_bytes())) && again.admits(Some(header.as_bytes())));
        assert!(t.admits(Some(format!("bearer  {} ", text.trim()).as_bytes())));
        assert!(!t.admits(None));
        assert!(!t.admits(Some(b"Bearer ")));
        assert!(!t.admits(Some(text.trim().as_bytes())), "scheme required");
        assert!(!t.admits(Some(format!("Bearer {}0", text.trim()).as_bytes())));
        assert!(!t.admits(Some(format!("Basic {}", text.trim()).as_bytes())));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Token::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("readable by group or others"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "short\n").unwrap();
        assert!(Token::load_or_create(&path).is_err());
    }
}
