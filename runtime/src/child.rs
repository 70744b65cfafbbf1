//! The application as our child: spawned with its environment, ids and directory; its stdout and
//! stderr read line by line into the log service; every process that ends up ours (we are a
//! child subreaper) reaped by one blocking `waitpid(-1)` thread, so orphans never linger as
//! zombies and the app's status is never taken by anyone else.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use enclave_link::logs::{Level, LogSender, LogStream, MAX_MESSAGE};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::user::Ids;

/// How the application ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// What the runtime itself exits with (shell convention for signals).
    pub fn as_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// What to run.
pub struct Spec<'a> {
    pub argv: &'a [String],
    /// Added to the runtime's own environment (image `Env` + `image.env`, set by init).
    pub env: Vec<(&'a str, &'a [u8])>,
    pub ids: Option<Ids>,
    pub working_dir: &'a str,
    /// Where stdout/stderr lines go; none leaves them on the console.
    pub logs: Option<Arc<LogSender>>,
}

/// A started application.
pub struct Running {
    pub pid: i32,
    pub exit: oneshot::Receiver<Exit>,
    pumps: Vec<JoinHandle<()>>,
}

impl Running {
    /// Waits until both pipes reached end of file (the app and its children closed them).
    pub async fn drain_pipes(&mut self) {
        for p in self.pumps.drain(..) {
            let _ = p.await;
        }
    }
}

/// Makes orphaned descendants ours instead of init's.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Starts the application (in its own process group, so SIGKILL reaches its children too).
pub fn spawn(spec: Spec<'_>) -> io::Result<Running> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(spec.working_dir)
        .stdin(Stdio::null())
        .process_group(0);
    for (key, value) in &spec.env {
        command.env(key, OsStr::from_bytes(value));
    }
    if let Some(ids) = spec.ids {
        command.uid(ids.uid).gid(ids.gid);
    }
    if spec.logs.is_some() {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot start `{program}`: {e}")))?;
    let pid = child.id() as i32;
    let mut pumps = Vec::new();
    if let Some(logs) = spec.logs {
        if let Some(out) = child.stdout.take() {
            let out = tokio::process::ChildStdout::from_std(out)?;
            pumps.push(tokio::spawn(pump(out, LogStream::Stdout, logs.clone())));
        }
        if let Some(err) = child.stderr.take() {
            let err = tokio::process::ChildStderr::from_std(err)?;
            pumps.push(tokio::spawn(pump(err, LogStream::Stderr, logs)));
        }
    }
    // The status is read by the reaper, not through `child`.
    drop(child);
    let (tx, exit) = oneshot::channel();
    std::thread::Builder::new()
        .name("reaper".into())
        .spawn(move || reap(pid, tx))?;
    Ok(Running { pid, exit, pumps })
}

/// Reaps every child until none is left; reports `app`'s status when it comes.
fn reap(app: i32, tx: oneshot::Sender<Exit>) {
    let mut tx = Some(tx);
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return; // ECHILD: nothing left to reap
        }
        if pid == app {
            let exit = if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            if let Some(tx) = tx.take() {
                let _ = tx.send(exit);
            }
        }
    }
}

/// Sends `signal` to the app (`group`: to its whole process group).
pub fn signal(pid: i32, signal: i32, group: bool) {
    let target = if group { -pid } else { pid };
    // SAFETY: kill(2) with integer arguments; a gone target is ESRCH, ignored.
    unsafe { libc::kill(target, signal) };
}

/// One record per line (lines longer than a record are split), never blocking the app: a full
/// log queue drops and counts.
async fn pump(reader: impl AsyncRead + Unpin, stream: LogStream, logs: Arc<LogSender>) {
    let level = match stream {
        LogStream::Stderr => Level::Warn,
        _ => Level::Info,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::with_capacity(1024);
    loop {
        let buf = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(b) => b,
        };
        let end = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        let take = end.min(MAX_MESSAGE - line.len());
        line.extend_from_slice(&buf[..take]);
        reader.consume(take);
        if line.last() == Some(&b'\n') || line.len() >= MAX_MESSAGE {
            emit(&logs, level, stream, &mut line);
        }
    }
    if !line.is_empty() {
        emit(&logs, level, stream, &mut line);
    }
}

fn emit(logs: &LogSender, level: Level, stream: LogStream, line: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(line);
    logs.log(level, stream, text.strip_suffix('\n').unwrap_or(&text));
    line.clear();
}
