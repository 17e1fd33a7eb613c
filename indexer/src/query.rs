//! Queries as users give them (words, an example image, both) turned into the embeddings the
//! store searches with.

use std::path::Path;
use std::sync::Arc;

use kairos_models::ModelKind;
use kairos_store::{Filters, Group, Mode, SearchQuery, SearchResponse, Store};

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
    pub group: Group,
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
    analyzers: &Arc<Analyzers>,
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
    // Transformer passes take tens of milliseconds: off the async runtime, so a server worker
    // keeps answering other requests meanwhile.
    let embedded = {
        let analyzers = analyzers.clone();
        let text = text.clone();
        let image = input.image;
        tokio::task::spawn_blocking(move || {
            embed_query(&analyzers, text.as_deref(), image.as_deref())
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??
    };
    let query = SearchQuery {
        text: text.clone(),
        filters: input.filters,
        mode: input.mode,
        group: input.group,
        limit: if input.limit == 0 { 20 } else { input.limit },
        offset: input.offset,
        text_embedding: embedded.text,
        visual_embedding: embedded.visual,
        phash: embedded.phash,
    };
    let mut notices = Vec::new();
    if analyzers.clip.is_none() && input.mode != Mode::Keyword {
        notices.extend(analyzers.missing(ModelKind::Clip));
    }
    if analyzers.sentence.is_none() && text.is_some() && input.mode != Mode::Visual {
        notices.extend(analyzers.missing(ModelKind::Sentence));
    }
    let response = store.search(&query).await?;
    Ok(SearchOutcome { response, notices })
}

/// The query's vectors and fingerprint.
struct Embedded {
    text: Option<Vec<f32>>,
    visual: Option<Vec<f32>>,
    phash: Option<u64>,
}

/// Embeds the query with each installed model, the two encoders side by side. With an example
/// image, the image decides what "looks like" means, so the words get no CLIP pass.
fn embed_query(
    analyzers: &Analyzers,
    text: Option<&str>,
    image: Option<&[u8]>,
) -> Result<Embedded> {
    let (text_vector, visual) = rayon::join(
        || -> Result<Option<Vec<f32>>> {
            match (text, &analyzers.sentence) {
                (Some(t), Some(s)) => Ok(s.embed(&[t])?.pop()),
                _ => Ok(None),
            }
        },
        || -> Result<(Option<Vec<f32>>, Option<u64>)> {
            match (image, &analyzers.clip, text) {
                (Some(bytes), clip, _) => {
                    let decoded = decode(Path::new("<example image>"), bytes)?;
                    let phash = fingerprint::phash(&decoded.image);
                    let visual = match clip {
                        Some(c) => c.embed_images(std::slice::from_ref(&decoded.image))?.pop(),
                        None => None,
                    };
                    Ok((visual, Some(phash)))
                }
                (None, Some(c), Some(t)) => Ok((c.embed_texts(&[t])?.pop(), None)),
                _ => Ok((None, None)),
            }
        },
    );
    let (visual, phash) = visual?;
    Ok(Embedded {
        text: text_vector?,
        visual,
        phash,
    })
}
