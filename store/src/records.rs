//! The records the catalog holds: assets, segments (moments) and jobs.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What an asset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    Image,
    Video,
    Audio,
}

/// Where an asset is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssetStatus {
    Queued,
    Indexing,
    Ready,
    Failed,
    /// Its source file was deleted or moved away (seen by `kairos watch`): out of search
    /// results, kept with everything it had, ready again when the file turns up.
    Missing,
}

/// What a segment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Image,
    Shot,
    Speech,
    Ocr,
    /// A keyframe inside a long shot (one every few seconds), so that a long static shot is
    /// searchable inside and not only by its first frame.
    Keyframe,
}

macro_rules! text_enum {
    ($ty:ident, $field:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    other => Err(Error::InvalidInput {
                        field: $field,
                        message: format!("{other:?} is not one of: {}", [$($text),+].join(", ")),
                    }),
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(AssetKind, "kind", Image => "image", Video => "video", Audio => "audio");
text_enum!(AssetStatus, "status", Queued => "queued", Indexing => "indexing", Ready => "ready", Failed => "failed", Missing => "missing");
text_enum!(SegmentKind, "segment kind", Image => "image", Shot => "shot", Speech => "speech", Ocr => "ocr", Keyframe => "keyframe");

/// One source file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Asset {
    pub id: String,
    /// BLAKE3 of the file's bytes: the same content is never indexed twice.
    pub content_hash: String,
    pub path: String,
    pub kind: AssetKind,
    pub mime: Option<String>,
    pub bytes: i64,
    /// Source modification time, seconds since the epoch (cheap skip on re-ingest).
    pub mtime: Option<i64>,
    pub duration_ms: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub captured_at: Option<DateTime<Utc>>,
    pub ingested_at: DateTime<Utc>,
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Vec<String>,
    pub credit: Option<String>,
    pub camera: Option<String>,
    pub gps_lat: Option<f64>,
    pub gps_lon: Option<f64>,
    pub collection: Option<String>,
    pub language: Option<String>,
    /// 64-bit perceptual hash (near-duplicate search without any model).
    pub phash: Option<u64>,
    /// Container and stream facts of a video or recording.
    pub media: Option<MediaInfo>,
    pub status: AssetStatus,
    pub error: Option<String>,
}

impl Asset {
    /// A new asset with only the facts every file has; the rest is filled by the indexer.
    pub fn new(content_hash: String, path: String, kind: AssetKind, bytes: i64) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            content_hash,
            path,
            kind,
            mime: None,
            bytes,
            mtime: None,
            duration_ms: None,
            width: None,
            height: None,
            captured_at: None,
            ingested_at: Utc::now(),
            title: None,
            caption: None,
            keywords: Vec::new(),
            credit: None,
            camera: None,
            gps_lat: None,
            gps_lon: None,
            collection: None,
            language: None,
            phash: None,
            media: None,
            status: AssetStatus::Queued,
            error: None,
        }
    }

    /// The file name part of the source path.
    pub fn file_name(&self) -> &str {
        self.path.rsplit(['/', '\\']).next().unwrap_or(&self.path)
    }
}

/// Container and stream facts of a video or recording (from ffprobe for video).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaInfo {
    /// Container format as ffprobe names it (`mov,mp4,m4a,3gp,3g2,mj2`, `matroska,webm`, …).
    pub container: Option<String>,
    pub video_codec: Option<String>,
    /// Frames per second of the video stream.
    pub frame_rate: Option<f64>,
    /// Whether the video is interlaced (analysed one field per frame).
    #[serde(default)]
    pub interlaced: bool,
    pub audio_codec: Option<String>,
    /// Audio tracks in the file (the first is the one transcribed).
    pub audio_tracks: u32,
    /// ISO 639 language tags of the audio tracks, in track order, where the file gives them.
    pub audio_languages: Vec<String>,
    /// Overall bit rate, bits per second.
    pub bit_rate: Option<i64>,
}

/// A time range of an asset ("moment"); an image is one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Segment {
    pub id: String,
    pub asset_id: String,
    pub kind: SegmentKind,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Transcript or on-screen text.
    pub text: Option<String>,
    /// Thumbnail path relative to the data directory.
    pub thumbnail: Option<String>,
}

impl Segment {
    /// A new segment of `asset_id`.
    pub fn new(asset_id: &str, kind: SegmentKind, start_ms: i64, end_ms: i64) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            asset_id: asset_id.to_string(),
            kind,
            start_ms,
            end_ms,
            text: None,
            thumbnail: None,
        }
    }
}

/// An ingest job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub source: String,
    pub status: String,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    pub skipped: i64,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why a `failed` job stopped (the archive could not be written, say); file errors are
    /// listed per file instead.
    pub error: Option<String>,
    /// The request that started the job (paths and options, JSON), when its runner kept it.
    #[serde(skip)]
    pub spec: Option<String>,
    /// When the process running the job last said it was alive.
    #[serde(skip)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Whether someone asked the job to stop.
    #[serde(skip)]
    pub cancel_requested: bool,
}

impl Job {
    /// A running job whose runner has not beaten its heartbeat for this long was killed.
    pub const STALE_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
}

/// What happened to one file of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFile {
    pub path: String,
    /// `indexed`, `skipped` or `failed`.
    pub status: String,
    pub asset_id: Option<String>,
    pub error: Option<String>,
}

/// Result counts by kind, collection, language and capture year (value → assets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Facets {
    pub kind: std::collections::BTreeMap<String, u64>,
    pub collection: std::collections::BTreeMap<String, u64>,
    pub language: std::collections::BTreeMap<String, u64>,
    pub year: std::collections::BTreeMap<String, u64>,
}

/// Counts assets into [`Facets`] borrowing their values: a search counts ~200 candidates, and
/// owning a key per asset and field was 800 allocations a search.
#[derive(Debug, Default)]
pub(crate) struct FacetCounter<'a> {
    kind: foldhash::HashMap<&'static str, u64>,
    collection: foldhash::HashMap<&'a str, u64>,
    language: foldhash::HashMap<&'a str, u64>,
    year: foldhash::HashMap<i32, u64>,
}

impl<'a> FacetCounter<'a> {
    pub(crate) fn count(&mut self, asset: &'a FacetFields) {
        *self.kind.entry(asset.kind.as_str()).or_default() += 1;
        if let Some(c) = &asset.collection {
            *self.collection.entry(c).or_default() += 1;
        }
        if let Some(l) = &asset.language {
            *self.language.entry(l).or_default() += 1;
        }
        if let Some(t) = asset.captured_at {
            *self.year.entry(t.year()).or_default() += 1;
        }
    }

    pub(crate) fn add_to(self, facets: &mut Facets) {
        let add = |to: &mut std::collections::BTreeMap<String, u64>, key: String, n: u64| {
            *to.entry(key).or_default() += n;
        };
        for (k, n) in self.kind {
            add(&mut facets.kind, k.to_string(), n);
        }
        for (k, n) in self.collection {
            add(&mut facets.collection, k.to_string(), n);
        }
        for (k, n) in self.language {
            add(&mut facets.language, k.to_string(), n);
        }
        for (y, n) in self.year {
            // As `%Y` writes it: four digits at least, a sign past 9999.
            add(
                &mut facets.year,
                chrono::NaiveDate::from_yo_opt(y, 1)
                    .map_or_else(|| y.to_string(), |d| d.format("%Y").to_string()),
                n,
            );
        }
    }
}

/// The fields of an asset that [`Facets`] count: all a search reads of the candidates that do
/// not make its page.
#[derive(Debug, Clone, PartialEq)]
pub struct FacetFields {
    pub kind: AssetKind,
    pub collection: Option<String>,
    pub language: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
}

/// Metadata a user may change on an asset; `None` leaves a field as it is, an empty string (or
/// list) clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetadataPatch {
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub collection: Option<String>,
}

impl MetadataPatch {
    /// Applies the patch to `asset`.
    pub fn apply(&self, asset: &mut Asset) {
        let set = |value: &Option<String>, slot: &mut Option<String>| {
            if let Some(v) = value {
                let v = v.trim();
                *slot = (!v.is_empty()).then(|| v.to_string());
            }
        };
        set(&self.title, &mut asset.title);
        set(&self.caption, &mut asset.caption);
        set(&self.collection, &mut asset.collection);
        if let Some(k) = &self.keywords {
            asset.keywords = k
                .iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
        }
    }

    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.caption.is_none()
            && self.keywords.is_none()
            && self.collection.is_none()
    }
}

/// An API key as stored: its secret is only ever shown once, at creation, and kept hashed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The first characters of the key, to recognise it in lists (`kairos_ab12cd34…`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Counts for `kairos doctor` and the health endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CatalogStats {
    pub assets: i64,
    pub ready: i64,
    pub failed: i64,
    pub segments: i64,
}

/// The bits of `id` when it is a UUID in the form Kairos writes ids (lowercase, hyphenated):
/// the indexes keep such ids as numbers and give them back as [`uuid_string`] writes them.
pub(crate) fn canonical_uuid(id: &str) -> Option<u128> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (u.hyphenated().encode_lower(&mut buf) == id).then(|| u.as_u128())
}

/// An asset's or segment's id as a search carries it: the bits of a UUID in the form Kairos
/// writes ids (all the ids it makes), else the id's text. A search handles some 400 ids; as
/// strings each was made, hashed and compared byte by byte, and freed. Made by
/// [`SearchId::new`], so that one id has one form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SearchId {
    Uuid(u128),
    Text(Box<str>),
}

impl SearchId {
    pub fn new(id: &str) -> Self {
        canonical_uuid(id).map_or_else(|| SearchId::Text(id.into()), SearchId::Uuid)
    }

    /// The id as the catalog holds it.
    pub fn to_id(&self) -> String {
        match self {
            SearchId::Uuid(bits) => uuid_string(*bits),
            SearchId::Text(text) => text.to_string(),
        }
    }
}

/// As the ids' texts compare: the lowercase hexadecimal digits of two UUIDs in Kairos's form
/// sort as their bits do.
impl Ord for SearchId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (SearchId::Uuid(a), SearchId::Uuid(b)) => a.cmp(b),
            (SearchId::Text(a), SearchId::Text(b)) => a.cmp(b),
            _ => self.to_id().cmp(&other.to_id()),
        }
    }
}

impl PartialOrd for SearchId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for SearchId {
    fn eq(&self, other: &str) -> bool {
        match self {
            SearchId::Uuid(bits) => canonical_uuid(other) == Some(*bits),
            SearchId::Text(text) => **text == *other,
        }
    }
}

impl PartialEq<String> for SearchId {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl PartialEq<&str> for SearchId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl std::fmt::Display for SearchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SearchId::Uuid(bits) => uuid::Uuid::from_u128(*bits).hyphenated().fmt(f),
            SearchId::Text(text) => f.write_str(text),
        }
    }
}

/// The id of a UUID's bits, in the form Kairos writes ids.
pub(crate) fn uuid_string(bits: u128) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    // One allocation of the 36 bytes: `to_string` on the `&mut str` went through `Display`,
    // growing its string as it wrote (a search makes hundreds of these).
    String::from(
        &*uuid::Uuid::from_u128(bits)
            .hyphenated()
            .encode_lower(&mut buf),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_written_by_kairos_round_trip_through_their_bits() {
        let id = "0191e3a4-7b2c-7d10-9f3e-4a5b6c7d8e9f";
        let bits = canonical_uuid(id).expect("a lowercase hyphenated UUID");
        assert_eq!(uuid_string(bits), id);
        // Another spelling of the same UUID is not Kairos's: it keeps its string.
        assert_eq!(canonical_uuid(&id.to_uppercase()), None);
        assert_eq!(uuid_string(0), "00000000-0000-0000-0000-000000000000");
    }

    /// A search id is the bits of a UUID written as Kairos writes them, else the text; either
    /// way it gives the id back, equals its text and sorts as the texts do.
    #[test]
    fn search_ids_keep_their_text_and_its_order() {
        let ids = [
            "0191e3a4-7b2c-7d10-9f3e-4a5b6c7d8e9f",
            "0191E3A4-7B2C-7D10-9F3E-4A5B6C7D8E9F",
            "a1",
            "f191e3a4-7b2c-7d10-9f3e-4a5b6c7d8e9f",
            "00000000-0000-0000-0000-000000000001",
            "",
            "0191e3a4",
        ];
        let search: Vec<SearchId> = ids.iter().map(|id| SearchId::new(id)).collect();
        assert!(matches!(search[0], SearchId::Uuid(_)));
        assert!(matches!(search[1], SearchId::Text(_)));
        for (id, s) in ids.iter().zip(&search) {
            assert_eq!(s.to_id(), *id);
            assert_eq!(s.to_string(), *id);
            assert!(*s == *id);
        }
        assert!(search[0] != "0191e3a4-7b2c-7d10-9f3e-4a5b6c7d8e90");
        for (a, sa) in ids.iter().zip(&search) {
            for (b, sb) in ids.iter().zip(&search) {
                assert_eq!(sa.cmp(sb), a.cmp(b), "{a} against {b}");
            }
        }
    }

    #[test]
    fn facets_count_each_value_once_per_asset() {
        let at = |y: i32| {
            chrono::NaiveDate::from_ymd_opt(y, 6, 1)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_utc()
        };
        let assets = [
            FacetFields {
                kind: AssetKind::Video,
                collection: Some("games".into()),
                language: Some("fr".into()),
                captured_at: Some(at(2024)),
            },
            FacetFields {
                kind: AssetKind::Image,
                collection: Some("games".into()),
                language: None,
                captured_at: Some(at(812)),
            },
            FacetFields {
                kind: AssetKind::Image,
                collection: None,
                language: Some("en".into()),
                captured_at: None,
            },
        ];
        let mut counter = FacetCounter::default();
        for a in &assets {
            counter.count(a);
        }
        let mut facets = Facets::default();
        counter.add_to(&mut facets);
        let map = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        assert_eq!(facets.kind, map(&[("image", 2), ("video", 1)]));
        assert_eq!(facets.collection, map(&[("games", 2)]));
        assert_eq!(facets.language, map(&[("en", 1), ("fr", 1)]));
        // As `%Y` writes years: four digits.
        assert_eq!(facets.year, map(&[("0812", 1), ("2024", 1)]));
    }
}
