//! The real driver: runs `nitro-cli` (looked up on PATH at every call, as in production, so a
//! test can put a stand-in first on PATH). Calls are serialized — concurrent nitro-cli calls race
//! each other (aws-nitro-enclaves-cli#516) — and each is bounded by a timeout, after which the
//! process is killed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::{classify, CommandKind, DriverError, ErrorKind};
use crate::json;
use crate::types::{Described, EnclaveId, RunSpec, Started, Terminated};
use crate::{BoxFuture, EnclaveDriver};

/// Kept from stderr and from nitro-cli's error log.
const TAIL: usize = 4096;
const GIB: u64 = 1 << 30;

/// Time bounds of each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub describe: Duration,
    pub terminate: Duration,
    /// `None`: [`boot_timeout`] for the EIF's size and the memory.
    pub run: Option<Duration>,
}

/// nitro-cli waits 90 s for the boot heartbeat per started 6 GiB of EIF plus 90 s per started
/// 100 GiB of memory (`calculate_necessary_timeout`); 30 s more for allocation and our margin.
pub fn boot_timeout(eif_size: u64, memory_mib: u64) -> Duration {
    let units = |size: u64, per: u64| 1 + size.saturating_sub(1) / per;
    let minutes = units(eif_size, 6 * GIB) + units(memory_mib.saturating_mul(1 << 20), 100 * GIB);
    Duration::from_secs(90 * minutes + 30)
}

/// Runs `nitro-cli`.
pub struct NitroCli {
    program: PathBuf,
    timeouts: Timeouts,
    lock: Mutex<()>,
}

/// One finished nitro-cli process.
struct Output {
    status: Option<i32>,
    stdout: String,
    stderr: String,
}

impl NitroCli {
    /// `nitro-cli` from PATH.
    pub fn new(timeouts: Timeouts) -> Self {
        Self::with_program("nitro-cli", timeouts)
    }

    /// Another program speaking nitro-cli's command line (a path, or a name looked up on PATH).
    pub fn with_program(program: impl Into<PathBuf>, timeouts: Timeouts) -> Self {
        NitroCli {
            program: program.into(),
            timeouts,
            lock: Mutex::new(()),
        }
    }

    async fn invoke(
        &self,
        command: CommandKind,
        args: Vec<OsString>,
        timeout: Duration,
    ) -> Result<Output, DriverError> {
        let _serialized = self.lock.lock().await;
        let started = Instant::now();
        let child = tokio::process::Command::new(&self.program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                DriverError::plain(
                    command,
                    ErrorKind::Unavailable,
                    format!("cannot run {}: {e}", self.program.display()),
                )
            })?;
        // Dropping the child on timeout kills it (kill_on_drop).
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                return Err(DriverError::plain(
                    command,
                    ErrorKind::Transient,
                    format!("waiting for {}: {e}", self.program.display()),
                ))
            }
            Err(_) => {
                tracing::warn!(
                    command = command.as_str(),
                    timeout_ms = timeout.as_millis() as u64,
                    "nitro-cli call timed out; killed"
                );
                return Err(DriverError::timeout(command, timeout.as_secs_f64()));
            }
        };
        let out = Output {
            status: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        tracing::debug!(
            command = command.as_str(),
            exit_status = out.status,
            error_codes = ?json::error_lines(&out.stderr).into_iter().map(|(c, _)| c).collect::<Vec<_>>(),
            duration_ms = started.elapsed().as_millis() as u64,
            "nitro-cli call"
        );
        Ok(out)
    }

    async fn run_enclave(&self, spec: &RunSpec) -> Result<Started, DriverError> {
        let timeout = match self.timeouts.run {
            Some(t) => t,
            None => {
                let size = tokio::fs::metadata(&spec.eif_path)
                    .await
                    .map(|m| m.len())
                    .unwrap_or(0);
                boot_timeout(size, spec.memory_mib)
            }
        };
        let out = self
            .invoke(CommandKind::Run, run_args(spec), timeout)
            .await?;
        if out.status != Some(0) {
            return Err(failure(CommandKind::Run, &out).await);
        }
        json::parse_run(&out.stdout).ok_or_else(|| protocol(CommandKind::Run, &out))
    }

    async fn describe_enclaves(&self) -> Described {
        let args = vec![OsString::from("describe-enclaves")];
        let out = match self
            .invoke(CommandKind::Describe, args, self.timeouts.describe)
            .await
        {
            Ok(out) => out,
            Err(e) => return Described::Failed(e),
        };
        let listed = json::parse_describe(&out.stdout);
        match (out.status == Some(0), listed) {
            (true, Some(v)) => Described::Complete(v),
            (true, None) => Described::Failed(protocol(CommandKind::Describe, &out)),
            (false, Some(v)) => Described::Partial(v, failure(CommandKind::Describe, &out).await),
            (false, None) => Described::Failed(failure(CommandKind::Describe, &out).await),
        }
    }

    async fn terminate_enclave(&self, id: &EnclaveId) -> Result<Terminated, DriverError> {
        let args = vec![
            "terminate-enclave".into(),
            "--enclave-id".into(),
            OsString::from(&id.0),
        ];
        let out = self
            .invoke(CommandKind::Terminate, args, self.timeouts.terminate)
            .await?;
        if out.status == Some(0) {
            return match json::parse_terminated(&out.stdout) {
                Some(true) => Ok(Terminated::Terminated),
                _ => Err(protocol(CommandKind::Terminate, &out)),
            };
        }
        let err = failure(CommandKind::Terminate, &out).await;
        if err.kind == ErrorKind::NotFound {
            Ok(Terminated::AlreadyGone)
        } else {
            Err(err)
        }
    }
}

fn run_args(spec: &RunSpec) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "run-enclave".into(),
        "--eif-path".into(),
        spec.eif_path.clone().into_os_string(),
        "--cpu-count".into(),
        spec.cpu_count.to_string().into(),
        "--memory".into(),
        spec.memory_mib.to_string().into(),
        "--enclave-cid".into(),
        spec.cid.to_string().into(),
        "--enclave-name".into(),
        spec.name.clone().into(),
    ];
    if spec.debug {
        args.push("--debug-mode".into());
    }
    args
}

/// A non-zero exit: its codes, classified by the first (the root cause).
async fn failure(command: CommandKind, out: &Output) -> DriverError {
    let lines = json::error_lines(&out.stderr);
    let (kind, message) = match lines.first() {
        Some((code, text)) => (classify(command, code, &out.stderr), text.clone()),
        None => (
            ErrorKind::Transient,
            match out.status {
                Some(s) => format!("exited with status {s} without an error code"),
                None => "killed by a signal".to_string(),
            },
        ),
    };
    let log_excerpt = match json::error_log_path(&out.stderr) {
        Some(path) => read_head(Path::new(path)).await,
        None => None,
    };
    DriverError {
        command,
        kind,
        codes: lines.into_iter().map(|(c, _)| c).collect(),
        exit_status: out.status,
        timed_out: false,
        message,
        stderr_tail: tail(&out.stderr),
        log_excerpt,
    }
}

fn protocol(command: CommandKind, out: &Output) -> DriverError {
    DriverError {
        exit_status: out.status,
        stderr_tail: tail(&out.stderr),
        ..DriverError::plain(
            command,
            ErrorKind::Protocol,
            format!(
                "unreadable output: {}",
                tail(&out.stdout).chars().take(200).collect::<String>()
            ),
        )
    }
}

fn tail(s: &str) -> String {
    let s = s.trim_end();
    let mut start = s.len().saturating_sub(TAIL);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

async fn read_head(path: &Path) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.ok()?;
    let mut buf = Vec::with_capacity(TAIL);
    file.take(TAIL as u64).read_to_end(&mut buf).await.ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

impl EnclaveDriver for NitroCli {
    fn run<'a>(&'a self, spec: &'a RunSpec) -> BoxFuture<'a, Result<Started, DriverError>> {
        Box::pin(self.run_enclave(spec))
    }

    fn describe(&self) -> BoxFuture<'_, Described> {
        Box::pin(self.describe_enclaves())
    }

    fn terminate<'a>(
        &'a self,
        id: &'a EnclaveId,
    ) -> BoxFuture<'a, Result<Terminated, DriverError>> {
        Box::pin(self.terminate_enclave(id))
    }

    fn process_alive(&self, process_id: u32) -> bool {
        crate::pid_alive(process_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_timeout_follows_nitro_cli() {
        assert_eq!(boot_timeout(300 << 20, 4096), Duration::from_secs(210));
        assert_eq!(boot_timeout(6 * GIB + 1, 4096), Duration::from_secs(300));
        assert_eq!(boot_timeout(0, 0), Duration::from_secs(210));
    }

    #[test]
    fn debug_mode_only_when_asked() {
        let mut spec = RunSpec {
            name: "demo".into(),
            eif_path: "/x.eif".into(),
            cpu_count: 2,
            memory_mib: 512,
            cid: 16,
            debug: false,
        };
        let args = run_args(&spec);
        assert!(!args.contains(&"--debug-mode".into()));
        assert!(args
            .windows(2)
            .any(|w| w[0] == "--enclave-cid" && w[1] == "16"));
        spec.debug = true;
        assert!(run_args(&spec).contains(&"--debug-mode".into()));
    }

    #[test]
    fn tails_are_bounded_on_char_boundaries() {
        let s = "é".repeat(5000);
        let t = tail(&s);
        assert!(t.len() <= TAIL && !t.is_empty());
    }
}
