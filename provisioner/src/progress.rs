//! Progress for long work: an indicatif bar or spinner on a terminal, plain lines otherwise, so
//! CI logs stay readable.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::aws::events::{EventSink, StackEvent};

/// Build progress (implements the EIF crate's `Progress`).
pub struct BuildProgress {
    bar: Option<ProgressBar>,
}

/// A stage whose size is known: a bar. Total unknown (reading the image): a spinner and the
/// time spent, never a bar that sits full at 0 B/0 B.
const BAR: &str = "{msg:20} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec}";
const COUNTER: &str = "{msg:20} {spinner} {elapsed}";

impl BuildProgress {
    /// A bar on stderr when stderr is a terminal (whatever stdout is), otherwise log lines.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(ProgressBar::no_length);
        BuildProgress { bar }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Default for BuildProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl nitro_eif::Progress for BuildProgress {
    fn stage(&self, name: &str, total_bytes: Option<u64>) {
        match &self.bar {
            Some(b) => {
                let template = if total_bytes.is_some() { BAR } else { COUNTER };
                if total_bytes.is_none() {
                    b.enable_steady_tick(std::time::Duration::from_millis(120));
                } else {
                    b.disable_steady_tick();
                }
                b.set_style(
                    ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_message(name.to_string());
                b.set_position(0);
                match total_bytes {
                    Some(n) => b.set_length(n),
                    None => b.unset_length(),
                }
            }
            None => tracing::info!(stage = name, "build"),
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
}

/// Stack events: one line each (above a spinner on a terminal).
pub struct EventLines {
    spinner: Option<ProgressBar>,
}

impl EventLines {
    pub fn new(what: &str) -> Self {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let s = ProgressBar::new_spinner();
            s.set_message(what.to_string());
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
        EventLines { spinner }
    }

    pub fn finish(&self) {
        if let Some(s) = &self.spinner {
            s.finish_and_clear();
        }
    }
}

impl EventSink for EventLines {
    fn event(&self, e: &StackEvent) {
        let line = format!(
            "{}  {:<28} {:<42} {}{}",
            e.timestamp,
            e.logical_id,
            e.resource_type,
            e.status,
            e.reason
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        );
        match &self.spinner {
            Some(s) => s.println(line),
            None => eprintln!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitro_eif::Progress as _;

    #[test]
    fn stages_of_unknown_size_have_no_length_instead_of_a_full_bar() {
        let p = BuildProgress {
            bar: Some(ProgressBar::hidden()),
        };
        let bar = p.bar.as_ref().unwrap();
        p.stage("reading image", None);
        p.advance(4096);
        assert_eq!((bar.length(), bar.position()), (None, 4096));
        p.stage("writing EIF", Some(10 << 20));
        p.advance(1 << 20);
        assert_eq!((bar.length(), bar.position()), (Some(10 << 20), 1 << 20));
    }
}
