//! Probing: which files Kairos indexes, and as what.

use std::path::Path;

use kairos_store::AssetKind;

use crate::audio::AUDIO_EXTENSIONS;
use crate::video::VIDEO_EXTENSIONS;

/// Image extensions the indexer decodes.
pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "jpe", "png", "webp", "tif", "tiff", "gif", "bmp",
];

/// The kind of media a path names, judged by its extension; `None` for files Kairos skips
/// (sidecars, documents, unknown types).
pub fn kind_of(path: &Path) -> Option<AssetKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Some(AssetKind::Image)
    } else if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
        Some(AssetKind::Audio)
    } else if VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        Some(AssetKind::Video)
    } else {
        None
    }
}

/// What Kairos indexes, in words (for "unsupported file" errors).
pub fn supported_types() -> String {
    format!(
        "Kairos indexes images ({}), audio ({}) and video ({})",
        IMAGE_EXTENSIONS.join(", "),
        AUDIO_EXTENSIONS.join(", "),
        VIDEO_EXTENSIONS.join(", ")
    )
}

/// MIME type of an audio file, by its extension.
pub fn audio_mime(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "wav" | "wave" => "audio/wav",
        "flac" => "audio/flac",
        "mp3" => "audio/mpeg",
        "m4a" | "mp4a" | "alac" => "audio/mp4",
        "aac" => "audio/aac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "caf" => "audio/x-caf",
        "aif" | "aiff" => "audio/aiff",
        "mka" => "audio/x-matroska",
        _ => return None,
    })
}

/// MIME type of a video file, by its extension (what a browser's `<video>` is told).
pub fn video_mime(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" | "qt" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "webm" => "video/webm",
        "mxf" => "application/mxf",
        "avi" => "video/x-msvideo",
        "ts" | "mts" | "m2ts" => "video/mp2t",
        "mpg" | "mpeg" | "m2v" | "vob" => "video/mpeg",
        "wmv" | "asf" => "video/x-ms-wmv",
        "flv" => "video/x-flv",
        "3gp" => "video/3gpp",
        "3g2" => "video/3gpp2",
        "ogv" => "video/ogg",
        "dv" => "video/x-dv",
        _ => return None,
    })
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
        assert_eq!(kind_of(Path::new("talk.FLAC")), Some(AssetKind::Audio));
        assert_eq!(audio_mime(Path::new("a.mp3")), Some("audio/mpeg"));
        assert_eq!(kind_of(Path::new("noext")), None);
        assert_eq!(kind_of(Path::new("final.MXF")), Some(AssetKind::Video));
        assert_eq!(video_mime(Path::new("a.mkv")), Some("video/x-matroska"));
    }
}
