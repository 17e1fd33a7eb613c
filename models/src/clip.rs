//! CLIP-family image/text encoder on candle-transformers, loaded from the Hugging Face layout
//! (`config.json`, `model.safetensors`, `tokenizer.json`, optional `preprocessor_config.json`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::clip::{
    self, ClipConfig,
    text_model::{Activation, ClipTextConfig},
    vision_model::ClipVisionConfig,
};
use image::{DynamicImage, imageops::FilterType};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use crate::clip_towers::{TextTower, VisionTower};
use crate::error::{CandleContext, Error, Result};

/// CLIP's normalisation constants (OpenAI), used when no `preprocessor_config.json` says otherwise.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// See [`CLIP_MEAN`].
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The end-of-text token: CLIP pools the text at its position (it has the highest id).
pub const END_OF_TEXT: &str = "<|endoftext|>";
/// The start-of-text token.
pub const START_OF_TEXT: &str = "<|startoftext|>";

/// The text half of a Hugging Face `CLIPConfig`; absent fields take the transformers defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HfTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
}

impl Default for HfTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
        }
    }
}

/// The vision half of a Hugging Face `CLIPConfig`; absent fields take the transformers defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HfVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub hidden_act: String,
}

impl Default for HfVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: 224,
            patch_size: 32,
            hidden_act: "quick_gelu".into(),
        }
    }
}

/// A Hugging Face `config.json` of a `CLIPModel` (openai/clip-vit-base-patch32, -patch16, …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HfClipConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default = "default_projection_dim")]
    pub projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    pub logit_scale_init_value: f32,
    #[serde(default)]
    pub text_config: HfTextConfig,
    #[serde(default)]
    pub vision_config: HfVisionConfig,
}

fn default_projection_dim() -> usize {
    512
}

fn default_logit_scale() -> f32 {
    2.6592
}

impl HfClipConfig {
    /// openai/clip-vit-base-patch32: the shape the benchmarks use.
    pub fn vit_base_patch32() -> Self {
        Self {
            architectures: vec!["CLIPModel".into()],
            model_type: Some("clip".into()),
            projection_dim: 512,
            logit_scale_init_value: 2.6592,
            text_config: HfTextConfig::default(),
            vision_config: HfVisionConfig::default(),
        }
    }

    /// A CLIP of the real architecture at toy size (16-d, 32 px): for tests and smoke runs.
    pub fn tiny() -> Self {
        Self {
            architectures: vec!["CLIPModel".into()],
            model_type: Some("clip".into()),
            projection_dim: 16,
            logit_scale_init_value: 2.6592,
            text_config: HfTextConfig {
                vocab_size: 16,
                hidden_size: 32,
                intermediate_size: 64,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                max_position_embeddings: 8,
                hidden_act: "quick_gelu".into(),
            },
            vision_config: HfVisionConfig {
                hidden_size: 32,
                intermediate_size: 64,
                num_hidden_layers: 2,
                num_attention_heads: 4,
                num_channels: 3,
                image_size: 32,
                patch_size: 8,
                hidden_act: "quick_gelu".into(),
            },
        }
    }

    /// Whether a parsed `config.json` describes a CLIP model.
    pub fn is_clip(value: &serde_json::Value) -> bool {
        value.get("model_type").and_then(|v| v.as_str()) == Some("clip")
            || value
                .get("architectures")
                .and_then(|v| v.as_array())
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some("CLIPModel")))
    }

    /// Converts to candle's configuration; fails on what candle cannot run.
    pub fn to_candle(&self, path: &Path) -> Result<ClipConfig> {
        for act in [&self.text_config.hidden_act, &self.vision_config.hidden_act] {
            if act != "quick_gelu" {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    message: format!(
                        "hidden_act {act:?} is not supported (candle's CLIP runs quick_gelu models such as openai/clip-vit-base-patch32 and -patch16)"
                    ),
                });
            }
        }
        let t = &self.text_config;
        let v = &self.vision_config;
        if !v.image_size.is_multiple_of(v.patch_size)
            || !t.hidden_size.is_multiple_of(t.num_attention_heads)
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: "image_size must be a multiple of patch_size and hidden_size of num_attention_heads".into(),
            });
        }
        Ok(ClipConfig {
            text_config: ClipTextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                projection_dim: self.projection_dim,
            },
            vision_config: ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: self.projection_dim,
                num_channels: v.num_channels,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            logit_scale_init_value: self.logit_scale_init_value,
            image_size: v.image_size,
        })
    }
}

/// How images are turned into the model's input tensor.
#[derive(Debug, Clone)]
pub struct Preprocess {
    pub size: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// CLIP's own preprocessing: resize the shortest side to `size` (bicubic), centre crop,
    /// scale to 0..1, normalise with CLIP's mean and std. Returns CHW floats.
    pub fn apply(&self, image: &DynamicImage) -> Vec<f32> {
        let s = self.size as u32;
        let (w, h) = (image.width().max(1), image.height().max(1));
        let scale = s as f32 / w.min(h) as f32;
        let nw = ((w as f32 * scale).round() as u32).max(s);
        let nh = ((h as f32 * scale).round() as u32).max(s);
        let rgb = crate::resample::rgb_of(image);
        // Video keyframes arrive with their short side already at `size`: nothing to resample.
        let resized;
        let (pixels, stride): (&[u8], u32) = if (nw, nh) == (w, h) {
            (rgb.as_raw(), w)
        } else {
            resized = crate::resample::rgb(&rgb, nw, nh, FilterType::CatmullRom).into_raw();
            (&resized, nw)
        };
        let (x0, y0) = ((nw - s) / 2, (nh - s) / 2);
        let plane = (s * s) as usize;
        let mut out = vec![0f32; 3 * plane];
        for y in 0..s {
            let row = ((y0 + y) * stride + x0) as usize * 3;
            for x in 0..s {
                let p = &pixels[row + x as usize * 3..][..3];
                let i = (y * s + x) as usize;
                for c in 0..3 {
                    out[c * plane + i] = (p[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
                }
            }
        }
        out
    }
}

/// A loaded CLIP model: embeds images and texts into one space (unit vectors).
pub struct ClipEncoder {
    /// The towers are ours, for speed (see [`crate::clip_towers`]).
    vision: VisionTower,
    text: TextTower,
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    preprocess: Preprocess,
    max_tokens: usize,
    dims: usize,
    device: Device,
}

impl std::fmt::Debug for ClipEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipEncoder")
            .field("dims", &self.dims)
            .finish()
    }
}

impl ClipEncoder {
    /// Loads a model folder in the Hugging Face layout.
    pub fn load(dir: &Path) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = read_hf_config(&config_path)?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::InvalidSource {
                path: dir.to_path_buf(),
                reason: "model.safetensors is missing (only safetensors weights are supported)"
                    .into(),
            });
        }
        let device = Device::Cpu;
        // SAFETY: the weights file is owned by the model store and not modified while mapped.
        #[allow(unsafe_code)]
        let weights = unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
            .context("mapping model.safetensors")?;
        let vb = VarBuilder::from_backend(Box::new(weights), DType::F32, device.clone());
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        let mut preprocess = Preprocess {
            size: config.vision_config.image_size,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        };
        read_preprocessor_config(&dir.join("preprocessor_config.json"), &mut preprocess)?;
        Self::from_var_builder(
            vb,
            &config,
            &config_path,
            tokenizer,
            tokenizer_path,
            preprocess,
        )
    }

    /// A randomly initialised model of the given shape (benchmarks: real FLOPs, no weights needed).
    pub fn random(config: &HfClipConfig, tokenizer_json: &str) -> Result<(Self, VarMap)> {
        let device = Device::Cpu;
        let varmap = init_varmap(config, &device)?;
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let tokenizer =
            Tokenizer::from_bytes(tokenizer_json.as_bytes()).map_err(|e| Error::Tokenizer {
                path: PathBuf::from("<memory>"),
                message: e.to_string(),
            })?;
        let preprocess = Preprocess {
            size: config.vision_config.image_size,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        };
        let encoder = Self::from_var_builder(
            vb,
            config,
            Path::new("<memory>"),
            tokenizer,
            PathBuf::from("<memory>"),
            preprocess,
        )?;
        Ok((encoder, varmap))
    }

    fn from_var_builder(
        vb: VarBuilder,
        config: &HfClipConfig,
        config_path: &Path,
        tokenizer: Tokenizer,
        tokenizer_path: PathBuf,
        preprocess: Preprocess,
    ) -> Result<Self> {
        // What candle-transformers' CLIP runs, ours runs: its checks are ours.
        config.to_candle(config_path)?;
        let text = TextTower::load(vb.clone(), &config.text_config, config.projection_dim)
            .context("building the CLIP text tower")?;
        let vision = VisionTower::load(vb, &config.vision_config, config.projection_dim)
            .context("building the CLIP image tower")?;
        Ok(Self {
            vision,
            text,
            tokenizer,
            tokenizer_path,
            preprocess,
            max_tokens: config.text_config.max_position_embeddings,
            dims: config.projection_dim,
            device: Device::Cpu,
        })
    }

    /// Embedding dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The preprocessing this model expects.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Embeds images already preprocessed with [`Preprocess::apply`], as one batch.
    pub fn embed_preprocessed(&self, batch: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.preprocess.size;
        let mut flat = Vec::with_capacity(batch.len() * 3 * s * s);
        for item in batch {
            if item.len() != 3 * s * s {
                return Err(Error::Input(format!(
                    "preprocessed image has {} values, expected {}",
                    item.len(),
                    3 * s * s
                )));
            }
            flat.extend_from_slice(item);
        }
        let pixels = Tensor::from_vec(flat, (batch.len(), 3, s, s), &self.device)
            .context("building the pixel batch")?;
        let features = self
            .vision
            .forward(&pixels)
            .context("running the CLIP image encoder")?;
        rows_normalized(&features)
    }

    /// Preprocesses and embeds a batch of images.
    pub fn embed_images(&self, images: &[DynamicImage]) -> Result<Vec<Vec<f32>>> {
        let batch: Vec<Vec<f32>> = images.iter().map(|i| self.preprocess.apply(i)).collect();
        self.embed_preprocessed(&batch)
    }

    /// Token ids of a text as CLIP reads it: start token, words, end token, truncated to the
    /// model's context with the end token kept last.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::Tokenizer {
                path: self.tokenizer_path.clone(),
                message: e.to_string(),
            })?;
        let mut ids = encoding.get_ids().to_vec();
        if ids.len() > self.max_tokens {
            let eot = *ids.last().unwrap_or(&0);
            ids.truncate(self.max_tokens);
            ids[self.max_tokens - 1] = eot;
        }
        Ok(ids)
    }

    /// Embeds texts into the image space (for text → image search), as one batch.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let tokenized = texts
            .iter()
            .map(|t| self.tokenize(t))
            .collect::<Result<Vec<_>>>()?;
        let len = tokenized.iter().map(Vec::len).max().unwrap_or(1).max(1);
        // Pad with id 0: CLIP pools at the highest id (the end token), and the causal mask keeps
        // padding after it from changing anything before it.
        let mut flat = Vec::with_capacity(texts.len() * len);
        for ids in &tokenized {
            flat.extend_from_slice(ids);
            flat.extend(std::iter::repeat_n(0u32, len - ids.len()));
        }
        let ids = Tensor::from_vec(flat, (texts.len(), len), &self.device)
            .context("building the token batch")?;
        let features = self
            .text
            .forward(&ids)
            .context("running the CLIP text encoder")?;
        rows_normalized(&features)
    }
}

/// Reads `config.json` of a CLIP model.
pub fn read_hf_config(path: &Path) -> Result<HfClipConfig> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn read_preprocessor_config(path: &Path, preprocess: &mut Preprocess) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(path)?).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let triple = |key: &str| -> Option<[f32; 3]> {
        let a = value.get(key)?.as_array()?;
        (a.len() == 3).then(|| [0, 1, 2].map(|i| a[i].as_f64().unwrap_or(0.0) as f32))
    };
    if let Some(mean) = triple("image_mean") {
        preprocess.mean = mean;
    }
    if let Some(std) = triple("image_std") {
        preprocess.std = std;
    }
    Ok(())
}

/// Loads a Hugging Face `tokenizer.json` with padding and truncation turned off (we do both).
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let bytes = fs_err::read(path)?;
    let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| Error::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(None)
        .map_err(|e| Error::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    Ok(tokenizer)
}

/// Creates the variables of a CLIP model with random values, including the two that candle would
/// otherwise create outside the VarMap (so that a saved random model reloads identically).
pub fn init_varmap(config: &HfClipConfig, device: &Device) -> Result<VarMap> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    vb.get_with_hints(
        config.vision_config.hidden_size,
        "vision_model.embeddings.class_embedding",
        candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
    )
    .context("creating class_embedding")?;
    vb.get_with_hints(
        (),
        "logit_scale",
        candle_nn::Init::Const(config.logit_scale_init_value as f64),
    )
    .context("creating logit_scale")?;
    let candle_config = config.to_candle(Path::new("<memory>"))?;
    clip::ClipModel::new(vb, &candle_config).context("initialising the CLIP model")?;
    Ok(varmap)
}

/// Writes a model folder in the Hugging Face layout that [`ClipEncoder::load`] and
/// `kairos models install` accept.
pub fn save_model_dir(
    dir: &Path,
    config: &HfClipConfig,
    varmap: &VarMap,
    tokenizer_json: &str,
) -> Result<()> {
    fs_err::create_dir_all(dir)?;
    let config_json =
        serde_json::to_string_pretty(config).map_err(|e| Error::Input(e.to_string()))?;
    fs_err::write(dir.join("config.json"), config_json)?;
    fs_err::write(dir.join("tokenizer.json"), tokenizer_json)?;
    varmap
        .save(dir.join("model.safetensors"))
        .context("saving model.safetensors")?;
    Ok(())
}

/// A word-level `tokenizer.json` over `words` (lower-cased, split on whitespace and punctuation)
/// whose end-of-text token has the highest id, as CLIP's pooling requires.
pub fn word_level_tokenizer_json(words: &[&str]) -> String {
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for w in words {
        let w = w.to_lowercase();
        if !vocab.contains_key(&w) {
            let id = vocab.len();
            vocab.insert(w, id.into());
        }
    }
    let sot = vocab.len();
    let eot = sot + 1;
    vocab.insert(START_OF_TEXT.into(), sot.into());
    vocab.insert(END_OF_TEXT.into(), eot.into());
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(sot, START_OF_TEXT), special(eot, END_OF_TEXT)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                {"SpecialToken": {"id": START_OF_TEXT, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": END_OF_TEXT, "type_id": 0}}
            ],
            "pair": [
                {"SpecialToken": {"id": START_OF_TEXT, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": END_OF_TEXT, "type_id": 0}}
            ],
            "special_tokens": {
                START_OF_TEXT: {"id": START_OF_TEXT, "ids": [sot], "tokens": [START_OF_TEXT]},
                END_OF_TEXT: {"id": END_OF_TEXT, "ids": [eot], "tokens": [END_OF_TEXT]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    })
    .to_string()
}

/// The rows of a 2-D tensor as unit vectors.
pub(crate) fn rows_normalized(features: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows = features
        .to_dtype(DType::F32)
        .and_then(|t| t.to_vec2::<f32>())
        .context("reading embeddings")?;
    Ok(rows
        .into_iter()
        .map(|mut r| {
            crate::l2_normalize(&mut r);
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> String {
        word_level_tokenizer_json(&["a", "red", "blue", "circle", "square"])
    }

    #[test]
    fn the_fast_resample_gives_image_crates_pixels() {
        // A photo-like pattern with edges and gradients, downscaled as CLIP does and upscaled
        // (an image smaller than the model's input).
        let photo = image::RgbImage::from_fn(1024, 768, |x, y| {
            let ring = ((x as f32 - 500.0).hypot(y as f32 - 380.0) / 9.0) as u32;
            image::Rgb([
                (x / 4) as u8,
                if ring.is_multiple_of(2) { 220 } else { 30 },
                ((x ^ y) & 0xff) as u8 / 2 + (y / 6) as u8,
            ])
        });
        for (source, w, h) in [(&photo, 299, 224), (&photo, 37, 28)] {
            let fast = crate::resample::rgb(source, w, h, FilterType::CatmullRom).into_raw();
            let slow = image::imageops::resize(source, w, h, FilterType::CatmullRom).into_raw();
            assert_eq!(fast.len(), slow.len());
            let diffs: Vec<i32> = fast
                .iter()
                .zip(&slow)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .collect();
            let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
            let max = *diffs.iter().max().unwrap();
            // Measured: mean 0.10 and 0.07, max 1 (rounding of fixed-point against f32 weights).
            assert!(mean < 0.25 && max <= 1, "{w}×{h}: mean {mean}, max {max}");
        }
        let small = image::RgbImage::from_fn(100, 80, |x, y| image::Rgb([x as u8, y as u8, 9]));
        let up = crate::resample::rgb(&small, 280, 224, FilterType::CatmullRom).into_raw();
        let reference =
            image::imageops::resize(&small, 280, 224, FilterType::CatmullRom).into_raw();
        let worst = up
            .iter()
            .zip(&reference)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 1, "upscaled: {worst}");
    }

    #[test]
    fn saved_random_model_reloads_with_identical_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let config = HfClipConfig::tiny();
        let (encoder, varmap) = ClipEncoder::random(&config, &tokenizer()).unwrap();
        save_model_dir(tmp.path(), &config, &varmap, &tokenizer()).unwrap();
        let reloaded = ClipEncoder::load(tmp.path()).unwrap();
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        }));
        let a = encoder.embed_images(std::slice::from_ref(&img)).unwrap();
        let b = reloaded.embed_images(&[img]).unwrap();
        assert_eq!(a[0].len(), 16);
        for (x, y) in a[0].iter().zip(&b[0]) {
            assert!((x - y).abs() < 1e-5);
        }
        let ta = encoder.embed_texts(&["a red circle"]).unwrap();
        let tb = reloaded.embed_texts(&["a red circle"]).unwrap();
        for (x, y) in ta[0].iter().zip(&tb[0]) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn batched_texts_embed_like_single_texts() {
        let (encoder, _) = ClipEncoder::random(&HfClipConfig::tiny(), &tokenizer()).unwrap();
        let batch = encoder.embed_texts(&["a red circle", "square"]).unwrap();
        let single = encoder.embed_texts(&["square"]).unwrap();
        for (x, y) in batch[1].iter().zip(&single[0]) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
    }

    #[test]
    fn long_text_keeps_end_token_last() {
        let (encoder, _) = ClipEncoder::random(&HfClipConfig::tiny(), &tokenizer()).unwrap();
        let ids = encoder
            .tokenize("a red circle a blue square a red square")
            .unwrap();
        assert_eq!(ids.len(), 8);
        assert_eq!(*ids.last().unwrap(), *ids.iter().max().unwrap());
    }

    #[test]
    fn preprocessing_centre_crops_to_model_size() {
        let p = Preprocess {
            size: 4,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        // Left half black, right half white, wide image: the crop keeps the middle.
        let img = DynamicImage::ImageRgb8(image::RgbImage::from_fn(16, 4, |x, _| {
            if x < 8 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        }));
        let out = p.apply(&img);
        assert_eq!(out.len(), 3 * 16);
        assert!(out[0] < 0.2 && out[3] > 0.8, "{:?}", &out[..4]);
    }

    #[test]
    fn unsupported_activation_is_named() {
        let mut c = HfClipConfig::tiny();
        c.vision_config.hidden_act = "gelu".into();
        let err = c
            .to_candle(Path::new("m/config.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m/config.json") && err.contains("gelu"),
            "{err}"
        );
    }
}
