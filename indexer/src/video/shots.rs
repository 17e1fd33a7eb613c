//! Shot boundaries from decoded frames: hard cuts, fades through black, and dissolves.
//!
//! Each frame is reduced to a 32×18 grid of HSV cells and an HSV histogram. The change between
//! consecutive frames is the mean of the per-cell difference and the histogram distance, both in
//! 0..1. A **cut** is a change that is large in itself and several times the changes around it
//! (two frames either side), as in PySceneDetect's adaptive detector: fast motion raises every
//! frame's change and so does not cut, and a photographer's flash (two large changes in a row)
//! does not either. A **fade** is a run of black frames: the shot ends at the first black frame
//! and the next begins with the first frame that is not black. A **dissolve** is a run of
//! moderate changes, shorter than a few seconds, whose two ends differ as much as a cut.

use std::collections::VecDeque;

const GRID_W: usize = 32;
const GRID_H: usize = 18;
const HUE_BINS: usize = 8;
const SAT_BINS: usize = 4;
const VAL_BINS: usize = 4;
const BINS: usize = HUE_BINS * SAT_BINS * VAL_BINS;

/// A change at least this large can be a cut…
const MIN_CUT: f32 = 0.12;
/// …when it is this many times the changes around it.
const CUT_RATIO: f32 = 3.0;
/// Frames either side the cut test looks at (the detector answers this many frames late).
pub const LAG: usize = 2;
/// Consecutive changes above this are a possible dissolve…
const GRADUAL_LOW: f32 = 0.025;
/// …confirmed when its ends differ this much…
const GRADUAL_HIGH: f32 = 0.3;
/// …and it lasted between these (seconds).
const GRADUAL_MIN_S: f64 = 0.2;
const GRADUAL_MAX_S: f64 = 3.0;
/// Mean brightness (0..1) under which a frame is black.
const BLACK_LUMA: f32 = 0.06;
/// A possible dissolve that begins this dark is a fade in.
const FADE_LUMA: f32 = 0.15;
/// No two boundaries closer than this (seconds).
const MIN_SHOT_S: f64 = 0.25;

/// What the detector keeps of a frame.
#[derive(Debug, Clone)]
pub struct Features {
    cells: Vec<[f32; 3]>,
    hist: Vec<f32>,
    /// Mean brightness, 0..1.
    pub luma: f32,
}

/// Hue, chroma and value of an RGB triple, each in 0..1 (hue as a fraction of the circle).
/// Chroma (max − min) stands in for saturation, which is unstable in dark pixels: a near-black
/// pixel with a little codec noise has any saturation, but no chroma to speak of.
fn hsv(r: f32, g: f32, b: f32) -> [f32; 3] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let h = if delta <= f32::EPSILON {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    [h, delta, max]
}

/// The two bins around `x` (0..1) of `n` and the weight of the second; hue wraps around.
fn soft_bin(x: f32, n: usize, wraps: bool) -> (usize, usize, f32) {
    let pos = x * n as f32 - 0.5;
    let lower = pos.floor();
    let w = pos - lower;
    let lower = lower as isize;
    if wraps {
        let n = n as isize;
        (
            lower.rem_euclid(n) as usize,
            (lower + 1).rem_euclid(n) as usize,
            w,
        )
    } else {
        let last = n as isize - 1;
        (
            lower.clamp(0, last) as usize,
            (lower + 1).clamp(0, last) as usize,
            w,
        )
    }
}

/// Features of a packed RGB frame.
pub fn features(rgb: &[u8], width: usize, height: usize) -> Features {
    let mut sums = vec![[0f32; 3]; GRID_W * GRID_H];
    let mut counts = vec![0u32; GRID_W * GRID_H];
    let mut hist = vec![0f32; BINS];
    let mut luma = 0f64;
    let mut samples = 0u32;
    // Every fourth pixel of every fourth row: ten or more samples per cell of the 32×18 grid.
    for y in (0..height).step_by(4) {
        let gy = y * GRID_H / height;
        let row = &rgb[y * width * 3..(y + 1) * width * 3];
        for x in (0..width).step_by(4) {
            let p = &row[x * 3..x * 3 + 3];
            let (r, g, b) = (p[0] as f32, p[1] as f32, p[2] as f32);
            let cell = gy * GRID_W + x * GRID_W / width;
            sums[cell][0] += r;
            sums[cell][1] += g;
            sums[cell][2] += b;
            counts[cell] += 1;
            let [h, s, v] = hsv(r / 255.0, g / 255.0, b / 255.0);
            // Soft binning: a colour shares itself between the two nearest bins of each axis,
            // so a slow change of light moves the histogram slowly instead of in jumps.
            let (h0, h1, hw) = soft_bin(h, HUE_BINS, true);
            let (s0, s1, sw) = soft_bin(s, SAT_BINS, false);
            let (v0, v1, vw) = soft_bin(v, VAL_BINS, false);
            for (hb, hwt) in [(h0, 1.0 - hw), (h1, hw)] {
                for (sb, swt) in [(s0, 1.0 - sw), (s1, sw)] {
                    // The hue of a nearly grey pixel is noise: greys share one hue bin.
                    let hb = if sb == 0 { 0 } else { hb };
                    let base = (hb * SAT_BINS + sb) * VAL_BINS;
                    let w = hwt * swt;
                    hist[base + v0] += w * (1.0 - vw);
                    hist[base + v1] += w * vw;
                }
            }
            luma += (0.299 * r + 0.587 * g + 0.114 * b) as f64;
            samples += 1;
        }
    }
    let samples = samples.max(1) as f32;
    hist.iter_mut().for_each(|h| *h /= samples);
    let cells = sums
        .iter()
        .zip(&counts)
        .map(|(s, &n)| {
            let n = n.max(1) as f32 * 255.0;
            hsv(s[0] / n, s[1] / n, s[2] / n)
        })
        .collect();
    Features {
        cells,
        hist,
        luma: (luma / samples as f64 / 255.0) as f32,
    }
}

/// How different two frames are, 0 (same) to 1.
pub fn change(a: &Features, b: &Features) -> f32 {
    let mut cell = 0f32;
    for (p, q) in a.cells.iter().zip(&b.cells) {
        let dh = (p[0] - q[0]).abs();
        // Hue is a circle, and means little where there is no colour.
        let dh = dh.min(1.0 - dh) * 2.0 * p[1].min(q[1]);
        cell += (dh + (p[1] - q[1]).abs() + (p[2] - q[2]).abs()) / 3.0;
    }
    let cell = cell / a.cells.len().max(1) as f32;
    let hist: f32 = a
        .hist
        .iter()
        .zip(&b.hist)
        .map(|(p, q)| (p - q).abs())
        .sum::<f32>()
        / 2.0;
    (cell * 2.0).min(1.0) * 0.5 + hist * 0.5
}

/// Streaming shot-boundary detector. Feed every frame in order; it answers about frame `i`
/// once frame `i + LAG` has arrived.
#[derive(Debug)]
pub struct Detector {
    fps: f64,
    /// Frames received.
    frames: usize,
    /// Recent changes: `changes[k]` is the change into frame `changes_start + k`.
    changes: VecDeque<f32>,
    changes_start: usize,
    /// Where the current shot began (frame), or `None` inside a black run.
    shot_start: Option<usize>,
    /// A possible dissolve: its first frame and that frame's features.
    gradual: Option<(usize, Features)>,
    /// Features of the frames not yet decided (the last `LAG + 1`).
    recent: VecDeque<(usize, Features)>,
    /// Features of the last frame decided.
    decided: Option<Features>,
}

/// What the detector says, frame by frame, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A shot begins at this frame.
    ShotStart { at: usize },
    /// The current shot ends before this frame (a dissolve ends it in its middle, after frames
    /// up to the dissolve's end were already reported as in transition).
    ShotEnd { end: usize },
    /// Frame `at` belongs to the current shot; `in_transition`: it is part of a possible
    /// dissolve, so not a keyframe.
    Frame { at: usize, in_transition: bool },
    /// Frame `at` is black: no shot.
    Black { at: usize },
}

impl Detector {
    /// A detector for frames at `fps` per second.
    pub fn new(fps: f64) -> Self {
        Self {
            fps: fps.max(1.0),
            frames: 0,
            changes: VecDeque::new(),
            changes_start: 1,
            shot_start: None,
            gradual: None,
            recent: VecDeque::new(),
            decided: None,
        }
    }

    fn min_shot(&self) -> usize {
        (MIN_SHOT_S * self.fps).ceil() as usize
    }

    fn change_at(&self, frame: usize) -> Option<f32> {
        frame
            .checked_sub(self.changes_start)
            .and_then(|k| self.changes.get(k).copied())
    }

    /// Adds the next frame; returns what is now decided.
    pub fn push(&mut self, f: Features) -> Vec<Event> {
        let at = self.frames;
        self.frames += 1;
        // The newest frame held is the one before this.
        if let Some((_, prev)) = self.recent.back() {
            self.changes.push_back(change(prev, &f));
            // Only the window around the frame being decided is needed.
            while self.changes.len() > 2 * LAG + 2 {
                self.changes.pop_front();
                self.changes_start += 1;
            }
        }
        self.recent.push_back((at, f));
        let mut events = Vec::new();
        if self.recent.len() > LAG {
            let (frame, features) = self.recent.pop_front().expect("not empty");
            self.decide(frame, &features, false, &mut events);
            self.decided = Some(features);
        }
        events
    }

    /// Decides the frames still waiting for their lookahead (end of the video).
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some((frame, features)) = self.recent.pop_front() {
            self.decide(frame, &features, true, &mut events);
            self.decided = Some(features);
        }
        events
    }

    fn decide(&mut self, at: usize, f: &Features, at_end: bool, events: &mut Vec<Event>) {
        let black = f.luma < BLACK_LUMA;
        let Some(start) = self.shot_start else {
            if black {
                events.push(Event::Black { at });
            } else {
                self.begin(at, events);
            }
            return;
        };
        if black {
            // A fade (or cut) to black ends the shot here.
            events.push(Event::ShotEnd { end: at });
            self.shot_start = None;
            self.gradual = None;
            events.push(Event::Black { at });
            return;
        }
        let d = self.change_at(at).unwrap_or(0.0);
        tracing::trace!(frame = at, change = d, luma = f.luma, "shot detector");
        let far_enough = at >= start + self.min_shot();
        // Hard cut: large, and several times the changes around it.
        if far_enough && d >= MIN_CUT {
            let around: Vec<f32> = (1..=LAG)
                .flat_map(|k| [at.checked_sub(k), (!at_end).then_some(at + k)])
                .flatten()
                .filter(|&i| i > start)
                .filter_map(|i| self.change_at(i))
                .collect();
            let mean = if around.is_empty() {
                0.0
            } else {
                around.iter().sum::<f32>() / around.len() as f32
            };
            // A flash (or a one-frame glitch): the frame after looks like the frame before.
            let flash = match (&self.decided, self.recent.front()) {
                (Some(before), Some((_, after))) => change(before, after) < d / 2.0,
                _ => false,
            };
            // …or its end: the change into the frame before was as large.
            let flash = flash
                || at
                    .checked_sub(1)
                    .and_then(|i| self.change_at(i))
                    .is_some_and(|p| p >= d / 2.0);
            if d >= CUT_RATIO * mean && !flash {
                events.push(Event::ShotEnd { end: at });
                self.begin(at, events);
                return;
            }
        }
        // Dissolve: a run of moderate changes whose ends differ like a cut.
        if d >= GRADUAL_LOW && far_enough {
            if self.gradual.is_none() {
                self.gradual = Some((at.saturating_sub(1).max(start), f.clone()));
            }
            events.push(Event::Frame {
                at,
                in_transition: true,
            });
            return;
        }
        if let Some((from, anchor)) = self.gradual.take() {
            let length = (at - from) as f64 / self.fps;
            // A fade in from black is the start of its shot, not a dissolve into another.
            let fade_in = anchor.luma < FADE_LUMA || from <= start + self.min_shot();
            if (GRADUAL_MIN_S..=GRADUAL_MAX_S).contains(&length)
                && !fade_in
                && change(&anchor, f) >= GRADUAL_HIGH
            {
                let middle = (from + at) / 2;
                events.push(Event::ShotEnd { end: middle });
                events.push(Event::ShotStart { at: middle });
                self.shot_start = Some(middle);
            }
        }
        events.push(Event::Frame {
            at,
            in_transition: false,
        });
    }

    fn begin(&mut self, at: usize, events: &mut Vec<Event>) {
        self.shot_start = Some(at);
        self.gradual = None;
        events.push(Event::ShotStart { at });
        events.push(Event::Frame {
            at,
            in_transition: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 64;
    const H: usize = 36;

    fn solid(r: u8, g: u8, b: u8) -> Vec<u8> {
        [r, g, b].repeat(W * H)
    }

    /// A textured frame that drifts with `t` (motion without a cut).
    fn texture(seed: u32, t: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(W * H * 3);
        for y in 0..H {
            for x in 0..W {
                let v = ((x + t) * 7 + y * 13 + seed as usize * 31) % 97;
                let base = (seed * 67 % 200) as usize;
                out.extend([
                    ((base + v) % 256) as u8,
                    ((v * 2 + seed as usize * 50) % 256) as u8,
                    ((255 - base + v) % 256) as u8,
                ]);
            }
        }
        out
    }

    /// (shot ends, shot starts after the first).
    fn run(frames: &[Vec<u8>]) -> (Vec<usize>, Vec<usize>) {
        let mut d = Detector::new(25.0);
        let mut events = Vec::new();
        for f in frames {
            events.extend(d.push(features(f, W, H)));
        }
        events.extend(d.finish());
        let mut ends = Vec::new();
        let mut starts = Vec::new();
        for e in events {
            match e {
                Event::ShotEnd { end } => ends.push(end),
                Event::ShotStart { at } if at > 0 => starts.push(at),
                _ => {}
            }
        }
        (ends, starts)
    }

    #[test]
    fn hard_cuts_are_found_at_their_frame_and_motion_is_not_a_cut() {
        let mut frames = Vec::new();
        frames.extend((0..30).map(|t| texture(1, t)));
        frames.extend((0..40).map(|t| texture(2, t * 3)));
        frames.extend((0..25).map(|_| solid(200, 30, 30)));
        frames.extend((0..25).map(|t| texture(3, t)));
        let (ends, starts) = run(&frames);
        assert_eq!(starts, [30, 70, 95]);
        assert_eq!(ends, [30, 70, 95]);
    }

    #[test]
    fn a_single_flash_frame_is_not_a_cut() {
        let mut frames: Vec<Vec<u8>> = (0..50).map(|t| texture(4, t)).collect();
        frames[20] = solid(255, 255, 255);
        assert_eq!(run(&frames), (vec![], vec![]));
    }

    #[test]
    fn a_fade_through_black_ends_one_shot_and_starts_the_next() {
        let mut frames: Vec<Vec<u8>> = (0..40).map(|t| texture(5, t)).collect();
        // Fade out over 10 frames, 5 black frames, fade in over 10 frames.
        for k in 0..10 {
            let scale = 1.0 - k as f32 / 10.0;
            frames.push(
                texture(5, 40 + k)
                    .iter()
                    .map(|&v| (v as f32 * scale) as u8)
                    .collect(),
            );
        }
        frames.extend((0..5).map(|_| solid(0, 0, 0)));
        for k in 0..10 {
            let scale = (k + 1) as f32 / 10.0;
            frames.push(
                texture(7, k)
                    .iter()
                    .map(|&v| (v as f32 * scale) as u8)
                    .collect(),
            );
        }
        frames.extend((0..30).map(|t| texture(7, t + 10)));
        let (ends, starts) = run(&frames);
        // The first shot ends within the fade-out, the next starts within the fade-in.
        assert_eq!((ends.len(), starts.len()), (1, 1), "{ends:?} {starts:?}");
        assert!((40..=55).contains(&ends[0]), "{ends:?}");
        assert!((50..=65).contains(&starts[0]), "{starts:?}");
    }

    #[test]
    fn a_dissolve_is_one_boundary_in_its_middle() {
        let a = solid(220, 40, 40);
        let c = solid(30, 60, 220);
        let mut frames: Vec<Vec<u8>> = (0..40).map(|_| a.clone()).collect();
        for k in 1..=20 {
            let m = k as f32 / 21.0;
            frames.push(
                a.iter()
                    .zip(&c)
                    .map(|(&p, &q)| (p as f32 * (1.0 - m) + q as f32 * m) as u8)
                    .collect(),
            );
        }
        frames.extend((0..40).map(|_| c.clone()));
        let (ends, starts) = run(&frames);
        assert_eq!(starts.len(), 1, "{starts:?}");
        assert_eq!(ends, starts);
        assert!((45..=56).contains(&starts[0]), "{starts:?}");
    }
}
