//! Multi-head self-attention as the encoders here run it (CLIP's towers, BERT): the query, key
//! and value projections as one `(d, 3d)` product with the 1/√(head dim) scale folded into the
//! query's weights, products through [`gemm`](crate::gemm), softmax in place.

use candle_core::{IndexOp, Tensor};
use candle_nn::VarBuilder;

use crate::gemm::{self, Linear, Precision};
use crate::kernels;

/// The fused projection of a checkpoint's separate `q`, `k` and `v` linear layers (each
/// `weight` `(d, d)` and `bias` `(d)`), for `heads` heads.
pub(crate) fn fused_qkv(
    [q, k, v]: [VarBuilder; 3],
    d: usize,
    heads: usize,
    precision: Precision,
) -> candle_core::Result<Linear> {
    let scale = 1.0 / ((d / heads) as f64).sqrt();
    let part = |p: VarBuilder| -> candle_core::Result<(Tensor, Tensor)> {
        Ok((p.get((d, d), "weight")?, p.get(d, "bias")?))
    };
    let (qw, qb) = part(q)?;
    let (kw, kb) = part(k)?;
    let (vw, vb) = part(v)?;
    let w = Tensor::cat(&[(qw * scale)?, kw, vw], 0)?;
    let b = Tensor::cat(&[(qb * scale)?, kb, vb], 0)?;
    Linear::with(&w, Some(b), precision)
}

/// Attention over `x` `(b, n, d)` through the fused projection `qkv`: the heads' outputs side by
/// side `(b, n, d)`, before the output projection. `mask`, if any, is added to every head's
/// scores `(…, n, n)` (broadcast).
pub(crate) fn attend(
    qkv: &Linear,
    x: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    // (b, n, 3, heads, head dim) → (3, b, heads, n, head dim)
    let qkv = qkv
        .forward(x)?
        .reshape((b, n, 3, heads, d / heads))?
        .permute((2, 0, 3, 1, 4))?
        .contiguous()?;
    let (q, k, v) = (qkv.i(0)?, qkv.i(1)?, qkv.i(2)?);
    let mut scores = gemm::matmul(&q, &k.transpose(2, 3)?)?;
    if let Some(mask) = mask {
        scores = scores.broadcast_add(mask)?;
    }
    let weights = kernels::softmax_last_dim(scores)?;
    gemm::matmul(&weights, &v)?
        .transpose(1, 2)?
        .reshape((b, n, d))
}
