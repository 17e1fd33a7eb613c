//! 8-bit matrix products on AVX-512 VNNI, or on AMX tiles where the CPU has them (`amx.rs`),
//! for the linear layers of the text encoders.
//!
//! A search query's words go through all-MiniLM-L6-v2 in batches (the queries that arrive while
//! one pass runs share the next): tens of token rows through each layer. In f32 on OpenBLAS
//! such a product repacks its whole weight on every call (as long as its multiply-adds at these
//! few rows), and candle's 8-bit kernel reads the weight once per row. Here the weight is
//! packed once, at load, as 8-bit integers per output column; the inputs are quantised per row
//! at each call; and `vpdpbusd` does 64 multiply-adds per instruction, four times f32's.
//!
//! Numbers: a weight `w` `(out, in)` is kept as `q = round(w / s)`, `s = max|w[o, ·]| / 127`
//! per output `o`. An input row `x` is quantised in blocks of `BLOCK` values, as q8_0 does:
//! `u = round(x / t) + 128` in `1..=255`, `t = max|x[block]| / 127`, so that one large value
//! (BERT's hidden states have a few) coarsens its block only; per row, the sentence vectors of
//! real text drifted 4× further from f32's. Then
//! `x · w[o] ≈ s · Σ_blocks t·(Σ u·q − 128·Σ q)`, the block sums of `q` kept with the weight.
//! `vpdpbusd` multiplies unsigned by signed bytes, hence the offset of 128.
//!
//! Where the CPU has AMX, the same packed weights go through its tiles instead (`amx.rs`),
//! with the same results to the bit.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Outputs per 512-bit register (16 lanes of i32 or f32).
const LANES: usize = 16;
/// Outputs of one tile: two registers' worth.
const COLUMNS: usize = 2 * LANES;
/// Rows of one tile: 6 rows × 2 registers = 12 integer and 12 float accumulators, of 32
/// registers.
const ROWS: usize = 6;
/// Inputs per scale of an input row.
const BLOCK: usize = 64;
/// 4-input groups per block.
const BLOCK_GROUPS: usize = BLOCK / 4;
/// Products with fewer multiply-adds than this run on the calling thread alone.
const MIN_PARALLEL: usize = 1 << 20;

mod amx;

/// Which kernel runs an [`I8Weight`]'s products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 VNNI: 64 multiply-adds an instruction.
    Vnni,
    /// AMX tiles: 16,384 multiply-adds an instruction (`amx.rs`).
    Amx,
}

impl Kernel {
    /// The fastest one this process may use: AMX where the CPU and the system allow it.
    pub fn best() -> Self {
        if amx::available() {
            Self::Amx
        } else {
            Self::Vnni
        }
    }

    /// Whether this process may use it (given that an [`I8Weight`] exists, so VNNI runs).
    pub fn available(self) -> bool {
        match self {
            Self::Vnni => available(),
            Self::Amx => amx::available(),
        }
    }
}

/// Whether this CPU runs the kernel.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// 4 inputs of 16 outputs, output-major: what one lane of `vpdpbusd` multiplies, 16 times.
type Group = [i8; 4 * LANES];

/// A linear layer's weight and bias, packed for [`I8Weight::forward`].
#[derive(Clone)]
pub struct I8Weight {
    /// Inputs, rounded up to a multiple of [`BLOCK`] (with zero weights).
    inputs: usize,
    outputs: usize,
    /// Per 32 outputs, per 4 inputs: the two groups of a tile's two registers.
    packed: Vec<[Group; 2]>,
    /// Per output: `s` and the bias.
    scale: Vec<f32>,
    bias: Vec<f32>,
    /// Per block of inputs, per output: `128·Σ q`.
    offset: Vec<i32>,
}

impl std::fmt::Debug for I8Weight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("I8Weight")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish_non_exhaustive()
    }
}

impl I8Weight {
    /// From an f32 weight `(out, in)` and bias `(out)`; `None` where the kernel cannot run
    /// (no AVX-512 VNNI, or outputs not a multiple of 32).
    pub fn new(w: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Option<Self>> {
        let (outputs, inputs) = w.dims2()?;
        if !available() || !outputs.is_multiple_of(COLUMNS) || inputs == 0 {
            return Ok(None);
        }
        let rows: Vec<Vec<f32>> = w.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let bias = match bias {
            Some(b) => b.to_dtype(candle_core::DType::F32)?.to_vec1()?,
            None => vec![0.0; outputs],
        };
        let padded = inputs.next_multiple_of(BLOCK);
        let groups = padded / 4;
        let mut packed = vec![[[0i8; 4 * LANES]; 2]; outputs / COLUMNS * groups];
        let mut scale = Vec::with_capacity(outputs);
        let mut offset = vec![0i32; padded / BLOCK * outputs];
        for (o, row) in rows.iter().enumerate() {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if max > 0.0 { max / 127.0 } else { 1.0 };
            for (i, v) in row.iter().enumerate() {
                let q = (v / s).round().clamp(-127.0, 127.0) as i8;
                offset[i / BLOCK * outputs + o] += 128 * i32::from(q);
                let group = &mut packed[o / COLUMNS * groups + i / 4];
                group[o % COLUMNS / LANES][(o % LANES) * 4 + i % 4] = q;
            }
            scale.push(s);
        }
        Ok(Some(Self {
            inputs: padded,
            outputs,
            packed,
            scale,
            bias,
            offset,
        }))
    }

    /// `x · wᵀ + bias` for `x` `(…, in)` f32, on the [best](Kernel::best) kernel.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_on(x, Kernel::best())
    }

    /// [`forward`](Self::forward) on the given kernel, which must be
    /// [available](Kernel::available).
    pub fn forward_on(&self, x: &Tensor, kernel: Kernel) -> candle_core::Result<Tensor> {
        if !kernel.available() {
            candle_core::bail!("the {kernel:?} kernel does not run on this machine");
        }
        crate::gemm::over_rows(x, |rows| {
            rows.contiguous()?.apply_op1_no_bwd(&Product {
                weight: self,
                kernel,
            })
        })
    }

    /// `y` `(rows, out)` of `x` `(rows, inputs)`, both row-major, on the
    /// [best](Kernel::best) kernel: [`forward`](Self::forward) on plain slices, writing every
    /// output (`y` need not be zeroed).
    pub(crate) fn forward_rows(
        &self,
        x: &[f32],
        inputs: usize,
        y: &mut [f32],
    ) -> candle_core::Result<()> {
        let rows = y.len() / self.outputs;
        if inputs.next_multiple_of(BLOCK) != self.inputs
            || x.len() != rows * inputs
            || y.len() != rows * self.outputs
        {
            candle_core::bail!(
                "kairos-i8-linear: {} input and {} output values (rows of {inputs}) for a \
                 weight of {} inputs by {} outputs",
                x.len(),
                y.len(),
                self.inputs,
                self.outputs
            );
        }
        if rows > 0 {
            self.product(x, inputs, y, Kernel::best());
        }
        Ok(())
    }

    /// Outputs per row.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `y` `(rows, out)` of `x` `(rows, in)`, both row-major, on `kernel`.
    fn product(&self, x: &[f32], inputs: usize, y: &mut [f32], kernel: Kernel) {
        match kernel {
            Kernel::Amx => self.product_amx(x, inputs, y),
            Kernel::Vnni => self.product_vnni(x, inputs, y),
        }
    }

    /// [`product`](Self::product) on VNNI, [`ROWS`] rows at a time.
    fn product_vnni(&self, x: &[f32], inputs: usize, y: &mut [f32]) {
        let rows = y.len() / self.outputs;
        let work = |(chunk, y): (usize, &mut [f32])| {
            let first = chunk * ROWS;
            let n = y.len() / self.outputs;
            self.tiles(&x[first * inputs..(first + n) * inputs], inputs, y);
        };
        if rows * self.inputs * self.outputs >= MIN_PARALLEL && rayon::current_num_threads() > 1 {
            y.par_chunks_mut(ROWS * self.outputs)
                .enumerate()
                .for_each(work);
        } else {
            y.chunks_mut(ROWS * self.outputs).enumerate().for_each(work);
        }
    }

    /// Up to [`ROWS`] rows of `x` into `y`, every output.
    fn tiles(&self, x: &[f32], inputs: usize, y: &mut [f32]) {
        let rows = x.len() / inputs;
        let (groups, blocks) = (self.inputs / 4, self.inputs / BLOCK);
        // The rows in bytes, interleaved as the tile reads them: per 4 inputs, a u32 of each
        // row (what `vpdpbusd` broadcasts); per block, each row's scale `t`.
        let mut quantised = vec![0u32; groups * rows];
        let mut t = vec![0f32; blocks * rows];
        let mut bytes = vec![128u8; self.inputs];
        for (r, row) in x.chunks_exact(inputs).enumerate() {
            for (b, (block, out)) in row
                .chunks(BLOCK)
                .zip(bytes.chunks_exact_mut(BLOCK))
                .enumerate()
            {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: as for the tiles below.
                #[allow(unsafe_code)]
                {
                    t[b * rows + r] = unsafe { kernel::quantise(block, out) };
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (b, block, out);
            }
            for (g, word) in bytes.as_chunks::<4>().0.iter().enumerate() {
                quantised[g * rows + r] = u32::from_le_bytes(*word);
            }
        }
        #[cfg(target_arch = "x86_64")]
        for (tile, panel) in self.packed.chunks_exact(groups).enumerate() {
            let at = tile * COLUMNS;
            let (q, t) = (&quantised, &t);
            // SAFETY: `available()` held when this weight was made (no `I8Weight` exists
            // otherwise), so the CPU has the features the kernel is compiled for.
            #[allow(unsafe_code)]
            unsafe {
                match rows {
                    6 => kernel::tile::<6>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    5 => kernel::tile::<5>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    4 => kernel::tile::<4>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    3 => kernel::tile::<3>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    2 => kernel::tile::<2>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    1 => kernel::tile::<1>(self, panel, q.as_chunks().0, t.as_chunks().0, at, y),
                    _ => unreachable!("tiles of 1 to {ROWS} rows"),
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (quantised, t, y);
    }
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use std::arch::x86_64::*;

    use super::{BLOCK_GROUPS, Group, I8Weight, LANES};

    /// `R` rows by the 32 outputs from `at`: per block of inputs (`panel` and `x`, one entry
    /// per 4 inputs), `R × 2` integer accumulators in registers, then offset and scaled by the
    /// block's `t` into `R × 2` float ones; at the end scaled by `s` and biased into `y`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) fn tile<const R: usize>(
        w: &I8Weight,
        panel: &[[Group; 2]],
        x: &[[u32; R]],
        t: &[[f32; R]],
        at: usize,
        y: &mut [f32],
    ) {
        let outputs = w.outputs;
        let mut sums = [[_mm512_setzero_ps(); 2]; R];
        let blocks = panel
            .chunks_exact(BLOCK_GROUPS)
            .zip(x.chunks_exact(BLOCK_GROUPS));
        for (b, ((panel, x), t)) in blocks.zip(t).enumerate() {
            let mut acc = [[_mm512_setzero_si512(); 2]; R];
            for (pair, words) in panel.iter().zip(x) {
                let (w0, w1) = (load_group(&pair[0]), load_group(&pair[1]));
                for (a, word) in acc.iter_mut().zip(words) {
                    let xv = _mm512_set1_epi32(*word as i32);
                    a[0] = _mm512_dpbusd_epi32(a[0], xv, w0);
                    a[1] = _mm512_dpbusd_epi32(a[1], xv, w1);
                }
            }
            let offsets = &w.offset[b * outputs + at..b * outputs + at + 2 * LANES];
            let (o0, o1) = (load_i32(&offsets[..LANES]), load_i32(&offsets[LANES..]));
            for ((sum, a), t) in sums.iter_mut().zip(&acc).zip(t) {
                add_block(sum, *a, [o0, o1], *t);
            }
        }
        write_rows(w, &sums, at, y);
    }

    /// Adds a block's integer sums `a` of one row's 32 outputs, less their `offsets`, scaled by
    /// the row's `t` for the block, to the row's `sum`. Both kernels do this, in this order.
    #[target_feature(enable = "avx512f")]
    pub(super) fn add_block(sum: &mut [__m512; 2], a: [__m512i; 2], offsets: [__m512i; 2], t: f32) {
        let tv = _mm512_set1_ps(t);
        for ((sum, a), o) in sum.iter_mut().zip(a).zip(offsets) {
            *sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(a, o)), tv, *sum);
        }
    }

    /// `sum · s + bias` of each row's 32 outputs from `at` into `y` (rows of `w.outputs`).
    #[target_feature(enable = "avx512f")]
    pub(super) fn write_rows(w: &I8Weight, sums: &[[__m512; 2]], at: usize, y: &mut [f32]) {
        let outputs = w.outputs;
        for (r, sum) in sums.iter().enumerate() {
            for (j, sum) in sum.iter().enumerate() {
                let o = at + j * LANES;
                let out = _mm512_fmadd_ps(
                    *sum,
                    load_f32(&w.scale[o..o + LANES]),
                    load_f32(&w.bias[o..o + LANES]),
                );
                let dst = &mut y[r * outputs + o..r * outputs + o + LANES];
                assert_eq!(dst.len(), LANES);
                // SAFETY: writes the 16 floats of `dst` (checked above).
                #[allow(unsafe_code)]
                unsafe {
                    _mm512_storeu_ps(dst.as_mut_ptr(), out)
                };
            }
        }
    }

    /// The block's scale `t = max|x| / 127` and `bytes[k] = round(x[k] / t) + 128` (to nearest,
    /// ties to even), 16 values a step; `bytes` past the block's end are left as they are.
    #[target_feature(enable = "avx512f")]
    pub(super) fn quantise(block: &[f32], bytes: &mut [u8]) -> f32 {
        let (chunks, rest) = block.as_chunks::<LANES>();
        let mut max = _mm512_setzero_ps();
        for c in chunks {
            max = _mm512_max_ps(max, _mm512_abs_ps(load_f32(c)));
        }
        let max = rest
            .iter()
            .fold(_mm512_reduce_max_ps(max), |m, v| m.max(v.abs()));
        let t = max / 127.0;
        let inv = if t > 0.0 { 1.0 / t } else { 0.0 };
        let (iv, offset) = (_mm512_set1_ps(inv), _mm512_set1_epi32(128));
        let (out, _) = bytes.as_chunks_mut::<LANES>();
        for (c, o) in chunks.iter().zip(out.iter_mut()) {
            let q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(load_f32(c), iv)), offset);
            // SAFETY: writes the 16 bytes of `o`.
            #[allow(unsafe_code)]
            unsafe {
                _mm_storeu_si128(o.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q))
            };
        }
        let done = chunks.len() * LANES;
        for (b, v) in bytes[done..].iter_mut().zip(rest) {
            *b = ((v * inv).round_ties_even().clamp(-127.0, 127.0) as i32 + 128) as u8;
        }
        t
    }

    #[target_feature(enable = "avx512f")]
    fn load_group(g: &Group) -> __m512i {
        // SAFETY: reads the 64 bytes of `g`.
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_si512(g.as_ptr().cast())
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn load_f32(v: &[f32]) -> __m512 {
        assert_eq!(v.len(), LANES);
        // SAFETY: reads the 16 floats of `v` (checked above).
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_ps(v.as_ptr())
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn load_i32(v: &[i32]) -> __m512i {
        assert_eq!(v.len(), LANES);
        // SAFETY: reads the 16 integers of `v` (checked above).
        #[allow(unsafe_code)]
        unsafe {
            _mm512_loadu_si512(v.as_ptr().cast())
        }
    }
}

/// The product as a candle op, on the input's f32 storage.
struct Product<'a> {
    weight: &'a I8Weight,
    kernel: Kernel,
}

impl CustomOp1 for Product<'_> {
    fn name(&self) -> &'static str {
        "kairos-i8-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = crate::kernels::f32_slice(s, l, self.name())?;
        let (rows, inputs) = l.shape().dims2()?;
        let w = self.weight;
        if inputs.next_multiple_of(BLOCK) != w.inputs {
            candle_core::bail!(
                "{}: {inputs} inputs for a weight of {}",
                self.name(),
                w.inputs
            );
        }
        let mut y = vec![0f32; rows * w.outputs];
        if rows > 0 {
            w.product(x, inputs, &mut y, self.kernel);
        }
        Ok((CpuStorage::F32(y), Shape::from((rows, w.outputs))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The 8-bit product is the f32 one within 8-bit rounding, for every tile shape: rows of
    /// 1 to 13 (whole tiles and each remainder), inputs not a multiple of 4.
    #[test]
    fn equals_f32_within_rounding() {
        if !available() {
            eprintln!("no AVX-512 VNNI: the 8-bit kernel does not run here");
            return;
        }
        let dev = Device::Cpu;
        for (rows, inputs, outputs) in [(1, 384, 96), (6, 386, 64), (13, 1536, 384), (7, 64, 32)] {
            let w = Tensor::randn(0f32, 0.05, (outputs, inputs), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, outputs, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (rows, inputs), &dev).unwrap();
            let want = x
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let packed = I8Weight::new(&w, Some(&b)).unwrap().unwrap();
            let got = packed.forward(&x).unwrap();
            assert_eq!(got.dims(), want.dims());
            let err = crate::max_abs(&(&got - &want).unwrap());
            let scale = crate::max_abs(&want);
            assert!(
                err < 0.02 * scale,
                "{rows}×{inputs}×{outputs}: {err} of {scale}"
            );
            // Rows are independent: the last row alone gives the same as in the batch.
            let last = x.narrow(0, rows - 1, 1).unwrap();
            let alone = packed.forward(&last).unwrap();
            let in_batch = got.narrow(0, rows - 1, 1).unwrap();
            assert_eq!(crate::max_abs(&(&alone - &in_batch).unwrap()), 0.0);
        }
    }

    /// Where the CPU has AMX, its kernel gives the VNNI kernel's bits: for rows of 1 to 70
    /// (within a tile, whole tiles, several tiles and the parallel split), inputs not a
    /// multiple of 64, one panel and several.
    #[test]
    fn amx_equals_vnni_to_the_bit() {
        if !Kernel::Amx.available() {
            eprintln!("no AMX: its kernel does not run here");
            return;
        }
        let dev = Device::Cpu;
        for (rows, inputs, outputs) in [
            (1, 384, 32),
            (5, 386, 96),
            (16, 384, 1152),
            (37, 1536, 384),
            (70, 64, 64),
        ] {
            let w = Tensor::randn(0f32, 0.05, (outputs, inputs), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, outputs, &dev).unwrap();
            let x = Tensor::randn(0f32, 1.0, (rows, inputs), &dev).unwrap();
            let packed = I8Weight::new(&w, Some(&b)).unwrap().unwrap();
            let vnni = packed.forward_on(&x, Kernel::Vnni).unwrap();
            let amx = packed.forward_on(&x, Kernel::Amx).unwrap();
            let (vnni, amx) = (
                vnni.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                amx.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(vnni.len(), rows * outputs);
            let differ = vnni
                .iter()
                .zip(&amx)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "{rows}×{inputs}×{outputs}: {differ} outputs differ"
            );
        }
    }
}
