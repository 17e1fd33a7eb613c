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
    let grey = luma(image);
    if grey.dimensions() == (DCT_SIDE, DCT_SIDE) {
        return grey;
    }
    kairos_models::resample::grey_f32(&grey, DCT_SIDE, DCT_SIDE, FilterType::Lanczos3)
}

/// sRGB's luminance weights (BT.709 primaries, D65) as the `image` crate derives them in f32.
const LUMA_WEIGHTS: [f32; 3] = [
    f32::from_bits(0x3e59_c05b), // 0.21264784
    f32::from_bits(0x3f37_15fc), // 0.7151792
    f32::from_bits(0x3d93_cf75), // 0.07217304
];

/// The image in grey, equal to `to_luma8` as the hasher calls it (`imageops::grayscale` weighs
/// the channels otherwise). For RGB images (every JPEG) the same arithmetic as `image`'s —
/// each channel over 255, weighed, summed in order, times 255, rounded half away from zero —
/// without its general per-pixel path, which took ~2.5 ms of a 1024 × 768 image's ~3 ms hash
/// (the rounding a libm call each). Every colour gives the same grey (exhaustive test below).
fn luma(image: &DynamicImage) -> GrayImage {
    let Some(rgb) = image.as_rgb8() else {
        return image.to_luma8();
    };
    let raw = rgb.as_raw();
    let mut grey = vec![0u8; raw.len() / 3];
    // Eight pixels at a time in arrays the compiler keeps in vector registers.
    const LANES: usize = 8;
    let mut pixels = raw.chunks_exact(3 * LANES);
    let mut out = grey.chunks_exact_mut(LANES);
    for (p, o) in (&mut pixels).zip(&mut out) {
        let channel =
            |c: usize| -> [f32; LANES] { std::array::from_fn(|i| f32::from(p[3 * i + c])) };
        let (r, g, b) = (channel(0), channel(1), channel(2));
        let v: [f32; LANES] = std::array::from_fn(|i| luma_of(r[i], g[i], b[i]));
        for (o, v) in o.iter_mut().zip(v) {
            *o = rounded(v);
        }
    }
    let rest = pixels.remainder().chunks_exact(3);
    for (p, o) in rest.zip(out.into_remainder()) {
        *o = rounded(luma_of(f32::from(p[0]), f32::from(p[1]), f32::from(p[2])));
    }
    GrayImage::from_raw(rgb.width(), rgb.height(), grey).expect("one grey byte a pixel")
}

/// `image`'s luma of one pixel, times 255, before rounding: each channel over 255, weighed,
/// summed in that order (no fused multiply-add: `image` is built without FMA).
#[inline(always)]
fn luma_of(r: f32, g: f32, b: f32) -> f32 {
    let [kr, kg, kb] = LUMA_WEIGHTS;
    let unit = 1.0 / 255.0f32;
    let v = 0.0 + r * unit * kr;
    let v = v + g * unit * kg;
    (v + b * unit * kb) * 255.0
}

/// `v.round()` (half away from zero) as a byte, for 0 ≤ v < 256, in operations that vectorise
/// (a saturating `as` cast is a branch per pixel): adding 2^23 rounds to the nearest integer,
/// ties to even, and leaves it in the low mantissa bits; a tie rounded down goes up.
#[inline(always)]
fn rounded(v: f32) -> u8 {
    const SHIFT: f32 = 8_388_608.0; // 2^23
    let m = v + SHIFT;
    let tie_down = u32::from(v - (m - SHIFT) == 0.5);
    ((m.to_bits() & 0x1ff) + tie_down).min(255) as u8
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
    fn grey_equals_the_image_crates_for_every_colour() {
        // 4096 × 4096 pixels: each of the 2^24 colours once.
        let all = ::image::RgbImage::from_fn(4096, 4096, |x, y| {
            let i = y * 4096 + x;
            ::image::Rgb([(i >> 16) as u8, (i >> 8) as u8, i as u8])
        });
        let all = DynamicImage::ImageRgb8(all);
        let ours = luma(&all);
        let theirs = all.to_luma8();
        let differ = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .position(|(a, b)| a != b);
        assert_eq!(differ, None, "first colour that differs");
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
