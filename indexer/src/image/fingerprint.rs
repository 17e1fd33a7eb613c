//! The perceptual fingerprint: a 64-bit DCT median hash (pHash), robust to resizing and re-encoding, so
//! that an example image finds its copies with no model installed (crops shift the DCT: those are
//! found by CLIP similarity).

use ::image::DynamicImage;
use image_hasher::{HashAlg, HasherConfig};

/// The 64-bit perceptual hash of an image.
pub fn phash(image: &DynamicImage) -> u64 {
    let hasher = HasherConfig::new()
        .hash_alg(HashAlg::Median)
        .preproc_dct()
        .hash_size(8, 8)
        .to_hasher();
    let hash = hasher.hash_image(image);
    let bytes = hash.as_bytes();
    let mut out = [0u8; 8];
    out[..bytes.len().min(8)].copy_from_slice(&bytes[..bytes.len().min(8)]);
    u64::from_be_bytes(out)
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
}
