//! The `/api/v1` routes and the web UI, one module per resource.

pub mod assets;
pub mod jobs;
pub mod media;
pub mod search;
pub mod system;

use actix_web::{HttpRequest, HttpResponse, http::Method, web};

use crate::error::ApiError;

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(system::index)
        .service(system::web_file)
        .service(system::health)
        .service(system::metrics)
        .service(system::openapi)
        .service(search::search)
        .service(search::search_image)
        .service(assets::list)
        .service(assets::get)
        .service(assets::update)
        .service(assets::delete)
        .service(assets::transcript)
        .service(assets::moments)
        .service(media::media)
        .service(media::clip)
        .service(media::asset_thumbnail)
        .service(media::segment_thumbnail)
        .service(jobs::upload)
        .service(jobs::list)
        .service(jobs::get)
        .service(jobs::files)
        .service(jobs::cancel)
        .service(jobs::ingest)
        .default_service(web::to(not_found));
}

/// Any path no route takes: a JSON error naming it (a wrong method on a known path says so).
async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let known = req.match_pattern().is_some() || req.method() == Method::OPTIONS;
    Err(if known {
        ApiError::MethodNotAllowed {
            message: format!("{} is not allowed on {}", req.method(), req.path()),
        }
    } else {
        ApiError::NotFound {
            code: "route_not_found",
            what: "endpoint",
            id: req.path().to_string(),
        }
    })
}

/// A 400 naming the query field at fault.
pub(crate) fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::InvalidRequest {
        code: "invalid_query",
        message: format!("{field}: {message}"),
    }
}

/// Where a segment's thumbnail is served.
pub fn thumbnail_url(segment_id: &str) -> String {
    format!("/api/v1/segments/{segment_id}/thumbnail")
}

/// `200 OK` with a JSON body.
pub(crate) fn json(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().json(body)
}
