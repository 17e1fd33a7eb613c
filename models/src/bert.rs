//! The BERT encoder (sentence-transformers' all-MiniLM-L6-v2 and its family), in the Hugging Face
//! tensor layout.
//!
//! The same network as `candle_transformers::models::bert::BertModel` (the unit test compares the
//! two on one set of weights), with its linear layers on [`gemm::Linear`] at the precision the
//! caller picks: for the sentence embedder, 8 bits on the VNNI kernel where the CPU has it (a
//! search's batch of queries, captions at ingest), else f32 on OpenBLAS for many rows and q8_0
//! for a query's few tokens. The query, key and value projections are one product, with the
//! 1/√d scale folded into the query's weights.

use candle_core::{DType, IndexOp, Module, Tensor};
use candle_nn::{Embedding, VarBuilder, embedding};
use candle_transformers::models::bert::{Config, HiddenAct};

use crate::attention;
use crate::gemm::{Linear, Precision};
use crate::kernels::{self, LayerNorm, layer_norm};

#[derive(Debug, Clone)]
struct Layer {
    /// Query (pre-scaled), key and value projections as one `(d, 3d)` product.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
    act: HiddenAct,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config, precision: Precision) -> candle_core::Result<Self> {
        let (d, heads) = (c.hidden_size, c.num_attention_heads);
        let attn = vb.pp("attention");
        let own = attn.pp("self");
        let qkv = [own.pp("query"), own.pp("key"), own.pp("value")];
        let dense = |vb: VarBuilder, io| Linear::load(&vb, io, true, None, precision);
        let norm = |vb: VarBuilder| layer_norm(d, c.layer_norm_eps, vb.pp("LayerNorm"));
        Ok(Self {
            qkv: attention::fused_qkv(qkv, d, heads, precision)?,
            attention_out: dense(attn.pp("output").pp("dense"), (d, d))?,
            attention_norm: norm(attn.pp("output"))?,
            intermediate: dense(vb.pp("intermediate").pp("dense"), (d, c.intermediate_size))?,
            output: dense(vb.pp("output").pp("dense"), (c.intermediate_size, d))?,
            output_norm: norm(vb.pp("output"))?,
            heads,
            act: c.hidden_act,
        })
    }

    /// `mask` `(b, 1, 1, n)` is added to the attention scores: 0 for tokens, very negative for
    /// padding.
    fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let o = attention::attend(&self.qkv, x, self.heads, Some(mask))?;
        let x = self
            .attention_norm
            .forward(&(self.attention_out.forward(&o)? + x)?)?;
        let m = self.intermediate.forward(&x)?;
        let m = match self.act {
            HiddenAct::Gelu => kernels::gelu_erf_tensor(m)?,
            HiddenAct::GeluApproximate => m.gelu()?,
            HiddenAct::Relu => m.relu()?,
        };
        self.output_norm.forward(&(self.output.forward(&m)? + x)?)
    }
}

/// A BERT encoder: token ids in, one hidden state per token out.
#[derive(Debug, Clone)]
pub(crate) struct Bert {
    words: Embedding,
    positions: Tensor,
    /// The first token type's embedding (sentence embedders give every token type 0).
    token_type: Tensor,
    norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// From a checkpoint's tensors, at its root or under `bert.`.
    pub(crate) fn load(
        vb: VarBuilder,
        c: &Config,
        precision: Precision,
    ) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let emb = vb.pp("embeddings");
        let d = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder").pp(format!("layer.{i}")), c, precision))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            words: embedding(c.vocab_size, d, emb.pp("word_embeddings"))?,
            positions: emb.get((c.max_position_embeddings, d), "position_embeddings.weight")?,
            token_type: emb
                .get((c.type_vocab_size, d), "token_type_embeddings.weight")?
                .i(0)?,
            norm: layer_norm(d, c.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
        })
    }

    /// Hidden states `(b, n, d)` of token ids `(b, n)`; `mask` `(b, n)` is 1 for tokens and 0
    /// for padding, which no token attends to.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, n) = ids.dims2()?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.narrow(0, 0, n)?)?
            .broadcast_add(&self.token_type)?;
        let mut x = self.norm.forward(&x)?;
        let padding = mask
            .to_dtype(DType::F32)?
            .affine(-1.0, 1.0)?
            .affine(f32::MIN as f64, 0.0)?
            .reshape((b, 1, 1, n))?;
        for layer in &self.layers {
            x = layer.forward(&x, &padding)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::max_abs;
    use candle_core::Device;
    use candle_nn::VarMap;

    fn config() -> Config {
        serde_json::from_str(
            r#"{"vocab_size": 300, "hidden_size": 384, "num_hidden_layers": 2,
                "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1, "max_position_embeddings": 64,
                "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
                "pad_token_id": 0}"#,
        )
        .unwrap()
    }

    /// The encoder gives candle-transformers' hidden states on the same weights, for a batch
    /// with padding (the f32 products) and for one short text (the q8_0 products where they are
    /// fast, within 8-bit rounding).
    #[test]
    fn hidden_states_equal_candle_transformers() {
        let dev = Device::Cpu;
        let c = config();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let reference = candle_transformers::models::bert::BertModel::load(vb.clone(), &c).unwrap();
        // Untrained embeddings and layer norms would be all ones and zeros: draw them.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.contains("LayerNorm") || name.contains("embeddings") {
                let t = Tensor::randn(0f32, 0.5, var.shape(), &dev).unwrap();
                var.set(&(t + if name.ends_with("weight") { 1.0 } else { 0.0 }).unwrap())
                    .unwrap();
            }
        }
        let ours = Bert::load(vb, &c, Precision::Both).unwrap();
        let (b, n) = (4, 12);
        let ids: Vec<u32> = (0..b * n).map(|i| (i * 37 % 300) as u32).collect();
        let mask: Vec<u32> = (0..b * n).map(|i| u32::from(i % n < 5 + i / n)).collect();
        let ids = Tensor::from_vec(ids, (b, n), &dev).unwrap();
        let mask = Tensor::from_vec(mask, (b, n), &dev).unwrap();
        let want = reference
            .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        let got = ours.forward(&ids, &mask).unwrap();
        assert_eq!(got.dims(), want.dims());
        let diff = max_abs(&(&got - &want).unwrap());
        assert!(diff < 1e-3, "batch: differ by {diff}");

        // One text of 6 tokens: 6 rows, the q8_0 products where candle has a fast kernel.
        let ids = ids.narrow(0, 0, 1).unwrap().narrow(1, 0, 6).unwrap();
        let mask = Tensor::ones((1, 6), DType::U32, &dev).unwrap();
        let want = reference
            .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        let got = ours.forward(&ids, &mask).unwrap();
        let diff = max_abs(&(&got - &want).unwrap());
        // Beyond f32 rounding exactly where candle's packed 8-bit kernel runs.
        assert_eq!(
            diff >= 1e-3,
            crate::gemm::packed_q8_kernel(1536, 384),
            "differ by {diff}"
        );
        assert!(diff < 0.05 * max_abs(&want), "short text: differ by {diff}");
    }
}
