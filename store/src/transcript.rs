//! Transcript export: an asset's speech moments as JSON, WebVTT or SubRip.

use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::records::{Asset, AssetKind, AssetStatus, Segment, SegmentKind};

/// The export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TranscriptFormat {
    Json,
    Vtt,
    Srt,
}

impl TranscriptFormat {
    /// The MIME type of a rendered transcript.
    pub fn mime(self) -> &'static str {
        match self {
            TranscriptFormat::Json => "application/json",
            TranscriptFormat::Vtt => "text/vtt; charset=utf-8",
            TranscriptFormat::Srt => "application/x-subrip; charset=utf-8",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            TranscriptFormat::Json => "json",
            TranscriptFormat::Vtt => "vtt",
            TranscriptFormat::Srt => "srt",
        }
    }
}

impl std::str::FromStr for TranscriptFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(TranscriptFormat::Json),
            "vtt" | "webvtt" => Ok(TranscriptFormat::Vtt),
            "srt" => Ok(TranscriptFormat::Srt),
            other => Err(Error::InvalidInput {
                field: "format",
                message: format!("{other:?} is not one of: json, vtt, srt"),
            }),
        }
    }
}

/// Whether `asset` has a transcript to export: a recording that was indexed. A silent recording
/// has one, with no cues.
pub fn check_exportable(asset: &Asset) -> Result<()> {
    let reason = match (asset.kind, asset.status) {
        (AssetKind::Image, _) => "it is an image, not a recording".to_string(),
        (_, AssetStatus::Ready) => return Ok(()),
        (_, AssetStatus::Failed) => format!(
            "its ingest failed: {}",
            asset.error.as_deref().unwrap_or("no reason recorded")
        ),
        (_, AssetStatus::Queued | AssetStatus::Indexing) => "it is still being indexed".to_string(),
        (_, AssetStatus::Missing) => "its file is gone from where it was indexed".to_string(),
    };
    Err(Error::NoTranscript {
        path: asset.path.clone(),
        reason,
    })
}

/// The rendered transcript of `asset` (which must be exportable), from the catalog: what the API
/// and `kairos transcript` both serve.
pub async fn export(catalog: &Catalog, asset: &Asset, format: TranscriptFormat) -> Result<String> {
    check_exportable(asset)?;
    let segments = catalog.segments(&asset.id).await?;
    Ok(render(asset, &segments, format))
}

/// A file name for the export: the recording's stem in printable ASCII, and the format's
/// extension (safe inside a quoted `Content-Disposition` filename).
pub fn download_name(asset: &Asset, format: TranscriptFormat) -> String {
    let name = asset.file_name();
    let stem: String = name
        .rsplit_once('.')
        .map_or(name, |(s, _)| s)
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    format!("{stem}.{}", format.extension())
}

/// One cue of the JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cue {
    pub segment_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// The JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TranscriptJson {
    pub asset_id: String,
    pub language: Option<String>,
    pub duration_ms: Option<i64>,
    pub segments: Vec<Cue>,
}

/// The speech moments of `segments` in time order.
pub fn cues(segments: &[Segment]) -> Vec<Cue> {
    let mut cues: Vec<Cue> = segments
        .iter()
        .filter(|s| s.kind == SegmentKind::Speech)
        .filter_map(|s| {
            let text = s.text.as_deref()?.trim();
            (!text.is_empty()).then(|| Cue {
                segment_id: s.id.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms.max(s.start_ms),
                text: text.to_string(),
            })
        })
        .collect();
    cues.sort_by_key(|c| (c.start_ms, c.end_ms));
    cues
}

/// Renders the transcript of `asset` from its segments.
pub fn render(asset: &Asset, segments: &[Segment], format: TranscriptFormat) -> String {
    let cues = cues(segments);
    match format {
        TranscriptFormat::Json => {
            let doc = TranscriptJson {
                asset_id: asset.id.clone(),
                language: asset.language.clone(),
                duration_ms: asset.duration_ms,
                segments: cues,
            };
            serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into())
        }
        TranscriptFormat::Vtt => {
            let mut out = String::from("WEBVTT\n");
            if let Some(lang) = &asset.language {
                out.push_str(&format!("Language: {lang}\n"));
            }
            for c in &cues {
                out.push_str(&format!(
                    "\n{} --> {}\n{}\n",
                    timestamp(c.start_ms, '.'),
                    timestamp(c.end_ms, '.'),
                    // "-->" would end the cue timing line's syntax inside text; blank lines end cues.
                    c.text.replace("-->", "->").replace("\n\n", "\n")
                ));
            }
            out
        }
        TranscriptFormat::Srt => {
            let mut out = String::new();
            for (i, c) in cues.iter().enumerate() {
                out.push_str(&format!(
                    "{}\n{} --> {}\n{}\n\n",
                    i + 1,
                    timestamp(c.start_ms, ','),
                    timestamp(c.end_ms, ','),
                    c.text.replace("\n\n", "\n")
                ));
            }
            out
        }
    }
}

/// `HH:MM:SS.mmm` (WebVTT, and the CLI) or `HH:MM:SS,mmm` (SubRip).
pub fn timestamp(ms: i64, sep: char) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Asset, Vec<Segment>) {
        let mut asset = Asset::new("h".into(), "/a/talk.wav".into(), AssetKind::Audio, 10);
        asset.language = Some("en".into());
        asset.duration_ms = Some(3_723_500);
        let mut later = Segment::new(&asset.id, SegmentKind::Speech, 3_661_001, 3_663_250);
        later.text = Some(" Second --> line ".into());
        let mut first = Segment::new(&asset.id, SegmentKind::Speech, 0, 1_500);
        first.text = Some("Hello there.".into());
        let mut blank = Segment::new(&asset.id, SegmentKind::Speech, 2_000, 2_100);
        blank.text = Some("  ".into());
        let shot = Segment::new(&asset.id, SegmentKind::Shot, 0, 5_000);
        (asset, vec![later, first, blank, shot])
    }

    #[test]
    fn download_names_are_quoted_header_safe() {
        let (mut asset, _) = fixture();
        assert_eq!(download_name(&asset, TranscriptFormat::Vtt), "talk.vtt");
        asset.path = "/a/Journal \"du\" soir — été.v2.mp3".into();
        assert_eq!(
            download_name(&asset, TranscriptFormat::Srt),
            "Journal _du_ soir _ _t_.v2.srt"
        );
    }

    #[test]
    fn only_indexed_recordings_export() {
        let (mut asset, _) = fixture();
        asset.status = AssetStatus::Ready;
        assert!(check_exportable(&asset).is_ok());
        asset.status = AssetStatus::Failed;
        asset.error = Some("cannot decode /a/talk.wav: truncated".into());
        let e = check_exportable(&asset).unwrap_err().to_string();
        assert!(
            e.starts_with("/a/talk.wav has no transcript: its ingest failed: cannot decode"),
            "{e}"
        );
        asset.status = AssetStatus::Indexing;
        assert!(
            check_exportable(&asset)
                .unwrap_err()
                .to_string()
                .contains("still being indexed")
        );
        asset.kind = AssetKind::Image;
        asset.status = AssetStatus::Ready;
        assert!(
            check_exportable(&asset)
                .unwrap_err()
                .to_string()
                .contains("image")
        );
    }

    #[test]
    fn vtt_orders_cues_and_formats_hours() {
        let (asset, segs) = fixture();
        let vtt = render(&asset, &segs, TranscriptFormat::Vtt);
        assert_eq!(
            vtt,
            "WEBVTT\nLanguage: en\n\n00:00:00.000 --> 00:00:01.500\nHello there.\n\n\
             01:01:01.001 --> 01:01:03.250\nSecond -> line\n"
        );
    }

    #[test]
    fn srt_numbers_cues_with_commas() {
        let (asset, segs) = fixture();
        let srt = render(&asset, &segs, TranscriptFormat::Srt);
        assert_eq!(
            srt,
            "1\n00:00:00,000 --> 00:00:01,500\nHello there.\n\n\
             2\n01:01:01,001 --> 01:01:03,250\nSecond --> line\n\n"
        );
    }

    #[test]
    fn json_keeps_only_spoken_text() {
        let (asset, segs) = fixture();
        let v: serde_json::Value =
            serde_json::from_str(&render(&asset, &segs, TranscriptFormat::Json)).unwrap();
        assert_eq!(v["language"], "en");
        assert_eq!(v["segments"].as_array().unwrap().len(), 2);
        assert_eq!(v["segments"][0]["text"], "Hello there.");
        assert!("vtt".parse::<TranscriptFormat>().is_ok());
        assert!("docx".parse::<TranscriptFormat>().is_err());
    }
}
