//! An asset's moments in time order: its shots, keyframes and speech, with timecodes.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::Result;
use crate::records::SegmentKind;
use crate::transcript::timestamp;

/// One moment of an asset's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub segment_id: String,
    pub kind: SegmentKind,
    pub start_ms: i64,
    pub end_ms: i64,
    /// `HH:MM:SS.mmm`.
    pub start: String,
    pub end: String,
    /// What was said (speech) or written on screen.
    pub text: Option<String>,
    /// Where its thumbnail is served (set by the HTTP layer).
    pub thumbnail: Option<String>,
    #[serde(skip)]
    pub has_thumbnail: bool,
}

/// The moments of `asset_id` in time order, only of `kinds` when given.
pub async fn timeline(
    catalog: &Catalog,
    asset_id: &str,
    kinds: Option<&[SegmentKind]>,
) -> Result<Vec<TimelineEntry>> {
    let mut segments = catalog.segments(asset_id).await?;
    segments.sort_by_key(|s| (s.start_ms, s.end_ms, s.kind.as_str()));
    Ok(segments
        .into_iter()
        .filter(|s| kinds.is_none_or(|k| k.contains(&s.kind)))
        .map(|s| TimelineEntry {
            start: timestamp(s.start_ms, '.'),
            end: timestamp(s.end_ms, '.'),
            segment_id: s.id,
            kind: s.kind,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            text: s.text,
            thumbnail: None,
            has_thumbnail: s.thumbnail.is_some(),
        })
        .collect())
}
