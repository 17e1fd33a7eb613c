//! The metadata glue (EXIF, IPTC-IIM, XMP read out of image files): any bytes, in any of the
//! formats Kairos reads, give metadata or none, never a panic or a hang.
#![no_main]

use image::ImageFormat;
use kairos_indexer::image::{iptc, metadata};
use libfuzzer_sys::fuzz_target;

const FORMATS: [ImageFormat; 6] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Tiff,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

fuzz_target!(|data: &[u8]| {
    let Some((pick, bytes)) = data.split_first() else {
        return;
    };
    let format = FORMATS[*pick as usize % FORMATS.len()];
    let _ = metadata::read(bytes, format);
    let _ = metadata::find_xmp_packet(bytes);
    let _ = iptc::read_jpeg(bytes);
});
