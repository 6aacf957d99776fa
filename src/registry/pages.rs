//! Pages of a listing (tools, resources, resource templates, prompts) for clients that ask for
//! them a page at a time, in the listing's own order (a proxied server's order is kept). A cursor
//! holds how many items came before the next page and the key of the last one, so a listing that
//! changes between pages resumes after that item wherever it moved; it is opaque to clients and
//! checked: one this server did not make is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Items a listing answer holds unless configured otherwise (`mcp_page_size`).
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// Marks a cursor as ours, and its format's version.
const PREFIX: &str = "after:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid cursor: pass the nextCursor of an earlier answer of this list, or none for the first page")]
pub struct InvalidCursor;

/// One page of `items`: at most `size` after the cursor's item, and the cursor of the next page
/// when more follow.
pub fn page<T>(
    mut items: Vec<T>,
    cursor: Option<&str>,
    size: usize,
    key: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), InvalidCursor> {
    let start = match cursor.map(decode).transpose()? {
        None => 0,
        Some((offset, last)) => {
            let in_place = offset
                .checked_sub(1)
                .and_then(|i| items.get(i))
                .is_some_and(|item| key(item) == last);
            if in_place {
                offset
            } else {
                // The listing changed: resume after the item wherever it is now; if it was
                // removed, where it was.
                items
                    .iter()
                    .position(|item| key(item) == last)
                    .map_or(offset.saturating_sub(1), |i| i + 1)
            }
        }
    };
    let size = size.max(1);
    let mut rest = items.split_off(start.min(items.len()));
    let next = (rest.len() > size).then(|| encode(start + size, key(&rest[size - 1])));
    rest.truncate(size);
    Ok((rest, next))
}

fn encode(offset: usize, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{PREFIX}{offset}:{last}"))
}

fn decode(cursor: &str) -> Result<(usize, String), InvalidCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| InvalidCursor)?;
    let (offset, last) = text
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(InvalidCursor)?;
    let offset = offset.parse().map_err(|_| InvalidCursor)?;
    Ok((offset, last.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("tool{i:03}")).rev().collect()
    }

    #[test]
    fn pages_cover_every_item_once_in_the_listing_order() {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (items, next) = page(names(25), cursor.as_deref(), 10, String::as_str).unwrap();
            assert!(items.len() <= 10);
            seen.extend(items);
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, names(25));
    }

    #[test]
    fn a_full_last_page_has_no_next_cursor() {
        let (items, next) = page(names(10), None, 10, String::as_str).unwrap();
        assert_eq!(items.len(), 10);
        assert_eq!(next, None);
    }

    #[test]
    fn a_listing_changed_between_pages_resumes_after_the_last_item_seen() {
        // names(6) is tool005 ... tool000.
        let (first, next) = page(names(6), None, 3, String::as_str).unwrap();
        assert_eq!(first, ["tool005", "tool004", "tool003"]);
        let mut earlier_removed = names(6);
        earlier_removed.retain(|name| name != "tool004");
        let (items, _) = page(earlier_removed, next.as_deref(), 3, String::as_str).unwrap();
        assert_eq!(items, ["tool002", "tool001", "tool000"]);
        let mut last_seen_removed = names(6);
        last_seen_removed.retain(|name| name != "tool003");
        let (items, _) = page(last_seen_removed, next.as_deref(), 3, String::as_str).unwrap();
        assert_eq!(items, ["tool002", "tool001", "tool000"], "resumes where it was");
    }

    #[test]
    fn cursors_not_made_here_are_refused() {
        for bad in [
            "",
            "!!!",
            "bm90IG91cnM",
            "%%",
            "after:3:tool001",
            &URL_SAFE_NO_PAD.encode("after:x:tool"),
        ] {
            assert_eq!(
                page(names(3), Some(bad), 2, String::as_str),
                Err(InvalidCursor),
                "{bad:?}"
            );
        }
    }
}
