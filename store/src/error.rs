//! The one error type of `kairos-store`.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the archive.
///
/// A variant that wraps another crate's error says it in its own message and keeps it as
/// `cause`, not as `source`: exposed as the source too, `kairos`'s `{:#}` printed it once per
/// level ("table assets already exists" four times).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("catalog {path}: {cause}")]
    Catalog { path: PathBuf, cause: sqlx::Error },
    #[error("catalog migration in {path}: {cause}")]
    Migration {
        path: PathBuf,
        cause: sqlx::migrate::MigrateError,
    },
    #[error("text index {path}: {cause}")]
    TextIndex {
        path: PathBuf,
        cause: tantivy::TantivyError,
    },
    #[error("vector index {path}: {message}")]
    VectorIndex { path: PathBuf, message: String },
    /// The installed model does not produce vectors of the size already stored.
    #[error(
        "the {space} vectors in {path} have {stored} dimensions but the installed model produces {model}: install the model the archive was built with, or remove {path} and re-ingest"
    )]
    DimensionMismatch {
        space: &'static str,
        path: PathBuf,
        stored: usize,
        model: usize,
    },
    /// Stored data that cannot be what we wrote.
    #[error("corrupt data in {path}: {message}")]
    DataCorruption { path: PathBuf, message: String },
    #[error("no {what} with id {id}")]
    NotFound { what: &'static str, id: String },
    /// The asset exists but has no transcript to export (an image, a failed or unfinished file).
    #[error("{path} has no transcript: {reason}")]
    NoTranscript { path: String, reason: String },
    /// A background task of the store panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(String),
    #[error("invalid {field}: {message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
}

/// Result with the store error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
