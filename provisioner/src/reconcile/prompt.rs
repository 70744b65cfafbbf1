//! Consent for changes: an explicit flag in CI, a typed answer on a terminal, and never a prompt
//! that waits on a pipe.

use std::io::{BufRead, IsTerminal, Write};

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(
        "{action} needs confirmation, and stdin is not a terminal: pass {flag} to approve in CI"
    )]
    NoTerminal { action: String, flag: &'static str },
    #[error("{action} cancelled")]
    Declined { action: String },
}

/// Asks the user to type `expected` (e.g. `yes`, or the stack name for destroy). `approved`
/// is the CI flag; without it and without a terminal this fails at once, naming `flag`.
pub fn confirm(
    action: &str,
    question: &str,
    expected: &str,
    approved: bool,
    flag: &'static str,
) -> Result<(), PromptError> {
    if approved {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(PromptError::NoTerminal {
            action: action.to_string(),
            flag,
        });
    }
    eprint!("{question}\n  Only '{expected}' will be accepted: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if stdin.lock().read_line(&mut line).is_err() || line.trim() != expected {
        return Err(PromptError::Declined {
            action: action.to_string(),
        });
    }
    Ok(())
}
