//! Images: decoding with limits and EXIF orientation, thumbnails, metadata and fingerprints.

pub mod fingerprint;
pub mod iptc;
pub mod metadata;

use std::io::Cursor;
use std::path::Path;

use ::image::imageops::FilterType;
use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 320;
/// Largest image side accepted (guards against decompression bombs).
pub const MAX_SIDE: u32 = 30_000;
/// Largest decoded image accepted, in bytes.
pub const MAX_DECODED_BYTES: u64 = 1 << 30;

/// A decoded image, upright.
#[derive(Debug)]
pub struct Decoded {
    pub image: DynamicImage,
    pub format: ImageFormat,
}

/// Decodes an image from its bytes, applying its EXIF orientation; `path` is for messages only.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Decoded> {
    // Decoders' messages sometimes end in a newline: reports and CSV lines want one line.
    let fail = |message: String| Error::Decode {
        path: path.to_path_buf(),
        message: message.trim().to_string(),
    };
    if bytes.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| fail(e.to_string()))?;
    let format = reader.format().ok_or_else(|| {
        fail("not a recognised image format (the content matches no known image signature)".into())
    })?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    reader.limits(limits);
    // A size refused by the limits is told with the size the file claims (a decompression
    // bomb says it is 60000 × 60000 in a few bytes).
    let too_big = |e: ::image::ImageError| {
        if !matches!(e, ::image::ImageError::Limits(_)) {
            return fail(e.to_string());
        }
        let claimed = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok());
        match claimed {
            Some((w, h)) => fail(format!(
                "the image claims {w} × {h} pixels, over the limit of {MAX_SIDE} a side and {} MiB decoded",
                MAX_DECODED_BYTES >> 20
            )),
            None => fail(e.to_string()),
        }
    };
    let mut decoder = reader.into_decoder().map_err(too_big)?;
    let orientation = decoder.orientation().map_err(|e| fail(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(too_big)?;
    image.apply_orientation(orientation);
    Ok(Decoded { image, format })
}

/// A JPEG thumbnail whose longest side is at most [`THUMBNAIL_SIZE`], encoded by jpeg-encoder
/// (AVX2 where the CPU has it): `image`'s encoder took ~2 ms of the ~2.8 ms a 1024 × 768
/// image's thumbnail cost (docs/benchmarks.md).
pub fn thumbnail_jpeg(image: &DynamicImage) -> Result<Vec<u8>> {
    let thumb = shrunk(image, THUMBNAIL_SIZE);
    let (w, h) = thumb.dimensions();
    let mut out = Vec::new();
    let side = |v: u32| u16::try_from(v).expect("a thumbnail side fits in 16 bits");
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(
            thumb.as_raw(),
            side(w),
            side(h),
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| Error::Decode {
            path: "<thumbnail>".into(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// The image fitted within `max` × `max`, aspect kept, as `DynamicImage::thumbnail` sizes it.
/// Shrinking goes through fast_image_resize (Lanczos3, SIMD), sharper than `thumbnail`'s box
/// average and a little faster (no-model ingest at 1024 × 768: 100 → 103 images/s,
/// docs/benchmarks.md). Small images are left to `thumbnail`.
fn shrunk(image: &DynamicImage, max: u32) -> ::image::RgbImage {
    let (w, h) = (image.width(), image.height());
    if w <= max && h <= max {
        return image.thumbnail(max, max).to_rgb8();
    }
    let ratio = f64::min(f64::from(max) / f64::from(w), f64::from(max) / f64::from(h));
    let nw = ((f64::from(w) * ratio).round() as u32).max(1);
    let nh = ((f64::from(h) * ratio).round() as u32).max(1);
    let rgb = kairos_models::resample::rgb_of(image);
    kairos_models::resample::rgb(&rgb, nw, nh, FilterType::Lanczos3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgb8(::image::RgbImage::from_pixel(
            w,
            h,
            ::image::Rgb([200, 10, 10]),
        ));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn decodes_and_thumbnails_keep_aspect() {
        let d = decode(Path::new("x.png"), &png(640, 320)).unwrap();
        assert_eq!(d.format, ImageFormat::Png);
        let t = ::image::load_from_memory(&thumbnail_jpeg(&d.image).unwrap()).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        // Sized as `thumbnail` sizes them, odd ratios included; the pixels are the photo's.
        for (w, h) in [(1024, 768), (333, 1000), (5000, 7), (320, 320), (100, 50)] {
            let photo = DynamicImage::ImageRgb8(::image::RgbImage::from_fn(w, h, |x, y| {
                ::image::Rgb([(x % 251) as u8, (y % 241) as u8, 128])
            }));
            let ours = shrunk(&photo, THUMBNAIL_SIZE);
            let theirs = photo.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE);
            assert_eq!(
                ours.dimensions(),
                (theirs.width(), theirs.height()),
                "{w}×{h}"
            );
            let centre = ours.get_pixel(ours.width() / 2, ours.height() / 2).0;
            assert!(centre[2].abs_diff(128) <= 1, "{w}×{h}: {centre:?}");
        }
    }

    #[test]
    fn truncated_and_empty_files_fail_naming_the_file() {
        let bytes = png(64, 64);
        let err = decode(Path::new("/archive/cut.png"), &bytes[..bytes.len() / 2]).unwrap_err();
        assert!(err.to_string().contains("/archive/cut.png"), "{err}");
        let err = decode(Path::new("/archive/empty.jpg"), &[]).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = decode(
            Path::new("/archive/notes.jpg"),
            b"just some text, not an image",
        )
        .unwrap_err();
        assert!(err.to_string().contains("notes.jpg"), "{err}");
    }

    #[test]
    fn decompression_bomb_is_refused() {
        // A PNG header claiming 100000 x 100000 pixels.
        let mut bytes = png(1, 1);
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode(Path::new("bomb.png"), &bytes).is_err());
    }
}
