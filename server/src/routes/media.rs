//! Media: the original files (with ranges), clips cut from them, and thumbnails.

use actix_files::NamedFile;
use actix_web::{HttpRequest, HttpResponse, get, http::header, web};
use kairos_store::{AssetKind, transcript};
use serde::Deserialize;

use super::invalid;
use crate::AppState;
use crate::error::ApiError;

/// The original file of asset `id` is no longer where it was ingested from.
fn media_not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: "media_not_found",
        what: "original file of asset",
        id: id.to_string(),
    }
}

/// The original file, with range requests (a browser's `<video>` seeks with them), `ETag` and
/// `Last-Modified`.
#[utoipa::path(
    tag = "media",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "The original file", content_type = "application/octet-stream"),
        (status = 206, description = "A byte range of it (`Range: bytes=…`)"),
        (status = 404, description = "`asset_not_found`, `media_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}/media")]
pub async fn media(
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ClipParams {
    /// Start: `HH:MM:SS.mmm`, `MM:SS` or seconds.
    pub from: String,
    /// End, in the same forms.
    pub to: String,
    /// Container of the clip: mp4 (default for video), mkv, webm, m4a (default for audio), mp3,
    /// wav.
    pub format: Option<String>,
}

/// A moment cut out of a video or recording as a file of its own (stream copy from a key frame,
/// else a frame-accurate re-encode), as a download.
#[utoipa::path(
    tag = "media",
    params(("id" = String, Path, description = "Asset id"), ClipParams),
    responses(
        (status = 200, description = "The clip, as an attachment", content_type = "application/octet-stream"),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`, `media_not_found`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`clip_unavailable`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}/clip")]
pub async fn clip(
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

/// The thumbnail of an asset's first moment (JPEG).
#[utoipa::path(
    tag = "media",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "JPEG", content_type = "image/jpeg"),
        (status = 404, description = "`asset_not_found`, `thumbnail_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}/thumbnail")]
pub async fn asset_thumbnail(
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

/// The thumbnail of one moment (JPEG).
#[utoipa::path(
    tag = "media",
    params(("id" = String, Path, description = "Moment (segment) id")),
    responses(
        (status = 200, description = "JPEG", content_type = "image/jpeg"),
        (status = 404, description = "`thumbnail_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/segments/{id}/thumbnail")]
pub async fn segment_thumbnail(
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
