//! Thumbnails: one JPEG per segment under `<data>/thumbnails/<2 hex>/<segment id>.jpg`.

use std::path::{Path, PathBuf};

use crate::error::Result;

/// The thumbnail folder of an archive.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    data_dir: PathBuf,
}

impl Thumbnails {
    /// Thumbnails of the archive in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Where a segment's thumbnail goes, relative to the data directory.
    pub fn relative_path(segment_id: &str) -> String {
        let shard: String = segment_id.chars().rev().take(2).collect();
        format!("thumbnails/{shard}/{segment_id}.jpg")
    }

    /// Writes a thumbnail atomically (temporary file, then rename) and returns its relative path.
    pub fn write(&self, segment_id: &str, jpeg: &[u8]) -> Result<String> {
        let rel = Self::relative_path(segment_id);
        let path = self.data_dir.join(&rel);
        if let Some(parent) = path.parent() {
            fs_err::create_dir_all(parent)?;
        }
        let tmp = Self::temporary(&path);
        // A write that fails (a full disk) leaves no partial file behind.
        if let Err(e) = fs_err::write(&tmp, jpeg).and_then(|()| fs_err::rename(&tmp, &path)) {
            let _ = fs_err::remove_file(&tmp);
            return Err(e.into());
        }
        Ok(rel)
    }

    /// Removes a thumbnail and the temporary file a writer killed between its write and its
    /// rename left beside it (best effort: what stays is found by `kairos doctor --check`).
    pub fn remove(&self, relative: &str) {
        let path = self.absolute(relative);
        let _ = fs_err::remove_file(Self::temporary(&path));
        let _ = fs_err::remove_file(path);
    }

    /// Where a thumbnail is written before it is renamed into place.
    fn temporary(path: &Path) -> PathBuf {
        path.with_extension("jpg.tmp")
    }

    /// The absolute path of a stored relative thumbnail path.
    pub fn absolute(&self, relative: &str) -> PathBuf {
        self.data_dir.join(relative)
    }
}
