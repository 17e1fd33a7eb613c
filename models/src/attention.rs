//! Multi-head self-attention as the encoders here run it (CLIP's towers, BERT): the query, key
//! and value projections as one `(d, 3d)` product with the 1/√(head dim) scale folded into the
//! query's weights, products through [`gemm`](crate::gemm), softmax in place; or, for sequences
//! run unpadded one after the other ([`attend_rows`]), per sequence on plain slices.

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

/// [`attend`] on unpadded rows: `qkv` `(rows, 3d)` is the fused projection's output for
/// sequences of `lengths` tokens laid one after the other, and each head's output goes into its
/// `d / heads` columns of `o` `(rows, d)`. A token attends to its own sequence only, which is
/// what the padding mask does in [`attend`]: no mask, no padded rows. The sums run in another
/// order than the matrix products', so the results agree within float rounding.
pub(crate) fn attend_rows(qkv: &[f32], lengths: &[usize], heads: usize, o: &mut [f32]) {
    let rows: usize = lengths.iter().sum();
    assert!(rows > 0 && heads > 0 && o.len().is_multiple_of(rows));
    let d = o.len() / rows;
    assert!(qkv.len() == 3 * o.len() && d.is_multiple_of(heads));
    // Each sequence's rows of `qkv` and of `o`.
    let mut parts = Vec::with_capacity(lengths.len());
    let (mut qkv, mut o) = (qkv, o);
    for &n in lengths {
        let (q, rest) = qkv.split_at(n * 3 * d);
        let (out, tail) = std::mem::take(&mut o).split_at_mut(n * d);
        parts.push((q, out, n));
        (qkv, o) = (rest, tail);
    }
    let one = |(qkv, o, n): (&[f32], &mut [f32], usize)| {
        if n > 0 {
            attend_one(qkv, o, n, heads);
        }
    };
    // Worth rayon's hand-off only for long texts (ingest's), not for a query batch's.
    let work: usize = lengths.iter().map(|n| n * n).sum::<usize>() * d;
    if work >= PARALLEL_WORK && lengths.len() > 1 {
        use rayon::prelude::*;
        parts.into_par_iter().for_each(one);
    } else {
        parts.into_iter().for_each(one);
    }
}

/// Multiply-adds of the scores (each sequence's `n² · d`) above which the sequences are spread over rayon.
const PARALLEL_WORK: usize = 1 << 22;

/// One sequence of `n` tokens: per head, its `n × n` scores, their softmax, and the weighted
/// sum of the values. A head's keys are copied out transposed and its values side by side, so
/// that a row of scores is the query's `head dim` values times rows of `n` keys, and an output
/// is summed over contiguous values: sums along rows, which vectorise.
fn attend_one(qkv: &[f32], o: &mut [f32], n: usize, heads: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            attend_one_avx512(qkv, o, n, heads)
        };
        return;
    }
    attend_one_here(qkv, o, n, heads)
}

/// [`attend_one`] compiled for AVX-512: 16 lanes a vector where x86-64's default has 4.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn attend_one_avx512(qkv: &[f32], o: &mut [f32], n: usize, heads: usize) {
    attend_one_here(qkv, o, n, heads)
}

#[inline(always)]
fn attend_one_here(qkv: &[f32], o: &mut [f32], n: usize, heads: usize) {
    let d = o.len() / n;
    let hd = d / heads;
    // A query's few tokens: one score a key, along the head's values; else a row of scores
    // along the keys, transposed.
    let short = n < SHORT && hd == 32;
    let mut scores = vec![0f32; n * n];
    let (mut keys, mut values) = (vec![0f32; hd * n], vec![0f32; n * hd]);
    for h in 0..heads {
        let (qs, ks, vs) = (h * hd, d + h * hd, 2 * d + h * hd);
        for (j, v) in values.chunks_exact_mut(hd).enumerate() {
            let row = &qkv[j * 3 * d..][..3 * d];
            if short {
                keys[j * hd..][..hd].copy_from_slice(&row[ks..][..hd]);
            } else {
                for (c, k) in row[ks..][..hd].iter().enumerate() {
                    keys[c * n + j] = *k;
                }
            }
            v.copy_from_slice(&row[vs..][..hd]);
        }
        for (i, row) in scores.chunks_exact_mut(n).enumerate() {
            let q = &qkv[i * 3 * d + qs..][..hd];
            if let (true, Some(q)) = (short, q.as_array::<32>()) {
                for (s, k) in row.iter_mut().zip(keys.as_chunks::<32>().0) {
                    *s = dot32(q, k);
                }
                continue;
            }
            row.fill(0.0);
            for (q, keys) in q.iter().zip(keys.chunks_exact(n)) {
                for (s, k) in row.iter_mut().zip(keys) {
                    *s += q * k;
                }
            }
        }
        kernels::softmax_rows(&mut scores, n);
        for (i, weights) in scores.chunks_exact(n).enumerate() {
            let out = &mut o[i * d + h * hd..][..hd];
            if hd == 32 {
                // MiniLM's heads: the outputs summed in two registers over the values.
                let mut sums = [0f32; 32];
                for (w, v) in weights.iter().zip(values.as_chunks::<32>().0) {
                    for (s, v) in sums.iter_mut().zip(v) {
                        *s += w * v;
                    }
                }
                out.copy_from_slice(&sums);
            } else {
                out.fill(0.0);
                for (w, v) in weights.iter().zip(values.chunks_exact(hd)) {
                    for (o, v) in out.iter_mut().zip(v) {
                        *o += w * v;
                    }
                }
            }
        }
    }
}

/// Sequences shorter than this (a search query's tokens) take their scores one key at a
/// time: a row of them is shorter than a vector.
const SHORT: usize = 16;

/// `a · b` of 32 values: two vectors' products, then their sum halved and halved again.
#[inline(always)]
fn dot32(a: &[f32; 32], b: &[f32; 32]) -> f32 {
    let mut s = [0f32; 16];
    for (l, s) in s.iter_mut().enumerate() {
        *s = a[l] * b[l] + a[l + 16] * b[l + 16];
    }
    let mut width = 8;
    while width > 0 {
        for l in 0..width {
            s[l] += s[l + width];
        }
        width /= 2;
    }
    s[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unpadded attention equals the definition (in f64) for every sequence, with heads of 32
    /// values (MiniLM's) and of 64 (CLIP's).
    #[test]
    fn rows_attend_within_their_own_sequence() {
        let lengths = [3usize, 1, 20, 9];
        let rows: usize = lengths.iter().sum();
        for (d, heads) in [(384usize, 12usize), (128, 2)] {
            let hd = d / heads;
            let qkv: Vec<f32> = (0..rows * 3 * d)
                .map(|i| ((i * 7919) % 1013) as f32 / 1013.0 - 0.5)
                .collect();
            let mut o = vec![f32::NAN; rows * d];
            attend_rows(&qkv, &lengths, heads, &mut o);
            let mut first = 0;
            for &n in &lengths {
                let at = |r: usize, part: usize, h: usize, c: usize| {
                    f64::from(qkv[(first + r) * 3 * d + part * d + h * hd + c])
                };
                for h in 0..heads {
                    for i in 0..n {
                        let scores: Vec<f64> = (0..n)
                            .map(|j| (0..hd).map(|c| at(i, 0, h, c) * at(j, 1, h, c)).sum())
                            .collect();
                        let max = scores.iter().copied().fold(f64::MIN, f64::max);
                        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                        let total: f64 = e.iter().sum();
                        for c in 0..hd {
                            let want: f64 =
                                (0..n).map(|j| e[j] / total * at(j, 2, h, c)).sum::<f64>();
                            let got = f64::from(o[(first + i) * d + h * hd + c]);
                            assert!((got - want).abs() < 1e-5, "{d}/{heads}: {got} vs {want}");
                        }
                    }
                }
                first += n;
            }
        }
    }
}
