//! Uploads (multipart, streamed to the archive's `uploads/` folder) and the ingest jobs they start.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use futures_util::StreamExt;
use kairos_indexer::IngestOptions;
use kairos_store::{Job, JobFile};
use serde::{Deserialize, Serialize};

use super::{invalid, json};
use crate::AppState;
use crate::error::ApiError;
use crate::jobs::{Cancel, LiveProgress, SERVER_INGEST, ingest_source, upload_source};

/// A job with what it is doing and what failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobStatus {
    pub job: Job,
    /// The file in progress and how far it is, while the job runs.
    pub progress: Option<LiveProgress>,
    /// Files that failed, with their errors (the first 100; see `/files?status=failed`).
    pub failures: Vec<JobFile>,
}

async fn status(state: &AppState, id: &str) -> Result<JobStatus, ApiError> {
    let job = state.store.catalog.job(id).await?;
    let failures = state
        .store
        .catalog
        .job_files(id, Some("failed"), 100)
        .await?;
    Ok(JobStatus {
        progress: state.jobs.live(id),
        job,
        failures,
    })
}

/// A file name safe to create in the upload folder: its last path component, no control
/// characters, no leading dot.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_control() || c == ':' { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "upload".into()
    } else {
        cleaned.chars().take(200).collect()
    }
}

/// The upload folder while it fills: removed unless [`keep`](Incoming::keep) is called.
struct Incoming {
    dir: PathBuf,
    kept: bool,
}

impl Incoming {
    fn keep(mut self) -> PathBuf {
        self.kept = true;
        self.dir.clone()
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs_err::remove_dir_all(&self.dir);
        }
    }
}

fn too_large(limit: u64, what: &str) -> ApiError {
    ApiError::InvalidRequest {
        code: "payload_too_large",
        message: format!(
            "{what} exceeds the upload limit of {} MiB (`kairos serve --max-upload-mb`)",
            limit >> 20
        ),
    }
}

/// Upload files (multipart `file` parts, with optional `collection` and `language` text parts);
/// they are written into the archive and ingested by a background job (needs a key).
#[utoipa::path(
    tag = "jobs",
    request_body(content_type = "multipart/form-data", description = "One or more `file` parts; optional `collection` and `language` (ISO 639-1) text parts"),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "The job that ingests them", body = JobStatus),
        (status = 400, description = "`invalid_upload`, `invalid_multipart`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = crate::openapi::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::ErrorBody),
    )
)]
#[post("/api/v1/uploads")]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let limit = state.config.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit, "the request"));
    }
    let bad = |code: &'static str, m: String| ApiError::InvalidRequest { code, message: m };
    let uploads = state.store.data_dir().join("uploads");
    let incoming = Incoming {
        dir: uploads.join(format!(".incoming-{}", uuid::Uuid::new_v4())),
        kept: false,
    };
    fs_err::create_dir_all(&incoming.dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut written: u64 = 0;
    let mut names: Vec<String> = Vec::new();
    let mut collection = None;
    let mut language = None;
    while let Some(part) = form.next().await {
        let mut part =
            part.map_err(|e| bad("invalid_multipart", format!("multipart body: {e}")))?;
        let name = part.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" => {
                let original = part
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .map(str::to_string)
                    .ok_or_else(|| bad("invalid_upload", "a `file` part has no filename".into()))?;
                let mut file_name = safe_name(&original);
                let mut n = 1;
                while names.contains(&file_name) {
                    n += 1;
                    file_name = format!("{n}-{}", safe_name(&original));
                }
                let path = incoming.dir.join(&file_name);
                let mut out = std::io::BufWriter::new(
                    fs_err::File::create(&path).map_err(|e| ApiError::Internal(e.to_string()))?,
                );
                while let Some(chunk) = part.next().await {
                    let chunk = chunk
                        .map_err(|e| bad("invalid_multipart", format!("file {original:?}: {e}")))?;
                    written += chunk.len() as u64;
                    if written > limit {
                        return Err(too_large(limit, &format!("file {original:?}")));
                    }
                    // Disk writes of a few KiB: cheaper than a thread hop per chunk.
                    out.write_all(&chunk)
                        .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
                }
                out.flush()
                    .map_err(|e| ApiError::Internal(format!("{}: {e}", path.display())))?;
                names.push(file_name);
            }
            "collection" | "language" => {
                let mut data = Vec::new();
                while let Some(chunk) = part.next().await {
                    let chunk = chunk
                        .map_err(|e| bad("invalid_multipart", format!("part {name:?}: {e}")))?;
                    data.extend_from_slice(&chunk);
                    if data.len() > 1024 {
                        return Err(bad("invalid_upload", format!("part {name:?} is too long")));
                    }
                }
                let text = String::from_utf8_lossy(&data).trim().to_string();
                let text = (!text.is_empty()).then_some(text);
                if name == "collection" {
                    collection = text;
                } else {
                    if let Some(l) = &text
                        && (l.len() != 2 || !l.chars().all(|c| c.is_ascii_lowercase()))
                    {
                        return Err(invalid(
                            "language",
                            format!("{l:?} is not an ISO 639-1 code"),
                        ));
                    }
                    language = text;
                }
            }
            other => {
                return Err(bad(
                    "invalid_upload",
                    format!("unknown part {other:?} (expected `file`, `collection`, `language`)"),
                ));
            }
        }
    }
    if names.is_empty() {
        return Err(bad(
            "invalid_upload",
            "no `file` part: nothing to ingest".into(),
        ));
    }
    let job = state
        .store
        .catalog
        .create_job("upload", &upload_source(names.len(), collection.as_deref()))
        .await?;
    state
        .store
        .catalog
        .set_job_status(&job.id, "queued")
        .await?;
    let dir = uploads.join(&job.id);
    fs_err::rename(incoming.keep(), &dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.jobs.submit(
        job.id.clone(),
        vec![dir],
        IngestOptions {
            collection,
            language,
            ..Default::default()
        },
    );
    let body = status(&state, &job.id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/jobs/{}", job.id)))
        .json(body))
}

/// `POST /api/v1/ingest` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestBody {
    /// Files or folders on the server, inside one of its `--ingest-root` folders.
    pub paths: Vec<String>,
    /// Collection every new asset joins.
    pub collection: Option<String>,
    /// Language of captions whose metadata does not say (ISO 639-1).
    pub language: Option<String>,
}

/// Ingest files and folders already on the server (needs a key, and `--ingest-root`): a
/// background job, as an upload starts. Files already indexed are skipped, so posting the same
/// paths again picks up what is new.
#[utoipa::path(
    tag = "jobs",
    request_body = IngestBody,
    security(("api_key" = [])),
    responses(
        (status = 202, description = "The job that ingests them", body = JobStatus),
        (status = 400, description = "`invalid_ingest`, `invalid_json`", body = crate::openapi::ErrorBody),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = crate::openapi::ErrorBody),
        (status = 403, description = "`ingest_disabled`, `path_not_allowed`", body = crate::openapi::ErrorBody),
    )
)]
#[post("/api/v1/ingest")]
pub async fn ingest(
    state: web::Data<AppState>,
    body: web::Json<IngestBody>,
) -> Result<HttpResponse, ApiError> {
    let roots = &state.config.ingest_roots;
    if roots.is_empty() {
        return Err(ApiError::Forbidden {
            code: "ingest_disabled",
            message: "server-side ingest is off: start `kairos serve` with `--ingest-root DIR` \
                      (or upload the files to /api/v1/uploads)"
                .into(),
        });
    }
    let bad = |message: String| ApiError::InvalidRequest {
        code: "invalid_ingest",
        message,
    };
    let body = body.into_inner();
    if body.paths.is_empty() {
        return Err(bad("paths: give at least one file or folder".into()));
    }
    let mut paths = Vec::with_capacity(body.paths.len());
    for (i, p) in body.paths.iter().enumerate() {
        if p.contains('\n') {
            return Err(bad(format!("paths[{i}]: {p:?} has a line break")));
        }
        // Canonical, so that `..` and links cannot step out of the roots.
        let real =
            fs_err::canonicalize(p).map_err(|e| bad(format!("paths[{i}]: {p}: {}", e.kind())))?;
        if !roots.iter().any(|r| real.starts_with(r)) {
            return Err(ApiError::Forbidden {
                code: "path_not_allowed",
                message: format!(
                    "paths[{i}]: {} is outside the ingest roots ({})",
                    real.display(),
                    roots
                        .iter()
                        .map(|r| r.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        paths.push(real);
    }
    let (collection, language) = (
        body.collection.filter(|c| !c.trim().is_empty()),
        body.language.filter(|l| !l.trim().is_empty()),
    );
    if let Some(l) = &language
        && !(l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()))
    {
        return Err(bad(format!(
            "language: {l:?} is not an ISO 639-1 code such as en or fr"
        )));
    }
    let job = state
        .store
        .catalog
        .create_job(
            SERVER_INGEST,
            &ingest_source(&paths, collection.as_deref(), language.as_deref()),
        )
        .await?;
    state
        .store
        .catalog
        .set_job_status(&job.id, "queued")
        .await?;
    state.jobs.submit(
        job.id.clone(),
        paths,
        IngestOptions {
            collection,
            language,
            ..Default::default()
        },
    );
    let body = status(&state, &job.id).await?;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/api/v1/jobs/{}", job.id)))
        .json(body))
}

/// `GET /api/v1/jobs` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobsParams {
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// Recent ingest jobs (uploads and command-line ingests), newest first.
#[utoipa::path(
    tag = "jobs",
    params(JobsParams),
    responses(
        (status = 200, description = "Jobs", body = Vec<Job>),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/jobs")]
pub async fn list(
    state: web::Data<AppState>,
    params: web::Query<JobsParams>,
) -> Result<HttpResponse, ApiError> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("{limit} is not between 1 and 500"),
        ));
    }
    Ok(json(state.store.catalog.jobs(limit).await?))
}

/// A job: counts, live progress, failed files.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobStatus),
        (status = 404, description = "`job_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/jobs/{id}")]
pub async fn get(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(json(status(&state, &id).await?))
}

/// Cancel a queued or running job (needs a key): an upload, a server-side ingest, or a
/// `kairos ingest` that another process runs. A queued job never starts; a running one stops
/// after the files in progress are committed, so nothing is half-indexed, and ends `cancelled`
/// (a `kairos ingest` notices within a few seconds). An interrupted job (its process was
/// killed) ends `cancelled` at once, so it is not resumed. The files already indexed stay.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "The job, stopping", body = JobStatus),
        (status = 401, description = "`unauthorized`, `invalid_api_key`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`job_not_found`", body = crate::openapi::ErrorBody),
        (status = 409, description = "`job_not_running`", body = crate::openapi::ErrorBody),
    )
)]
#[post("/api/v1/jobs/{id}/cancel")]
pub async fn cancel(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = state.store.catalog.job(&id).await?;
    if state.jobs.cancel(&id) == Cancel::Stopping {
        return Ok(HttpResponse::Accepted().json(status(&state, &id).await?));
    }
    if matches!(job.status.as_str(), "running" | "queued" | "interrupted") {
        state.store.catalog.request_cancel(&id).await?;
        return Ok(HttpResponse::Accepted().json(status(&state, &id).await?));
    }
    Err(ApiError::Conflict {
        code: "job_not_running",
        message: format!(
            "job {id} is {}: only a queued, running or interrupted job can be cancelled",
            job.status
        ),
    })
}

/// `GET /api/v1/jobs/{id}/files` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilesParams {
    /// indexed, skipped or failed; all by default.
    pub status: Option<String>,
    /// 1–10000, default 1000.
    pub limit: Option<i64>,
}

/// The files of a job with what happened to each.
#[utoipa::path(
    tag = "jobs",
    params(("id" = String, Path, description = "Job id"), FilesParams),
    responses(
        (status = 200, description = "Files", body = Vec<JobFile>),
        (status = 400, description = "`invalid_query`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`job_not_found`", body = crate::openapi::ErrorBody),
    )
)]
#[get("/api/v1/jobs/{id}/files")]
pub async fn files(
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<FilesParams>,
) -> Result<HttpResponse, ApiError> {
    let status = params.status.as_deref();
    if let Some(s) = status
        && !["indexed", "skipped", "failed"].contains(&s)
    {
        return Err(invalid(
            "status",
            format!("{s:?} is not one of: indexed, skipped, failed"),
        ));
    }
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(invalid(
            "limit",
            format!("{limit} is not between 1 and 10000"),
        ));
    }
    state.store.catalog.job(&id).await?;
    Ok(json(
        state.store.catalog.job_files(&id, status, limit).await?,
    ))
}

/// Removes upload folders a stopped server left half-written.
pub fn clean_incoming(data_dir: &Path) {
    let Ok(entries) = fs_err::read_dir(data_dir.join("uploads")) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".incoming-")
        {
            let _ = fs_err::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_cannot_leave_their_folder() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("C:\\x\\clip.mp4"), "clip.mp4");
        assert_eq!(safe_name(".hidden"), "hidden");
        assert_eq!(safe_name("a\nb.jpg"), "a_b.jpg");
        assert_eq!(safe_name(".."), "upload");
        assert_eq!(safe_name("ünï – final.mov"), "ünï – final.mov");
    }
}
