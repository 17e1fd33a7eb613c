//! The perceptual fingerprint: a 64-bit DCT median hash (pHash), robust to resizing and re-encoding, so
//! that an example image finds its copies with no model installed (crops shift the DCT: those are
//! found by CLIP similarity).

use ::image::DynamicImage::{self, ImageLuma8};
use ::image::GrayImage;
use ::image::imageops::FilterType;
use image_hasher::{HashAlg, HasherConfig};

/// The side of the grey square the hasher's DCT reads (twice the 8 × 8 hash).
const DCT_SIDE: u32 = 16;

fn hasher() -> image_hasher::Hasher {
    HasherConfig::new()
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .hash_size(8, 8)
        .to_hasher()
}

/// The 64-bit perceptual hash of an image.
pub fn phash(image: &DynamicImage) -> u64 {
    to_u64(
        hasher()
            .hash_image(&ImageLuma8(grey_square(image)))
            .as_bytes(),
    )
}

fn to_u64(bytes: &[u8]) -> u64 {
    let mut out = [0u8; 8];
    out[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_be_bytes(out)
}

/// The image in grey, resampled to 16 × 16 with Lanczos3 in f32: what the hasher does itself
/// (which then leaves a 16 × 16 image as it is), but with fast_image_resize's SIMD kernels. The
/// hasher's own resample (`image`'s) took 40 ms a 1024 × 768 image, two thirds of the CPU of an
/// ingest without models; this takes a few. In f32 rather than fixed point: a downscale by 64
/// spreads each output over hundreds of tiny weights, and fixed point moved fragile hashes by up
/// to 8 bits against the ones archives already hold; f32 keeps them equal (test below).
fn grey_square(image: &DynamicImage) -> GrayImage {
    // `to_luma8`, as the hasher does (`imageops::grayscale` weighs the channels otherwise).
    let grey = image.to_luma8();
    if grey.dimensions() == (DCT_SIDE, DCT_SIDE) {
        return grey;
    }
    kairos_models::resample::grey_f32(&grey, DCT_SIDE, DCT_SIDE, FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(w: u32, h: u32, seed: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(::image::RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let s = seed as f32;
            let v =
                ((fx * (3.0 + s) + s).sin() * (fy * (2.0 + 1.3 * s)).cos() * 127.0 + 128.0) as u8;
            ::image::Rgb([v, v / 2 + (fx * 100.0) as u8, 255 - v])
        }))
    }

    #[test]
    fn resized_and_reencoded_copies_stay_close_other_images_do_not() {
        let original = scene(400, 300, 1);
        let small = original.resize_exact(160, 120, ::image::imageops::FilterType::Triangle);
        let mut jpeg = Vec::new();
        original
            .write_with_encoder(::image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut jpeg, 40,
            ))
            .unwrap();
        let reencoded = ::image::load_from_memory(&jpeg).unwrap();
        // Another picture: the same scene turned upside down has other content everywhere.
        let other = scene(400, 300, 1).rotate180();
        let h = phash(&original);
        for copy in [&small, &reencoded] {
            let d = (h ^ phash(copy)).count_ones();
            assert!(
                d <= kairos_store::search::MAX_DUPLICATE_DISTANCE,
                "copy {} at distance {d}",
                copy.width()
            );
        }
        assert!((h ^ phash(&other)).count_ones() > kairos_store::search::MAX_DUPLICATE_DISTANCE);
    }

    #[test]
    fn hashes_equal_the_hashers_own_resample() {
        // Archives indexed before hold hashes the hasher computed with its own resample; the
        // same images must hash the same, scenes whose hash is fragile included.
        let mut apart = Vec::new();
        for seed in 1..25 {
            for (w, h) in [(1024, 768), (400, 300), (31, 57)] {
                let photo = scene(w, h, seed);
                let theirs = hasher().hash_image(&photo);
                let d = (to_u64(theirs.as_bytes()) ^ phash(&photo)).count_ones();
                apart.push(d);
            }
        }
        assert!(apart.iter().all(|&d| d <= 2), "{apart:?}");
        assert!(
            apart.iter().filter(|&&d| d == 0).count() * 10 >= apart.len() * 9,
            "{apart:?}"
        );
    }
}
