//! The Whisper network (encoder–decoder transformer) on candle, in the Hugging Face tensor layout.
//! Unlike `candle_transformers::models::whisper`, the decoder keeps a self-attention key/value
//! cache, so each new token costs one position instead of the whole prefix; the cross-attention
//! keys/values are computed once per window and shared by every decoding attempt on it.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Conv1d, Conv1dConfig, Embedding, VarBuilder, conv1d, embedding};

use crate::gemm::{self, Linear, Precision};
use crate::kernels::{self, LayerNorm, layer_norm};
use serde::Deserialize;

/// The subset of a Hugging Face Whisper `config.json` that the network needs.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub struct WhisperConfig {
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

/// Weights kept in q8_0 when `quantize` (the decoder is memory-bound: one token at a time reads
/// every weight, so 8-bit weights read a quarter of the bytes), else f32.
fn precision(quantize: bool) -> Precision {
    if quantize {
        Precision::Q8
    } else {
        Precision::F32
    }
}

/// Above this many query×key pairs, attention runs one head at a time.
const CHUNKED_ATTENTION: usize = 256 * 1024;

#[derive(Debug, Clone)]
struct Attention {
    /// Query projection with the 1/√(head dim) scale folded in.
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    /// Self-attention: transposed keys `(b, heads, head dim, positions)` and values
    /// `(b, heads, positions, head dim)` of every position decoded so far.
    cache: Option<(Tensor, Tensor)>,
}

impl Attention {
    /// `quantize` applies to the per-token projections; `quantize_kv` to keys and values, which
    /// cross-attention computes over 1500 encoder frames at once, where candle's q8_0 product is
    /// 3.7× slower than f32 gemm (measured 136 ms against 37 ms for 1500×512×2048).
    fn load(
        d: usize,
        heads: usize,
        vb: VarBuilder,
        quantize: bool,
        quantize_kv: bool,
    ) -> candle_core::Result<Self> {
        let scale = 1.0 / ((d / heads) as f64).sqrt();
        Ok(Self {
            q: Linear::load(
                &vb.pp("q_proj"),
                (d, d),
                true,
                Some(scale),
                precision(quantize),
            )?,
            k: Linear::load(
                &vb.pp("k_proj"),
                (d, d),
                false,
                None,
                precision(quantize_kv),
            )?,
            v: Linear::load(&vb.pp("v_proj"), (d, d), true, None, precision(quantize_kv))?,
            out: Linear::load(&vb.pp("out_proj"), (d, d), true, None, precision(quantize))?,
            heads,
            cache: None,
        })
    }

    /// (batch, seq, d) → (batch, heads, seq, d/heads)
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.heads, d / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// (batch, seq, d) → (batch, heads, d/heads, seq): keys laid out so that q·kᵀ is a plain
    /// product of contiguous matrices.
    fn split_heads_t(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        x.reshape((b, n, self.heads, d / self.heads))?
            .permute((0, 2, 3, 1))?
            .contiguous()
    }

    /// Transposed keys and values of `xa` (the encoder output), ready for [`attend`](Self::attend).
    fn cross_kv(&self, xa: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let kt = self.split_heads_t(&self.k.forward(xa)?)?;
        let v = self.split_heads(&self.v.forward(xa)?)?;
        Ok((kt, v))
    }

    fn attend(
        &self,
        x: &Tensor,
        kt: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let q = self.split_heads(&self.q.forward(x)?)?;
        let (b, heads, n, _) = q.dims4()?;
        let m = kt.dim(3)?;
        // The attention weights are (b, heads, n, m) floats: 72 MB for a 30 s encoder window,
        // which makes softmax memory-bound. One head at a time they stay in the cache.
        let o = if b * heads > 1 && n * m > CHUNKED_ATTENTION {
            let mut outs = Vec::with_capacity(b * heads);
            for i in 0..b {
                for h in 0..heads {
                    let pick = |t: &Tensor| t.narrow(0, i, 1)?.narrow(1, h, 1);
                    outs.push(self.weights_times_values(
                        &pick(&q)?,
                        &pick(kt)?,
                        &pick(v)?,
                        mask,
                    )?);
                }
            }
            Tensor::cat(&outs, 1)?.reshape((b, heads, n, ()))?
        } else {
            self.weights_times_values(&q, kt, v, mask)?
        };
        let o = o.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&o)
    }

    fn weights_times_values(
        &self,
        q: &Tensor,
        kt: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let mut w = gemm::matmul(q, kt)?;
        if let Some(mask) = mask {
            w = w.broadcast_add(mask)?;
        }
        gemm::matmul(&kernels::softmax_last_dim(w)?, v)
    }

    fn self_attend(&mut self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let (kt, v) = self.cross_kv(x)?;
        let (kt, v) = match &self.cache {
            Some((pk, pv)) => (Tensor::cat(&[pk, &kt], 3)?, Tensor::cat(&[pv, &v], 2)?),
            None => (kt, v),
        };
        self.cache = Some((kt.clone(), v.clone()));
        self.attend(x, &kt, &v, mask)
    }
}

#[derive(Debug, Clone)]
struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(
        d: usize,
        heads: usize,
        cross: bool,
        vb: VarBuilder,
        quantize: bool,
    ) -> candle_core::Result<Self> {
        let cross = if cross {
            Some((
                Attention::load(d, heads, vb.pp("encoder_attn"), quantize, false)?,
                layer_norm(d, 1e-5, vb.pp("encoder_attn_layer_norm"))?,
            ))
        } else {
            None
        };
        Ok(Self {
            attn: Attention::load(d, heads, vb.pp("self_attn"), quantize, quantize)?,
            attn_ln: layer_norm(d, 1e-5, vb.pp("self_attn_layer_norm"))?,
            cross,
            fc1: Linear::load(&vb.pp("fc1"), (d, 4 * d), true, None, precision(quantize))?,
            fc2: Linear::load(&vb.pp("fc2"), (4 * d, d), true, None, precision(quantize))?,
            mlp_ln: layer_norm(d, 1e-5, vb.pp("final_layer_norm"))?,
        })
    }

    fn mlp(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = kernels::gelu_erf_tensor(self.fc1.forward(&self.mlp_ln.forward(x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

/// Cross-attention keys/values of one window, per decoder layer.
#[derive(Debug, Clone)]
pub struct AudioContext {
    kv: Vec<(Tensor, Tensor)>,
}

/// Whisper: [`encode`](Self::encode) a window of log-mel features, then
/// [`decode`](Self::decode) tokens one step at a time.
#[derive(Debug, Clone)]
pub struct WhisperModel {
    pub config: WhisperConfig,
    conv1: Conv1d,
    conv2: Conv1d,
    enc_pos: Tensor,
    enc_blocks: Vec<Block>,
    enc_ln: LayerNorm,
    embed: Embedding,
    /// Output projection (tied to the token embedding), possibly quantized.
    logits: Linear,
    dec_pos: Tensor,
    dec_blocks: Vec<Block>,
    dec_ln: LayerNorm,
    /// Tokens decoded so far in the current sequence (the position of the next one).
    pos: usize,
    device: Device,
}

impl WhisperModel {
    /// Loads from a VarBuilder over the Hugging Face names. `quantize_decoder` turns the decoder's
    /// matrices and the output projection into q8_0.
    pub fn load(
        vb: VarBuilder,
        config: WhisperConfig,
        quantize_decoder: bool,
    ) -> candle_core::Result<Self> {
        let d = config.d_model;
        let enc = vb.pp("model.encoder");
        let dec = vb.pp("model.decoder");
        let c1 = Conv1dConfig {
            padding: 1,
            ..Default::default()
        };
        let c2 = Conv1dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        let enc_blocks = (0..config.encoder_layers)
            .map(|i| {
                Block::load(
                    d,
                    config.encoder_attention_heads,
                    false,
                    enc.pp(format!("layers.{i}")),
                    false,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let dec_blocks = (0..config.decoder_layers)
            .map(|i| {
                Block::load(
                    d,
                    config.decoder_attention_heads,
                    true,
                    dec.pp(format!("layers.{i}")),
                    quantize_decoder,
                )
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embed = embedding(config.vocab_size, d, dec.pp("embed_tokens"))?;
        let logits = Linear::with(embed.embeddings(), None, precision(quantize_decoder))?;
        Ok(Self {
            conv1: conv1d(config.num_mel_bins, d, 3, c1, enc.pp("conv1"))?,
            conv2: conv1d(d, d, 3, c2, enc.pp("conv2"))?,
            enc_pos: sinusoids(config.max_source_positions, d, vb.device())?,
            enc_blocks,
            enc_ln: layer_norm(d, 1e-5, enc.pp("layer_norm"))?,
            embed,
            logits,
            dec_pos: dec.get((config.max_target_positions, d), "embed_positions.weight")?,
            dec_blocks,
            dec_ln: layer_norm(d, 1e-5, dec.pp("layer_norm"))?,
            pos: 0,
            device: vb.device().clone(),
            config,
        })
    }

    /// Encodes log-mel windows `(batch, n_mels, 3000)` into `(batch, 1500, d_model)`.
    pub fn encode(&mut self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let x = kernels::gelu_erf_tensor(self.conv1.forward(mel)?)?;
        let x = kernels::gelu_erf_tensor(self.conv2.forward(&x)?)?;
        let x = x.transpose(1, 2)?;
        let n = x.dim(1)?;
        let mut x = x.broadcast_add(&self.enc_pos.narrow(0, 0, n)?)?;
        for b in self.enc_blocks.iter_mut() {
            let h = b.attn_ln.forward(&x)?;
            let (k, v) = b.attn.cross_kv(&h)?;
            x = (&x + b.attn.attend(&h, &k, &v, None)?)?;
            x = b.mlp(&x)?;
        }
        self.enc_ln.forward(&x)
    }

    /// Prepares the cross-attention of every decoder layer for one encoded window `(1, 1500, d)`.
    pub fn audio_context(&self, encoded: &Tensor) -> candle_core::Result<AudioContext> {
        let kv = self
            .dec_blocks
            .iter()
            .map(|b| b.cross.as_ref().map(|(a, _)| a.cross_kv(encoded)))
            .map(|r| {
                r.unwrap_or_else(|| candle_core::bail!("decoder block without cross-attention"))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(AudioContext { kv })
    }

    /// Starts a new token sequence (clears the self-attention cache).
    pub fn reset(&mut self) {
        self.pos = 0;
        for b in self.dec_blocks.iter_mut() {
            b.attn.cache = None;
        }
    }

    /// Feeds `tokens` after those already decoded; returns the logits `(tokens.len(), vocab)`
    /// of the positions listed in `want` (indices into `tokens`).
    pub fn decode(
        &mut self,
        tokens: &[u32],
        audio: &AudioContext,
        want: &[usize],
    ) -> candle_core::Result<Tensor> {
        let n = tokens.len();
        if self.pos + n > self.config.max_target_positions {
            candle_core::bail!(
                "decoder context of {} tokens exceeded",
                self.config.max_target_positions
            );
        }
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mut x = self
            .embed
            .forward(&ids)?
            .broadcast_add(&self.dec_pos.narrow(0, self.pos, n)?)?;
        let mask = if n > 1 {
            let past = self.pos;
            let m: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
                })
                .collect();
            Some(Tensor::from_vec(m, (n, past + n), &self.device)?)
        } else {
            None
        };
        for (b, (ck, cv)) in self.dec_blocks.iter_mut().zip(&audio.kv) {
            let h = b.attn_ln.forward(&x)?;
            x = (&x + b.attn.self_attend(&h, mask.as_ref())?)?;
            if let Some((cross, ln)) = &b.cross {
                let h = ln.forward(&x)?;
                x = (&x + cross.attend(&h, ck, cv, None)?)?;
            }
            x = b.mlp(&x)?;
        }
        self.pos += n;
        let x = self.dec_ln.forward(&x)?.squeeze(0)?;
        let idx = Tensor::new(
            want.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            &self.device,
        )?;
        let rows = x.index_select(&idx, 0)?;
        self.logits.forward(&rows)?.to_dtype(DType::F32)
    }
}

fn sinusoids(length: usize, channels: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = channels / 2;
    let inc = 10000f32.ln() / (half - 1) as f32;
    let mut v = vec![0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let a = t as f32 * (-(i as f32) * inc).exp();
            v[t * channels + i] = a.sin();
            v[t * channels + half + i] = a.cos();
        }
    }
    Tensor::from_vec(v, (length, channels), device)
}
