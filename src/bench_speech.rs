//! `kairos bench speech`: Whisper's speed (real-time factor) and accuracy (word error rate) on
//! real recorded speech, transcription alone and as a real ingest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use kairos_indexer::{Analyzers, IngestOptions, Ingester, Progress, audio};
use kairos_models::ModelKind;
use kairos_models::whisper::{SAMPLE_RATE, TranscribeOptions, Whisper, word_error_rate};
use kairos_store::{SegmentKind, Store};
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

/// A peer implementation to compare with: faster-whisper in this Python.
#[derive(Debug)]
pub struct Peer {
    pub python: PathBuf,
    pub wheels: PathBuf,
}

/// Where `scripts/fetch-models.sh` leaves the wheels by default.
pub fn default_wheels() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache/kairos/wheels")
}

pub async fn speech(
    g: &Global,
    librivox: &Path,
    minutes: f64,
    peer: Option<&Peer>,
) -> Result<serde_json::Value> {
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

    // End to end, as an archive receives it: a 44.1 kHz stereo MP3 through a real ingest
    // (decode + resample + mel + language detection + transcribe + sentence vectors + index).
    let tmp = tempfile::tempdir()?;
    let wav = tmp.path().join("librivox.wav");
    audio::write_wav(&wav, SAMPLE_RATE as u32, &samples)?;
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media)?;
    let mp3 = media.join("librivox.mp3");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&wav)
        .args([
            "-ar",
            "44100",
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
        ])
        .arg(&mp3)
        .status()
        .context(
            "running ffmpeg to encode the benchmark MP3 (scripts/system-packages.sh installs it)",
        )?;
    anyhow::ensure!(
        status.success(),
        "ffmpeg could not encode {}",
        mp3.display()
    );
    let store = Store::open(&tmp.path().join("data")).await?;
    let analyzers = Arc::new(Analyzers::load(&models)?);
    let decoder = if kairos_indexer::analysis::AnalyzerOptions::from_env().whisper_q8 {
        "q8_0"
    } else {
        "f32"
    };
    let t = Instant::now();
    let summary = Ingester::new(store.clone(), analyzers, IngestOptions::default())
        .run(std::slice::from_ref(&mp3), &|_: &Progress| {})
        .await?;
    let ingest_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        summary.indexed == 1,
        "the benchmark file failed: {:?}",
        summary.failures
    );
    let asset = store
        .catalog
        .asset_by_path(&mp3.canonicalize()?.display().to_string())
        .await?
        .context("the ingested benchmark file is not in the catalog")?;
    let spoken: Vec<String> = store
        .catalog
        .segments(&asset.id)
        .await?
        .into_iter()
        .filter(|s| s.kind == SegmentKind::Speech)
        .filter_map(|s| s.text)
        .collect();
    let ingest_wer = word_error_rate(&reference, &spoken.join(" "));
    eprintln!(
        "ingest ({decoder}): {ingest_s:.1} s for {audio_s:.1} s of MP3 (RTF {:.3}), WER {:.1}%",
        ingest_s / audio_s,
        ingest_wer * 100.0
    );
    let ingest = json!({
        "file": "44.1 kHz stereo MP3, 128 kb/s",
        "decoder": decoder,
        "language_detected": asset.language,
        "seconds": ingest_s,
        "real_time_factor": ingest_s / audio_s,
        "word_error_rate": ingest_wer,
        "speech_segments": spoken.len(),
    });

    let peer_runs = match peer {
        Some(peer) => run_peer(peer, &mp3, tmp.path(), &reference, audio_s, ingest_s)?,
        None => Vec::new(),
    };
    Ok(json!({
        "benchmark": "speech",
        "machine": crate::bench::machine(),
        "model": model.manifest.name,
        "audio": format!("LibriVox clips from {} repeated with 0.7 s pauses", librivox.display()),
        "audio_seconds": audio_s,
        "reference_words": reference.split_whitespace().count(),
        "transcription_only": runs,
        "ingest_end_to_end": ingest,
        "peer": peer_runs,
    }))
}

/// Runs scripts/peer-whisper.py on the same MP3 and compares with Kairos's ingest time.
fn run_peer(
    peer: &Peer,
    audio: &Path,
    work: &Path,
    reference: &str,
    audio_s: f64,
    kairos_s: f64,
) -> Result<Vec<serde_json::Value>> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peer-whisper.py");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Command::new(&peer.python)
        .arg(&script)
        .arg(&peer.wheels)
        .arg(audio)
        .arg(work)
        .arg(threads.to_string())
        .output()
        .with_context(|| format!("running {} {}", peer.python.display(), script.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut runs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut run: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("unexpected peer output: {line}"))?;
        let secs = run["transcribe_seconds"].as_f64().unwrap_or(f64::NAN);
        let wer = word_error_rate(reference, run["text"].as_str().unwrap_or(""));
        eprintln!(
            "{} {}: {secs:.1} s (RTF {:.3}), WER {:.1}%",
            run["peer"].as_str().unwrap_or("peer"),
            run["compute_type"].as_str().unwrap_or(""),
            secs / audio_s,
            wer * 100.0
        );
        run["real_time_factor"] = json!(secs / audio_s);
        run["word_error_rate"] = json!(wer);
        run["kairos_ingest_over_peer"] = json!(kairos_s / secs);
        if let Some(o) = run.as_object_mut() {
            o.remove("text");
        }
        runs.push(run);
    }
    Ok(runs)
}
