//! Video: probe with ffprobe, stream frames from ffmpeg, find the shots and pick their keyframes.
//!
//! - [`ffmpeg`]: the subprocesses (probe, frames, audio, clip export), with timeouts;
//! - [`shots`]: shot boundaries (cuts, fades, dissolves) from frame features;
//! - [`clip_export`]: a moment cut out as a file;
//! - [`keyframes`]: which frame stands for a shot, or for each stretch of a long one.

pub mod clip_export;
pub mod ffmpeg;
pub mod keyframes;
pub mod shots;

use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use image::RgbImage;

pub use ffmpeg::{Probe, Tools};

use crate::error::{Error, Result};
use shots::{Detector, Event};

/// Video extensions Kairos indexes.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "m4v", "mov", "qt", "mkv", "webm", "mxf", "avi", "ts", "mts", "m2ts", "mpg", "mpeg",
    "m2v", "vob", "wmv", "asf", "flv", "3gp", "3g2", "ogv", "dv",
];

/// Analysis frame rates above this are halved (a 50 or 60 fps video is analysed at 25 or 30).
const MAX_ANALYSIS_FPS: f64 = 30.5;
/// Shortest side of the analysis frames (CLIP reads 224×224).
pub const ANALYSIS_SIDE: u32 = 224;
/// Frames between two keyframe candidates.
const KEYFRAME_STEP: usize = 5;
/// Longest side of the analysis frames.
const MAX_ANALYSIS_LONG: u32 = 640;

/// How frames are analysed.
#[derive(Debug, Clone)]
pub struct FrameOptions {
    /// A long shot gets a keyframe every this many seconds.
    pub keyframe_every_s: f64,
    /// Shortest side of the analysis frames (at least [`ANALYSIS_SIDE`]).
    pub side: u32,
}

impl Default for FrameOptions {
    fn default() -> Self {
        Self {
            keyframe_every_s: 10.0,
            side: ANALYSIS_SIDE,
        }
    }
}

/// A keyframe: the frame chosen for one stretch (`start_ms..end_ms`) of shot `shot`.
#[derive(Debug, Clone)]
pub struct Keyframe {
    pub shot: usize,
    /// Whether it stands for its shot (the first stretch), or for a later stretch of a long one.
    pub first_of_shot: bool,
    pub start_ms: i64,
    pub end_ms: i64,
    pub at_ms: i64,
    pub image: RgbImage,
}

/// What the frame pass found.
#[derive(Debug, Clone, Default)]
pub struct FramePass {
    /// Shots as `start_ms..end_ms`, in order.
    pub shots: Vec<(i64, i64)>,
    pub frames: usize,
    /// Milliseconds of video decoded.
    pub decoded_ms: i64,
    /// Seconds waiting on ffmpeg for frames, and spent on features, detection and keyframes.
    pub decode_seconds: f64,
    pub analyse_seconds: f64,
}

/// The analysis frame rate (a fraction) for a stream at `rate`.
pub fn analysis_rate(rate: Option<(u32, u32)>) -> (u32, u32) {
    let (mut n, mut d) = rate.unwrap_or((25, 1));
    while n as f64 / d as f64 > MAX_ANALYSIS_FPS {
        if n % 2 == 0 {
            n /= 2;
        } else {
            d *= 2;
        }
    }
    (n, d)
}

/// Analysis frame size for a picture displayed at `w`×`h`: shortest side `side`, even sizes.
pub fn analysis_size(w: u32, h: u32, side: u32) -> (u32, u32) {
    let (w, h) = (w.max(1) as f64, h.max(1) as f64);
    let scale = side as f64 / w.min(h);
    let even = |v: f64| ((v / 2.0).round() as u32 * 2).clamp(2, MAX_ANALYSIS_LONG);
    (even(w * scale), even(h * scale))
}

/// Streams every frame of `path`'s video, finds its shots and calls `on_keyframe` with each
/// keyframe as soon as it is chosen; `progress(ms)` hears how far the decoding got.
pub fn frame_pass(
    tools: &Tools,
    path: &Path,
    probe: &Probe,
    options: &FrameOptions,
    on_keyframe: &mut dyn FnMut(Keyframe) -> Result<()>,
    progress: &dyn Fn(u64),
) -> Result<FramePass> {
    let video = probe.video.as_ref().ok_or_else(|| Error::Decode {
        path: path.to_path_buf(),
        message: "no video stream".into(),
    })?;
    let rate = analysis_rate(video.frame_rate);
    let fps = rate.0 as f64 / rate.1 as f64;
    let (width, height) = analysis_size(
        video.display_width,
        video.display_height,
        options.side.max(ANALYSIS_SIDE),
    );
    let ms_of = |frame: usize| (frame as u64 * 1000 * rate.1 as u64 / rate.0 as u64) as i64;
    let window_frames = ((options.keyframe_every_s.max(1.0) * fps).round() as usize).max(1);
    let mut reader = tools.frames(path, rate, (width, height), video.interlaced)?;
    let (w, h) = (width as usize, height as usize);

    let mut detector = Detector::new(fps);
    // Frames the detector has not decided yet (it answers `LAG` frames late).
    let mut held: VecDeque<(usize, Vec<u8>)> = VecDeque::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut state = ShotState::default();
    let mut pass = FramePass::default();
    let mut frame = 0usize;
    let mut decode = 0f64;
    let started = Instant::now();
    let result = (|| -> Result<()> {
        loop {
            let mut buf = spare.pop().unwrap_or_default();
            let t = Instant::now();
            let more = reader.next_frame(&mut buf).map_err(|e| Error::Decode {
                path: path.to_path_buf(),
                message: format!("reading frames from ffmpeg: {e}"),
            })?;
            decode += t.elapsed().as_secs_f64();
            let events = if more {
                let f = shots::features(&buf, w, h);
                held.push_back((frame, buf));
                frame += 1;
                if frame.is_multiple_of(25) {
                    progress(ms_of(frame) as u64);
                }
                detector.push(f)
            } else {
                detector.finish()
            };
            for event in events {
                state.apply(
                    event,
                    &held,
                    (w, h),
                    window_frames,
                    &ms_of,
                    &mut pass.shots,
                    on_keyframe,
                )?;
            }
            // Frames the detector has decided are no longer needed.
            while held.len() > shots::LAG + 1 {
                let (_, b) = held.pop_front().expect("not empty");
                spare.push(b);
            }
            if !more {
                break;
            }
        }
        state.close(frame, &ms_of, &mut pass.shots, (w, h), on_keyframe)
    })();
    if let Err(e) = result {
        drop(reader);
        return Err(e);
    }
    reader.finish(path)?;
    pass.frames = frame;
    pass.decoded_ms = ms_of(frame);
    pass.decode_seconds = decode;
    pass.analyse_seconds = started.elapsed().as_secs_f64() - decode;
    Ok(pass)
}

/// The shot being read: where it and its current stretch began, and the best frame so far.
#[derive(Default)]
struct ShotState {
    current: Option<OpenShot>,
    shots_started: usize,
}

struct OpenShot {
    index: usize,
    start: usize,
    window_start: usize,
    windows: usize,
    picker: keyframes::Picker,
}

impl ShotState {
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        event: Event,
        held: &VecDeque<(usize, Vec<u8>)>,
        size: (usize, usize),
        window_frames: usize,
        ms_of: &dyn Fn(usize) -> i64,
        shots: &mut Vec<(i64, i64)>,
        on_keyframe: &mut dyn FnMut(Keyframe) -> Result<()>,
    ) -> Result<()> {
        match event {
            Event::ShotStart { at } => {
                self.close(at, ms_of, shots, size, on_keyframe)?;
                self.current = Some(OpenShot {
                    index: self.shots_started,
                    start: at,
                    window_start: at,
                    windows: 0,
                    picker: keyframes::Picker::default(),
                });
                self.shots_started += 1;
            }
            Event::ShotEnd { end } => self.close(end, ms_of, shots, size, on_keyframe)?,
            Event::Black { .. } => {}
            Event::Frame { at, in_transition } => {
                let Some(shot) = self.current.as_mut() else {
                    return Ok(());
                };
                if at >= shot.window_start + window_frames {
                    emit_window(shot, at, ms_of, size, on_keyframe)?;
                    shot.window_start = at;
                }
                // Five frames a second are plenty to choose from.
                if in_transition || !(at - shot.start).is_multiple_of(KEYFRAME_STEP) {
                    return Ok(());
                }
                if let Some((_, rgb)) = held.iter().find(|(i, _)| *i == at) {
                    let mut q = keyframes::quality(rgb, size.0, size.1);
                    // The first frames of a shot are often the tail of a transition.
                    if ms_of(at - shot.start) < 300 {
                        q *= 0.5;
                    }
                    shot.picker.offer(at, q, rgb);
                }
            }
        }
        Ok(())
    }

    /// Ends the open shot (if any) before frame `end`.
    fn close(
        &mut self,
        end: usize,
        ms_of: &dyn Fn(usize) -> i64,
        shots: &mut Vec<(i64, i64)>,
        size: (usize, usize),
        on_keyframe: &mut dyn FnMut(Keyframe) -> Result<()>,
    ) -> Result<()> {
        if let Some(mut shot) = self.current.take() {
            let end = end.max(shot.start + 1);
            emit_window(&mut shot, end, ms_of, size, on_keyframe)?;
            shots.push((ms_of(shot.start), ms_of(end)));
        }
        Ok(())
    }
}

fn emit_window(
    shot: &mut OpenShot,
    end: usize,
    ms_of: &dyn Fn(usize) -> i64,
    size: (usize, usize),
    on_keyframe: &mut dyn FnMut(Keyframe) -> Result<()>,
) -> Result<()> {
    let first = shot.windows == 0;
    shot.windows += 1;
    let end = end.max(shot.window_start + 1);
    let Some((at, rgb)) = shot.picker.take() else {
        return Ok(());
    };
    let image = RgbImage::from_raw(size.0 as u32, size.1 as u32, rgb).expect("frame size");
    on_keyframe(Keyframe {
        shot: shot.index,
        first_of_shot: first,
        start_ms: ms_of(shot.window_start),
        end_ms: ms_of(end),
        at_ms: ms_of(at),
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn analysis_frames_keep_the_aspect_and_halve_high_rates() {
        assert_eq!(analysis_size(1920, 1080, 224), (398, 224));
        assert_eq!(analysis_size(1080, 1920, 224), (224, 398));
        assert_eq!(analysis_size(720, 576, 224), (280, 224));
        assert_eq!(analysis_rate(Some((50, 1))), (25, 1));
        assert_eq!(analysis_rate(Some((60000, 1001))), (30000, 1001));
        assert_eq!(analysis_rate(Some((25, 1))), (25, 1));
        assert_eq!(analysis_rate(Some((120, 1))), (30, 1));
        assert_eq!(analysis_rate(Some((240000, 1001))), (30000, 1001));
        assert_eq!(analysis_rate(None), (25, 1));
    }
}
