//! Probing: which files Kairos indexes, and as what.

use std::path::Path;

use kairos_store::AssetKind;

/// Image extensions the indexer decodes.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "bmp",
];

/// The kind of media a path names, judged by its extension; `None` for files Kairos skips
/// (sidecars, documents, unknown types).
pub fn kind_of(path: &Path) -> Option<AssetKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    IMAGE_EXTENSIONS
        .contains(&ext.as_str())
        .then_some(AssetKind::Image)
}

/// MIME type of an image format.
pub fn image_mime(format: ::image::ImageFormat) -> &'static str {
    format.to_mime_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_recognised_case_insensitively_and_sidecars_skipped() {
        assert_eq!(kind_of(Path::new("/a/IMG_01.JPG")), Some(AssetKind::Image));
        assert_eq!(kind_of(Path::new("b.webp")), Some(AssetKind::Image));
        assert_eq!(kind_of(Path::new("b.xmp")), None);
        assert_eq!(kind_of(Path::new("noext")), None);
    }
}
