//! API errors: one table of stable codes, each with its HTTP status. Clients match on `code`,
//! never on `message`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Every error the API returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid; the message names the field.
    #[error("{message}")]
    InvalidRequest { code: &'static str, message: String },
    #[error("{what} {id} not found")]
    NotFound {
        code: &'static str,
        what: &'static str,
        id: String,
    },
    /// The resource exists but is not in a state to answer (a failed asset's transcript, say).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// No API key, or one that is unknown or revoked.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Allowed to nobody with this server's configuration (a path outside the ingest roots).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The archive or a model failed: our fault, not the client's.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. } => code,
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The table of codes (documented in docs/api.md).
pub const CODES: &[(&str, u16, &str)] = &[
    (
        "invalid_json",
        400,
        "the body is not valid JSON of the expected shape",
    ),
    (
        "invalid_query",
        400,
        "no words and no image, or a field of the query is invalid",
    ),
    (
        "invalid_image",
        400,
        "the uploaded example image cannot be decoded",
    ),
    (
        "invalid_multipart",
        400,
        "the multipart body is malformed or lacks the `image` part",
    ),
    (
        "payload_too_large",
        413,
        "the upload exceeds the size limit",
    ),
    (
        "invalid_metadata",
        400,
        "a field of an asset update is invalid or the update changes nothing; the message names the field",
    ),
    (
        "invalid_upload",
        400,
        "an upload without files, or a part that is not a file; the message names the part",
    ),
    (
        "unauthorized",
        401,
        "the request needs an API key (`Authorization: Bearer KEY`) and has none",
    ),
    (
        "invalid_api_key",
        401,
        "the API key given is unknown or revoked",
    ),
    (
        "invalid_ingest",
        400,
        "an ingest request without paths, or a path that does not exist (the message names it)",
    ),
    (
        "ingest_disabled",
        403,
        "server-side ingest is off: the server was started without --ingest-root",
    ),
    (
        "path_not_allowed",
        403,
        "a path to ingest is outside the server's ingest roots",
    ),
    ("asset_not_found", 404, "no asset (or moment) with this id"),
    ("job_not_found", 404, "no job with this id"),
    (
        "route_not_found",
        404,
        "no such endpoint; see /api/v1/openapi.json",
    ),
    (
        "method_not_allowed",
        405,
        "the endpoint exists but not with this HTTP method",
    ),
    (
        "job_not_running",
        409,
        "the job is not queued or running in this server (finished, or run by `kairos ingest`)",
    ),
    (
        "similar_unavailable",
        409,
        "the asset or moment to find similar ones to has no picture or words indexed",
    ),
    (
        "transcript_unavailable",
        409,
        "the asset is an image, failed to ingest or is still being indexed; the message says which",
    ),
    ("thumbnail_not_found", 404, "the asset has no thumbnail"),
    (
        "clip_unavailable",
        409,
        "the asset is an image: it has no moments to cut",
    ),
    (
        "media_not_found",
        404,
        "the original file of the asset is no longer where it was ingested from",
    ),
    (
        "internal",
        500,
        "the archive or a model failed; the message says which file",
    ),
];

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = self.code();
        let status = CODES
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|(_, s, _)| *s)
            .unwrap_or(500);
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}

impl From<kairos_store::Error> for ApiError {
    fn from(e: kairos_store::Error) -> Self {
        match e {
            // Decision: an unknown id is the client's mistake; everything else the store reports
            // (I/O, corruption, index failures) is ours.
            kairos_store::Error::NotFound {
                what: what @ ("asset" | "asset or moment" | "segment"),
                id,
            } => ApiError::NotFound {
                code: "asset_not_found",
                what,
                id,
            },
            kairos_store::Error::NotFound { what: "job", id } => ApiError::NotFound {
                code: "job_not_found",
                what: "job",
                id,
            },
            kairos_store::Error::InvalidInput { field, message } => ApiError::InvalidRequest {
                code: "invalid_query",
                message: format!("{field}: {message}"),
            },
            e @ kairos_store::Error::NoTranscript { .. } => ApiError::Conflict {
                code: "transcript_unavailable",
                message: e.to_string(),
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<kairos_indexer::Error> for ApiError {
    fn from(e: kairos_indexer::Error) -> Self {
        match e {
            kairos_indexer::Error::Query(message) => ApiError::InvalidRequest {
                code: "invalid_query",
                message,
            },
            kairos_indexer::Error::Decode { message, .. } => ApiError::InvalidRequest {
                code: "invalid_image",
                message: format!("image: {message}"),
            },
            kairos_indexer::Error::Store(s) => s.into(),
            kairos_indexer::Error::NothingToCompare(message) => ApiError::Conflict {
                code: "similar_unavailable",
                message,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = include_str!("../../docs/api.md");
        for (code, status, _) in super::CODES {
            let row = format!("| `{code}` | {status} |");
            assert!(doc.contains(&row), "docs/api.md lacks the row {row}");
        }
    }
}
