//! Queries as users give them (words, an example image, both) turned into the embeddings the
//! store searches with.

use std::path::Path;

use kairos_models::ModelKind;
use kairos_store::{Filters, Mode, SearchQuery, SearchResponse, Store};

use crate::analysis::Analyzers;
use crate::error::{Error, Result};
use crate::image::{decode, fingerprint};

/// A search as a user asks it.
#[derive(Debug, Clone, Default)]
pub struct QueryInput {
    pub text: Option<String>,
    /// Bytes of an example image.
    pub image: Option<Vec<u8>>,
    pub filters: Filters,
    pub mode: Mode,
    pub limit: usize,
    pub offset: usize,
}

/// Results plus what could not be searched (a missing model, say).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchOutcome {
    #[serde(flatten)]
    pub response: SearchResponse,
    /// Signals that were off for this search, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// Embeds the query with every installed model and runs the search.
pub async fn search(
    store: &Store,
    analyzers: &Analyzers,
    input: QueryInput,
) -> Result<SearchOutcome> {
    let text = input
        .text
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if text.is_none() && input.image.is_none() {
        return Err(Error::Query(
            "give words to search for, an example image, or both".into(),
        ));
    }
    let mut query = SearchQuery {
        text: text.clone(),
        filters: input.filters,
        mode: input.mode,
        limit: if input.limit == 0 { 20 } else { input.limit },
        offset: input.offset,
        ..Default::default()
    };
    let mut notices = Vec::new();
    if let Some(t) = &text {
        if let Some(s) = &analyzers.sentence {
            query.text_embedding = s.embed(&[t.as_str()])?.pop();
        }
        if let Some(c) = &analyzers.clip {
            query.visual_embedding = c.embed_texts(&[t.as_str()])?.pop();
        }
    }
    if let Some(bytes) = &input.image {
        let decoded = decode(Path::new("<example image>"), bytes)?;
        query.phash = Some(fingerprint::phash(&decoded.image));
        if let Some(c) = &analyzers.clip {
            // The example image decides what "looks like" means; it outranks the words' CLIP vector.
            query.visual_embedding = c.embed_images(std::slice::from_ref(&decoded.image))?.pop();
        }
    }
    if analyzers.clip.is_none() && input.mode != Mode::Keyword {
        notices.extend(analyzers.missing(ModelKind::Clip));
    }
    if analyzers.sentence.is_none() && text.is_some() && input.mode != Mode::Visual {
        notices.extend(analyzers.missing(ModelKind::Sentence));
    }
    let response = store.search(&query).await?;
    Ok(SearchOutcome { response, notices })
}
