//! `completion/complete`: suggestions for an argument of a prompt or a resource template, asked
//! of the provider that owns it (found by the namespaced prompt name or URI template, which go to
//! it as its own), for callers that may use that provider's prompts or resources. A reference to
//! anything else is "not found", like an unknown prompt.

use rmcp::model::{CompleteRequestParams, CompleteResult, Reference};

use super::resources::{ResourceError, may_use_prompts, may_use_resources, split_prompt_name, split_uri};
use super::{Caller, Registry};

impl Registry {
    pub async fn complete_for(
        &self,
        caller: &Caller,
        mut request: CompleteRequestParams,
    ) -> Result<CompleteResult, ResourceError> {
        match &mut request.r#ref {
            Reference::Prompt(prompt) => {
                if let Some(namespaced) = self.transparent_prompt(&prompt.name).await {
                    prompt.name = namespaced;
                }
            }
            Reference::Resource(template) => {
                if let Some(namespaced) = self.transparent_uri(&template.uri).await {
                    template.uri = namespaced;
                }
            }
            _ => {}
        }
        let (server, original) = match &request.r#ref {
            Reference::Prompt(prompt) => split_prompt_name(&prompt.name)
                .filter(|(server, _)| may_use_prompts(caller, server))
                .map(|(server, original)| (server.to_owned(), original.to_owned()))
                .ok_or_else(|| ResourceError::NotFound(format!("unknown prompt `{}`", prompt.name)))?,
            Reference::Resource(template) => split_uri(&template.uri)
                .filter(|(server, _)| may_use_resources(caller, server))
                .map(|(server, original)| (server.to_owned(), original.to_owned()))
                .ok_or_else(|| ResourceError::NotFound(format!("unknown resource template `{}`", template.uri)))?,
            _ => {
                return Err(ResourceError::NotFound(
                    "completion of an unknown kind of reference".into(),
                ));
            }
        };
        let provider = self
            .provider(&server)
            .ok_or_else(|| ResourceError::NotFound(format!("no MCP server `{server}`")))?;
        match &mut request.r#ref {
            Reference::Prompt(prompt) => prompt.name = original,
            Reference::Resource(template) => template.uri = original,
            _ => {}
        }
        provider.complete(request).await
    }
}
