//! Kairos indexer: turns media files into assets, segments, text and vectors in the store.
//!
//! - [`probe`]: what kind of media a file is;
//! - [`image`]: decoding, thumbnails, metadata (EXIF, IPTC, XMP) and the perceptual fingerprint;
//! - [`analysis`]: the loaded models, used for ingest and for query embeddings;
//! - [`edit`]: metadata changes made by users, re-indexed and re-embedded;
//! - [`ingest`]: files and folders → indexed assets, in batches, with progress and a job record;
//! - [`video`]: ffprobe/ffmpeg subprocesses, shot detection and keyframes;
//! - [`query`]: a user's query (words and/or an example image) → embeddings → store search.

pub mod analysis;
pub mod audio;
pub mod edit;
pub mod error;
pub mod image;
pub mod ingest;
pub mod manifest;
pub mod probe;
pub mod query;
pub mod query_batch;
pub mod video;
pub mod watch;

pub use analysis::Analyzers;
pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestSummary, Ingester, Progress};
pub use query::{QueryInput, SearchOutcome};

/// Runs CPU-bound or blocking work off the async runtime, on tokio's blocking pool (not on
/// rayon's, which the encoders need).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}
