//! Assets: listed with filters and facets, read, changed, deleted; their transcripts and moments.

use actix_web::{HttpResponse, delete, get, http::header, patch, web};
use kairos_store::{
    Asset, AssetKind, AssetPage, AssetStatus, Facets, Filters, MetadataPatch, Segment, SegmentKind,
    Sort, TranscriptFormat, timeline, transcript as transcripts,
};
use serde::{Deserialize, Serialize};

use super::{invalid, json, thumbnail_url};
use crate::AppState;
use crate::error::ApiError;

/// `GET /api/v1/assets` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// image, video or audio.
    pub kind: Option<String>,
    pub collection: Option<String>,
    pub language: Option<String>,
    /// Captured from (YYYY-MM-DD or RFC 3339), inclusive.
    pub from: Option<String>,
    /// Captured to, inclusive.
    pub to: Option<String>,
    /// ready (default), failed, indexing, or all.
    pub status: Option<String>,
    /// newest (default), captured or name.
    pub sort: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A page of the asset list with facet counts over every matching asset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetList {
    #[serde(flatten)]
    pub page: AssetPage,
    pub facets: Facets,
}

fn filters(p: &ListParams) -> Result<Filters, ApiError> {
    let nonempty = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    Ok(Filters {
        kind: p
            .kind
            .as_deref()
            .map(|k| k.parse::<AssetKind>().map_err(|e| invalid("kind", e)))
            .transpose()?,
        collection: nonempty(&p.collection),
        language: nonempty(&p.language),
        captured_after: p
            .from
            .as_deref()
            .map(|v| Filters::parse_date("from", v, false))
            .transpose()?,
        captured_before: p
            .to
            .as_deref()
            .map(|v| Filters::parse_date("to", v, true))
            .transpose()?,
    })
}

/// List assets with filters, newest first, with facet counts.
#[utoipa::path(
    tag = "assets",
    params(ListParams),
    responses(
        (status = 200, description = "A page of assets", body = AssetList),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets")]
pub async fn list(
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let filters = filters(&params)?;
    let status = match params.status.as_deref().unwrap_or("ready") {
        "all" => None,
        s => Some(s.parse::<AssetStatus>().map_err(|e| invalid("status", e))?),
    };
    let sort = match params.sort.as_deref() {
        Some(s) => s.parse::<Sort>().map_err(|e| invalid("sort", e))?,
        None => Sort::Newest,
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("{limit} is not between 1 and 500"),
        ));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(invalid("offset", format!("{offset} is negative")));
    }
    let catalog = &state.store.catalog;
    let page = catalog
        .list_assets(&filters, status, sort, limit, offset)
        .await?;
    let facets = catalog.facets(&filters, status).await?;
    Ok(json(AssetList { page, facets }))
}

/// An asset with its segments.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetDetail {
    pub asset: Asset,
    pub segments: Vec<Segment>,
    /// Where its original file, thumbnail and transcript are served.
    pub links: AssetLinks,
}

/// URLs of an asset's parts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetLinks {
    pub media: String,
    pub thumbnail: String,
    pub moments: String,
    /// For videos and recordings.
    pub transcript: Option<String>,
}

/// One asset with its segments (moments) and links.
#[utoipa::path(
    tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    responses(
        (status = 200, description = "The asset", body = AssetDetail),
        (status = 404, description = "`asset_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let asset = state.store.catalog.asset(&id).await?;
    let segments = state.store.catalog.segments(&id).await?;
    Ok(json(detail(asset, segments)))
}

fn detail(asset: Asset, segments: Vec<Segment>) -> AssetDetail {
    let base = format!("/api/v1/assets/{}", asset.id);
    AssetDetail {
        links: AssetLinks {
            media: format!("{base}/media"),
            thumbnail: format!("{base}/thumbnail"),
            moments: format!("{base}/moments"),
            transcript: (asset.kind != AssetKind::Image).then(|| format!("{base}/transcript")),
        },
        asset,
        segments,
    }
}

/// `PATCH /api/v1/assets/{id}` body: the fields to change; an empty string (or list) clears one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetUpdate {
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub collection: Option<String>,
}

fn bad_metadata(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest {
        code: "invalid_metadata",
        message: format!("{field}: {message}"),
    }
}

impl AssetUpdate {
    /// Reads the body field by field, so that an error names the field at fault (serde_json
    /// only gives a line and column).
    fn from_json(body: serde_json::Value) -> Result<Self, ApiError> {
        use serde_json::Value;
        let serde_json::Value::Object(fields) = body else {
            return Err(bad_metadata("body", "expected a JSON object"));
        };
        let mut out = AssetUpdate {
            title: None,
            caption: None,
            keywords: None,
            collection: None,
        };
        for (name, value) in fields {
            let text = |v: Value| match v {
                Value::String(s) => Ok(s),
                Value::Null => Ok(String::new()),
                other => Err(bad_metadata(
                    &name,
                    format!("expected a string, got {other}"),
                )),
            };
            match name.as_str() {
                "title" => out.title = Some(text(value)?),
                "caption" => out.caption = Some(text(value)?),
                "collection" => out.collection = Some(text(value)?),
                "keywords" => {
                    let words = match value {
                        Value::Array(items) => items
                            .into_iter()
                            .map(|k| match k {
                                Value::String(s) => Ok(s),
                                other => Err(bad_metadata(
                                    "keywords",
                                    format!("expected strings, got {other}"),
                                )),
                            })
                            .collect::<Result<Vec<_>, _>>()?,
                        Value::Null => Vec::new(),
                        other => {
                            return Err(bad_metadata(
                                "keywords",
                                format!("expected a list of strings, got {other}"),
                            ));
                        }
                    };
                    out.keywords = Some(words);
                }
                other => {
                    return Err(bad_metadata(
                        other,
                        "unknown field (expected title, caption, keywords, collection)",
                    ));
                }
            }
        }
        Ok(out)
    }

    fn into_patch(self) -> Result<MetadataPatch, ApiError> {
        for (field, value, max) in [
            ("title", &self.title, 500),
            ("caption", &self.caption, 10_000),
            ("collection", &self.collection, 200),
        ] {
            if let Some(v) = value
                && v.chars().count() > max
            {
                return Err(bad_metadata(field, format!("longer than {max} characters")));
            }
        }
        if let Some(k) = &self.keywords {
            if k.len() > 200 {
                return Err(bad_metadata("keywords", "more than 200 keywords"));
            }
            if let Some(long) = k.iter().find(|k| k.chars().count() > 100) {
                return Err(bad_metadata(
                    "keywords",
                    format!("{long:?} is longer than 100 characters"),
                ));
            }
        }
        let patch = MetadataPatch {
            title: self.title,
            caption: self.caption,
            keywords: self.keywords,
            collection: self.collection,
        };
        if patch.is_empty() {
            return Err(bad_metadata(
                "body",
                "give at least one of title, caption, keywords, collection",
            ));
        }
        Ok(patch)
    }
}

/// Change an asset's title, caption, keywords or collection; every index follows (needs a key).
#[utoipa::path(
    tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    request_body = AssetUpdate,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The changed asset", body = AssetDetail),
        (status = 400, description = "`invalid_metadata`, `invalid_json`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[patch("/api/v1/assets/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let patch = AssetUpdate::from_json(body.into_inner())?.into_patch()?;
    let asset =
        kairos_indexer::edit::update_metadata(&state.store, &state.analyzers, &id, &patch).await?;
    let segments = state.store.catalog.segments(&id).await?;
    Ok(json(detail(asset, segments)))
}

/// What a deletion removed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub deleted: String,
    pub path: String,
    /// Whether the file itself was removed: only a file uploaded into the archive is; a file
    /// ingested from elsewhere is never touched.
    pub file_removed: bool,
}

/// Delete an asset from the catalog, the text and vector indexes and the thumbnails (needs a key).
#[utoipa::path(
    tag = "assets",
    params(("id" = String, Path, description = "Asset id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[delete("/api/v1/assets/{id}")]
pub async fn delete(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let asset = state.store.delete_asset(&id).await?;
    let uploads = state.store.data_dir().join("uploads");
    let path = std::path::Path::new(&asset.path);
    let ours =
        path.starts_with(&uploads) || uploads.canonicalize().is_ok_and(|u| path.starts_with(u));
    let file_removed = ours && fs_err::remove_file(path).is_ok();
    Ok(json(Deleted {
        deleted: asset.id,
        path: asset.path,
        file_removed,
    }))
}

/// `GET /api/v1/assets/{id}/transcript?format=json|vtt|srt` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TranscriptParams {
    /// json (the default), vtt or srt.
    pub format: Option<String>,
}

/// The transcript of a video or recording as JSON cues, WebVTT or SubRip.
#[utoipa::path(
    tag = "assets",
    params(("id" = String, Path, description = "Asset id"), TranscriptParams),
    responses(
        (status = 200, description = "The transcript (JSON form shown; `vtt` and `srt` are text)", body = kairos_store::transcript::TranscriptJson),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`transcript_unavailable`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}/transcript")]
pub async fn transcript(
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
    let body = transcripts::export(&state.store.catalog, &record, format).await?;
    Ok(HttpResponse::Ok()
        .content_type(format.mime())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "inline; filename=\"{}\"",
                transcripts::download_name(&record, format)
            ),
        ))
        .body(body))
}

/// `GET /api/v1/assets/{id}/moments?kind=shot,speech` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MomentsParams {
    /// Comma-separated segment kinds to list (shot, keyframe, speech, ocr, image); all by default.
    pub kind: Option<String>,
}

/// An asset's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Moments {
    pub asset_id: String,
    pub kind: AssetKind,
    pub duration_ms: Option<i64>,
    /// Where the original is served (with range requests).
    pub media: String,
    pub moments: Vec<timeline::TimelineEntry>,
}

/// The asset's shots, keyframes and speech in time order, with timecodes and thumbnails.
#[utoipa::path(
    tag = "assets",
    params(("id" = String, Path, description = "Asset id"), MomentsParams),
    responses(
        (status = 200, description = "The timeline", body = Moments),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/assets/{id}/moments")]
pub async fn moments(
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
    Ok(json(Moments {
        media: format!("/api/v1/assets/{}/media", record.id),
        asset_id: record.id,
        kind: record.kind,
        duration_ms: record.duration_ms,
        moments,
    }))
}
