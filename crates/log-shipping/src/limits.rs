//! PutLogEvents' limits and the one place that cuts records to fit them.

/// A batch's size counts each message's UTF-8 bytes plus this much per event.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// Maximum batch size, overhead included.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// Maximum events per batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// A batch may not span more than 24 hours.
pub const MAX_BATCH_SPAN_MS: i64 = 24 * 60 * 60 * 1000;
/// Per-event maximum, overhead included. 256 KiB is the long-standing documented limit; it is
/// kept even where the service now accepts more, because a rejected batch loses every line in it.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// The largest message that fits one event.
pub const MAX_MESSAGE_BYTES: usize = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;

/// Cuts `message` to fit one event, at a character boundary, saying how much was cut so that a
/// reader knows the line is incomplete. Returns whether it cut.
pub fn truncate_to_event(message: &mut String) -> bool {
    if message.len() <= MAX_MESSAGE_BYTES {
        return false;
    }
    let original = message.len();
    // The marker's length depends on the number it prints; 32 bytes covers any usize.
    let mut keep = MAX_MESSAGE_BYTES - 32;
    while !message.is_char_boundary(keep) {
        keep -= 1;
    }
    message.truncate(keep);
    message.push_str(&format!(" …[truncated {} bytes]", original - keep));
    debug_assert!(message.len() <= MAX_MESSAGE_BYTES);
    true
}

/// The bytes one message costs in a batch.
pub fn event_cost(message: &str) -> usize {
    message.len() + EVENT_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_untouched() {
        let mut m = "hello".to_string();
        assert!(!truncate_to_event(&mut m));
        assert_eq!(m, "hello");
        let mut exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert!(!truncate_to_event(&mut exact));
        assert_eq!(exact.len(), MAX_MESSAGE_BYTES);
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary_with_a_marker() {
        // Three-byte characters so that the cut lands inside one unless it is careful.
        let mut m = "€".repeat(MAX_MESSAGE_BYTES);
        let original = m.len();
        assert!(truncate_to_event(&mut m));
        assert!(m.len() <= MAX_MESSAGE_BYTES, "{}", m.len());
        let kept = m.find(" …[truncated ").expect("marker");
        assert!(m.ends_with(&format!("[truncated {} bytes]", original - kept)));
    }
}
