//! What a call produced, as agentos itself reads it: the text a failed call says (for audit
//! records and error bodies), and the output a schedule or workflow step keeps of a result.

use rmcp::model::CallToolResult;
use serde_json::Value;

/// At most `max` characters of `text`, with an ellipsis when something was cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// The text blocks of a result, joined by newlines: what a failed call says, for records and
/// error bodies.
pub fn result_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| match block {
            rmcp::model::ContentBlock::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A successful result carrying `value` as structuredContent plus the same JSON as text, for
/// clients that read only text content.
pub fn json_result(value: Value) -> CallToolResult {
    let mut result = CallToolResult::success(vec![rmcp::model::ContentBlock::text(value.to_string())]);
    result.structured_content = Some(value);
    result
}

/// What a call produced: its structured content, else its text.
pub fn output_of(result: &CallToolResult) -> Value {
    match &result.structured_content {
        Some(value) => value.clone(),
        None => Value::String(result_text(result)),
    }
}

/// `value` as JSON text if it fits in `max` bytes; otherwise a JSON string holding the
/// beginning of that text, and `true`.
pub fn bounded_json(value: &Value, max: usize) -> (String, bool) {
    let text = value.to_string();
    if text.len() <= max {
        return (text, false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (Value::String(text[..end].to_owned()).to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_truncated_on_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
        let long = "é".repeat(600);
        let cut = truncate(&long, 500);
        assert_eq!(cut.chars().count(), 501);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn large_results_keep_their_beginning() {
        let small = serde_json::json!({"a": 1});
        assert_eq!(bounded_json(&small, 100), ("{\"a\":1}".to_owned(), false));
        let large = serde_json::json!({"text": "é".repeat(100)});
        let (text, truncated) = bounded_json(&large, 21);
        assert!(truncated);
        let preview: String = serde_json::from_str(&text).unwrap();
        assert!(preview.starts_with("{\"text\":\"é") && preview.len() <= 21, "{preview}");
    }

    #[test]
    fn output_is_structured_content_else_text() {
        let mut result = CallToolResult::success(vec![rmcp::model::ContentBlock::text("hi")]);
        assert_eq!(output_of(&result), Value::String("hi".into()));
        result.structured_content = Some(serde_json::json!({"a": 1}));
        assert_eq!(output_of(&result), serde_json::json!({"a": 1}));
    }
}
