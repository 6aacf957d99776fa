//! Files: a per-agent virtual filesystem kept in the store, never the host's.
//!
//! Paths are virtual and absolute-style (`/notes/today.md`); directories exist only as the
//! parts of file paths. Contents are bytes: text (UTF-8) or base64 on the wire.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{FileLimits, FileWriteMode};

const MAX_PATH_CHARS: usize = 1024;
const DEFAULT_PAGE: usize = 100;

/// How file content travels in a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    /// UTF-8 text, as is.
    #[default]
    Text,
    /// Standard base64 of the raw bytes, for binary content.
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WriteArgs {
    /// The file's path, e.g. `/notes/today.md` (`today.md` means `/today.md`). Up to 1024
    /// characters; `..`, empty segments and control characters are refused.
    #[schemars(length(min = 1, max = 1024))]
    path: String,
    /// The content: UTF-8 text, or base64 when `encoding` is `base64`.
    content: String,
    /// `text` (default) or `base64` (for binary content).
    #[serde(default)]
    encoding: Encoding,
    /// Add `content` to the end of the file instead of replacing it (default false). Creates the
    /// file if it does not exist.
    #[serde(default)]
    append: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
struct WriteResult {
    /// The normalized path the file was stored under.
    path: String,
    /// The file's size after the write, in bytes.
    bytes: u64,
    /// True if the file did not exist before.
    created: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    /// The file's path, e.g. `/notes/today.md`.
    #[schemars(length(min = 1, max = 1024))]
    path: String,
    /// First byte to read, counting from 0 (default 0).
    #[serde(default)]
    offset: u64,
    /// Most bytes to read (default: to the end of the file).
    length: Option<u64>,
    /// `text` (default; the bytes must be valid UTF-8) or `base64` (any bytes).
    #[serde(default)]
    encoding: Encoding,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ReadResult {
    path: String,
    /// The bytes read, as text or base64 according to `encoding`.
    content: String,
    encoding: Encoding,
    /// The first byte read.
    offset: u64,
    /// How many bytes were read.
    bytes: u64,
    /// The file's whole size, in bytes.
    total_bytes: u64,
    /// True if the read reached the end of the file.
    eof: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    /// The file's path, e.g. `/notes/today.md`.
    #[schemars(length(min = 1, max = 1024))]
    path: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StatResult {
    path: String,
    /// Whether a file exists at the path.
    exists: bool,
    /// The file's size in bytes; absent if it does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    /// When the file was created, in Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at_ms: Option<i64>,
    /// When the file was last written, in Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at_ms: Option<i64>,
    /// Lowercase hex SHA-256 of the content, to check whether it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct DeleteResult {
    path: String,
    /// True if a file was removed; false if there was none.
    deleted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// List the files in this directory and below it, e.g. `/notes`. Omit (with `prefix`) for
    /// all files.
    dir: Option<String>,
    /// Instead of `dir`: list the files whose path starts with this text, e.g. `/notes/2024-`.
    prefix: Option<String>,
    /// Most entries to return (default 100).
    #[schemars(range(min = 1))]
    limit: Option<usize>,
    /// `nextCursor` from the previous page, to continue listing.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ListedFile {
    path: String,
    /// Size in bytes.
    bytes: u64,
    /// When the file was last written, in Unix milliseconds.
    updated_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ListResult {
    /// Files in path order.
    entries: Vec<ListedFile>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Bytes all your files use together.
    used_bytes: u64,
    /// Bytes your files may use together.
    quota_bytes: u64,
}

/// Checks a path given as `field` and returns its normal form: `/` followed by non-empty
/// segments joined by `/`. `.` segments are dropped; `..` is refused, never resolved.
fn normalize(field: &str, raw: &str, allow_root: bool) -> Result<String, ToolFailure> {
    if raw.chars().count() > MAX_PATH_CHARS {
        return Err(ToolFailure::new(format!(
            "`{field}` is longer than {MAX_PATH_CHARS} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ToolFailure::new(format!(
            "`{field}` must not contain control characters (NUL, newlines, tabs, ...)"
        )));
    }
    let body = raw.strip_prefix('/').unwrap_or(raw);
    let body = if allow_root {
        body.strip_suffix('/').unwrap_or(body)
    } else {
        body
    };
    let mut segments = Vec::new();
    if !body.is_empty() {
        for segment in body.split('/') {
            match segment {
                "" => {
                    return Err(ToolFailure::new(format!(
                        "`{field}` has an empty segment (`//`{}); write paths like `/notes/today.md`",
                        if allow_root { "" } else { " or a trailing `/`" }
                    )));
                }
                "." => {}
                ".." => {
                    return Err(ToolFailure::new(format!(
                        "`{field}` must not contain `..`; write the full path from `/` instead"
                    )));
                }
                segment => segments.push(segment),
            }
        }
    }
    if segments.is_empty() && !allow_root {
        return Err(ToolFailure::new(format!(
            "`{field}` names no file; give a file path such as `/notes/today.md`"
        )));
    }
    let normal = format!("/{}", segments.join("/"));
    if normal.chars().count() > MAX_PATH_CHARS {
        return Err(ToolFailure::new(format!(
            "`{field}` is longer than {MAX_PATH_CHARS} characters"
        )));
    }
    Ok(normal)
}

pub(super) fn file_path(raw: &str) -> Result<String, ToolFailure> {
    normalize("path", raw, false)
}

/// The path prefix a listing covers, from `dir` or `prefix`.
fn list_prefix(dir: Option<&str>, prefix: Option<&str>) -> Result<String, ToolFailure> {
    match (dir, prefix) {
        (Some(_), Some(_)) => Err(ToolFailure::new("give either `dir` or `prefix`, not both")),
        (Some(dir), None) => {
            let dir = normalize("dir", dir, true)?;
            Ok(if dir == "/" { dir } else { format!("{dir}/") })
        }
        (None, Some(prefix)) => {
            if prefix.chars().count() > MAX_PATH_CHARS {
                return Err(ToolFailure::new(format!(
                    "`prefix` is longer than {MAX_PATH_CHARS} characters"
                )));
            }
            if prefix.chars().any(char::is_control) {
                return Err(ToolFailure::new("`prefix` must not contain control characters"));
            }
            Ok(if prefix.starts_with('/') {
                prefix.to_owned()
            } else {
                format!("/{prefix}")
            })
        }
        (None, None) => Ok("/".to_owned()),
    }
}

/// Standard base64, lenient about padding and line breaks.
fn decode_base64(text: &str) -> Result<Vec<u8>, ToolFailure> {
    decode_base64_field("content", text)
}

/// [`decode_base64`] of the argument `field`, whose name the error gives.
pub(super) fn decode_base64_field(field: &str, text: &str) -> Result<Vec<u8>, ToolFailure> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(compact.as_bytes()).map_err(|e| {
        ToolFailure::new(format!(
            "`{field}` is not valid base64 ({e}); send standard base64 (A-Z, a-z, 0-9, +, /)"
        ))
    })
}

/// Bytes read from `path` at `offset`, as text; a range that is not UTF-8 is refused with what
/// to do instead.
fn decode_text(path: &str, offset: u64, data: Vec<u8>) -> Result<String, ToolFailure> {
    String::from_utf8(data).map_err(|error| {
        let bytes = error.as_bytes();
        let utf8 = error.utf8_error();
        let at = offset + utf8.valid_up_to() as u64;
        let why = match utf8.error_len() {
            None => "the range ends in the middle of a multi-byte character",
            Some(_) if utf8.valid_up_to() == 0 && bytes[0] & 0xC0 == 0x80 => {
                "`offset` falls in the middle of a multi-byte character"
            }
            Some(_) => "the file holds bytes that are not UTF-8 text (binary data?)",
        };
        ToolFailure::new(format!(
            "bytes {offset}..{} of `{path}` are not valid UTF-8 text: {why} (at byte {at}). Read with \
             encoding \"base64\" to get the raw bytes, or move offset/length to character boundaries",
            offset + bytes.len() as u64
        ))
    })
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (write, read, list, stat, delete) = (
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
    );
    vec![
        ToolBuilder::new("agentos.fs_write")
            .title("Write a file")
            .description(
                "Writes a file in your private virtual filesystem (kept by agentos, not on any \
                 disk you can see), creating it or replacing its content; set append=true to add \
                 to its end instead. Send text as is, or binary content with encoding=\"base64\". \
                 Files persist across conversations. Returns the file's new size and whether it \
                 was created.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: false,
                open_world: false,
            })
            .handler(move |args: WriteArgs, ctx| {
                let services = write.clone();
                async move {
                    let path = file_path(&args.path)?;
                    let config = &services.config.files;
                    let least_bytes = match args.encoding {
                        Encoding::Text => args.content.len() as u64,
                        // Four base64 characters carry three bytes (line breaks aside).
                        Encoding::Base64 => args.content.len() as u64 / 4 * 3 / 2,
                    };
                    if least_bytes > config.max_file_bytes {
                        // Too big whatever the file holds already: don't decode or ship it.
                        return Err(ToolFailure::new(format!(
                            "`content` is larger than files.max_file_bytes ({} bytes per file); split it over several files",
                            config.max_file_bytes
                        )));
                    }
                    let data = match args.encoding {
                        Encoding::Text => args.content.into_bytes(),
                        Encoding::Base64 => decode_base64(&args.content)?,
                    };
                    let mode = if args.append {
                        FileWriteMode::Append
                    } else {
                        FileWriteMode::Replace
                    };
                    let limits = FileLimits {
                        max_file_bytes: config.max_file_bytes,
                        quota_bytes: config.quota_bytes,
                    };
                    let written = services
                        .store
                        .fs_write(&ctx.caller.agent_id, &path, data, mode, limits)
                        .await?;
                    Ok(WriteResult {
                        path,
                        bytes: written.bytes,
                        created: written.created,
                    })
                }
            }),
        ToolBuilder::new("agentos.fs_read")
            .title("Read a file")
            .description(
                "Reads a file from your private virtual filesystem: all of it, or `length` bytes \
                 from byte `offset` for large files. Text by default; use encoding=\"base64\" for \
                 binary files. Returns the content, the bytes read, the file's total size and eof \
                 (true when the end was reached; otherwise read on from offset+bytes).",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ReadArgs, ctx| {
                let services = read.clone();
                async move {
                    let path = file_path(&args.path)?;
                    let slice = services
                        .store
                        .fs_read(&ctx.caller.agent_id, &path, args.offset, args.length)
                        .await?
                        .ok_or_else(|| {
                            ToolFailure::new(format!(
                                "there is no file at `{path}`; use agentos.fs_list to see your files"
                            ))
                        })?;
                    let total = slice.meta.bytes;
                    if args.offset > total {
                        return Err(ToolFailure::new(format!(
                            "`offset` {} is past the end of `{path}`, which has {total} bytes",
                            args.offset
                        )));
                    }
                    let bytes = slice.data.len() as u64;
                    let content = match args.encoding {
                        Encoding::Text => decode_text(&path, args.offset, slice.data)?,
                        Encoding::Base64 => general_purpose::STANDARD.encode(&slice.data),
                    };
                    Ok(ReadResult {
                        path,
                        content,
                        encoding: args.encoding,
                        offset: args.offset,
                        bytes,
                        total_bytes: total,
                        eof: args.offset + bytes >= total,
                    })
                }
            }),
        ToolBuilder::new("agentos.fs_list")
            .title("List files")
            .description(
                "Lists the files in your private virtual filesystem in path order with their \
                 sizes: all of them, those under a directory (`dir`, at any depth), or those whose \
                 path starts with `prefix`; a page at a time (default 100). Also returns how much \
                 of your storage quota is used. If nextCursor is returned, call again with it as \
                 cursor for more.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let services = list.clone();
                async move {
                    let prefix = list_prefix(args.dir.as_deref(), args.prefix.as_deref())?;
                    let max = services.config.limits.max_page_size;
                    let limit = args.limit.unwrap_or(DEFAULT_PAGE.min(max));
                    if limit == 0 || limit > max {
                        return Err(ToolFailure::new(format!("`limit` must be between 1 and {max}")));
                    }
                    let owner = &ctx.caller.agent_id;
                    let page = services
                        .store
                        .fs_list(owner, &prefix, args.cursor.as_deref(), limit)
                        .await?;
                    let used_bytes = services.store.fs_usage(owner).await?;
                    Ok(ListResult {
                        entries: page
                            .entries
                            .into_iter()
                            .map(|meta| ListedFile {
                                path: meta.path,
                                bytes: meta.bytes,
                                updated_at_ms: meta.updated_at_ms,
                            })
                            .collect(),
                        next_cursor: page.next_after,
                        used_bytes,
                        quota_bytes: services.config.files.quota_bytes,
                    })
                }
            }),
        ToolBuilder::new("agentos.fs_stat")
            .title("Describe a file")
            .description(
                "Tells whether a file exists in your private virtual filesystem and, if so, its \
                 size, creation and last-write times and SHA-256, without reading its content.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: PathArgs, ctx| {
                let services = stat.clone();
                async move {
                    let path = file_path(&args.path)?;
                    let meta = services.store.fs_stat(&ctx.caller.agent_id, &path).await?;
                    Ok(match meta {
                        Some(meta) => StatResult {
                            path,
                            exists: true,
                            bytes: Some(meta.bytes),
                            created_at_ms: Some(meta.created_at_ms),
                            updated_at_ms: Some(meta.updated_at_ms),
                            sha256: Some(meta.sha256),
                        },
                        None => StatResult {
                            path,
                            exists: false,
                            bytes: None,
                            created_at_ms: None,
                            updated_at_ms: None,
                            sha256: None,
                        },
                    })
                }
            }),
        ToolBuilder::new("agentos.fs_delete")
            .title("Delete a file")
            .description(
                "Deletes a file from your private virtual filesystem, freeing its bytes from your \
                 quota. Returns deleted=false if there was no such file.",
            )
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: PathArgs, ctx| {
                let services = delete.clone();
                async move {
                    let path = file_path(&args.path)?;
                    let deleted = services.store.fs_delete(&ctx.caller.agent_id, &path).await?;
                    Ok(DeleteResult { path, deleted })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_or_are_refused_with_the_reason() {
        assert_eq!(file_path("a.txt").unwrap(), "/a.txt");
        assert_eq!(file_path("/notes/a.txt").unwrap(), "/notes/a.txt");
        assert_eq!(file_path("./notes/./a.txt").unwrap(), "/notes/a.txt");
        assert_eq!(file_path("/é ✓/b c").unwrap(), "/é ✓/b c");
        let refused = |raw: &str| file_path(raw).unwrap_err().message;
        assert!(refused("/a/../b").contains(".."));
        assert!(refused("../etc/passwd").contains(".."));
        assert!(refused("/a//b").contains("empty segment"));
        assert!(refused("/a/").contains("empty segment"));
        assert!(refused("/").contains("names no file"));
        assert!(refused("").contains("names no file"));
        assert!(refused("/a\0b").contains("control"));
        assert!(refused("/a\nb").contains("control"));
        assert!(refused(&format!("/{}", "x".repeat(1024))).contains("1024"));
        assert_eq!(file_path(&format!("/{}", "x".repeat(1023))).unwrap().len(), 1024);
        assert_eq!(file_path(&"x".repeat(1023)).unwrap().len(), 1024);
        assert!(
            file_path(&"x".repeat(1024)).is_err(),
            "the normal form counts the leading `/`"
        );
    }

    #[test]
    fn listings_cover_a_directory_or_a_prefix() {
        assert_eq!(list_prefix(None, None).unwrap(), "/");
        assert_eq!(list_prefix(Some("/"), None).unwrap(), "/");
        assert_eq!(list_prefix(Some(""), None).unwrap(), "/");
        assert_eq!(list_prefix(Some("notes/"), None).unwrap(), "/notes/");
        assert_eq!(list_prefix(Some("/notes"), None).unwrap(), "/notes/");
        assert_eq!(list_prefix(None, Some("notes/20")).unwrap(), "/notes/20");
        assert!(list_prefix(Some("/a/../b"), None).is_err());
        assert!(
            list_prefix(Some("/a"), Some("/a"))
                .unwrap_err()
                .message
                .contains("not both")
        );
    }

    #[test]
    fn text_reads_never_split_a_character() {
        let text = "aé✓".as_bytes().to_vec(); // 1 + 2 + 3 bytes
        assert_eq!(decode_text("/f", 0, text.clone()).unwrap(), "aé✓");
        let cut_end = decode_text("/f", 0, text[..2].to_vec()).unwrap_err().message;
        assert!(
            cut_end.contains("ends in the middle") && cut_end.contains("base64"),
            "{cut_end}"
        );
        let cut_start = decode_text("/f", 2, text[2..].to_vec()).unwrap_err().message;
        assert!(cut_start.contains("`offset` falls in the middle"), "{cut_start}");
        let binary = decode_text("/f", 0, vec![b'a', 0xFF, b'b']).unwrap_err().message;
        assert!(
            binary.contains("not UTF-8 text") && binary.contains("at byte 1"),
            "{binary}"
        );
    }

    #[test]
    fn base64_is_lenient_about_padding_and_line_breaks() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert!(decode_base64("not base64!").unwrap_err().message.contains("`content`"));
    }
}
