//! Exporting a moment as a file of its own: stream copy when the start falls on a key frame
//! (instant, lossless), a frame-accurate re-encode otherwise.

use std::ffi::OsString;
use std::path::Path;

use super::ffmpeg::{Tools, file_url};
use crate::error::{Error, Result};

/// A start this close to a key frame (seconds) can be cut there without re-encoding.
const KEYFRAME_TOLERANCE_S: f64 = 0.02;

/// A stream-copied clip may be this much longer than asked (ms): it ends on whole packets, and
/// B-frame reordering carries a frame or two past the end…
const COPY_LONGER_MS: i64 = 400;
/// …and this much shorter.
const COPY_SHORTER_MS: i64 = 150;

/// How a clip was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipMethod {
    /// The compressed streams were copied: exact and instant, because the start is a key frame.
    StreamCopy,
    /// Decoded and encoded again, so that it starts on the exact frame asked for.
    Reencode,
}

/// Parses a timecode: `HH:MM:SS(.mmm)`, `MM:SS(.mmm)` or seconds (`62.5`); `field` names it in
/// the error.
pub fn parse_timecode(field: &str, text: &str) -> Result<i64> {
    let bad = || {
        Error::Query(format!(
            "{field}: {text:?} is not a timecode (HH:MM:SS.mmm, MM:SS or seconds)"
        ))
    };
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(bad());
    }
    let mut seconds = 0f64;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let v: f64 = if last {
            p.trim().parse().map_err(|_| bad())?
        } else {
            p.trim().parse::<u32>().map_err(|_| bad())? as f64
        };
        if !v.is_finite() || v < 0.0 || (i > 0 && v >= 60.0) {
            return Err(bad());
        }
        seconds = seconds * 60.0 + v;
    }
    Ok((seconds * 1000.0).round() as i64)
}

/// Cuts `from_ms..to_ms` of `source` into `out` (its extension picks the container). The clip is
/// written beside `out` under a temporary name and renamed when whole: a failed or interrupted
/// cut leaves no half-written file under the name asked for.
pub fn export(
    tools: &Tools,
    source: &Path,
    is_video: bool,
    from_ms: i64,
    to_ms: i64,
    out: &Path,
) -> Result<ClipMethod> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::Query(format!("{} names no file", out.display())))?;
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy())
        .unwrap_or_default();
    let partial = out.with_file_name(format!(".{}.kairos-partial.{ext}", name.to_string_lossy()));
    match cut(tools, source, is_video, from_ms, to_ms, &partial) {
        Ok(method) => {
            fs_err::rename(&partial, out)?;
            Ok(method)
        }
        Err(e) => {
            let _ = fs_err::remove_file(&partial);
            Err(e)
        }
    }
}

fn cut(
    tools: &Tools,
    source: &Path,
    is_video: bool,
    from_ms: i64,
    to_ms: i64,
    out: &Path,
) -> Result<ClipMethod> {
    if to_ms <= from_ms {
        return Err(Error::Query(format!(
            "--to ({} s) must be after --from ({} s)",
            to_ms as f64 / 1000.0,
            from_ms as f64 / 1000.0
        )));
    }
    let (from, length) = (from_ms as f64 / 1000.0, (to_ms - from_ms) as f64 / 1000.0);
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let head = |args: &mut Vec<OsString>| {
        args.extend(["-y".into(), "-ss".into(), format!("{from:.3}").into()]);
        args.extend(["-i".into(), file_url(source)]);
        args.extend(["-t".into(), format!("{length:.3}").into()]);
        if is_video {
            args.extend(["-map".into(), "0:v:0".into()]);
        }
        args.extend(["-map".into(), "0:a:0?".into(), "-sn".into(), "-dn".into()]);
    };
    // The very start of a file is always a clean cut point.
    let on_keyframe = is_video
        && (from_ms == 0
            || tools
                .keyframe_times(source, (from - 1.0).max(0.0), from + 1.0)?
                .iter()
                .any(|t| (t - from).abs() <= KEYFRAME_TOLERANCE_S));
    if on_keyframe {
        let mut args = Vec::new();
        head(&mut args);
        args.extend(["-c".into(), "copy".into()]);
        args.extend(["-avoid_negative_ts".into(), "make_zero".into()]);
        args.push(file_url(out));
        // Some containers cannot hold some codecs (PCM in MP4, say), and a demuxer may seek to
        // an earlier key frame than the one found (sparse Matroska cues): the copy must come out
        // the length asked for, or the clip is re-encoded.
        let wanted_ms = to_ms - from_ms;
        if tools.run(&args, source).is_ok()
            && let Ok(made) = tools.probe(out)
            && let Some(got_ms) = made.duration_ms
            && (-COPY_SHORTER_MS..=COPY_LONGER_MS).contains(&(got_ms as i64 - wanted_ms))
        {
            return Ok(ClipMethod::StreamCopy);
        }
    }
    let mut args = Vec::new();
    head(&mut args);
    // Other containers get ffmpeg's default codecs for them (WebM: VP9 and Opus).
    if is_video && matches!(ext.as_str(), "mp4" | "m4v" | "mov" | "mkv") {
        args.extend(
            [
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-b:a", "192k",
            ]
            .map(OsString::from),
        );
        if ext != "mkv" {
            args.extend(["-movflags".into(), "+faststart".into()]);
        }
    }
    args.push(file_url(out));
    tools.run(&args, source)?;
    Ok(ClipMethod::Reencode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timecodes_parse_in_every_usual_form() {
        assert_eq!(parse_timecode("from", "00:01:02.5").unwrap(), 62_500);
        assert_eq!(parse_timecode("from", "1:02.25").unwrap(), 62_250);
        assert_eq!(parse_timecode("from", "62.5").unwrap(), 62_500);
        assert_eq!(parse_timecode("from", "1:00:00").unwrap(), 3_600_000);
        for bad in ["", "1:75", "a:00", "1::2", "-3", "1:2:3:4"] {
            let e = parse_timecode("from", bad).unwrap_err().to_string();
            assert!(e.contains("from"), "{bad}: {e}");
        }
    }
}
