//! The `/api/v1` routes and the web page.

use actix_files::NamedFile;
use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use futures_util::StreamExt;
use kairos_indexer::query::SearchOutcome;
use kairos_indexer::{QueryInput, query};
use kairos_store::{
    AssetKind, Filters, Group, Mode, SegmentKind, TranscriptFormat, timeline, transcript,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::{AppState, MAX_IMAGE_UPLOAD};

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index)
        .service(health)
        .service(search)
        .service(search_image)
        .service(asset)
        .service(asset_transcript)
        .service(asset_media)
        .service(asset_clip)
        .service(asset_moments)
        .service(asset_thumbnail)
        .service(segment_thumbnail);
}

const INDEX_HTML: &str = include_str!("../../web/index.html");

#[get("/")]
async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX_HTML)
}

#[get("/api/v1/health")]
async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.store.catalog.stats().await?;
    Ok(HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "assets": stats,
        "models": {
            "clip": state.analyzers.clip.is_some(),
            "sentence": state.analyzers.sentence.is_some(),
            "speech": state.analyzers.whisper.is_some(),
        },
        "notices": state.analyzers.notice_texts(),
    })))
}

/// `POST /api/v1/search` body.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Words to search for.
    pub query: Option<String>,
    pub kind: Option<String>,
    pub collection: Option<String>,
    /// Capture date from (RFC 3339 or YYYY-MM-DD), inclusive.
    pub from: Option<String>,
    /// Capture date to (RFC 3339 or YYYY-MM-DD), inclusive.
    pub to: Option<String>,
    pub mode: Option<String>,
    /// assets (one hit per asset, the default) or moments (one hit per moment).
    pub group: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest {
        code: "invalid_query",
        message: format!("{field}: {message}"),
    }
}

impl SearchBody {
    fn into_input(self, image: Option<Vec<u8>>) -> Result<QueryInput, ApiError> {
        let kind = self
            .kind
            .as_deref()
            .map(|k| k.parse::<AssetKind>().map_err(|e| invalid("kind", e)))
            .transpose()?;
        let mode = match self.mode.as_deref() {
            Some(m) => m.parse::<Mode>().map_err(|e| invalid("mode", e))?,
            None => Mode::Hybrid,
        };
        let group = match self.group.as_deref() {
            Some(g) => g.parse::<Group>().map_err(|e| invalid("group", e))?,
            None => Group::Assets,
        };
        let limit = self.limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("{limit} is not between 1 and 200"),
            ));
        }
        Ok(QueryInput {
            text: self.query,
            image,
            filters: Filters {
                kind,
                collection: self.collection,
                captured_after: self
                    .from
                    .as_deref()
                    .map(|v| Filters::parse_date("from", v, false))
                    .transpose()?,
                captured_before: self
                    .to
                    .as_deref()
                    .map(|v| Filters::parse_date("to", v, true))
                    .transpose()?,
            },
            mode,
            group,
            limit,
            offset: self.offset.unwrap_or(0),
        })
    }
}

#[post("/api/v1/search")]
async fn search(
    state: web::Data<AppState>,
    body: web::Json<SearchBody>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner().into_input(None)?;
    let outcome = query::search(&state.store, &state.analyzers, input).await?;
    Ok(HttpResponse::Ok().json(linked(outcome)))
}

/// `POST /api/v1/search/image`: multipart with an `image` file part and, optionally, the fields
/// of [`SearchBody`] as text parts.
#[post("/api/v1/search/image")]
async fn search_image(
    state: web::Data<AppState>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let bad = |m: String| ApiError::InvalidRequest {
        code: "invalid_multipart",
        message: m,
    };
    let mut image: Option<Vec<u8>> = None;
    let mut fields = serde_json::Map::new();
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|e| bad(format!("multipart body: {e}")))?;
        let name = part.name().unwrap_or("").to_string();
        let mut data = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| bad(format!("part {name:?}: {e}")))?;
            if data.len() + chunk.len() > MAX_IMAGE_UPLOAD {
                return Err(ApiError::InvalidRequest {
                    code: "payload_too_large",
                    message: format!("part {name:?} exceeds {} MiB", MAX_IMAGE_UPLOAD >> 20),
                });
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "image" => image = Some(data),
            "limit" | "offset" => {
                let text = String::from_utf8_lossy(&data).trim().to_string();
                let n: usize = text
                    .parse()
                    .map_err(|_| invalid(&name, format!("{text:?} is not a number")))?;
                fields.insert(name, n.into());
            }
            "query" | "kind" | "collection" | "from" | "to" | "mode" | "group" => {
                fields.insert(name, String::from_utf8_lossy(&data).into_owned().into());
            }
            other => return Err(bad(format!("unknown part {other:?}"))),
        }
    }
    let image = image.ok_or_else(|| bad("the `image` part is missing".into()))?;
    let body: SearchBody = serde_json::from_value(fields.into()).map_err(|e| bad(e.to_string()))?;
    let outcome = query::search(
        &state.store,
        &state.analyzers,
        body.into_input(Some(image))?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(linked(outcome)))
}

/// Where a segment's thumbnail is served.
pub fn thumbnail_url(segment_id: &str) -> String {
    format!("/api/v1/segments/{segment_id}/thumbnail")
}

/// Results with the thumbnail URL of every moment that has one.
fn linked(mut outcome: SearchOutcome) -> SearchOutcome {
    let r = &mut outcome.response;
    let moments = r
        .hits
        .iter_mut()
        .flat_map(|h| h.moments.iter_mut())
        .chain(r.moments.iter_mut().map(|m| &mut m.moment));
    for m in moments {
        if m.has_thumbnail {
            m.thumbnail = Some(thumbnail_url(&m.segment_id));
        }
    }
    outcome
}

#[get("/api/v1/assets/{id}")]
async fn asset(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let asset = state.store.catalog.asset(&id).await?;
    let segments = state.store.catalog.segments(&id).await?;
    Ok(HttpResponse::Ok().json(json!({"asset": asset, "segments": segments})))
}

/// `GET /api/v1/assets/{id}/transcript?format=json|vtt|srt` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscriptParams {
    /// json (the default), vtt or srt.
    pub format: Option<String>,
}

#[get("/api/v1/assets/{id}/transcript")]
async fn asset_transcript(
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<TranscriptParams>,
) -> Result<HttpResponse, ApiError> {
    let format = params
        .format
        .as_deref()
        .unwrap_or("json")
        .parse::<TranscriptFormat>()?;
    let record = state.store.catalog.asset(&id).await?;
    let body = transcript::export(&state.store.catalog, &record, format).await?;
    Ok(HttpResponse::Ok()
        .content_type(format.mime())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "inline; filename=\"{}\"",
                transcript::download_name(&record, format)
            ),
        ))
        .body(body))
}

/// The original file of asset `id` is no longer where it was ingested from.
fn media_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: "media_not_found",
        what: "original file of asset",
        id: id.to_string(),
    }
}

/// `GET /api/v1/assets/{id}/media`: the original file, with range requests (a browser's
/// `<video>` seeks with them), `ETag` and `Last-Modified`.
#[get("/api/v1/assets/{id}/media")]
async fn asset_media(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = state.store.catalog.asset(&id).await?;
    let file = NamedFile::open_async(&record.path)
        .await
        .map_err(|_| media_not_found(&id))?;
    let mut file =
        file.use_last_modified(true)
            .set_content_disposition(header::ContentDisposition {
                disposition: header::DispositionType::Inline,
                parameters: vec![header::DispositionParam::Filename(
                    record.file_name().to_string(),
                )],
            });
    if let Some(mime) = record.mime.as_deref().and_then(|m| m.parse().ok()) {
        file = file.set_content_type(mime);
    }
    Ok(file.into_response(&req))
}

/// Longest clip the API cuts (a longer one is a job for `kairos clip`).
const MAX_CLIP_MS: i64 = 30 * 60 * 1000;

/// `GET /api/v1/assets/{id}/clip?from=…&to=…` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipParams {
    /// Start: `HH:MM:SS.mmm`, `MM:SS` or seconds.
    pub from: String,
    /// End, in the same forms.
    pub to: String,
    /// Container of the clip: mp4 (default for video), mkv, webm, m4a (default for audio), mp3,
    /// wav.
    pub format: Option<String>,
}

/// `GET /api/v1/assets/{id}/clip`: a moment cut out of a video or recording as a file of its
/// own (stream copy from a key frame, else a frame-accurate re-encode), as a download.
#[get("/api/v1/assets/{id}/clip")]
async fn asset_clip(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<ClipParams>,
) -> Result<HttpResponse, ApiError> {
    use kairos_indexer::video::{Tools, clip_export};
    let record = state.store.catalog.asset(&id).await?;
    let is_video = match record.kind {
        AssetKind::Video => true,
        AssetKind::Audio => false,
        AssetKind::Image => {
            return Err(ApiError::Conflict {
                code: "clip_unavailable",
                message: format!("asset {} is an image: it has no moments to cut", record.id),
            });
        }
    };
    let from = clip_export::parse_timecode("from", &params.from)?;
    let to = clip_export::parse_timecode("to", &params.to)?;
    let to = record.duration_ms.map_or(to, |d| to.min(d));
    if to <= from {
        return Err(invalid(
            "to",
            "the clip must end after it starts (and before the end)",
        ));
    }
    if to - from > MAX_CLIP_MS {
        return Err(invalid(
            "to",
            format!(
                "the API cuts clips of up to {} minutes",
                MAX_CLIP_MS / 60_000
            ),
        ));
    }
    let format = params
        .format
        .as_deref()
        .unwrap_or(if is_video { "mp4" } else { "m4a" })
        .to_ascii_lowercase();
    let allowed: &[&str] = if is_video {
        &["mp4", "mkv", "webm", "mov"]
    } else {
        &["m4a", "mp3", "wav", "flac"]
    };
    if !allowed.contains(&format.as_str()) {
        return Err(invalid(
            "format",
            format!("{format:?} is not one of: {}", allowed.join(", ")),
        ));
    }
    let source = std::path::PathBuf::from(&record.path);
    if !source.is_file() {
        return Err(media_not_found(&id));
    }
    let scratch = state.store.data_dir().join("tmp");
    fs_err::create_dir_all(&scratch).map_err(|e| ApiError::Internal(e.to_string()))?;
    let out = tempfile::Builder::new()
        .prefix("clip-")
        .suffix(&format!(".{format}"))
        .tempfile_in(&scratch)
        .map_err(|e| ApiError::Internal(format!("a scratch file in {}: {e}", scratch.display())))?;
    let path = out.path().to_path_buf();
    let cut = path.clone();
    web::block(move || clip_export::export(&Tools::from_env(), &source, is_video, from, to, &cut))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            kairos_indexer::Error::Query(message) => ApiError::InvalidRequest {
                code: "invalid_query",
                message,
            },
            other => ApiError::Internal(other.to_string()),
        })?;
    // The open file outlives its name: the scratch file is removed as soon as it is open.
    let file = NamedFile::open_async(&path)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    drop(out);
    let stem = record
        .file_name()
        .rsplit_once('.')
        .map_or(record.file_name(), |(s, _)| s)
        .to_string();
    let name = format!(
        "{stem} {}-{}.{format}",
        transcript::timestamp(from, '.').replace(':', "."),
        transcript::timestamp(to, '.').replace(':', ".")
    );
    let file = file.set_content_disposition(header::ContentDisposition {
        disposition: header::DispositionType::Attachment,
        parameters: vec![header::DispositionParam::Filename(name)],
    });
    Ok(file.into_response(&req))
}

/// `GET /api/v1/assets/{id}/moments?kind=shot,speech` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MomentsParams {
    /// Comma-separated segment kinds to list (shot, keyframe, speech, ocr, image); all by default.
    pub kind: Option<String>,
}

/// `GET /api/v1/assets/{id}/moments`: the asset's shots, keyframes and speech in time order, with
/// timecodes and thumbnail URLs.
#[get("/api/v1/assets/{id}/moments")]
async fn asset_moments(
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<MomentsParams>,
) -> Result<HttpResponse, ApiError> {
    let kinds = params
        .kind
        .as_deref()
        .map(|k| {
            k.split(',')
                .map(|k| k.trim().parse::<SegmentKind>())
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(|e| invalid("kind", e))?;
    let record = state.store.catalog.asset(&id).await?;
    let mut moments = timeline::timeline(&state.store.catalog, &id, kinds.as_deref()).await?;
    for m in &mut moments {
        if m.has_thumbnail {
            m.thumbnail = Some(thumbnail_url(&m.segment_id));
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "asset_id": record.id,
        "kind": record.kind,
        "duration_ms": record.duration_ms,
        "media": format!("/api/v1/assets/{}/media", record.id),
        "moments": moments,
    })))
}

async fn jpeg_file(
    state: &AppState,
    relative: Option<String>,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let missing = || ApiError::NotFound {
        code: "thumbnail_not_found",
        what: "thumbnail of",
        id: id.to_string(),
    };
    let relative = relative.ok_or_else(missing)?;
    let bytes = fs_err::read(state.store.thumbnails.absolute(&relative)).map_err(|_| missing())?;
    Ok(HttpResponse::Ok()
        .content_type("image/jpeg")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400, immutable"))
        .body(bytes))
}

#[get("/api/v1/assets/{id}/thumbnail")]
async fn asset_thumbnail(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.store.catalog.asset(&id).await?;
    let first = state
        .store
        .catalog
        .segments(&id)
        .await?
        .into_iter()
        .find(|s| s.thumbnail.is_some());
    jpeg_file(&state, first.and_then(|s| s.thumbnail), &id).await
}

#[get("/api/v1/segments/{id}/thumbnail")]
async fn segment_thumbnail(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    // Only paths the catalog holds are served: an id never becomes a path.
    let relative = state
        .store
        .catalog
        .segment(&id)
        .await
        .ok()
        .and_then(|s| s.thumbnail);
    jpeg_file(&state, relative, &id).await
}
