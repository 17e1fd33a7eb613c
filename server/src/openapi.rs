//! The OpenAPI 3.1 document, generated from the handlers and types (utoipa).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{assets, jobs, media, search, system};

/// The body of every error: `{"error": {"code", "message"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable snake_case `code` (see the table in docs/api.md) and a message naming the field or id.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document served at `/api/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kairos",
        description = "Search a media archive by what is seen, said and written. Writes need an API key (`Authorization: Bearer KEY`); reads too when the server runs `--private`. Errors are `{\"error\": {\"code\", \"message\"}}` with stable codes.",
    ),
    paths(
        search::search,
        search::search_image,
        assets::list,
        assets::get,
        assets::update,
        assets::delete,
        assets::transcript,
        assets::moments,
        media::media,
        media::clip,
        media::asset_thumbnail,
        media::segment_thumbnail,
        jobs::upload,
        jobs::list,
        jobs::get,
        jobs::cancel,
        jobs::ingest,
        jobs::files,
        system::health,
        system::metrics,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&ApiKeyScheme),
)]
pub struct ApiDoc;
