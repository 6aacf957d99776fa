//! The front doors. Each authenticates a caller, builds a call context, calls the registry and
//! renders the answer in its own wire format; none touches a store or a provider.

pub mod http;
pub mod mcp;
pub mod stdio;
pub mod studio;
