//! Terminal output: colors only when stdout is a terminal, `NO_COLOR` is unset and `--no-color`
//! was not given — CI logs and golden files stay plain; errors said with each cause once.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn detect(no_color: bool) -> Self {
        let color =
            !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Style { color }
    }

    pub fn plain() -> Self {
        Style { color: false }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn add(&self, s: &str) -> String {
        self.paint("32", s)
    }
    pub fn remove(&self, s: &str) -> String {
        self.paint("31", s)
    }
    pub fn change(&self, s: &str) -> String {
        self.paint("33", s)
    }
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    pub fn warn(&self, s: &str) -> String {
        self.paint("1;33", s)
    }
}

/// An error and its causes, each said once: a cause whose text the message already contains
/// (thiserror and SDK messages often embed their source) is not repeated.
pub fn error_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}
