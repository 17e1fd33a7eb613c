//! `kairos bench speech`: Whisper's speed (real-time factor) and accuracy (word error rate) on
//! real recorded speech, transcription alone and as a real ingest.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use kairos_indexer::audio;
use kairos_models::ModelKind;
use kairos_models::whisper::{SAMPLE_RATE, TranscribeOptions, Whisper, word_error_rate};
use serde_json::json;

use crate::cli::Global;

/// LibriVox clips with their reference transcripts (pocketsphinx-testdata's layout).
pub fn librivox_clips(dir: &Path) -> Result<Vec<(Vec<f32>, String)>> {
    let listing = fs_err::read_to_string(dir.join("transcription"))?;
    let mut clips = Vec::new();
    for line in listing.lines() {
        let (text, id) = line
            .rsplit_once(" (")
            .with_context(|| format!("unexpected line in the transcription file: {line}"))?;
        let id = id.trim_end_matches(')');
        let text = text
            .replace("<s>", "")
            .replace("</s>", "")
            .trim()
            .to_string();
        let samples = audio::read_all(&dir.join(format!("{id}.wav")))?;
        clips.push((samples, text));
    }
    anyhow::ensure!(!clips.is_empty(), "no clips in {}", dir.display());
    Ok(clips)
}

/// Clips repeated with `gap_s` of silence until the recording lasts `seconds`.
pub fn concatenate(clips: &[(Vec<f32>, String)], seconds: f64, gap_s: f64) -> (Vec<f32>, String) {
    let gap = vec![0f32; (gap_s * SAMPLE_RATE as f64) as usize];
    let mut samples = Vec::new();
    let mut text = Vec::new();
    for (clip, words) in clips.iter().cycle() {
        if samples.len() as f64 >= seconds * SAMPLE_RATE as f64 {
            break;
        }
        samples.extend_from_slice(clip);
        samples.extend_from_slice(&gap);
        text.push(words.clone());
    }
    (samples, text.join(" "))
}

pub async fn speech(g: &Global, librivox: &Path, minutes: f64) -> Result<serde_json::Value> {
    let models = g.model_store();
    let model = models.require(ModelKind::Speech)?;
    let clips = librivox_clips(librivox)?;
    let (samples, reference) = concatenate(&clips, minutes * 60.0, 0.7);
    let audio_s = samples.len() as f64 / SAMPLE_RATE as f64;
    let mut runs = Vec::new();
    for quantize in [false, true] {
        let t = Instant::now();
        let mut whisper = Whisper::load(&model.dir, quantize)?;
        let load_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let transcript = whisper.transcribe(
            &mut samples.as_slice(),
            &TranscribeOptions {
                language: Some("en".into()),
            },
            &mut |_| {},
        )?;
        let secs = t.elapsed().as_secs_f64();
        let text: Vec<&str> = transcript
            .segments
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        let wer = word_error_rate(&reference, &text.join(" "));
        eprintln!(
            "decoder {}: {:.1} s for {:.1} s of audio (RTF {:.3}), WER {:.1}%",
            if quantize { "q8_0" } else { "f32" },
            secs,
            audio_s,
            secs / audio_s,
            wer * 100.0
        );
        runs.push(json!({
            "decoder": if quantize { "q8_0" } else { "f32" },
            "load_seconds": load_s,
            "transcribe_seconds": secs,
            "real_time_factor": secs / audio_s,
            "word_error_rate": wer,
            "windows_decoded": transcript.windows_decoded,
            "segments": transcript.segments.len(),
            "tokens_decoded": transcript.tokens_decoded,
            "mel_seconds": transcript.mel_seconds,
            "encode_seconds": transcript.encode_seconds,
            "decode_seconds": transcript.decode_seconds,
        }));
    }
    Ok(json!({
        "benchmark": "speech",
        "machine": crate::bench::machine(),
        "model": model.manifest.name,
        "audio": format!("LibriVox clips from {} repeated with 0.7 s pauses", librivox.display()),
        "audio_seconds": audio_s,
        "reference_words": reference.split_whitespace().count(),
        "transcription_only": runs,
    }))
}
