//! Matrix products on OpenBLAS, for the large f32 products of the encoders.
//!
//! candle 0.11 multiplies matrices on the CPU with the `gemm` crate (AVX2 kernels only on stable
//! Rust); OpenBLAS (Debian's `libopenblas0`, reached through `ndarray`'s BLAS back end) did the
//! encoders' products 2.1–2.4× faster on this project's 2-core machine (`kairos bench gemm`,
//! docs/benchmarks.md). The transformer encoders spend most of their time in such products, so
//! [`matmul`] sends the large ones there and leaves the small ones (a decoder's single token, a
//! short query) to candle, for which a BLAS call's set-up costs more than it saves.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use candle_nn::VarBuilder;
use candle_nn::var_builder::SimpleBackend;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

// Links OpenBLAS in (ndarray's `blas` feature calls `cblas_sgemm`; blas-src names the library).
use blas_src as _;

/// Products with fewer multiply-adds than this (a whole batch) stay on candle's gemm.
const MIN_MULTIPLY_ADDS: usize = 1 << 18;
/// So do products of fewer rows (a decoder's next token times the vocabulary): the rows are
/// what is split over the cores here, where candle splits the columns too.
const MIN_ROWS: usize = 32;

/// `a · b` over the last two dimensions, batched over the others (which must be equal), on
/// OpenBLAS when both are large f32 CPU tensors, on candle otherwise. Any strides.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if worth_blas(a, b) {
        a.apply_op2_no_bwd(b, &MatMul)
    } else {
        a.matmul(b)
    }
}

/// A linear layer `x · wᵀ + bias` whose weight is kept transposed, `(in, out)` and contiguous,
/// the layout the products read fastest; inputs of any rank `(…, in)`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    wt: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// From a weight `(out, in)` as checkpoints store it, and an optional bias `(out)`.
    pub(crate) fn new(w: &Tensor, bias: Option<Tensor>) -> candle_core::Result<Self> {
        Ok(Self {
            wt: w.t()?.contiguous()?,
            bias,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        linear(x, &self.wt, self.bias.as_ref())
    }
}

/// Weights for candle-transformers' encoders (the CLIP text tower, BERT), with every linear
/// layer's weight laid out `(in, out)` in memory while still shaped `(out, in)`.
///
/// `candle_nn::Linear` multiplies by `wᵀ`; from a weight stored `(out, in)` that is a transposed
/// view, and candle's gemm then repacks the whole weight on every call. For a query of a few
/// tokens the repacking was most of the work: 1.26 ms against 0.29 ms for a 5×512×2048 product
/// (one process, 200 repetitions), and the CLIP text tower and MiniLM took ~47 ms a query
/// (`kairos bench search`, docs/benchmarks.md). Laid out this way, `wᵀ` is contiguous.
pub(crate) fn var_builder<'a, B: SimpleBackend + 'a>(
    backend: B,
    device: &Device,
) -> VarBuilder<'a> {
    VarBuilder::from_backend(
        Box::new(LinearWeightsTransposed(backend)),
        DType::F32,
        device.clone(),
    )
}

struct LinearWeightsTransposed<B>(B);

impl<B> LinearWeightsTransposed<B> {
    /// A linear layer's weight: 2-D and called `weight`, except the embedding tables, which
    /// are looked up by row.
    fn relaid(name: &str, t: Tensor) -> candle_core::Result<Tensor> {
        if t.rank() == 2 && name.ends_with("weight") && !name.contains("embed") {
            t.t()?.contiguous()?.t()
        } else {
            Ok(t)
        }
    }
}

impl<B: SimpleBackend> SimpleBackend for LinearWeightsTransposed<B> {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        Self::relaid(name, self.0.get(s, name, h, dtype, dev)?)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        Self::relaid(name, self.0.get_unchecked(name, dtype, dev)?)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains_tensor(name)
    }
}

/// `x · wt (+ bias)`, for `x` of any rank `(…, in)` and `wt` of shape `(in, out)`.
pub fn linear(x: &Tensor, wt: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some((&i, lead)) = dims.split_last() else {
        candle_core::bail!("linear layer applied to a scalar");
    };
    let rows: usize = lead.iter().product();
    let y = matmul(&x.reshape((rows, i))?, wt)?;
    let y = match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out = lead.to_vec();
    out.push(wt.dim(1)?);
    y.reshape(out)
}

fn worth_blas(a: &Tensor, b: &Tensor) -> bool {
    let (ad, bd) = (a.dims(), b.dims());
    if a.dtype() != DType::F32
        || b.dtype() != DType::F32
        || !matches!(a.device(), Device::Cpu)
        || ad.len() < 2
        || ad.len() != bd.len()
        || ad[..ad.len() - 2] != bd[..bd.len() - 2]
    {
        return false;
    }
    let (m, k, n) = (ad[ad.len() - 2], ad[ad.len() - 1], bd[bd.len() - 1]);
    let batch: usize = ad[..ad.len() - 2].iter().product();
    k == bd[bd.len() - 2] && m >= MIN_ROWS && batch * m * k * n >= MIN_MULTIPLY_ADDS
}

struct MatMul;

/// OpenBLAS's own threads would wait spinning after each product while candle's rayon workers
/// run the softmax and layer norms on the same two cores; the products are split over rayon
/// instead, one OpenBLAS thread each.
#[allow(unsafe_code)]
fn single_threaded_blas() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        unsafe extern "C" {
            fn openblas_set_num_threads(threads: std::ffi::c_int);
        }
        // SAFETY: OpenBLAS's documented setter (no pointers), called once, before this
        // process's first product.
        unsafe { openblas_set_num_threads(1) };
    });
}

/// The start offset of each matrix of a batched layout, in batch order.
fn matrix_offsets(layout: &Layout) -> Vec<usize> {
    let dims = layout.dims();
    let strides = layout.stride();
    let batch = &dims[..dims.len() - 2];
    let count: usize = batch.iter().product();
    (0..count)
        .map(|mut index| {
            let mut offset = layout.start_offset();
            for (&size, &stride) in batch.iter().zip(strides).rev() {
                offset += (index % size) * stride;
                index /= size;
            }
            offset
        })
        .collect()
}

fn view<'a>(
    data: &'a [f32],
    offset: usize,
    layout: &Layout,
) -> candle_core::Result<ArrayView2<'a, f32>> {
    let dims = layout.dims();
    let strides = layout.stride();
    let r = dims.len();
    ArrayView2::from_shape(
        (dims[r - 2], dims[r - 1]).strides((strides[r - 2], strides[r - 1])),
        &data[offset..],
    )
    .map_err(|e| candle_core::Error::Msg(format!("kairos-matmul: input layout: {e}")))
}

impl CustomOp2 for MatMul {
    fn name(&self) -> &'static str {
        "kairos-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("{}: f32 only, got {:?}", self.name(), s1.dtype());
        };
        let (ad, bd) = (l1.dims(), l2.dims());
        let r = ad.len();
        let (m, n) = (ad[r - 2], bd[r - 1]);
        let (ao, bo) = (matrix_offsets(l1), matrix_offsets(l2));
        let mut out = vec![0f32; ao.len() * m * n];
        if m * n > 0 {
            // Row blocks of every matrix of the batch, spread over candle's rayon pool: each is
            // one single-threaded OpenBLAS call.
            let threads = rayon::current_num_threads().max(1);
            let per_matrix = threads.div_ceil(ao.len()).min(m);
            let rows = m.div_ceil(per_matrix);
            single_threaded_blas();
            out.par_chunks_mut(rows * n)
                .enumerate()
                .try_for_each(|(i, chunk)| {
                    let blocks = m.div_ceil(rows);
                    let (matrix, block) = (i / blocks, i % blocks);
                    let first = block * rows;
                    let take = chunk.len() / n;
                    let av = view(a, ao[matrix], l1)?;
                    let av = av.slice(ndarray::s![first..first + take, ..]);
                    let bv = view(b, bo[matrix], l2)?;
                    let mut cv = ArrayViewMut2::from_shape((take, n), chunk).map_err(|e| {
                        candle_core::Error::Msg(format!("kairos-matmul: output: {e}"))
                    })?;
                    general_mat_mul(1.0, &av, &bv, 0.0, &mut cv);
                    Ok::<_, candle_core::Error>(())
                })?;
        }
        let mut shape = ad[..r - 1].to_vec();
        shape.push(n);
        Ok((CpuStorage::F32(out), Shape::from(shape)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(x: &Tensor, y: &Tensor) -> f32 {
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Every layout the encoders hand over: plain, a transposed weight, a batch of heads taken
    /// from a permuted tensor, a narrowed batch; OpenBLAS's products equal candle's.
    #[test]
    fn blas_products_equal_candles_for_every_layout() {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (2, 3, 70, 64), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, (2, 3, 64, 90), &dev).unwrap();
        let w = Tensor::randn(0f32, 1.0, (90, 64), &dev).unwrap();
        let x = Tensor::randn(0f32, 1.0, (5, 70, 64), &dev).unwrap();
        let cases = [
            (a.clone(), b.clone()),
            (
                a.transpose(2, 3).unwrap().transpose(2, 3).unwrap(),
                b.t().unwrap().t().unwrap(),
            ),
            (a.transpose(0, 1).unwrap(), b.transpose(0, 1).unwrap()),
            (a.narrow(1, 1, 2).unwrap(), b.narrow(1, 0, 2).unwrap()),
            (x.reshape((350, 64)).unwrap(), w.t().unwrap()),
            (
                a.transpose(2, 3)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .transpose(2, 3)
                    .unwrap(),
                b.contiguous().unwrap(),
            ),
        ];
        for (i, (p, q)) in cases.iter().enumerate() {
            let ours = p.apply_op2_no_bwd(q, &MatMul).unwrap();
            // candle itself refuses some of these layouts; its product of copies is the truth.
            let theirs = p
                .contiguous()
                .unwrap()
                .matmul(&q.contiguous().unwrap())
                .unwrap();
            assert_eq!(ours.dims(), theirs.dims(), "case {i}");
            assert!(
                close(&ours, &theirs) < 1e-3,
                "case {i}: {}",
                close(&ours, &theirs)
            );
        }
        // A linear layer of rank 3, with a bias.
        let bias = Tensor::randn(0f32, 1.0, 90, &dev).unwrap();
        let wt = w.t().unwrap().contiguous().unwrap();
        let ours = linear(&x, &wt, Some(&bias)).unwrap();
        let theirs = x
            .broadcast_matmul(&wt)
            .unwrap()
            .broadcast_add(&bias)
            .unwrap();
        assert_eq!(ours.dims(), [5, 70, 90]);
        assert!(close(&ours, &theirs) < 1e-3);
    }

    /// Through [`var_builder`], a linear layer's weight keeps its shape and values, its
    /// transpose is contiguous (what `candle_nn::Linear` multiplies by), and embedding tables
    /// stay row-major; the layer computes what it computed before.
    #[test]
    fn linear_weights_come_back_transposed_in_memory_only() {
        let dev = Device::Cpu;
        let varmap = candle_nn::VarMap::new();
        let plain = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
        let layer = candle_nn::linear(64, 96, plain.pp("fc1")).unwrap();
        let table = candle_nn::embedding(10, 64, plain.pp("token_embedding")).unwrap();
        let relaid = var_builder(varmap.clone(), &dev);
        let w = relaid.get((96, 64), "fc1.weight").unwrap();
        assert_eq!(w.dims(), [96, 64]);
        assert!(!w.is_contiguous() && w.t().unwrap().is_contiguous());
        assert_eq!(
            w.to_vec2::<f32>().unwrap(),
            layer.weight().to_vec2::<f32>().unwrap()
        );
        let e = relaid.get((10, 64), "token_embedding.weight").unwrap();
        assert!(e.is_contiguous());
        assert_eq!(
            e.to_vec2::<f32>().unwrap(),
            table.embeddings().to_vec2::<f32>().unwrap()
        );
        let x = Tensor::randn(0f32, 1.0, (2, 5, 64), &dev).unwrap();
        let again = candle_nn::linear(64, 96, relaid.pp("fc1")).unwrap();
        use candle_core::Module;
        let (a, b) = (layer.forward(&x).unwrap(), again.forward(&x).unwrap());
        assert!(close(&a, &b) < 1e-5);
    }

    #[test]
    fn small_or_mismatched_products_stay_on_candle() {
        let dev = Device::Cpu;
        let one = Tensor::zeros((1, 64), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((64, 512), DType::F32, &dev).unwrap();
        assert!(!worth_blas(&one, &w));
        let big = Tensor::zeros((1500, 512), DType::F32, &dev).unwrap();
        assert!(worth_blas(&big, &w.t().unwrap()));
        assert!(!worth_blas(&big, &w), "inner dimensions differ");
        assert!(!worth_blas(&big.to_dtype(DType::F16).unwrap(), &w));
        let batched = Tensor::zeros((2, 1500, 64), DType::F32, &dev).unwrap();
        assert!(
            !worth_blas(&batched, &w),
            "a broadcast batch goes to candle"
        );
    }
}
