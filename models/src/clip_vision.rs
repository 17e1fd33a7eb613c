//! The CLIP image tower (ViT), in the Hugging Face tensor layout, with its products on OpenBLAS.
//!
//! The same network as `candle_transformers::models::clip::vision_model` (the unit test compares
//! the two on one set of weights), arranged for throughput on the CPU: the patch convolution is
//! one matrix product over all the patches of the batch, the query, key and value projections are
//! one product (the 1/√d scale folded into the query weights), every large product goes to
//! [`gemm`](crate::gemm), and quick-GELU and softmax run in place.

use candle_core::{IndexOp, Tensor};
use candle_nn::{LayerNorm, Module, VarBuilder, layer_norm};

use crate::clip::HfVisionConfig;
use crate::gemm::{self, Linear};
use crate::kernels;

/// A checkpoint's linear layer `vb` (`weight` `(o, i)`, optional `bias`).
fn dense(vb: &VarBuilder, i: usize, o: usize, bias: bool) -> candle_core::Result<Linear> {
    let w = vb.get((o, i), "weight")?;
    let bias = if bias { Some(vb.get(o, "bias")?) } else { None };
    Linear::new(&w, bias)
}

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
    fn load(vb: VarBuilder, c: &HfVisionConfig) -> candle_core::Result<Self> {
        let d = c.hidden_size;
        let attn = vb.pp("self_attn");
        let scale = 1.0 / ((d / c.num_attention_heads) as f64).sqrt();
        let part = |name: &str| -> candle_core::Result<(Tensor, Tensor)> {
            let p = attn.pp(name);
            Ok((p.get((d, d), "weight")?, p.get(d, "bias")?))
        };
        let (qw, qb) = part("q_proj")?;
        let (kw, kb) = part("k_proj")?;
        let (vw, vb_) = part("v_proj")?;
        let w = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
        let b = Tensor::cat(&[(qb * scale)?, kb, vb_], 0)?;
        Ok(Self {
            norm1: layer_norm(d, 1e-5, vb.pp("layer_norm1"))?,
            qkv: Linear::new(&w, Some(b))?,
            out: dense(&attn.pp("out_proj"), d, d, true)?,
            norm2: layer_norm(d, 1e-5, vb.pp("layer_norm2"))?,
            fc1: dense(&vb.pp("mlp").pp("fc1"), d, c.intermediate_size, true)?,
            fc2: dense(&vb.pp("mlp").pp("fc2"), c.intermediate_size, d, true)?,
            heads: c.num_attention_heads,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n, d) = x.dims3()?;
        let h = self.heads;
        // (b, n, 3, heads, head dim) → (3, b, heads, n, head dim)
        let qkv = self
            .qkv
            .forward(&self.norm1.forward(x)?)?
            .reshape((b, n, 3, h, d / h))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?;
        let (q, k, v) = (qkv.i(0)?, qkv.i(1)?, qkv.i(2)?);
        let weights = kernels::softmax_last_dim(gemm::matmul(&q, &k.transpose(2, 3)?)?)?;
        let o = gemm::matmul(&weights, &v)?
            .transpose(1, 2)?
            .reshape((b, n, d))?;
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
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vm.pp("encoder").pp("layers").pp(i.to_string()), c))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            patch,
            class: emb.get(d, "class_embedding")?,
            positions: emb.get((positions, d), "position_embedding.weight")?,
            // "pre_layrnorm" is the checkpoint's own spelling.
            pre_norm: layer_norm(d, 1e-5, vm.pp("pre_layrnorm"))?,
            layers,
            post_norm: layer_norm(d, 1e-5, vm.pp("post_layernorm"))?,
            projection: dense(&vb.pp("visual_projection"), d, projection_dim, false)?,
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
            x = layer.forward(&x)?;
        }
        let pooled = self.post_norm.forward(&x.i((.., 0, ..))?)?;
        self.projection.forward(&pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clip::{HfClipConfig, init_varmap};
    use candle_core::{DType, Device};

    /// The tower gives candle-transformers' CLIP image features on the same weights, at B/32's
    /// shape trimmed to two layers (the arithmetic of every layer is the same).
    #[test]
    fn image_features_equal_candle_transformers() {
        let dev = Device::Cpu;
        let mut config = HfClipConfig::vit_base_patch32();
        config.vision_config.num_hidden_layers = 2;
        config.text_config.num_hidden_layers = 1;
        let varmap = init_varmap(&config, &dev).unwrap();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let reference = candle_transformers::models::clip::ClipModel::new(
            vb.clone(),
            &config.to_candle(std::path::Path::new("<memory>")).unwrap(),
        )
        .unwrap();
        let ours = VisionTower::load(vb, &config.vision_config, config.projection_dim).unwrap();
        let pixels = Tensor::randn(0f32, 1.0, (3, 3, 224, 224), &dev).unwrap();
        let want = reference.get_image_features(&pixels).unwrap();
        let got = ours.forward(&pixels).unwrap();
        assert_eq!(got.dims(), want.dims());
        let max_abs = |t: &Tensor| {
            t.abs()
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.max(0))
                .and_then(|t| t.to_scalar::<f32>())
                .unwrap()
        };
        let diff = max_abs(&(&got - &want).unwrap());
        let scale = max_abs(&want);
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "differ by {diff} (scale {scale})"
        );
    }
}
