//! The own names of a transparent server's prompts and resources (`test://static-text`, not
//! only `agentos+mcp://<server>/test://static-text`): a plain name a client gives is taken to
//! the transparent server that offers it, where it is handled as its namespaced name (same
//! policy, pipeline and records).

use super::Registry;
use super::resources::{ResourceProvider, namespaced_uri, split_uri};

/// Whether `uri` fits `template` (RFC 6570 level 1: each `{name}` stands for a non-empty run
/// of characters).
fn fits(template: &str, uri: &str) -> bool {
    let mut pieces = template.split('{');
    let first = pieces.next().unwrap_or_default();
    let mut literals = Vec::new();
    for piece in pieces {
        match piece.split_once('}') {
            Some((_, literal)) => literals.push(literal),
            None => return template == uri, // not a template after all
        }
    }
    let Some(mut rest) = uri.strip_prefix(first) else {
        return false;
    };
    let Some((last, between)) = literals.split_last() else {
        return rest.is_empty();
    };
    for literal in between {
        if literal.is_empty() {
            return false; // two variables in a row cannot be told apart
        }
        match rest.get(1..).and_then(|after| after.find(literal)) {
            Some(at) => rest = &rest[1 + at + literal.len()..],
            None => return false,
        }
    }
    rest.len() > last.len() && rest.ends_with(last)
}

impl Registry {
    fn transparent_providers(&self) -> Vec<(String, std::sync::Arc<dyn ResourceProvider>)> {
        self.providers().into_iter().filter(|(_, p)| p.transparent()).collect()
    }

    /// The namespaced URI of a plain resource URI that a transparent server offers (listed, or
    /// fitting one of its templates); None for a namespaced URI or one nobody offers.
    pub async fn transparent_uri(&self, uri: &str) -> Option<String> {
        if split_uri(uri).is_some() {
            return None;
        }
        let candidates = self.transparent_providers();
        if let [(server, _)] = candidates.as_slice() {
            return Some(namespaced_uri(server, uri));
        }
        for (server, provider) in &candidates {
            let listed = provider
                .list_resources()
                .await
                .is_ok_and(|list| list.iter().any(|r| r.uri == uri));
            let templated = || async {
                provider
                    .list_resource_templates()
                    .await
                    .is_ok_and(|list| list.iter().any(|t| fits(&t.uri_template, uri)))
            };
            if listed || templated().await {
                return Some(namespaced_uri(server, uri));
            }
        }
        None
    }

    /// The namespaced name (`mcp.<server>.<prompt>`) of a plain prompt name that a transparent
    /// server offers; None otherwise.
    pub async fn transparent_prompt(&self, name: &str) -> Option<String> {
        if name.starts_with("mcp.") {
            return None;
        }
        let candidates = self.transparent_providers();
        if let [(server, _)] = candidates.as_slice() {
            return Some(format!("mcp.{server}.{name}"));
        }
        for (server, provider) in &candidates {
            if provider
                .list_prompts()
                .await
                .is_ok_and(|list| list.iter().any(|p| p.name == name))
            {
                return Some(format!("mcp.{server}.{name}"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::fits;

    #[test]
    fn uris_fit_the_templates_they_fill() {
        assert!(fits("test://template/{id}/data", "test://template/123/data"));
        assert!(fits(
            "demo://resource/dynamic/text/{resourceId}",
            "demo://resource/dynamic/text/7"
        ));
        assert!(fits("file:///{path}", "file:///a/b"));
        assert!(!fits("test://template/{id}/data", "test://template//data"));
        assert!(!fits("test://template/{id}/data", "test://other/123/data"));
        assert!(!fits("test://template/{id}/data", "test://template/123/info"));
        assert!(fits("test://static-text", "test://static-text"));
        assert!(!fits("test://static-text", "test://static-text2"));
    }
}
