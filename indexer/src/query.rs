//! Queries as users give them (words, an example image, both) turned into the embeddings the
//! store searches with.

use std::path::Path;
use std::sync::Arc;

use kairos_models::ModelKind;
use kairos_store::{Filters, Group, Mode, SearchQuery, SearchResponse, Store};

use crate::analysis::Analyzers;
use crate::blocking;
use crate::error::{Error, Result};
use crate::image::{decode, fingerprint};
use crate::query_batch::QueryVectors;

/// A search as a user asks it.
#[derive(Debug, Clone, Default)]
pub struct QueryInput {
    pub text: Option<String>,
    /// Bytes of an example image.
    pub image: Option<Vec<u8>>,
    /// "Find similar": an asset id or a moment (segment) id whose picture (or, for a recording,
    /// whose words) the results should resemble. The asset itself is left out of the results.
    pub similar_to: Option<String>,
    pub filters: Filters,
    pub mode: Mode,
    pub group: Group,
    pub limit: usize,
    pub offset: usize,
    /// Candidates each signal brings to the fusion (`None`: the store's default; see
    /// [`SearchQuery::candidates`]).
    pub candidates: Option<usize>,
}

/// Results plus what could not be searched (a missing model, say).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
    if text.is_none() && input.image.is_none() && input.similar_to.is_none() {
        return Err(Error::Query(
            "give words to search for, an example image, an asset to find similar ones to, or a combination".into(),
        ));
    }
    if input.image.is_some() && input.similar_to.is_some() {
        return Err(Error::Query(
            "similar_to: give an example image or an asset to compare with, not both".into(),
        ));
    }
    let similar = match &input.similar_to {
        Some(id) => Some(similar_source(store, id).await?),
        None => None,
    };
    let mut query = SearchQuery {
        text: text.clone(),
        filters: input.filters,
        mode: input.mode,
        group: input.group,
        limit: if input.limit == 0 { 20 } else { input.limit },
        offset: input.offset,
        text_embedding: None,
        visual_embedding: None,
        phash: None,
        exclude_asset: None,
        candidates: input.candidates,
    };
    // Refused before any model runs.
    query.check()?;
    // Transformer passes take milliseconds to tens of them: off the async runtime, so a server
    // worker keeps answering other requests meanwhile; the keyword candidates, which need no
    // vector, are found at the same time. The words are handed to the shared encoder pass now
    // and asked for when the search's turn on the cores begins: the pass then embeds the words
    // of the searches queued behind it as well (see `query_batch`).
    let (started, turn_began) = tokio::sync::oneshot::channel();
    let (embedded, keywords) = tokio::join!(
        embed_query(analyzers.clone(), text.clone(), input.image, turn_began),
        store.keyword_candidates(&query, Some(started))
    );
    let embedded = embedded?;
    let keywords = keywords?;
    query.text_embedding = embedded.text;
    query.visual_embedding = embedded.visual;
    query.phash = embedded.phash;
    if let Some(source) = similar {
        // The source's picture decides what "looks like" means, as an example image would.
        if let Some(v) = source.visual {
            query.visual_embedding = Some(v);
        }
        if let Some(v) = source.text {
            query.text_embedding = Some(v);
        }
        query.phash = source.phash.or(query.phash);
        query.exclude_asset = Some(source.asset_id);
    }
    let mut notices = Vec::new();
    if analyzers.clip.is_none() && input.mode != Mode::Keyword {
        notices.extend(analyzers.missing(ModelKind::Clip));
    }
    if analyzers.sentence.is_none() && text.is_some() && input.mode != Mode::Visual {
        notices.extend(analyzers.missing(ModelKind::Sentence));
    }
    let response = store.search_with(&query, Some(keywords)).await?;
    Ok(SearchOutcome { response, notices })
}

/// What a "find similar" compares with: the stored vectors of an asset or one of its moments.
struct SimilarSource {
    asset_id: String,
    visual: Option<Vec<f32>>,
    text: Option<Vec<f32>>,
    phash: Option<u64>,
}

/// Looks up the vectors of asset or moment `id`: the picture of the moment (or of the asset's
/// first shot or image), else its words for a recording.
async fn similar_source(store: &Store, id: &str) -> Result<SimilarSource> {
    use kairos_store::{SegmentKind, Space};
    let (asset, segments) = match store.catalog.asset(id).await {
        Ok(asset) => {
            let segments = store.catalog.segments(&asset.id).await?;
            (asset, segments)
        }
        Err(kairos_store::Error::NotFound { .. }) => {
            let segment =
                store
                    .catalog
                    .segment(id)
                    .await
                    .map_err(|_| kairos_store::Error::NotFound {
                        what: "asset or moment",
                        id: id.to_string(),
                    })?;
            (store.catalog.asset(&segment.asset_id).await?, vec![segment])
        }
        Err(e) => return Err(e.into()),
    };
    let vectors = store.vectors.clone();
    let asset_id = asset.id.clone();
    let (visual, text) = blocking(move || -> Result<_> {
        let pictured = segments.iter().filter(|s| {
            matches!(
                s.kind,
                SegmentKind::Image | SegmentKind::Shot | SegmentKind::Keyframe
            )
        });
        let mut visual = None;
        for s in pictured {
            if let Some(v) = vectors.vector(Space::Visual, &s.id)? {
                visual = Some(v);
                break;
            }
        }
        let mut text = None;
        if visual.is_none() {
            for s in &segments {
                if let Some(v) = vectors.vector(Space::Text, &s.id)? {
                    text = Some(v);
                    break;
                }
            }
        }
        Ok((visual, text))
    })
    .await??;
    if visual.is_none() && text.is_none() && asset.phash.is_none() {
        return Err(Error::NothingToCompare(format!(
            "similar_to: {} ({}) has no picture or words indexed to compare with (is a CLIP model installed? `kairos models list`)",
            id,
            asset.file_name()
        )));
    }
    Ok(SimilarSource {
        asset_id,
        visual,
        text,
        phash: asset.phash,
    })
}

/// The query's vectors and fingerprint.
struct Embedded {
    text: Option<Vec<f32>>,
    visual: Option<Vec<f32>>,
    phash: Option<u64>,
}

/// Embeds the query with each installed model. Words go through the shared batcher (with the
/// other searches running now, or from its cache) and are asked for once the search's turn on
/// the cores has begun (`turn_began` sent or dropped); most often a pass has embedded them by
/// then. Passes and images run off the async runtime, on threads that are not rayon's: a rayon
/// worker waiting there would starve the encoder pass it waits for. With an example image, the
/// image decides what "looks like" means, so the words' CLIP vector is not used.
async fn embed_query(
    analyzers: Arc<Analyzers>,
    text: Option<String>,
    image: Option<Vec<u8>>,
    turn_began: tokio::sync::oneshot::Receiver<()>,
) -> Result<Embedded> {
    let mut words = text
        .as_deref()
        .map(|t| analyzers.queries.submit(&analyzers, t));
    // These words completed a batch: this search runs the pass now, for itself and the
    // searches queued behind it.
    if let Some(mut w) = words.take_if(|w| w.leads()) {
        let a = analyzers.clone();
        words = Some(
            blocking(move || {
                a.queries.start(&a, &mut w);
                w
            })
            .await?,
        );
    }
    let visual = match image {
        Some(bytes) => {
            let a = analyzers.clone();
            Some(blocking(move || embed_image(&a, &bytes)).await??)
        }
        None => None,
    };
    let _ = turn_began.await;
    let words = match words {
        None => QueryVectors::default(),
        Some(mut w) => match w.ready() {
            Some(v) => v?,
            None => {
                let a = analyzers.clone();
                blocking(move || a.queries.wait(&a, w)).await??
            }
        },
    };
    Ok(match visual {
        None => Embedded {
            text: words.sentence,
            visual: words.clip,
            phash: None,
        },
        Some((visual, phash)) => Embedded {
            text: words.sentence,
            visual,
            phash: Some(phash),
        },
    })
}

/// The CLIP vector (without a CLIP model, none) and the perceptual hash of an example image.
fn embed_image(analyzers: &Analyzers, bytes: &[u8]) -> Result<(Option<Vec<f32>>, u64)> {
    let decoded = decode(Path::new("<example image>"), bytes)?;
    let visual = match &analyzers.clip {
        Some(c) => c.embed_images(std::slice::from_ref(&decoded.image))?.pop(),
        None => None,
    };
    Ok((visual, fingerprint::phash(&decoded.image)))
}
