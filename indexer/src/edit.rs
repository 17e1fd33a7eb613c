//! Changes users make to indexed assets: their metadata (re-indexed and, for an image, its
//! description re-embedded) and their removal.

use std::sync::Arc;

use kairos_store::{Asset, AssetKind, MetadataPatch, SegmentKind, Space, Store, VectorPoint};

use crate::analysis::Analyzers;
use crate::error::{Error, Result};
use crate::ingest::description;

/// Applies `patch` to asset `id` in the catalog and every index. An image's sentence vector is
/// made again from its new title, caption and keywords when a sentence model is installed.
pub async fn update_metadata(
    store: &Store,
    analyzers: &Arc<Analyzers>,
    id: &str,
    patch: &MetadataPatch,
) -> Result<Asset> {
    let asset = store.update_metadata(id, patch).await?;
    let touches_text = patch.title.is_some() || patch.caption.is_some() || patch.keywords.is_some();
    if asset.kind != AssetKind::Image || !touches_text {
        return Ok(asset);
    }
    if analyzers.sentence.is_none() {
        return Ok(asset);
    }
    let Some(segment) = store
        .catalog
        .segments(&asset.id)
        .await?
        .into_iter()
        .find(|s| s.kind == SegmentKind::Image)
    else {
        return Ok(asset);
    };
    let vectors = store.vectors.clone();
    let analyzers = analyzers.clone();
    let changed = asset.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        match description(&changed) {
            Some(text) => {
                let sentence = analyzers.sentence.as_ref().expect("checked above");
                let vector = sentence
                    .embed(&[text.as_str()])?
                    .pop()
                    .ok_or_else(|| Error::Task("the sentence model returned nothing".into()))?;
                vectors.upsert(
                    Space::Text,
                    vec![VectorPoint {
                        segment_id: segment.id.clone(),
                        asset_id: changed.id.clone(),
                        asset_kind: changed.kind,
                        segment_kind: segment.kind,
                        start_ms: segment.start_ms,
                        end_ms: segment.end_ms,
                        captured_at: changed.captured_at,
                        collection: changed.collection.clone(),
                        language: changed.language.clone(),
                        vector,
                    }],
                )?;
            }
            None => vectors.delete_segment(Space::Text, &segment.id)?,
        }
        vectors.flush()?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    Ok(asset)
}
