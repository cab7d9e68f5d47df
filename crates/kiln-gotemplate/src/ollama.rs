//! Ollama's prompt semantics (placeholder, filled in below).
pub(crate) const TOOL_PROPERTY: &str = "api.ToolProperty";
