//! An error and everything that caused it, as one line for a log or a refusal.

use std::error::Error;

/// `error` followed by each of its causes ("error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer"), without repeating a cause a message already includes.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
