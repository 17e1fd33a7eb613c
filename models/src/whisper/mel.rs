//! Whisper's log-mel spectrogram: Slaney-style mel filterbank (librosa's defaults, as OpenAI's
//! `mel_filters.npz` holds) and the STFT of the reference implementation (Hann window, n_fft 400,
//! hop 160, centred with reflection padding, power spectrum, log10, dynamic range 8, scaled).

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Sample rate Whisper expects.
pub const SAMPLE_RATE: usize = 16_000;
/// FFT size.
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms).
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30 s window.
pub const N_SAMPLES: usize = 30 * SAMPLE_RATE;
/// Mel frames in one window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;

fn hz_to_mel(f: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= MIN_LOG_HZ {
        min_log_mel + (f / MIN_LOG_HZ).ln() / logstep
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        MIN_LOG_HZ * (logstep * (m - min_log_mel)).exp()
    } else {
        F_SP * m
    }
}

/// The `n_mels × (N_FFT/2 + 1)` filterbank, row-major, Slaney-normalised
/// (`librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`).
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let n_freqs = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_freqs)
        .map(|k| k as f64 * SAMPLE_RATE as f64 / N_FFT as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE as f64 / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = vec![0f32; n_mels * n_freqs];
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i]);
            let upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1]);
            weights[i * n_freqs + k] = (lower.min(upper).max(0.0) * enorm) as f32;
        }
    }
    weights
}

/// Computes log-mel features for Whisper windows.
pub struct MelExtractor {
    n_mels: usize,
    filters: Vec<f32>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for MelExtractor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelExtractor")
            .field("n_mels", &self.n_mels)
            .finish()
    }
}

impl MelExtractor {
    /// An extractor with the given filterbank (`n_mels × 201`).
    pub fn new(n_mels: usize, filters: Vec<f32>) -> Self {
        assert_eq!(filters.len(), n_mels * (N_FFT / 2 + 1), "filterbank shape");
        let window = (0..N_FFT)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64;
                (0.5 * (1.0 - x.cos())) as f32
            })
            .collect();
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(N_FFT);
        Self {
            n_mels,
            filters,
            window,
            fft,
        }
    }

    /// Number of mel bins.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel features of one window, `n_mels × N_FRAMES` row-major: `samples` (at most 30 s of
    /// 16 kHz mono) is zero-padded to 30 s, as the reference does for the last window of a file.
    pub fn window(&self, samples: &[f32]) -> Vec<f32> {
        let samples = &samples[..samples.len().min(N_SAMPLES)];
        // Centre: reflect-pad N_FFT/2 on both sides of the padded window.
        let pad = N_FFT / 2;
        let total = N_SAMPLES + 2 * pad;
        let at = |i: usize| -> f32 { samples.get(i).copied().unwrap_or(0.0) };
        let mut padded = Vec::with_capacity(total);
        padded.extend((1..=pad).rev().map(at));
        padded.extend((0..N_SAMPLES).map(at));
        padded.extend((1..=pad).map(|k| at(N_SAMPLES - 1 - k)));
        let n_freqs = N_FFT / 2 + 1;
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; n_freqs];
        let mut mel = vec![0f32; self.n_mels * N_FRAMES];
        for frame in 0..N_FRAMES {
            let start = frame * HOP_LENGTH;
            for (k, x) in input.iter_mut().enumerate() {
                *x = padded[start + k] * self.window[k];
            }
            // Lengths are fixed by the plan, so this cannot fail.
            let _ = self
                .fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch);
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for m in 0..self.n_mels {
                let row = &self.filters[m * n_freqs..(m + 1) * n_freqs];
                let sum: f32 = row.iter().zip(&power).map(|(w, p)| w * p).sum();
                mel[m * N_FRAMES + frame] = sum.max(1e-10).log10();
            }
        }
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in mel.iter_mut() {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filterbank_matches_librosa_shape_and_peaks() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        // Every filter is a non-empty triangle; Slaney normalisation makes the low filters
        // (narrow, 66.7 Hz wide) tallest.
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().any(|&w| w > 0.0), "filter {m} is empty");
        }
        let peak0 = f[..201].iter().copied().fold(0.0, f32::max);
        let peak79 = f[79 * 201..].iter().copied().fold(0.0, f32::max);
        assert!(peak0 > peak79 * 5.0, "{peak0} vs {peak79}");
        // librosa: mel_filters(16000, 400, 80)[0, 1] == 0.02486259.
        assert!((f[1] - 0.024_862_59).abs() < 1e-6, "{}", f[1]);
    }

    #[test]
    fn a_tone_lights_the_right_band() {
        let ex = MelExtractor::new(80, mel_filters(80));
        let tone: Vec<f32> = (0..SAMPLE_RATE)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / SAMPLE_RATE as f32).sin())
            .collect();
        let mel = ex.window(&tone);
        assert_eq!(mel.len(), 80 * N_FRAMES);
        let frame = 50;
        let best = (0..80)
            .max_by(|&a, &b| mel[a * N_FRAMES + frame].total_cmp(&mel[b * N_FRAMES + frame]))
            .unwrap();
        let centre = mel_to_hz(
            hz_to_mel(0.0) + (hz_to_mel(8000.0) - hz_to_mel(0.0)) * (best + 1) as f64 / 81.0,
        );
        assert!(
            (centre - 1000.0).abs() < 80.0,
            "band {best} centred at {centre} Hz"
        );
    }
}
