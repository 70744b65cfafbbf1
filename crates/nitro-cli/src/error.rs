//! nitro-cli's failures, classified by what a supervisor should do about them.

use std::fmt;

use serde::Serialize;

/// Which driver operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    Run,
    Describe,
    Terminate,
}

impl CommandKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Run => "run",
            CommandKind::Describe => "describe",
            CommandKind::Terminate => "terminate",
        }
    }
}

/// What to do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The enclave does not exist (E58 by name; E11 with no socket by id).
    NotFound,
    /// Retrying will not help until the host or the configuration changes (CPU or memory pool,
    /// `/dev/nitro_enclaves` permissions, a malformed EIF): back off to the maximum, report.
    Config,
    /// Sockets, ioctls, boot timeouts, a call past its time bound: retry with backoff.
    Transient,
    /// The driver's tool could not be started at all (nitro-cli missing or not executable).
    Unavailable,
    /// The tool exited 0 but its output could not be understood.
    Protocol,
}

/// One failed driver call, with everything an operator needs to diagnose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct DriverError {
    pub command: CommandKind,
    pub kind: ErrorKind,
    /// Every `[ Exx ]` printed, in order: the first is the root cause.
    pub codes: Vec<String>,
    pub exit_status: Option<i32>,
    /// The call was killed after its time bound.
    pub timed_out: bool,
    /// One line: the root cause's text.
    pub message: String,
    /// The end of stderr (at most 4 KiB).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
    /// The start (at most 4 KiB) of the error log nitro-cli named, when readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_excerpt: Option<String>,
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed", self.command.as_str())?;
        if !self.codes.is_empty() {
            write!(f, " [{}]", self.codes.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

impl DriverError {
    /// A failure that has no nitro-cli code (spawn, timeout, unreadable output).
    pub fn plain(command: CommandKind, kind: ErrorKind, message: impl Into<String>) -> Self {
        DriverError {
            command,
            kind,
            codes: Vec::new(),
            exit_status: None,
            timed_out: false,
            message: message.into(),
            stderr_tail: String::new(),
            log_excerpt: None,
        }
    }

    /// A call killed after `secs` seconds.
    pub fn timeout(command: CommandKind, secs: f64) -> Self {
        DriverError {
            timed_out: true,
            ..DriverError::plain(
                command,
                ErrorKind::Transient,
                format!("no answer within {secs:.1} s; killed"),
            )
        }
    }

    /// A bounded label for metrics: the root-cause code, or what failed instead.
    pub fn label(&self) -> &str {
        if let Some(code) = self.codes.first() {
            return code;
        }
        if self.timed_out {
            return "timeout";
        }
        match self.kind {
            ErrorKind::Unavailable => "spawn",
            ErrorKind::Protocol => "output",
            _ => "exit",
        }
    }
}

/// What a nitro-cli error code means for a supervisor. Codes from nitro-cli 1.5's
/// `document_errors.rs`; unknown codes are treated as transient.
pub fn classify(command: CommandKind, code: &str, message: &str) -> ErrorKind {
    let Some(n) = code.strip_prefix('E').and_then(|n| n.parse::<u32>().ok()) else {
        return ErrorKind::Transient;
    };
    match n {
        // Naming: "No enclave matched the given name."
        58 => ErrorKind::NotFound,
        // Socket error: for a single enclave id, a missing or refusing socket means its
        // enclave process (and so the enclave) is gone. Anything else (EACCES) is not.
        11 if command == CommandKind::Terminate
            && (message.contains("NotFound") || message.contains("ConnectionRefused")) =>
        {
            ErrorKind::NotFound
        }
        // Arguments, invalid command, permissions, file operations (EIF, /dev/nitro_enclaves),
        // CPU and memory configuration and pools, EIF parsing, missing paths, clock skew
        // (signing certificate), EIF building and signing, signature check.
        1..=3 | 14 | 18..=27 | 35 | 48..=53 | 59 | 60 => ErrorKind::Config,
        _ => ErrorKind::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_fall_into_the_documented_classes() {
        use CommandKind::*;
        assert_eq!(classify(Terminate, "E58", ""), ErrorKind::NotFound);
        assert_eq!(
            classify(
                Terminate,
                "E11",
                "Failed to connect to specific enclave process: Os { code: 2, kind: NotFound }"
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(Terminate, "E11", "Os { code: 13, kind: PermissionDenied }"),
            ErrorKind::Transient
        );
        assert_eq!(
            classify(Describe, "E11", "kind: NotFound"),
            ErrorKind::Transient
        );
        for code in ["E19", "E22", "E26", "E27", "E35", "E59"] {
            assert_eq!(classify(Run, code, ""), ErrorKind::Config, "{code}");
        }
        for code in ["E29", "E36", "E39", "E11", "E00", "E99", "Exx"] {
            assert_eq!(classify(Run, code, ""), ErrorKind::Transient, "{code}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        let mut e = DriverError::plain(CommandKind::Run, ErrorKind::Unavailable, "no nitro-cli");
        assert_eq!(e.label(), "spawn");
        e.codes = vec!["E36".into(), "E39".into()];
        assert_eq!(e.label(), "E36");
        assert_eq!(
            DriverError::timeout(CommandKind::Describe, 1.0).label(),
            "timeout"
        );
        assert!(DriverError::timeout(CommandKind::Describe, 1.0)
            .to_string()
            .contains("describe failed"));
    }
}
