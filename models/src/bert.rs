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

    /// [`forward`](Self::forward) on unpadded rows (see [`Bert::pooled`]): `x` `(rows, d)` in
    /// place, the other buffers its scratch. `None` (and `x` untouched) unless every linear
    /// layer is on the 8-bit kernel and the activation is GELU.
    fn forward_rows(&self, x: &mut [f32], lengths: &[usize], s: &mut Scratch) -> Option<()> {
        let (Some(qkv), Some(out), Some(inter), Some(output), HiddenAct::Gelu) = (
            self.qkv.i8(),
            self.attention_out.i8(),
            self.intermediate.i8(),
            self.output.i8(),
            self.act,
        ) else {
            return None;
        };
        let rows: usize = lengths.iter().sum();
        let d = x.len() / rows;
        s.qkv.resize(rows * qkv.outputs(), 0.0);
        s.o.resize(rows * d, 0.0);
        s.y.resize(rows * d, 0.0);
        s.m.resize(rows * inter.outputs(), 0.0);
        let sized = |r: candle_core::Result<()>| r.expect("buffers sized for the layer");
        sized(qkv.forward_rows(x, d, &mut s.qkv));
        attention::attend_rows(&s.qkv, lengths, self.heads, &mut s.o);
        sized(out.forward_rows(&s.o, d, &mut s.y));
        add_to(&mut s.y, x);
        self.attention_norm.forward_rows(&s.y, x);
        sized(inter.forward_rows(x, d, &mut s.m));
        kernels::gelu_erf_rows(&mut s.m);
        sized(output.forward_rows(&s.m, inter.outputs(), &mut s.y));
        add_to(&mut s.y, x);
        self.output_norm.forward_rows(&s.y, x);
        Some(())
    }
}

/// The buffers a layer's [`forward_rows`](Layer::forward_rows) works in, kept across layers.
#[derive(Default)]
struct Scratch {
    qkv: Vec<f32>,
    o: Vec<f32>,
    y: Vec<f32>,
    m: Vec<f32>,
}

/// `y += x`, element by element (a residual connection).
fn add_to(y: &mut [f32], x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += x;
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

    /// The mean of each sequence's hidden states over its tokens: [`forward`](Self::forward)
    /// with mean pooling over the mask, run on the sequences unpadded, one after the other.
    /// Each product then has no padded rows, and a layer is a dozen passes over buffers kept
    /// from layer to layer instead of as many tensors (the query batch of a search load spent
    /// a third of its encoder time outside the products). The numbers are `forward`'s but for
    /// the order of attention's sums. `None` unless every layer is on the 8-bit kernel with
    /// GELU, or when a sequence is empty.
    pub(crate) fn pooled(
        &self,
        sequences: &[&[u32]],
    ) -> candle_core::Result<Option<Vec<Vec<f32>>>> {
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        if lengths.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let longest = lengths.iter().copied().max().unwrap_or(0);
        if lengths.contains(&0) || longest > self.positions.dim(0)? {
            return Ok(None);
        }
        let rows: usize = lengths.iter().sum();
        let ids = Tensor::from_vec(sequences.concat(), rows, self.positions.device())?;
        let words = self.words.forward(&ids)?.flatten_all()?.to_vec1::<f32>()?;
        let d = words.len() / rows;
        let positions = self.positions.narrow(0, 0, longest)?.flatten_all()?;
        let (positions, token_type) = (
            positions.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            self.token_type.to_dtype(DType::F32)?.to_vec1::<f32>()?,
        );
        let mut embedded = Vec::with_capacity(rows * d);
        for &n in &lengths {
            // `embedded` holds the rows done so far: the next sequence's words start there.
            for (word, position) in words[embedded.len()..]
                .chunks_exact(d)
                .zip(positions.chunks_exact(d))
                .take(n)
            {
                for ((w, p), t) in word.iter().zip(position).zip(&token_type) {
                    embedded.push(w + p + t);
                }
            }
        }
        let mut x = vec![0f32; rows * d];
        self.norm.forward_rows(&embedded, &mut x);
        let mut scratch = Scratch::default();
        for layer in &self.layers {
            if layer.forward_rows(&mut x, &lengths, &mut scratch).is_none() {
                return Ok(None);
            }
        }
        let mut rows = x.chunks_exact(d);
        Ok(Some(
            lengths
                .iter()
                .map(|&n| {
                    let mut sum = vec![0f32; d];
                    for row in rows.by_ref().take(n) {
                        add_to(&mut sum, row);
                    }
                    sum.iter_mut().for_each(|v| *v /= n as f32);
                    sum
                })
                .collect(),
        ))
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

    /// A model with drawn embeddings and layer norms (untrained ones would be all ones and
    /// zeros), at `precision`.
    fn drawn(precision: Precision) -> Bert {
        let dev = Device::Cpu;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let bert = Bert::load(vb.clone(), &config(), Precision::F32).unwrap();
        for (name, var) in varmap.data().lock().unwrap().iter() {
            if name.contains("LayerNorm") || name.contains("embeddings") {
                let t = Tensor::randn(0f32, 0.5, var.shape(), &dev).unwrap();
                var.set(&(t + if name.ends_with("weight") { 1.0 } else { 0.0 }).unwrap())
                    .unwrap();
            }
        }
        drop(bert);
        Bert::load(vb, &config(), precision).unwrap()
    }

    /// On the 8-bit kernel, the unpadded rows give the padded batch's mean-pooled hidden
    /// states (within the rounding of attention's sums), and each sequence the same bits
    /// alone as in any batch.
    #[test]
    fn pooled_rows_equal_the_padded_batch() {
        if !crate::vnni::available() {
            eprintln!("no AVX-512 VNNI: the 8-bit kernel does not run here");
            assert!(drawn(Precision::Int8).pooled(&[&[1, 2]]).unwrap().is_none());
            return;
        }
        let dev = Device::Cpu;
        let bert = drawn(Precision::Int8);
        let lengths = [1usize, 5, 12, 7];
        let sequences: Vec<Vec<u32>> = lengths
            .iter()
            .enumerate()
            .map(|(s, &n)| (0..n).map(|i| ((s * 53 + i * 37) % 300) as u32).collect())
            .collect();
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let got = bert.pooled(&refs).unwrap().expect("on the 8-bit kernel");

        let (b, n) = (lengths.len(), 12);
        let mut ids = vec![0u32; b * n];
        let mut mask = vec![0u32; b * n];
        for (s, seq) in sequences.iter().enumerate() {
            ids[s * n..s * n + seq.len()].copy_from_slice(seq);
            mask[s * n..s * n + seq.len()].fill(1);
        }
        let hidden = bert
            .forward(
                &Tensor::from_vec(ids, (b, n), &dev).unwrap(),
                &Tensor::from_vec(mask, (b, n), &dev).unwrap(),
            )
            .unwrap();
        for (s, (&len, got)) in lengths.iter().zip(&got).enumerate() {
            let want: Vec<f32> = hidden
                .i(s)
                .unwrap()
                .narrow(0, 0, len)
                .unwrap()
                .mean(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = want
                .iter()
                .zip(got)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff < 1e-4 * scale,
                "sequence {s}: differ by {diff} of {scale}"
            );
        }
        for (s, seq) in refs.iter().enumerate() {
            let alone = bert.pooled(&[seq]).unwrap().unwrap();
            assert_eq!(alone[0], got[s], "sequence {s} alone");
        }
        // An empty sequence has no mean: the padded path's to handle. No sequences, no means.
        assert!(bert.pooled(&[&[1, 2], &[]]).unwrap().is_none());
        assert_eq!(bert.pooled(&[]).unwrap(), Some(Vec::new()));
    }
}
