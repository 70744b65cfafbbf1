//! Terminal styling. `--color auto` (the default) colors a stream only when it is a terminal,
//! `NO_COLOR` is unset or empty (no-color.org) and `TERM` is not `dumb`, so CI logs and golden
//! files stay plain; `--color always|never` overrides all of that, as in cargo and git.
//! Errors are said with each cause once (`error_text`).

use std::ffi::OsString;
use std::io::IsTerminal;

/// The `--color` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Color a stream that is a terminal, unless NO_COLOR is non-empty or TERM=dumb.
    #[default]
    Auto,
    /// Color even when redirected (e.g. for `less -R`).
    Always,
    /// Never color.
    Never,
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

/// Which stream a style is for (each is a terminal or not on its own).
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Style {
    /// The style for `stream` under `choice` and this process's environment.
    pub fn detect(choice: ColorChoice, stream: Stream) -> Self {
        let terminal = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        Style {
            color: use_color(
                choice,
                std::env::var_os("NO_COLOR"),
                std::env::var_os("TERM"),
                terminal,
            ),
        }
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
    pub fn error(&self, s: &str) -> String {
        self.paint("1;31", s)
    }
}

/// An error's text as diagnostic lines: each line starts with `error:` (or, for a located
/// config diagnostic, `FILE:LINE:COLUMN: error:`), so every line of stderr can be parsed on its
/// own; lines that already carry a severity are kept as they are.
pub fn error_lines(message: &str) -> String {
    message
        .lines()
        .map(|line| {
            if has_severity(line) {
                line.to_string()
            } else {
                format!("error: {line}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn has_severity(line: &str) -> bool {
    if line.starts_with("error: ") || line.starts_with("warning: ") {
        return true;
    }
    // FILE:LINE:COLUMN: error: …
    let Some((located, _)) = line.split_once(": error: ") else {
        return false;
    };
    let mut fields = located.rsplitn(3, ':');
    let (column, line_no, file) = (fields.next(), fields.next(), fields.next());
    let number =
        |n: Option<&str>| n.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    number(column) && number(line_no) && file.is_some_and(|f| !f.is_empty())
}

/// The decision itself, apart from the environment so it can be tested.
fn use_color(
    choice: ColorChoice,
    no_color: Option<OsString>,
    term: Option<OsString>,
    terminal: bool,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = no_color.is_some_and(|v| !v.is_empty());
            let dumb = term.is_some_and(|t| t == "dumb");
            terminal && !no_color && !dumb
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(no_color: Option<&str>, term: Option<&str>, terminal: bool) -> bool {
        use_color(
            ColorChoice::Auto,
            no_color.map(Into::into),
            term.map(Into::into),
            terminal,
        )
    }

    #[test]
    fn auto_colors_terminals_unless_no_color_is_non_empty_or_term_is_dumb() {
        assert!(auto(None, Some("xterm-256color"), true));
        assert!(auto(Some(""), None, true), "an empty NO_COLOR is unset");
        assert!(!auto(Some("1"), Some("xterm"), true));
        assert!(!auto(None, Some("dumb"), true));
        assert!(!auto(None, Some("xterm"), false));
    }

    #[test]
    fn every_error_line_carries_a_severity() {
        let text = "a.yaml:3:7: error: name: bad\nerror: 1 error in a.yaml";
        assert_eq!(error_lines(text), text);
        assert_eq!(
            error_lines("cannot read x\n  caused by y"),
            "error: cannot read x\nerror:   caused by y"
        );
        // A position needs digits: this is a message, not a diagnostic.
        assert_eq!(error_lines("a:b:c: error: x"), "error: a:b:c: error: x");
    }

    #[test]
    fn always_and_never_override_the_environment() {
        assert!(use_color(
            ColorChoice::Always,
            Some("1".into()),
            Some("dumb".into()),
            false
        ));
        assert!(!use_color(
            ColorChoice::Never,
            None,
            Some("xterm".into()),
            true
        ));
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
