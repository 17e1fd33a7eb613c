//! One video: probe, then two passes — frames (shots, keyframes, CLIP vectors), then the first
//! audio track (Whisper) — joined into shot, keyframe and speech moments.

use std::path::Path;
use std::time::Instant;

use kairos_models::whisper::{LANGUAGES, TranscribeOptions, Transcript};
use kairos_store::{Asset, AssetKind, MediaInfo, Segment, SegmentKind};

use super::{
    IngestOptions, Prepared, ReadyAsset, ReadySegment, failed, samples_to_ms, speech_moments,
};
use crate::analysis::Analyzers;
use crate::audio::iso_639_1;
use crate::error::{Error, Result};
use crate::image as img;
use crate::probe;
use crate::video::{self, FrameOptions, Keyframe, Probe, Tools};

/// Keyframes embedded by CLIP together.
const CLIP_BATCH: usize = 16;
/// A video whose frames stop this far before its announced end is truncated (ms, and fraction).
const TRUNCATION_SLACK_MS: i64 = 1500;
const TRUNCATION_FRACTION: f64 = 0.9;

/// Where the time of one video went (seconds), for `kairos bench video` and the logs.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VideoTimings {
    pub probe: f64,
    /// The frame pass, wall clock: decoding, features, shot detection, keyframes, CLIP.
    pub frames_wall: f64,
    /// Of which waiting for ffmpeg's frames.
    pub decode_wait: f64,
    /// Of which thumbnails, CLIP preprocessing and embedding.
    pub clip: f64,
    /// The speech pass, wall clock (ffmpeg audio + Whisper), after the frame pass.
    pub speech_wall: f64,
    pub shots: usize,
    pub keyframes: usize,
    pub frames: usize,
    pub speech_segments: usize,
}

/// A keyframe waiting for its CLIP batch: its thumbnail and CLIP input.
type Pending = (Keyframe, Vec<u8>, Option<Vec<f32>>);

/// A keyframe made ready for the index: thumbnail and CLIP vector.
struct Analysed {
    keyframe: Keyframe,
    thumbnail: Vec<u8>,
    visual: Option<Vec<f32>>,
}

/// Indexes one video file; `progress(stage, done_ms, total_ms)` as each pass advances.
pub(super) fn prepare_video(
    path: &Path,
    mut asset: Asset,
    analyzers: &Analyzers,
    options: &IngestOptions,
    tools: &Tools,
    progress: &dyn Fn(&'static str, u64, Option<u64>),
    timings: &mut VideoTimings,
) -> Prepared {
    let fail = failed;
    if asset.bytes == 0 {
        return fail(
            asset,
            format!("cannot decode {}: the file is empty", path.display()),
        );
    }
    let t = Instant::now();
    let probe = match tools.probe(path) {
        Ok(p) => p,
        Err(e) => return fail(asset, e.to_string()),
    };
    timings.probe = t.elapsed().as_secs_f64();
    describe(&mut asset, path, &probe);
    if probe.video.is_none() && probe.audio.is_empty() {
        return fail(
            asset,
            format!(
                "cannot decode {}: no video or audio stream (ffprobe sees a {} file)",
                path.display(),
                probe.container.as_deref().unwrap_or("unknown")
            ),
        );
    }
    if probe.video.is_none() {
        // An audio-only file in a video container (an .mp4 of a radio show): a recording.
        asset.kind = AssetKind::Audio;
    }
    let total_ms = asset.duration_ms.map(|d| d as u64);
    let spoken_hint = options.speech_language.clone().or_else(|| {
        probe
            .audio
            .first()
            .and_then(|a| a.language.as_deref())
            .map(iso_639_1)
            .filter(|l| LANGUAGES.contains(&l.as_str()))
    });
    // One pass after the other, frames first (a file that does not decode fails before any
    // transcription): each pass already keeps every core busy, and side by side they were slower
    // (79.9 s against 75.5 s for 5 min of 1080p with speech, docs/benchmarks.md).
    let frames = probe.video.as_ref().map(|_| {
        let t = Instant::now();
        let r = frame_pass(path, &probe, analyzers, options, tools, &|ms| {
            progress("finding shots in", ms, total_ms)
        });
        (r, t.elapsed().as_secs_f64())
    });
    let frames_failed = frames.as_ref().is_some_and(|(r, _)| r.is_err());
    let speech = (!probe.audio.is_empty() && !frames_failed)
        .then_some(analyzers.whisper.as_ref())
        .flatten()
        .map(|whisper| {
            let t = Instant::now();
            let r = transcribe(path, tools, whisper, spoken_hint.clone(), &|samples| {
                progress("transcribing", samples_to_ms(samples), total_ms)
            });
            (r, t.elapsed().as_secs_f64())
        });

    let mut segments = Vec::new();
    let mut shots: Vec<(i64, i64, Option<Vec<u8>>)> = Vec::new();
    if let Some((result, wall)) = frames {
        timings.frames_wall = wall;
        let (pass, analysed, clip_seconds) = match result {
            Ok(x) => x,
            Err(e) => return fail(asset, e.to_string()),
        };
        timings.decode_wait = pass.decode_seconds;
        timings.clip = clip_seconds;
        timings.frames = pass.frames;
        timings.shots = pass.shots.len();
        timings.keyframes = analysed.len();
        let announced = probe
            .video
            .as_ref()
            .and_then(|v| v.duration_ms)
            .or(probe.duration_ms)
            .map(|d| d as i64);
        if let Some(announced) = announced
            && pass.decoded_ms + TRUNCATION_SLACK_MS
                < (announced as f64 * TRUNCATION_FRACTION) as i64
        {
            return fail(
                asset,
                format!(
                    "cannot decode {}: truncated or corrupt: the container announces {:.1} s of video, only {:.1} s decodes",
                    path.display(),
                    announced as f64 / 1000.0,
                    pass.decoded_ms as f64 / 1000.0
                ),
            );
        }
        if asset.duration_ms.is_none() {
            asset.duration_ms = Some(pass.decoded_ms);
        }
        // Each shot is a moment, with the frame of its first stretch when one was usable; later
        // stretches of long shots are keyframe moments. A shot keeps its first keyframe's
        // thumbnail for the words spoken over it.
        shots = pass.shots.iter().map(|&(s, e)| (s, e, None)).collect();
        let mut shot_done = vec![false; shots.len()];
        for a in analysed {
            let k = &a.keyframe;
            let (kind, start, end) = match shots.get_mut(k.shot) {
                Some((s, e, thumb)) => {
                    thumb.get_or_insert_with(|| a.thumbnail.clone());
                    if k.first_of_shot {
                        shot_done[k.shot] = true;
                        (SegmentKind::Shot, *s, *e)
                    } else {
                        (SegmentKind::Keyframe, k.start_ms, k.end_ms)
                    }
                }
                None => (SegmentKind::Keyframe, k.start_ms, k.end_ms),
            };
            segments.push(ReadySegment {
                segment: Segment::new(&asset.id, kind, start, end.max(start)),
                thumbnail: Some(a.thumbnail),
                clip_input: None,
                visual: a.visual,
                embed_text: None,
                own_doc: false,
            });
        }
        // Shots whose every frame was unusable as a keyframe (too dark, blank) still exist.
        for (&(start, end, _), _) in shots.iter().zip(&shot_done).filter(|(_, done)| !**done) {
            segments.push(ReadySegment {
                segment: Segment::new(&asset.id, SegmentKind::Shot, start, end),
                thumbnail: None,
                clip_input: None,
                visual: None,
                embed_text: None,
                own_doc: false,
            });
        }
    }
    let mut transcript = None;
    if let Some((result, wall)) = speech {
        timings.speech_wall = wall;
        match result {
            Ok(t) => transcript = Some(t),
            Err(e) => return fail(asset, e.to_string()),
        }
    }
    let spoken = transcript.as_ref().and_then(|t| t.language.clone());
    asset.language = spoken
        .or(spoken_hint)
        .or_else(|| asset.language.clone())
        .or_else(|| options.language.clone());
    let said = speech_moments(&asset.id, transcript, analyzers, |start| {
        // What was on screen when the words began.
        shots
            .iter()
            .find(|(s, e, _)| *s <= start && start < *e)
            .or_else(|| shots.iter().rev().find(|(s, _, _)| *s <= start))
            .and_then(|(_, _, t)| t.clone())
    });
    timings.speech_segments = said.len();
    segments.extend(said);
    segments.sort_by_key(|s| (s.segment.start_ms, s.segment.kind.as_str()));
    Prepared::Ready(Box::new(ReadyAsset { asset, segments }))
}

/// Title, dates, size, codecs and languages from ffprobe.
fn describe(asset: &mut Asset, path: &Path, probe: &Probe) {
    asset.mime = probe::video_mime(path).map(str::to_string);
    if let Some(v) = &probe.video {
        asset.width = Some(v.display_width as i64);
        asset.height = Some(v.display_height as i64);
    }
    asset.duration_ms = probe
        .duration_ms
        .or_else(|| probe.video.as_ref().and_then(|v| v.duration_ms))
        .map(|d| d as i64);
    asset.captured_at = probe.created;
    asset.title = probe.tag("title").map(str::to_string);
    asset.caption = probe
        .tag("description")
        .or_else(|| probe.tag("comment"))
        .or_else(|| probe.tag("synopsis"))
        .map(str::to_string);
    asset.credit = probe
        .tag("artist")
        .or_else(|| probe.tag("author"))
        .or_else(|| probe.tag("copyright"))
        .map(str::to_string);
    asset.keywords = probe
        .tag("keywords")
        .map(|k| {
            k.split([',', ';'])
                .map(|w| w.trim().to_string())
                .filter(|w| !w.is_empty())
                .collect()
        })
        .unwrap_or_default();
    asset.language = probe
        .tag("language")
        .or_else(|| probe.audio.first().and_then(|a| a.language.as_deref()))
        .map(iso_639_1);
    asset.media = Some(MediaInfo {
        container: probe.container.clone(),
        video_codec: probe.video.as_ref().and_then(|v| v.codec.clone()),
        frame_rate: probe.video.as_ref().and_then(|v| v.fps()),
        interlaced: probe.video.as_ref().is_some_and(|v| v.interlaced),
        audio_codec: probe.audio.first().and_then(|a| a.codec.clone()),
        audio_tracks: probe.audio.len() as u32,
        audio_languages: probe
            .audio
            .iter()
            .filter_map(|a| a.language.clone())
            .collect(),
        bit_rate: probe.bit_rate,
    });
}

/// The frame pass with CLIP: every keyframe becomes a thumbnail and (with a CLIP model) a vector,
/// embedded in batches as they come. Returns the pass, the keyframes and the seconds spent on
/// thumbnails and CLIP.
fn frame_pass(
    path: &Path,
    probe: &Probe,
    analyzers: &Analyzers,
    options: &IngestOptions,
    tools: &Tools,
    progress: &dyn Fn(u64),
) -> Result<(video::FramePass, Vec<Analysed>, f64)> {
    let side = analyzers
        .clip
        .as_ref()
        .map(|c| c.preprocess().size as u32)
        .unwrap_or(0);
    let frame_options = FrameOptions {
        keyframe_every_s: options.keyframe_every_s,
        side: side.max(video::ANALYSIS_SIDE),
    };
    let mut done: Vec<Analysed> = Vec::new();
    let mut waiting: Vec<Pending> = Vec::new();
    let mut clip_seconds = 0f64;
    let embed = |waiting: &mut Vec<Pending>,
                 done: &mut Vec<Analysed>,
                 clip_seconds: &mut f64|
     -> Result<()> {
        let t = Instant::now();
        let inputs: Vec<Vec<f32>> = waiting.iter_mut().filter_map(|w| w.2.take()).collect();
        let mut vectors = match &analyzers.clip {
            Some(clip) if !inputs.is_empty() => clip
                .embed_preprocessed(&inputs)
                .map_err(|e| Error::Decode {
                    path: path.to_path_buf(),
                    message: format!("CLIP on its keyframes: {e}"),
                })?
                .into_iter(),
            _ => Vec::new().into_iter(),
        };
        for (keyframe, thumbnail, _) in waiting.drain(..) {
            done.push(Analysed {
                keyframe,
                thumbnail,
                visual: vectors.next(),
            });
        }
        *clip_seconds += t.elapsed().as_secs_f64();
        Ok(())
    };
    let pass = video::frame_pass(
        tools,
        path,
        probe,
        &frame_options,
        &mut |keyframe| {
            let t = Instant::now();
            let mut keyframe = keyframe;
            // The pixels move on to the thumbnail and CLIP; the times stay with the keyframe.
            let image = ::image::DynamicImage::ImageRgb8(std::mem::take(&mut keyframe.image));
            let thumbnail = img::thumbnail_jpeg(&image).map_err(|e| Error::Decode {
                path: path.to_path_buf(),
                message: format!("thumbnail of the keyframe at {} ms: {e}", keyframe.at_ms),
            })?;
            let input = analyzers
                .clip
                .as_ref()
                .map(|c| c.preprocess().apply(&image));
            clip_seconds += t.elapsed().as_secs_f64();
            waiting.push((keyframe, thumbnail, input));
            if waiting.len() >= CLIP_BATCH {
                embed(&mut waiting, &mut done, &mut clip_seconds)?;
            }
            Ok(())
        },
        progress,
    )?;
    embed(&mut waiting, &mut done, &mut clip_seconds)?;
    Ok((pass, done, clip_seconds))
}

/// The first audio track through Whisper, streamed from ffmpeg.
fn transcribe(
    path: &Path,
    tools: &Tools,
    whisper: &std::sync::Mutex<kairos_models::whisper::Whisper>,
    language: Option<String>,
    progress: &dyn Fn(usize),
) -> Result<Transcript> {
    let mut pcm = tools.pcm(path, 0)?;
    let mut whisper = match whisper.lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    };
    let result = whisper.transcribe(&mut pcm, &TranscribeOptions { language }, &mut |samples| {
        progress(samples)
    });
    drop(whisper);
    match result {
        Ok(t) => {
            pcm.finish()?;
            Ok(t)
        }
        Err(e) => {
            pcm.stop();
            Err(match e {
                kairos_models::Error::Audio(message) => Error::Decode {
                    path: path.to_path_buf(),
                    message: format!("reading the audio track: {message}"),
                },
                other => Error::Decode {
                    path: path.to_path_buf(),
                    message: format!("transcribing: {other}"),
                },
            })
        }
    }
}
