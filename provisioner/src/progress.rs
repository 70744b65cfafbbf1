//! Progress for long work: an indicatif bar or spinner on a terminal, plain lines otherwise, so
//! CI logs stay readable.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::aws::events::{EventSink, StackEvent};

/// Build progress (implements the EIF crate's `Progress`).
pub struct BuildProgress {
    bar: Option<ProgressBar>,
}

impl BuildProgress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(0);
            b.set_style(
                ProgressStyle::with_template(
                    "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
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
                b.set_message(name.to_string());
                b.set_position(0);
                b.set_length(total_bytes.unwrap_or(0));
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
