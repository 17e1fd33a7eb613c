//! The one error type of `kairos-models`.

use std::path::PathBuf;

/// Everything that can go wrong loading, installing or running a model. (`Candle` keeps candle's
/// error as `cause`, in its message, not as a second `source`: see `kairos_store::Error`.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// File I/O; `fs_err` puts the path in the message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("model computation failed ({context}): {cause}")]
    Candle {
        context: String,
        cause: candle_core::Error,
    },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("invalid model configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, found {actual}; the file is corrupt or not the pinned version, download it again"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("no {kind} model is installed in {models_dir}: {hint}")]
    NotInstalled {
        kind: &'static str,
        models_dir: PathBuf,
        hint: &'static str,
    },
    /// The audio source failed while being read (it names its file).
    #[error("{0}")]
    Audio(String),
    #[error("cannot install from {path}: {reason}")]
    InvalidSource { path: PathBuf, reason: String },
    #[error("archive {path}: {message}")]
    Archive { path: PathBuf, message: String },
    #[error("invalid input: {0}")]
    Input(String),
}

/// Result with the models error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a short description of the step that failed to candle errors.
pub(crate) trait CandleContext<T> {
    fn context(self, context: &str) -> Result<T>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, context: &str) -> Result<T> {
        self.map_err(|source| Error::Candle {
            context: context.to_string(),
            cause: source,
        })
    }
}
