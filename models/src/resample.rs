//! Image resampling with fast_image_resize's SIMD kernels, for every resize on the ingest path
//! (CLIP's input, thumbnails, the perceptual hash). `image`'s own resize took 34 ms (CLIP's
//! bicubic to 299 × 224) and 40 ms (Lanczos3 to 16 × 16) for one 1024 × 768 photo, most of an
//! ingest's CPU outside the encoder (docs/benchmarks.md). Each function falls back to `image`'s
//! resize, which gives the same pixels more slowly, should fast_image_resize refuse a buffer.

use std::borrow::Cow;

use fast_image_resize as fr;
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};

/// The image's RGB pixels, borrowed when it already is RGB.
pub fn rgb_of(image: &DynamicImage) -> Cow<'_, RgbImage> {
    match image.as_rgb8() {
        Some(rgb) => Cow::Borrowed(rgb),
        None => Cow::Owned(image.to_rgb8()),
    }
}

fn convolution(filter: FilterType) -> fr::ResizeOptions {
    let filter = match filter {
        FilterType::Nearest => return fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Nearest),
        FilterType::Triangle => fr::FilterType::Bilinear,
        FilterType::CatmullRom => fr::FilterType::CatmullRom,
        FilterType::Gaussian => fr::FilterType::Gaussian,
        FilterType::Lanczos3 => fr::FilterType::Lanczos3,
    };
    fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(filter))
}

/// RGB pixels resampled to `w` × `h` with `filter`, as `imageops::resize` does; the pixels differ
/// by at most one level (8-bit fixed point against its f32 weights; test below).
pub fn rgb(source: &RgbImage, w: u32, h: u32, filter: FilterType) -> RgbImage {
    let mut dst = fr::images::TypedImage::<fr::pixels::U8x3>::new(w, h);
    let resized = fr::images::TypedImageRef::<fr::pixels::U8x3>::from_buffer(
        source.width(),
        source.height(),
        source.as_raw(),
    )
    .map_err(|e| e.to_string())
    .and_then(|src| {
        fr::Resizer::new()
            .resize_typed(&src, &mut dst, &convolution(filter))
            .map_err(|e| e.to_string())
    });
    let bytes = dst.pixels().iter().flat_map(|p| p.0).collect();
    match (resized, RgbImage::from_raw(w, h, bytes)) {
        (Ok(()), Some(out)) => out,
        _ => image::imageops::resize(source, w, h, filter),
    }
}

/// Grey pixels resampled to `w` × `h` in f32, rounded once at the end, as `imageops::resize`
/// does. For shrinks by large factors: each output then sums hundreds of tiny weights, and 8-bit
/// fixed point moved fragile perceptual hashes by up to 8 bits where f32 keeps them equal.
pub fn grey_f32(source: &GrayImage, w: u32, h: u32, filter: FilterType) -> GrayImage {
    let pixels: Vec<fr::pixels::F32> = source
        .as_raw()
        .iter()
        .map(|&v| fr::pixels::F32::new(f32::from(v)))
        .collect();
    let mut dst = fr::images::TypedImage::<fr::pixels::F32>::new(w, h);
    let resized = fr::images::TypedImage::from_pixels(source.width(), source.height(), pixels)
        .map_err(|e| e.to_string())
        .and_then(|src| {
            fr::Resizer::new()
                .resize_typed(&src, &mut dst, &convolution(filter))
                .map_err(|e| e.to_string())
        });
    let bytes = dst
        .pixels()
        .iter()
        .map(|p| p.0.round().clamp(0.0, 255.0) as u8)
        .collect();
    match (resized, GrayImage::from_raw(w, h, bytes)) {
        (Ok(()), Some(out)) => out,
        _ => image::imageops::resize(source, w, h, filter),
    }
}
