//! The web UI's files, health, metrics and the OpenAPI document.

use actix_web::{HttpResponse, get, http::header, web};
use serde::Serialize;
use utoipa::OpenApi as _;

use crate::AppState;
use crate::error::ApiError;

/// The UI, embedded at build time: (name, content type, body).
const WEB_FILES: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../../web/app.css"),
    ),
];

const INDEX_HTML: &str = include_str!("../../../web/index.html");

/// The web UI (every page is this one document; the rest is in `/ui/app.js`).
#[get("/")]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(INDEX_HTML)
}

/// The UI's script and style.
#[get("/ui/{file}")]
pub async fn web_file(file: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, mime, body) = WEB_FILES
        .iter()
        .find(|(name, _, _)| *name == file.as_str())
        .ok_or_else(|| ApiError::NotFound {
            code: "route_not_found",
            what: "file",
            id: format!("/ui/{file}"),
        })?;
    Ok(HttpResponse::Ok()
        .content_type(*mime)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(*body))
}

/// What `/api/v1/health` says.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub version: String,
    pub assets: kairos_store::CatalogStats,
    pub models: InstalledModels,
    /// Whether reads need an API key.
    pub private: bool,
    /// Features that are off, and how to turn them on (a model to install, say).
    pub notices: Vec<String>,
}

/// Which models are installed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstalledModels {
    pub clip: bool,
    pub sentence: bool,
    pub speech: bool,
}

/// Whether the server and its archive answer, with counts and installed models (never needs a key).
#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "Healthy", body = Health))
)]
#[get("/api/v1/health")]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.store.catalog.stats().await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        assets: stats,
        models: InstalledModels {
            clip: state.analyzers.clip.is_some(),
            sentence: state.analyzers.sentence.is_some(),
            speech: state.analyzers.whisper.is_some(),
        },
        private: state.config.private,
        notices: state
            .analyzers
            .notice_texts()
            .into_iter()
            .map(str::to_string)
            .collect(),
    }))
}

/// Prometheus metrics: requests and latency by route, archive size, searches' catalog reads.
#[utoipa::path(
    tag = "system",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = state.store.catalog.stats().await?;
    let mut body = state.metrics.render(&[
        (
            "kairos_assets",
            "Assets in the catalog, any status.",
            stats.assets as f64,
        ),
        (
            "kairos_assets_ready",
            "Assets searchable.",
            stats.ready as f64,
        ),
        (
            "kairos_assets_failed",
            "Assets that failed to ingest.",
            stats.failed as f64,
        ),
        (
            "kairos_segments",
            "Moments in the catalog.",
            stats.segments as f64,
        ),
        (
            "kairos_text_documents",
            "Documents in the text index.",
            state.store.text.num_docs() as f64,
        ),
    ]);
    body.push_str(&crate::metrics::render_search_reads(
        &state.store.catalog.search_read_counts(),
    ));
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

/// This API's OpenAPI 3.1 document.
#[get("/api/v1/openapi.json")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().json(crate::openapi::ApiDoc::openapi())
}
