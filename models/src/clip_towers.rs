//! CLIP's two towers (image ViT and text transformer), in the Hugging Face tensor layout, with
//! their products on OpenBLAS or in 8 bits.
//!
//! The same networks as `candle_transformers::models::clip` (the unit tests compare the two on
//! one set of weights), arranged for speed on the CPU: the patch convolution is one matrix
//! product over all the patches of the batch, the query, key and value projections are one
//! product (the 1/√d scale folded into the query weights), every large product goes to
//! [`gemm`](crate::gemm), and quick-GELU and softmax run in place. The text tower also keeps its
//! weights in q8_0, for a search query's few tokens (see [`Linear`]).

use candle_core::{D, DType, IndexOp, Tensor};
use candle_nn::{Embedding, Module, VarBuilder, embedding};

use crate::attention;
use crate::clip::{HfTextConfig, HfVisionConfig};
use crate::gemm::{self, Linear, Precision};
use crate::kernels::{self, LayerNorm, layer_norm};

/// One encoder layer (pre-norm attention and MLP), the same in both towers.
#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    /// Query (pre-scaled), key and value projections as one `(d, 3d)` product.
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Layer {
    fn load(
        vb: VarBuilder,
        (d, heads, hidden): (usize, usize, usize),
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let attn = vb.pp("self_attn");
        let qkv = [attn.pp("q_proj"), attn.pp("k_proj"), attn.pp("v_proj")];
        let dense = |vb: VarBuilder, io| Linear::load(&vb, io, true, None, precision);
        Ok(Self {
            norm1: layer_norm(d, 1e-5, vb.pp("layer_norm1"))?,
            qkv: attention::fused_qkv(qkv, d, heads, precision)?,
            out: dense(attn.pp("out_proj"), (d, d))?,
            norm2: layer_norm(d, 1e-5, vb.pp("layer_norm2"))?,
            fc1: dense(vb.pp("mlp").pp("fc1"), (d, hidden))?,
            fc2: dense(vb.pp("mlp").pp("fc2"), (hidden, d))?,
            heads,
        })
    }

    /// `mask`, if any, is added to the attention scores `(n, n)` of every head.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let o = attention::attend(&self.qkv, &self.norm1.forward(x)?, self.heads, mask)?;
        let x = (x + self.out.forward(&o)?)?;
        let m = kernels::quick_gelu_tensor(self.fc1.forward(&self.norm2.forward(&x)?)?)?;
        x + self.fc2.forward(&m)?
    }
}

/// CLIP's image tower and its projection into the shared space.
#[derive(Debug, Clone)]
pub(crate) struct VisionTower {
    /// The patch convolution as a `(channels · patch², d)` matrix.
    patch: Tensor,
    class: Tensor,
    positions: Tensor,
    pre_norm: LayerNorm,
    layers: Vec<Layer>,
    post_norm: LayerNorm,
    projection: Linear,
    patch_size: usize,
    channels: usize,
}

impl VisionTower {
    /// From a CLIP model's root (`vision_model.*`, `visual_projection.weight`).
    pub(crate) fn load(
        vb: VarBuilder,
        c: &HfVisionConfig,
        projection_dim: usize,
    ) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let (p, ch) = (c.patch_size, c.num_channels);
        let positions = (c.image_size / p).pow(2) + 1;
        let vm = vb.pp("vision_model");
        let emb = vm.pp("embeddings");
        let patch = emb
            .get((d, ch, p, p), "patch_embedding.weight")?
            .reshape((d, ch * p * p))?
            .t()?
            .contiguous()?;
        let shape = (d, c.num_attention_heads, c.intermediate_size);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let vb = vm.pp("encoder").pp("layers").pp(i.to_string());
                Layer::load(vb, shape, Precision::F32)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            patch,
            class: emb.get(d, "class_embedding")?,
            positions: emb.get((positions, d), "position_embedding.weight")?,
            // "pre_layrnorm" is the checkpoint's own spelling.
            pre_norm: layer_norm(d, 1e-5, vm.pp("pre_layrnorm"))?,
            layers,
            post_norm: layer_norm(d, 1e-5, vm.pp("post_layernorm"))?,
            projection: Linear::load(
                &vb.pp("visual_projection"),
                (d, projection_dim),
                false,
                None,
                Precision::F32,
            )?,
            patch_size: p,
            channels: ch,
        })
    }

    /// Image features (not normalised) of a `(batch, channels, size, size)` pixel tensor.
    pub(crate) fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let (b, ch, s, _) = pixels.dims4()?;
        if ch != self.channels {
            candle_core::bail!("{ch} channels given, the model takes {}", self.channels);
        }
        let (p, g) = (self.patch_size, s / self.patch_size);
        // (b, c, g, p, g, p) → (b, g, g, c, p, p): each row one patch, in the conv's weight order.
        let patches = pixels
            .reshape((b, ch, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b * g * g, ch * p * p))?;
        let d = self.class.dim(0)?;
        let patches = gemm::matmul(&patches, &self.patch)?.reshape((b, g * g, d))?;
        let class = self.class.reshape((1, 1, d))?.expand((b, 1, d))?;
        let x = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.positions)?;
        let mut x = self.pre_norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, None)?;
        }
        let pooled = self.post_norm.forward(&x.i((.., 0, ..))?)?;
        self.projection.forward(&pooled)
    }
}

/// CLIP's text tower and its projection into the shared space.
#[derive(Debug, Clone)]
pub(crate) struct TextTower {
    tokens: Embedding,
    positions: Tensor,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    projection: Linear,
}

impl TextTower {
    /// From a CLIP model's root (`text_model.*`, `text_projection.weight`). The linear layers
    /// keep f32 and q8_0 weights: a query's few tokens take the 8-bit ones.
    pub(crate) fn load(
        vb: VarBuilder,
        c: &HfTextConfig,
        projection_dim: usize,
    ) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let tm = vb.pp("text_model");
        let emb = tm.pp("embeddings");
        let shape = (d, c.num_attention_heads, c.intermediate_size);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let vb = tm.pp("encoder").pp("layers").pp(i.to_string());
                Layer::load(vb, shape, Precision::Both)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            tokens: embedding(c.vocab_size, d, emb.pp("token_embedding"))?,
            positions: emb.get((c.max_position_embeddings, d), "position_embedding.weight")?,
            layers,
            final_norm: layer_norm(d, 1e-5, tm.pp("final_layer_norm"))?,
            // One row a text: f32 however few (it is 1 MB, read once a query).
            projection: Linear::load(
                &vb.pp("text_projection"),
                (d, projection_dim),
                false,
                None,
                Precision::F32,
            )?,
        })
    }

    /// Text features (not normalised) of token ids `(batch, tokens)`, each row ending with the
    /// end-of-text token (the highest id, where CLIP pools); padding after it changes nothing,
    /// the attention being causal.
    pub(crate) fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let d = self.positions.dim(1)?;
        let x = self
            .tokens
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?)?;
        let causal: Vec<f32> = (0..n)
            .flat_map(|i| (0..n).map(move |j| if j > i { f32::MIN } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(causal, (n, n), ids.device())?;
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(&x, Some(&mask))?;
        }
        // The end token's row of each text; the norm is per row, so it runs on those alone.
        let ends = ids
            .argmax(D::Minus1)?
            .to_dtype(DType::U32)?
            .to_vec1::<u32>()?;
        let rows: Vec<u32> = (0..b as u32)
            .zip(ends)
            .map(|(i, e)| i * n as u32 + e)
            .collect();
        let rows = Tensor::from_vec(rows, b, ids.device())?;
        let pooled = x.reshape((b * n, d))?.index_select(&rows, 0)?;
        self.projection.forward(&self.final_norm.forward(&pooled)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{HfClipConfig, init_varmap};
    use crate::max_abs;
    use candle_core::Device;

    /// candle-transformers' CLIP on random weights, and those weights for ours.
    fn reference(
        config: &HfClipConfig,
    ) -> (
        candle_transformers::models::clip::ClipModel,
        VarBuilder<'static>,
    ) {
        let dev = Device::Cpu;
        let varmap = init_varmap(config, &dev).unwrap();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let model = candle_transformers::models::clip::ClipModel::new(
            vb.clone(),
            &config.to_candle(std::path::Path::new("<memory>")).unwrap(),
        )
        .unwrap();
        (model, vb)
    }

    /// The tower gives candle-transformers' CLIP image features on the same weights, at B/32's
    /// shape trimmed to two layers (the arithmetic of every layer is the same).
    #[test]
    fn image_features_equal_candle_transformers() {
        let dev = Device::Cpu;
        let mut config = HfClipConfig::vit_base_patch32();
        config.vision_config.num_hidden_layers = 2;
        config.text_config.num_hidden_layers = 1;
        let (reference, vb) = reference(&config);
        let ours = VisionTower::load(vb, &config.vision_config, config.projection_dim).unwrap();
        let pixels = Tensor::randn(0f32, 1.0, (3, 3, 224, 224), &dev).unwrap();
        let want = reference.get_image_features(&pixels).unwrap();
        let got = ours.forward(&pixels).unwrap();
        assert_eq!(got.dims(), want.dims());
        let diff = max_abs(&(&got - &want).unwrap());
        let scale = max_abs(&want);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "differ by {diff} (scale {scale})"
        );
    }

    /// The text tower gives candle-transformers' CLIP text features on the same weights: for a
    /// batch of texts of different lengths padded after their end token (the f32 products), and
    /// for one short query (the q8_0 products where they are fast, within 8-bit rounding:
    /// cosine ≥ 0.999).
    #[test]
    fn text_features_equal_candle_transformers() {
        let dev = Device::Cpu;
        let mut config = HfClipConfig::vit_base_patch32();
        config.vision_config.num_hidden_layers = 1;
        config.text_config.num_hidden_layers = 2;
        config.text_config.vocab_size = 100;
        let (reference, vb) = reference(&config);
        let ours = TextTower::load(vb, &config.text_config, config.projection_dim).unwrap();
        // Four texts of 5 to 11 tokens, ending with the highest id (99), padded with 0.
        let (b, n) = (4, 11);
        let ids: Vec<u32> = (0..b * n)
            .map(|i| {
                let (row, col) = (i / n, i % n);
                match (col + 1).cmp(&(5 + 2 * row)) {
                    std::cmp::Ordering::Less => (1 + i * 7 % 97) as u32,
                    std::cmp::Ordering::Equal => 99,
                    std::cmp::Ordering::Greater => 0,
                }
            })
            .collect();
        let ids = Tensor::from_vec(ids, (b, n), &dev).unwrap();
        let want = reference.get_text_features(&ids).unwrap();
        let got = ours.forward(&ids).unwrap();
        assert_eq!(got.dims(), want.dims());
        let diff = max_abs(&(&got - &want).unwrap());
        let scale = max_abs(&want);
        assert!(diff <= 1e-4 * scale.max(1.0), "batch: differ by {diff}");

        // The first text alone: 5 rows, the 8-bit products where candle has a fast kernel.
        let one = ids.narrow(0, 0, 1).unwrap().narrow(1, 0, 5).unwrap();
        let want = reference
            .get_text_features(&one)
            .unwrap()
            .flatten_all()
            .unwrap();
        let got = ours.forward(&one).unwrap().flatten_all().unwrap();
        // Beyond f32 rounding exactly where candle's packed 8-bit kernel runs.
        let diff = max_abs(&(&got - &want).unwrap());
        assert_eq!(
            diff > 1e-4 * max_abs(&want).max(1.0),
            crate::gemm::packed_q8_kernel(512, 2048),
            "differ by {diff}"
        );
        let dot = |a: &Tensor, b: &Tensor| {
            (a * b)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        let cosine = dot(&got, &want) / (dot(&got, &got) * dot(&want, &want)).sqrt();
        assert!(cosine >= 0.999, "cosine {cosine}");
    }
}
