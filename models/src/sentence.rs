//! Sentence embedder: a BERT-family encoder with mean pooling over real tokens (padding masked),
//! e.g. sentence-transformers all-MiniLM-L6-v2.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use tokenizers::Tokenizer;

use crate::bert::Bert;
use crate::clip::load_tokenizer;
use crate::error::{CandleContext, Error, Result};
use crate::gemm::Precision;

/// Longest input in tokens; all-MiniLM-L6-v2 was trained on 256.
const MAX_TOKENS: usize = 256;

/// A loaded sentence embedder producing unit vectors.
pub struct SentenceEmbedder {
    model: Bert,
    tokenizer: Tokenizer,
    tokenizer_path: PathBuf,
    dims: usize,
    device: Device,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("dims", &self.dims)
            .finish()
    }
}

impl SentenceEmbedder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from a folder; its
    /// products in 8 bits on CPUs with AVX-512 VNNI (within 0.002 of f32's cosine on real text,
    /// `e2e::models`), else in f32 and q8_0 as [`gemm::Linear`](crate::gemm) picks.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, Precision::Int8)
    }

    /// [`load`](Self::load) with every product in f32: the reference the 8-bit encoder is
    /// measured against.
    pub fn load_f32(dir: &Path) -> Result<Self> {
        Self::load_with(dir, Precision::F32)
    }

    fn load_with(dir: &Path, precision: Precision) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = read_bert_config(&config_path)?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::InvalidSource {
                path: dir.to_path_buf(),
                reason: "model.safetensors is missing".into(),
            });
        }
        let device = Device::Cpu;
        // SAFETY: the weights file is owned by the model store and not modified while mapped.
        #[allow(unsafe_code)]
        let weights = unsafe { candle_core::safetensors::MmapedSafetensors::new(&weights) }
            .context("mapping model.safetensors")?;
        let vb = VarBuilder::from_backend(Box::new(weights), DType::F32, device.clone());
        let model = Bert::load(vb, &config, precision).context("building the BERT model")?;
        let tokenizer_path = dir.join("tokenizer.json");
        // The shipped tokenizer pads every input to 128 tokens; padding is ours to do and mask.
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        Ok(Self {
            model,
            tokenizer,
            tokenizer_path,
            dims: config.hidden_size,
            device,
        })
    }

    /// Embedding dimensions.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Embeds texts as one batch; each row is a unit vector.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, true)
                    .map_err(|e| Error::Tokenizer {
                        path: self.tokenizer_path.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let tokens: Vec<Vec<u32>> = encodings
            .iter()
            .map(|enc| {
                let mut toks = enc.get_ids().to_vec();
                if toks.len() > MAX_TOKENS {
                    // Keep the closing [SEP] the model was trained to see.
                    let last = *toks.last().unwrap_or(&0);
                    toks.truncate(MAX_TOKENS);
                    toks[MAX_TOKENS - 1] = last;
                }
                toks
            })
            .collect();
        let sequences: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        if let Some(mut pooled) = self
            .model
            .pooled(&sequences)
            .context("running the sentence encoder")?
        {
            pooled.iter_mut().for_each(|v| crate::l2_normalize(v));
            return Ok(pooled);
        }
        let len = tokens.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let n = texts.len();
        let mut ids = vec![0u32; n * len];
        let mut mask = vec![0u32; n * len];
        for (row, toks) in tokens.iter().enumerate() {
            for (i, t) in toks.iter().enumerate() {
                ids[row * len + i] = *t;
                mask[row * len + i] = 1;
            }
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device).context("token batch")?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device).context("mask batch")?;
        let hidden = self
            .model
            .forward(&ids, &mask)
            .context("running the sentence encoder")?;
        // Mean over real tokens only: padded positions would otherwise pull every sentence together.
        let mask_f = mask
            .to_dtype(DType::F32)
            .and_then(|m| m.unsqueeze(2))
            .context("mask")?;
        let summed = hidden
            .broadcast_mul(&mask_f)
            .and_then(|t| t.sum(1))
            .context("pooling")?;
        let counts = mask_f.sum(1).context("pooling")?;
        let pooled = summed.broadcast_div(&counts).context("pooling")?;
        crate::clip::rows_normalized(&pooled)
    }
}

/// Reads a BERT `config.json`.
fn read_bert_config(path: &Path) -> Result<Config> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
