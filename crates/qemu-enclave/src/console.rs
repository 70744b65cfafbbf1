//! The enclave's serial console: captured line by line, kept for the caller and written to a
//! log file, and searched for the markers of a failed boot. QEMU's exit status says nothing
//! about the guest (init reboots in every case), so these markers are the verdict.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a console line says went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleFailure {
    /// `Kernel panic - not syncing: …`.
    KernelPanic,
    /// `Attempted to kill init!`: AWS's init died (e.g. no heartbeat answer, a failed mount).
    InitKilled,
    /// `child exited with error` / `child exited by signal`: init's command failed.
    ChildExited,
}

impl ConsoleFailure {
    /// The failure `line` reports, if any.
    pub fn classify(line: &str) -> Option<Self> {
        if line.contains("Kernel panic") {
            Some(Self::KernelPanic)
        } else if line.contains("Attempted to kill init") {
            Some(Self::InitKilled)
        } else if line.contains("child exited") {
            Some(Self::ChildExited)
        } else {
            None
        }
    }
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    /// The first failure and the line that showed it.
    failure: Option<(ConsoleFailure, String)>,
    closed: bool,
}

/// A live view of the console, shared with the thread reading it.
#[derive(Clone, Default)]
pub struct Console {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Console {
    /// Starts reading `source` (QEMU's serial output) into this console and `log`; `echo`
    /// also copies each line to stderr prefixed with `[enclave] `.
    pub(crate) fn capture(
        source: impl Read + Send + 'static,
        mut log: File,
        echo: bool,
    ) -> (Self, JoinHandle<()>) {
        let console = Console::default();
        let sink = console.clone();
        let reader = std::thread::spawn(move || {
            let mut source = BufReader::new(source);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match source.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let _ = log.write_all(&raw);
                let line = String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned();
                if echo {
                    eprintln!("[enclave] {line}");
                }
                sink.push(line);
            }
            let _ = log.flush();
            sink.close();
        });
        (console, reader)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        let mut state = self.lock();
        if state.failure.is_none() {
            if let Some(failure) = ConsoleFailure::classify(&line) {
                state.failure = Some((failure, line.clone()));
            }
        }
        state.lines.push(line);
        self.state.1.notify_all();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.state.1.notify_all();
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// Lines from index `from` on (for streaming: pass the count already seen).
    pub fn lines_from(&self, from: usize) -> Vec<String> {
        self.lock().lines.get(from..).unwrap_or_default().to_vec()
    }

    /// The console so far as one text.
    pub fn text(&self) -> String {
        self.lock().lines.join("\n")
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let state = self.lock();
        let start = state.lines.len().saturating_sub(n);
        state.lines[start..].join("\n")
    }

    /// The first failure marker seen, with its line.
    pub fn failure(&self) -> Option<(ConsoleFailure, String)> {
        self.lock().failure.clone()
    }

    /// Waits until a line contains `needle` (true), the console closes or `timeout` passes.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        let mut checked = 0;
        loop {
            if state.lines[checked..].iter().any(|l| l.contains(needle)) {
                return true;
            }
            checked = state.lines.len();
            let now = Instant::now();
            if state.closed || now >= deadline {
                return false;
            }
            state = self
                .state
                .1
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_failure_markers() {
        for (line, expected) in [
            (
                "[    1.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00006e00",
                Some(ConsoleFailure::KernelPanic),
            ),
            (
                "Attempted to kill init! exitcode=0x00000100",
                Some(ConsoleFailure::InitKilled),
            ),
            ("child exited with error", Some(ConsoleFailure::ChildExited)),
            ("child exited by signal", Some(ConsoleFailure::ChildExited)),
            ("[    0.9] Run /init as init process", None),
        ] {
            assert_eq!(ConsoleFailure::classify(line), expected, "{line}");
        }
    }

    #[test]
    fn captures_lines_keeps_the_first_failure_and_wakes_waiters() {
        let log = tempfile::tempfile().expect("log");
        let text = "boot\r\nchild exited with error\nKernel panic - not syncing\npartial";
        let (console, reader) = Console::capture(std::io::Cursor::new(text), log, false);
        reader.join().expect("reader");
        assert_eq!(
            console.lines(),
            [
                "boot",
                "child exited with error",
                "Kernel panic - not syncing",
                "partial"
            ]
        );
        assert_eq!(
            console.failure(),
            Some((
                ConsoleFailure::ChildExited,
                "child exited with error".into()
            ))
        );
        assert!(console.wait_for("partial", Duration::ZERO));
        assert!(!console.wait_for("never printed", Duration::from_secs(5)));
        assert_eq!(console.lines_from(3), ["partial"]);
        assert_eq!(console.tail(2), "Kernel panic - not syncing\npartial");
    }
}
