//! Splitting a studio command into words, as a shell would: whitespace separates them; quotes
//! ('…' or "…", also inside a word: `note="not today"`) and JSON objects and arrays (`{…}`,
//! `[…]`, which may hold spaces) keep their spaces.

/// One word of a command. `quoted_from`: where in `text` its first quoted part begins (a quoted
/// value is always text, and `=` inside quotes names nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub quoted_from: Option<usize>,
}

impl Word {
    /// `name=value` when the word is one: `name` made of letters, digits and `_`, and the `=`
    /// outside quotes. The value's flag says whether it was quoted.
    pub fn named(&self) -> Option<(&str, &str, bool)> {
        let (name, value) = self.text.split_once('=')?;
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        match self.quoted_from {
            Some(start) if start <= name.len() => None,
            quoted if valid => Some((name, value, quoted.is_some())),
            _ => None,
        }
    }

    pub fn quoted(&self) -> bool {
        self.quoted_from.is_some()
    }
}

/// Reads a quoted part whose opening `quote` was just taken, up to its closing quote, into
/// `text`; false if it never closes.
fn quoted_part(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, quote: char, text: &mut String) -> bool {
    while let Some((_, next)) = chars.next() {
        if next == quote {
            return true;
        }
        if next == '\\' && quote == '"' {
            match chars.next() {
                Some((_, escaped)) => text.push(escaped),
                None => return false,
            }
            continue;
        }
        text.push(next);
    }
    false
}

/// The words of `command`, or a message saying where it is malformed.
pub fn split(command: &str) -> Result<Vec<Word>, String> {
    let mut words = Vec::new();
    let mut chars = command.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        // A word runs to the next space, except inside brackets, where JSON may hold spaces.
        let mut text = String::new();
        let mut quoted_from = None;
        let mut depth = 0usize;
        let mut in_string = false;
        let mut escaped = false;
        while let Some(&(_, next)) = chars.peek() {
            if depth == 0 && !in_string && next.is_whitespace() {
                break;
            }
            chars.next();
            if depth == 0 && !in_string && (next == '"' || next == '\'') {
                quoted_from.get_or_insert(text.len());
                if !quoted_part(&mut chars, next, &mut text) {
                    return Err(format!(
                        "a quote in the word at character {} is never closed",
                        start + 1
                    ));
                }
                continue;
            }
            text.push(next);
            if in_string {
                match (escaped, next) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match next {
                '"' if depth > 0 => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if depth > 0 || in_string {
            return Err(format!(
                "the JSON starting at character {} is not closed: `{text}`",
                start + 1
            ));
        }
        words.push(Word { text, quoted_from });
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(command: &str) -> Vec<String> {
        split(command).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn words_quotes_and_json_with_spaces() {
        assert_eq!(texts("  mem   get  a/b "), ["mem", "get", "a/b"]);
        assert_eq!(texts(r#"mem set k "two words""#), ["mem", "set", "k", "two words"]);
        assert_eq!(texts("mem set k 'it''s'"), ["mem", "set", "k", "its"]);
        assert_eq!(
            texts(r#"call agentos.hash {"text": "a } b", "x": [1, 2]} limit=3"#),
            ["call", "agentos.hash", r#"{"text": "a } b", "x": [1, 2]}"#, "limit=3"]
        );
        assert_eq!(texts(r#"say "a \"quoted\" word""#), ["say", r#"a "quoted" word"#]);
        assert!(split(r#"say "open"#).unwrap_err().contains("never closed"));
        assert!(split(r#"call x {"a": 1"#).unwrap_err().contains("not closed"));
        assert!(split("").unwrap().is_empty());
        assert_eq!(texts(r#"deny x note="not today""#), ["deny", "x", "note=not today"]);
        let words = split(r#"x "q" note='a b' "a=b" n=1"#).unwrap();
        assert!(words[1].quoted());
        assert_eq!(words[2].named(), Some(("note", "a b", true)));
        assert_eq!(words[3].named(), None);
        assert_eq!(words[4].named(), Some(("n", "1", false)));
    }
}
