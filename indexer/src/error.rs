//! The one error type of `kairos-indexer`.

use std::path::PathBuf;

/// Everything that can go wrong turning files into indexed assets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] kairos_store::Error),
    #[error(transparent)]
    Model(#[from] kairos_models::Error),
    /// A file that is not readable media (corrupt, truncated, too large, not what it claims).
    #[error("cannot decode {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("unsupported file type {path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// An external tool (ffmpeg, ffprobe) that is missing or cannot run.
    #[error("cannot run {tool}: {message}")]
    Tool { tool: String, message: String },
    #[error("invalid query: {0}")]
    Query(String),
    /// "Find similar" from an asset or moment that has nothing to compare by.
    #[error("{0}")]
    NothingToCompare(String),
    #[error("background task failed: {0}")]
    Task(String),
    /// An ingest option that cannot be used (a glob that does not parse, say), by name.
    #[error("{option}: {message}")]
    Option {
        option: &'static str,
        message: String,
    },
    /// A manifest (catalogue records handed over with the files) that cannot be read, naming
    /// the file, the line and the field.
    #[error("manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
}

/// Result with the indexer error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
