//! Upstream tool names as `&'static str`, made once per distinct name, so a proxied call names
//! its tool to the server without allocating (rmcp's request takes a `Cow<'static, str>`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// Past this many distinct names (a server renaming its tools without end), names are no longer
/// kept for the process's life and each call allocates its own copy again.
const MOST_NAMES: usize = 10_000;

fn names() -> &'static Mutex<HashSet<&'static str>> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    NAMES.get_or_init(Mutex::default)
}

/// `name` for the life of the process, or an owned copy once [`MOST_NAMES`] are kept.
pub(crate) fn lasting(name: &str) -> Cow<'static, str> {
    let Ok(mut names) = names().lock() else {
        return Cow::Owned(name.to_owned());
    };
    if let Some(kept) = names.get(name) {
        return Cow::Borrowed(kept);
    }
    if names.len() >= MOST_NAMES {
        return Cow::Owned(name.to_owned());
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    Cow::Borrowed(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kept_once_and_borrowed_after() {
        let first = lasting("echo-tool-names-test");
        let second = lasting("echo-tool-names-test");
        let (Cow::Borrowed(first), Cow::Borrowed(second)) = (first, second) else {
            panic!("kept names are borrowed");
        };
        assert!(std::ptr::eq(first, second), "one copy for the process");
    }
}
