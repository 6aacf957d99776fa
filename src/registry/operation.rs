//! What a caller asks the pipeline to do: call a tool, read a resource or get a prompt. All three
//! pass the same stages; they differ in how they are named and what runs at the end.

use std::borrow::Cow;

/// One request to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// A tool by its native or strict name.
    Tool(&'a str),
    /// A resource by its namespaced URI (`agentos+mcp://<server>/<uri>`).
    Resource(&'a str),
    /// A prompt by its namespaced name (`mcp.<server>.<prompt>`).
    Prompt(&'a str),
}

/// Prefixes that tell resource reads and prompt gets from tool calls where all three are kept
/// as one string (an approval's record). Tool names never contain `:`.
const RESOURCE_PREFIX: &str = "resource:";
const PROMPT_PREFIX: &str = "prompt:";

impl<'a> Operation<'a> {
    /// How the audit trail, traces and approval rules name it: the tool's name,
    /// `resource:<uri>`, or the prompt's name.
    pub fn record_name(&self) -> Cow<'a, str> {
        match *self {
            Operation::Tool(name) | Operation::Prompt(name) => Cow::Borrowed(name),
            Operation::Resource(uri) => Cow::Owned(format!("{RESOURCE_PREFIX}{uri}")),
        }
    }

    /// One string that [`Operation::decode`] turns back into this operation.
    pub fn encode(&self) -> String {
        match *self {
            Operation::Tool(name) => name.to_owned(),
            Operation::Resource(uri) => format!("{RESOURCE_PREFIX}{uri}"),
            Operation::Prompt(name) => format!("{PROMPT_PREFIX}{name}"),
        }
    }

    pub fn decode(text: &'a str) -> Self {
        if let Some(uri) = text.strip_prefix(RESOURCE_PREFIX) {
            Operation::Resource(uri)
        } else if let Some(name) = text.strip_prefix(PROMPT_PREFIX) {
            Operation::Prompt(name)
        } else {
            Operation::Tool(text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_round_trip_through_their_encoding() {
        for op in [
            Operation::Tool("agentos.mem_set"),
            Operation::Resource("agentos+mcp://fs/file:///a?b=c"),
            Operation::Prompt("mcp.fs.greet"),
        ] {
            assert_eq!(Operation::decode(&op.encode()), op);
        }
        assert_eq!(
            Operation::Resource("agentos+mcp://fs/x").record_name(),
            "resource:agentos+mcp://fs/x"
        );
        assert_eq!(Operation::Prompt("mcp.fs.greet").record_name(), "mcp.fs.greet");
    }
}
