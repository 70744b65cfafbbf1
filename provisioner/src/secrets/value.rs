//! A secret's value as the writer hands it over: from a file or stdin, never from argv (which
//! other users of the machine can read in /proc and which shells keep in their history). It is
//! read unbuffered into one fixed buffer that is zeroized on drop, so no copy is left in a
//! growing `Vec` or in stdin's internal buffer.

use std::fmt;
use std::fs::File;
use std::io::{ErrorKind, IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use zeroize::Zeroizing;

/// The most plaintext one KMS Encrypt call seals.
pub const MAX_VALUE_BYTES: usize = 4096;

/// A secret's bytes; its `Debug` shows only the length.
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether the value ends with a line break, which is part of the secret unless trimmed.
    pub fn ends_with_newline(&self) -> bool {
        self.0.ends_with(b"\n")
    }

    /// Drops one trailing `\n` or `\r\n` (what `echo` or an editor adds).
    pub fn trim_newline(&mut self) {
        if self.0.ends_with(b"\n") {
            self.0.pop();
            if self.0.ends_with(b"\r") {
                self.0.pop();
            }
        }
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue({} bytes)", self.0.len())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ValueError {
    #[error("the value is larger than {MAX_VALUE_BYTES} bytes, the most one KMS Encrypt seals; keep a larger secret elsewhere (e.g. encrypted in S3) and seal only its key here")]
    TooLarge,
    #[error("the value is empty: there is nothing to seal")]
    Empty,
    #[error("the value contains a NUL byte at offset {0}: an environment variable cannot carry it (encode binary secrets, e.g. as base64)")]
    Nul(usize),
    #[error("cannot read the value from {from}: {error}")]
    Read {
        from: String,
        #[source]
        error: std::io::Error,
    },
}

/// Reads the value from `file`, or else from stdin: piped bytes as they are, or a line typed
/// at a terminal with echo off (its line break is not part of the value).
pub fn read(file: Option<&Path>) -> Result<SecretValue, ValueError> {
    let value = match file {
        Some(path) => {
            let from = path.display().to_string();
            let mut f = File::open(path).map_err(|error| ValueError::Read {
                from: from.clone(),
                error,
            })?;
            read_all(&mut f, &from, false)?
        }
        None => read_stdin()?,
    };
    check(value)
}

/// Refuses what cannot be sealed or cannot reach the application's environment.
fn check(value: SecretValue) -> Result<SecretValue, ValueError> {
    if value.is_empty() {
        return Err(ValueError::Empty);
    }
    if let Some(at) = value.bytes().iter().position(|b| *b == 0) {
        return Err(ValueError::Nul(at));
    }
    Ok(value)
}

fn read_stdin() -> Result<SecretValue, ValueError> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let read_error = |error| ValueError::Read {
        from: "stdin".into(),
        error,
    };
    // A duplicate of fd 0 as a `File`: reads bypass stdin's buffer.
    let raw = File::from(stdin.as_fd().try_clone_to_owned().map_err(read_error)?);
    if !terminal {
        return read_all(&mut &raw, "stdin", false);
    }
    // Echo goes off before the prompt shows, so nothing typed after it is ever echoed.
    let echo = super::terminal::EchoOff::new(&raw).map_err(read_error)?;
    eprint!("Value (not echoed; end with Enter): ");
    let _ = std::io::stderr().flush();
    let mut value = read_all(&mut &raw, "the terminal", true);
    drop(echo);
    eprintln!();
    if let Ok(v) = &mut value {
        v.trim_newline();
    }
    value
}

/// Reads to the end (or through the first line break when `one_line`), refusing more than
/// [`MAX_VALUE_BYTES`] without reading much past it.
pub fn read_all(
    reader: &mut dyn Read,
    from: &str,
    one_line: bool,
) -> Result<SecretValue, ValueError> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_VALUE_BYTES + 1]);
    let mut len = 0;
    while len < buf.len() {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                let start = len;
                len += n;
                let line_end = buf[start..len].iter().position(|b| *b == b'\n');
                if let (true, Some(at)) = (one_line, line_end) {
                    len = start + at + 1;
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(error) => {
                return Err(ValueError::Read {
                    from: from.to_string(),
                    error,
                })
            }
        }
    }
    if len > MAX_VALUE_BYTES {
        return Err(ValueError::TooLarge);
    }
    // Truncating keeps the allocation, which `Zeroizing` wipes in full on drop.
    buf.truncate(len);
    Ok(SecretValue(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(bytes: &[u8]) -> Result<SecretValue, ValueError> {
        read_all(&mut &bytes[..], "test", false).and_then(check)
    }

    #[test]
    fn exact_bytes_up_to_the_kms_limit() {
        let v = from(b"s3cret\n").unwrap();
        assert_eq!(v.bytes(), b"s3cret\n");
        assert!(v.ends_with_newline());
        let max = vec![b'x'; MAX_VALUE_BYTES];
        assert_eq!(from(&max).unwrap().len(), MAX_VALUE_BYTES);
        let over = vec![b'x'; MAX_VALUE_BYTES + 1];
        assert!(matches!(from(&over), Err(ValueError::TooLarge)));
    }

    #[test]
    fn empty_and_nul_refused() {
        assert!(matches!(from(b""), Err(ValueError::Empty)));
        assert!(matches!(from(b"ab\0c"), Err(ValueError::Nul(2))));
    }

    #[test]
    fn one_line_stops_at_the_line_break() {
        let v = read_all(&mut &b"typed\r\nrest"[..], "t", true).unwrap();
        let mut v = check(v).unwrap();
        v.trim_newline();
        assert_eq!(v.bytes(), b"typed");
        assert_eq!(format!("{v:?}"), "SecretValue(5 bytes)");
    }
}
