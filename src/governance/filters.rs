//! The filter arguments the governance queries share (`tool`, `since`, `until`).

use crate::registry::ToolFailure;

/// A `tool` filter argument: an exact name, or a prefix ending in `*` (`true`); `*` or nothing
/// is no filter.
pub(crate) fn tool_filter(pattern: Option<&str>) -> (Option<String>, bool) {
    match pattern.map(str::trim) {
        None | Some("" | "*") => (None, false),
        Some(pattern) => match pattern.strip_suffix('*') {
            Some(prefix) => (Some(prefix.to_owned()), true),
            None => (Some(pattern.to_owned()), false),
        },
    }
}

/// An optional RFC 3339 time argument as epoch milliseconds; a clear failure naming `field`.
pub(crate) fn time_arg(field: &str, value: Option<&str>) -> Result<Option<i64>, ToolFailure> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| time.timestamp_millis())
                .map_err(|_| {
                    ToolFailure::invalid_input(format!(
                        "`{field}` must be an RFC 3339 time such as `2025-01-31T09:30:00Z`, not `{text}`"
                    ))
                })
        })
        .transpose()
}
