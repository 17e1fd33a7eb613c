//! CPU kernels that candle 0.11 runs slowly, written so that the compiler vectorises them.
//!
//! candle's exact GELU calls libm's `erf` per element and its softmax calls libm's `exp`; in the
//! Whisper encoder those two took as long as the matrix products around them (measured: 34 ms and
//! 66 ms per layer for a 30 s window on 2 cores, against 39 ms for a 1500×512×2048 product). The
//! versions here use branch-free polynomial approximations (relative error below 2e-7 for `exp`,
//! absolute error below 2e-7 for `erf`), run over row chunks on rayon when large, and work in
//! place on tensors the caller has just produced. The layer norm here is candle's arithmetic
//! without its rayon hand-off for every input (see [`LayerNorm`]).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, InplaceOp1, Layout, Module, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk: large enough to amortise the task, small enough to balance.
const CHUNK: usize = 16 * 1024;
/// Inputs smaller than this run on the calling thread. Handing work to rayon's pool from
/// outside it wakes a worker and puts the caller to sleep until the work is done: two context
/// switches, tens of microseconds on a loaded VM, against about a nanosecond an element here.
/// A search query's tensors (a few thousand elements) are far below it; an audio window's or an
/// image batch's (millions) far above. Under a 32-client search load, the layer norms and GELUs
/// of the query encoder handed to rayon caused a third of the server's context switches.
const PARALLEL_MIN: usize = 256 * 1024;

/// `f` over `chunk`-sized pieces of `v`: on rayon when `v` is large, else in one call here.
fn chunked<T: Send>(v: &mut [T], chunk: usize, f: impl Fn(&mut [T]) + Sync + Send) {
    if v.len() < PARALLEL_MIN {
        f(v)
    } else {
        v.par_chunks_mut(chunk).for_each(f)
    }
}

/// `e^x` for finite `x`, branch-free. Inputs below −87 flush towards 0, above 88 saturate.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding and subtracting it rounds to the nearest integer without SSE4.1.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial on [−ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let y = p * r * r + r + 1.0;
    // 2^n from the bits of `n + ROUND`, whose low mantissa bits are `n` (ROUND's bits are
    // 0x4B40_0000): no float-to-integer conversion, whose saturating form does not vectorise.
    let bits = (x * LOG2E + ROUND).to_bits();
    let scale = f32::from_bits(bits.wrapping_sub(0x4B40_0000 - 127) << 23);
    y * scale
}

/// `erf(x)`, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// The exact (erf-based) GELU that Whisper uses.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

fn contiguous_f32<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the input has to be contiguous");
    };
    match storage {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        other => candle_core::bail!("{op}: f32 only, got {:?}", other.dtype()),
    }
}

/// The f32 values of a contiguous input of op `op`.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: the inputs have to be contiguous");
    };
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        other => candle_core::bail!("{op}: f32 only, got {:?}", other.dtype()),
    }
}

/// A function applied to every element in place, over row chunks on rayon. Generic over the
/// function (not a pointer to it), so each use compiles to its own vectorised loop.
struct Elementwise<F> {
    name: &'static str,
    f: F,
}

impl<F: Fn(f32) -> f32 + Sync> InplaceOp1 for Elementwise<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        self.apply(contiguous_f32(storage, layout, self.name)?);
        Ok(())
    }
}

impl<F: Fn(f32) -> f32 + Sync> Elementwise<F> {
    fn apply(&self, v: &mut [f32]) {
        chunked(v, CHUNK, |c| {
            wide(c, |c| {
                for x in c {
                    *x = (self.f)(*x);
                }
            })
        });
    }
}

/// CLIP's activation, `x · σ(1.702 x)`.
#[inline(always)]
pub fn quick_gelu(x: f32) -> f32 {
    x / (1.0 + exp(-1.702 * x))
}

struct Softmax;

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "kairos-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let dims = layout.shape().dims();
        let Some(&row) = dims.last() else {
            candle_core::bail!("{}: a scalar has no last dimension", self.name());
        };
        if row == 0 {
            return Ok(());
        }
        let v = contiguous_f32(storage, layout, self.name())?;
        let rows_per_chunk = (CHUNK / row).max(1);
        chunked(v, rows_per_chunk * row, |c| {
            wide(c, |c| softmax_rows(c, row))
        });
        Ok(())
    }
}

/// Softmax of each row of `row` values in `c`. The `exp`s run as one pass over all of `c`,
/// where they vectorise: a query's attention rows are shorter than a vector, and the sums
/// along a row, whose order is kept, do not vectorise.
#[inline(always)]
pub(crate) fn softmax_rows(c: &mut [f32], row: usize) {
    // Fully masked rows come out all zeros rather than NaN.
    let mut masked = Vec::new();
    for (i, r) in c.chunks_exact_mut(row).enumerate() {
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY {
            masked.push(i);
            r.fill(0.0);
            continue;
        }
        for x in r.iter_mut() {
            *x -= max;
        }
    }
    for x in c.iter_mut() {
        *x = exp(*x);
    }
    for r in c.chunks_exact_mut(row) {
        let sum: f32 = r.iter().sum();
        let inv = 1.0 / sum;
        for x in r.iter_mut() {
            *x *= inv;
        }
    }
    for i in masked {
        c[i * row..(i + 1) * row].fill(0.0);
    }
}

/// Layer normalisation over the last dimension, with a weight and a bias: candle's
/// `LayerNorm` (same loading, same arithmetic, so the same bits) on the calling thread for
/// inputs below [`PARALLEL_MIN`]. candle hands every input to rayon, one task a row.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
    /// The weight's and the bias's values, for [`LayerNorm::forward_rows`].
    alpha: Vec<f32>,
    beta: Vec<f32>,
}

/// The layer norm of `size` values under `vb` (its `weight` and `bias`, or the old
/// `gamma`/`beta`), as candle loads it.
pub(crate) fn layer_norm(
    size: usize,
    eps: f64,
    vb: candle_nn::VarBuilder,
) -> candle_core::Result<LayerNorm> {
    let norm = candle_nn::layer_norm(size, eps, vb)?;
    let Some(bias) = norm.bias().cloned() else {
        candle_core::bail!("layer norm: no bias");
    };
    let (alpha, beta) = (
        norm.weight().to_dtype(candle_core::DType::F32)?.to_vec1()?,
        bias.to_dtype(candle_core::DType::F32)?.to_vec1()?,
    );
    Ok(LayerNorm {
        weight: norm.weight().clone(),
        bias,
        eps: eps as f32,
        alpha,
        beta,
    })
}

impl LayerNorm {
    /// The norm of each row of `src` into `dst` (rows of the norm's size): the
    /// [`forward`](Module::forward) of a contiguous f32 tensor, on plain slices.
    pub(crate) fn forward_rows(&self, src: &[f32], dst: &mut [f32]) {
        assert_eq!(
            src.len(),
            dst.len(),
            "layer norm: as many outputs as inputs"
        );
        norm_rows(dst, src, &self.alpha, &self.beta, self.eps);
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = x.contiguous()?;
        if x.dtype() != candle_core::DType::F32 {
            return candle_nn::ops::layer_norm(&x, &self.weight, &self.bias, self.eps);
        }
        x.apply_op3_no_bwd(&self.weight, &self.bias, &NormRows { eps: self.eps })
    }
}

struct NormRows {
    eps: f32,
}

impl CustomOp3 for NormRows {
    fn name(&self) -> &'static str {
        "kairos-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (src, alpha, beta) = (
            f32_slice(s1, l1, name)?,
            f32_slice(s2, l2, name)?,
            f32_slice(s3, l3, name)?,
        );
        let dims = l1.shape().dims();
        let Some(&row) = dims.last() else {
            candle_core::bail!("{name}: a scalar has no last dimension");
        };
        if row == 0 || alpha.len() != row || beta.len() != row {
            candle_core::bail!(
                "{name}: rows of {row} values, a weight of {} and a bias of {}",
                alpha.len(),
                beta.len()
            );
        }
        let mut dst = vec![0f32; src.len()];
        norm_rows(&mut dst, src, alpha, beta, self.eps);
        Ok((CpuStorage::F32(dst), Shape::from_dims(dims)))
    }
}

/// Each row of `src` (rows of `alpha.len()` values) normed into `dst`: on the calling thread
/// below [`PARALLEL_MIN`], else over chunks of whole rows on rayon.
fn norm_rows(dst: &mut [f32], src: &[f32], alpha: &[f32], beta: &[f32], eps: f32) {
    let row = alpha.len();
    let norm = |dst: &mut [f32], src: &[f32]| {
        for (d, s) in dst.chunks_exact_mut(row).zip(src.chunks_exact(row)) {
            norm_row(d, s, alpha, beta, eps);
        }
    };
    if dst.len() < PARALLEL_MIN {
        norm(dst, src);
    } else {
        let chunk = (CHUNK / row).max(1) * row;
        dst.par_chunks_mut(chunk)
            .zip(src.par_chunks(chunk))
            .for_each(|(d, s)| norm(d, s));
    }
}

/// One row, as candle's `layer_norm` computes it, operation for operation.
#[inline(always)]
fn norm_row(dst: &mut [f32], src: &[f32], alpha: &[f32], beta: &[f32], eps: f32) {
    let n = src.len() as f32;
    let (mut sum, mut sum2) = (0f32, 0f32);
    for &v in src {
        sum += v;
        sum2 += v * v;
    }
    let mean = sum / n;
    let var = sum2 / n - mean * mean;
    let inv_std = (var + eps).sqrt().recip();
    for ((d, s), (a, b)) in dst.iter_mut().zip(src).zip(alpha.iter().zip(beta)) {
        *d = (s - mean) * inv_std * a + b;
    }
}

/// Runs `body` over `c` compiled for AVX-512 where the CPU has it: 16 lanes a vector where the
/// default x86-64 target vectorises with SSE's 4. The GELU of all-MiniLM-L6-v2's queries was
/// 5.5% of a loaded server's CPU on SSE (docs/benchmarks.md, "Search under load").
#[inline(always)]
pub(crate) fn wide(c: &mut [f32], body: impl Fn(&mut [f32])) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        #[allow(unsafe_code)]
        unsafe {
            avx512(c, body)
        };
        return;
    }
    body(c)
}

/// `body(c)`, with AVX-512F enabled for the code inlined into it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512(c: &mut [f32], body: impl Fn(&mut [f32])) {
    body(c)
}

/// GELU (erf form) of `x`, in place when `x` is contiguous f32 from offset 0. The caller must own
/// `x` outright (a tensor it just computed, not a clone or reshape of one it still uses): candle
/// shares storage between clones, so the write would show through them.
pub(crate) fn gelu_erf_tensor(x: Tensor) -> candle_core::Result<Tensor> {
    elementwise(x, "kairos-gelu-erf", gelu_erf)
}

/// [`gelu_erf_tensor`] on a plain slice, in place: the same bits.
pub(crate) fn gelu_erf_rows(v: &mut [f32]) {
    Elementwise {
        name: "kairos-gelu-erf",
        f: gelu_erf,
    }
    .apply(v)
}

/// CLIP's quick GELU of `x` (same ownership rule as [`gelu_erf_tensor`]).
pub(crate) fn quick_gelu_tensor(x: Tensor) -> candle_core::Result<Tensor> {
    elementwise(x, "kairos-quick-gelu", quick_gelu)
}

fn elementwise(
    x: Tensor,
    name: &'static str,
    f: impl Fn(f32) -> f32 + Sync,
) -> candle_core::Result<Tensor> {
    let x = fresh(x)?;
    x.inplace_op1(&Elementwise { name, f })?;
    Ok(x)
}

/// Softmax over the last dimension of `x` (same ownership rule as [`gelu_erf_tensor`]).
pub(crate) fn softmax_last_dim(x: Tensor) -> candle_core::Result<Tensor> {
    let x = fresh(x)?;
    x.inplace_op1(&Softmax)?;
    Ok(x)
}

/// `x` itself when its layout allows working in place, else a contiguous f32 copy (an in-place op
/// on a strided or offset view would write through to the tensor it views).
fn fresh(x: Tensor) -> candle_core::Result<Tensor> {
    if x.is_contiguous() && x.layout().start_offset() == 0 && x.dtype() == candle_core::DType::F32 {
        Ok(x)
    } else {
        x.to_dtype(candle_core::DType::F32)?.contiguous()?.copy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn exp_matches_std_over_the_useful_range() {
        let mut worst = 0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert!(exp(-200.0) < 1e-37);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_candle_exact_gelu() {
        let v: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.003).collect();
        let t = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        let want: Vec<f32> = t.gelu_erf().unwrap().to_vec1().unwrap();
        let own = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        let got: Vec<f32> = gelu_erf_tensor(own).unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn quick_gelu_matches_candles() {
        let v: Vec<f32> = (-4000..4000).map(|i| i as f32 * 0.01).collect();
        let t = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        // candle-transformers' CLIP: x * sigmoid(1.702 x).
        let want: Vec<f32> = (&t * candle_nn::ops::sigmoid(&(&t * 1.702f64).unwrap()).unwrap())
            .unwrap()
            .to_vec1()
            .unwrap();
        let own = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        let got: Vec<f32> = quick_gelu_tensor(own).unwrap().to_vec1().unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5 * w.abs().max(1.0), "{g} vs {w}");
        }
    }

    #[test]
    fn softmax_matches_candle_and_handles_masked_rows() {
        let v: Vec<f32> = (0..3 * 700)
            .map(|i| ((i * 37) % 101) as f32 * 0.21 - 9.0)
            .collect();
        let t = Tensor::from_vec(v.clone(), (3, 700), &Device::Cpu).unwrap();
        let own = Tensor::from_vec(v, (3, 700), &Device::Cpu).unwrap();
        let want: Vec<Vec<f32>> = candle_nn::ops::softmax_last_dim(&t)
            .unwrap()
            .to_vec2()
            .unwrap();
        let got: Vec<Vec<f32>> = softmax_last_dim(own).unwrap().to_vec2().unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-7, "{g} vs {w}");
        }
        let masked = Tensor::new(&[[f32::NEG_INFINITY, f32::NEG_INFINITY]], &Device::Cpu).unwrap();
        let m: Vec<Vec<f32>> = softmax_last_dim(masked).unwrap().to_vec2().unwrap();
        assert_eq!(m, vec![vec![0.0, 0.0]]);
    }

    #[test]
    fn layer_norm_equals_candles_to_the_bit() {
        let dev = Device::Cpu;
        for (rows, row) in [(7, 384), (3, 5), (700, 384), (1, 1)] {
            let v: Vec<f32> = (0..rows * row)
                .map(|i| ((i * 53) % 211) as f32 * 0.037 - 3.1)
                .collect();
            let w: Vec<f32> = (0..row).map(|i| 0.5 + (i % 7) as f32 * 0.11).collect();
            let b: Vec<f32> = (0..row).map(|i| (i % 5) as f32 * 0.03 - 0.06).collect();
            let x = Tensor::from_vec(v.clone(), (rows, row), &dev).unwrap();
            let weight = Tensor::from_vec(w.clone(), row, &dev).unwrap();
            let bias = Tensor::from_vec(b.clone(), row, &dev).unwrap();
            let want = candle_nn::LayerNorm::new(weight.clone(), bias.clone(), 1e-12)
                .forward(&x)
                .unwrap();
            let own = LayerNorm {
                alpha: w.clone(),
                beta: b.clone(),
                weight,
                bias,
                eps: 1e-12,
            };
            let got = own.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            let (got, want): (Vec<f32>, Vec<f32>) = (
                got.flatten_all().unwrap().to_vec1().unwrap(),
                want.flatten_all().unwrap().to_vec1().unwrap(),
            );
            // 700 × 384 values take the parallel path, the others the sequential one.
            assert!(
                got.iter()
                    .zip(&want)
                    .all(|(g, w)| g.to_bits() == w.to_bits()),
                "{rows}×{row}"
            );
            // On plain slices: the same bits.
            let mut plain = vec![0f32; v.len()];
            own.forward_rows(&v, &mut plain);
            assert_eq!(plain, got, "{rows}×{row} on slices");
            // A strided input (a transposed view) is normalised as its contiguous copy.
            let t = x.reshape((row, rows)).unwrap().t().unwrap();
            assert!(!t.is_contiguous() || rows == 1 || row == 1);
            let got = own.forward(&t).unwrap().flatten_all().unwrap();
            let want = own.forward(&t.contiguous().unwrap()).unwrap();
            assert_eq!(
                got.to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
            );
        }
    }

    #[test]
    fn a_view_is_not_written_through() {
        let base = Tensor::new(&[[0f32, 1.0], [2.0, 3.0]], &Device::Cpu).unwrap();
        let col = base.t().unwrap();
        let _ = gelu_erf_tensor(col).unwrap();
        let row = base.narrow(0, 1, 1).unwrap();
        let _ = softmax_last_dim(row).unwrap();
        assert_eq!(
            base.to_vec2::<f32>().unwrap(),
            vec![vec![0.0, 1.0], vec![2.0, 3.0]]
        );
    }
}
