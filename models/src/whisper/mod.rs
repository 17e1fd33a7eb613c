//! Speech to text with Whisper: the network ([`model`]), its features ([`mel`]), installing from a
//! CTranslate2 file ([`ct2`]), and [`Whisper::transcribe`], which walks a recording window by
//! window as OpenAI's reference `transcribe()` does: timestamp tokens, seek by the last complete
//! segment, temperature fallback on repetition (compression ratio) or low confidence (average
//! log-probability), and no-speech detection; plus an energy gate that never sends silence to the
//! model at all.

pub mod ct2;
pub mod mel;
pub mod model;

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::clip::load_tokenizer;
use crate::error::{CandleContext, Error, Result};
pub use mel::{MelExtractor, N_SAMPLES, SAMPLE_RATE, mel_filters};
pub use model::{WhisperConfig, WhisperModel};

/// A spoken-language choice: `auto` (or nothing) detects per file, else a Whisper language code.
pub fn parse_language(choice: &str) -> Result<Option<String>> {
    match choice.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => Ok(None),
        code if LANGUAGES.contains(&code) => Ok(Some(code.to_string())),
        other => Err(Error::Input(format!(
            "{other:?} is not auto or a Whisper language code (en, fr, de, …)"
        ))),
    }
}

/// Whisper's language codes in token order (`<|en|>` is the first after `<|startoftranscript|>`).
pub const LANGUAGES: &[&str] = &[
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su", "yue",
];

/// Decoding thresholds of the reference implementation.
const TEMPERATURES: [f64; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
const COMPRESSION_RATIO_THRESHOLD: f64 = 2.4;
const LOGPROB_THRESHOLD: f64 = -1.0;
const NO_SPEECH_THRESHOLD: f64 = 0.6;
/// Seconds per timestamp token.
const TIME_PRECISION: f64 = 0.02;
/// Samples per timestamp token (0.02 s).
const SAMPLES_PER_TOKEN: usize = 320;
/// The first timestamp of a window may be at most this many tokens (1 s) in.
const MAX_INITIAL_TIMESTAMP: u32 = 50;
/// Energy gate: 20 ms frames quieter than this RMS (about −50 dBFS) are silence.
const SILENCE_RMS: f32 = 0.003;
const GATE_FRAME: usize = 320;

/// Where 16 kHz mono samples come from. Calls ask for non-decreasing `start`s, so a source may
/// drop everything before the last `start` it was asked for: memory stays bounded by a window.
pub trait PcmSource {
    /// Up to `len` samples from sample `start`; fewer only at the end of the recording.
    fn window(
        &mut self,
        start: usize,
        len: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>>;
}

/// A recording already in memory (tests, short clips).
impl PcmSource for &[f32] {
    fn window(
        &mut self,
        start: usize,
        len: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        let start = start.min(self.len());
        let end = (start + len).min(self.len());
        Ok(self[start..end].to_vec())
    }
}

/// How to transcribe.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// Force a language code (`en`, `fr`, …); `None` detects it on the first window with speech.
    pub language: Option<String>,
}

/// One timed piece of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    pub avg_logprob: f64,
    pub no_speech_prob: f64,
    pub temperature: f64,
}

/// A whole recording's transcript.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Transcript {
    /// Detected (or forced) language; `None` when nothing was spoken.
    pub language: Option<String>,
    pub language_probability: Option<f64>,
    pub segments: Vec<TranscriptSegment>,
    /// Samples read (the recording's duration at 16 kHz).
    pub samples: usize,
    /// Windows that went through the model (silent ones are skipped before it).
    pub windows_decoded: usize,
    /// Tokens generated, fallbacks included.
    pub tokens_decoded: usize,
    /// Seconds spent on features, the encoder, and the decoder.
    pub mel_seconds: f64,
    pub encode_seconds: f64,
    pub decode_seconds: f64,
}

struct Special {
    sot: u32,
    eot: u32,
    transcribe: u32,
    no_speech: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    suppress: Vec<u32>,
    begin_suppress: Vec<u32>,
    languages: Vec<(String, u32)>,
}

/// A loaded Whisper checkpoint with its tokenizer and features.
pub struct Whisper {
    model: WhisperModel,
    tokenizer: Tokenizer,
    mel: MelExtractor,
    special: Special,
    dir: PathBuf,
}

impl std::fmt::Debug for Whisper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper").field("dir", &self.dir).finish()
    }
}

/// Reads a Whisper `config.json`.
pub fn read_config(path: &Path) -> Result<WhisperConfig> {
    let text = fs_err::read_to_string(path)?;
    serde_json::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The file holding the mel filterbank inside a model folder.
pub const MEL_FILTERS_FILE: &str = "mel_filters.safetensors";

impl Whisper {
    /// Loads a model folder (`config.json`, `model.safetensors`, `tokenizer.json`, and
    /// `mel_filters.safetensors`, computed when absent). `quantize` runs the decoder in q8_0.
    pub fn load(dir: &Path, quantize: bool) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config = read_config(&config_path)?;
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(Error::InvalidSource {
                path: dir.to_path_buf(),
                reason: "model.safetensors is missing".into(),
            });
        }
        let device = Device::Cpu;
        // SAFETY: the weights file is owned by the model store and not modified while mapped.
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .context("mapping model.safetensors")?;
        let model =
            WhisperModel::load(vb, config.clone(), quantize).map_err(|source| Error::Candle {
                context: format!("loading Whisper from {}", weights.display()),
                cause: source,
            })?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = load_tokenizer(&tokenizer_path)?;
        let filters_path = dir.join(MEL_FILTERS_FILE);
        let filters = if filters_path.is_file() {
            let t = candle_core::safetensors::load(&filters_path, &device)
                .context("reading the mel filterbank")?;
            let name = format!("mel_{}", config.num_mel_bins);
            let f = t.get(&name).ok_or_else(|| Error::Config {
                path: filters_path.clone(),
                message: format!("tensor {name} is missing"),
            })?;
            f.flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .context("reading the mel filterbank")?
        } else {
            mel_filters(config.num_mel_bins)
        };
        if filters.len() != config.num_mel_bins * (mel::N_FFT / 2 + 1) {
            return Err(Error::Config {
                path: filters_path,
                message: format!("filterbank is not {} × 201", config.num_mel_bins),
            });
        }
        let special = Special::from_tokenizer(&tokenizer, &tokenizer_path, &config)?;
        Ok(Self {
            mel: MelExtractor::new(config.num_mel_bins, filters),
            model,
            tokenizer,
            special,
            dir: dir.to_path_buf(),
        })
    }

    /// Language codes this checkpoint knows.
    pub fn languages(&self) -> Vec<&str> {
        self.special
            .languages
            .iter()
            .map(|(c, _)| c.as_str())
            .collect()
    }

    /// Transcribes a recording, calling `progress(samples_done)` after every window.
    pub fn transcribe(
        &mut self,
        source: &mut dyn PcmSource,
        options: &TranscribeOptions,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Transcript> {
        let mut language: Option<(String, u32, Option<f64>)> = match &options.language {
            Some(code) => {
                let id = self.special.language_id(code).ok_or_else(|| {
                    Error::Input(format!(
                        "language {code:?} is not one this Whisper model knows (e.g. en, fr)"
                    ))
                })?;
                Some((code.clone(), id, None))
            }
            None => None,
        };
        let mut out = Transcript::default();
        let mut seek = 0usize;
        loop {
            let samples = source
                .window(seek, N_SAMPLES)
                .map_err(|e| Error::Audio(e.to_string()))?;
            out.samples = out.samples.max(seek + samples.len());
            if samples.len() < GATE_FRAME / 2 {
                break;
            }
            // Energy gate: skip silence without running the model.
            match first_voiced(&samples) {
                None => {
                    seek += samples.len();
                    progress(seek);
                    if samples.len() < N_SAMPLES {
                        break;
                    }
                    continue;
                }
                Some(v) if v > SAMPLE_RATE => {
                    // Start the window just before the speech.
                    seek += v - SAMPLE_RATE / 4;
                    continue;
                }
                Some(_) => {}
            }
            let segment_size = samples.len();
            let t = std::time::Instant::now();
            let mel = self.mel.window(&samples);
            out.mel_seconds += t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            let mel = Tensor::from_vec(mel, (1, self.mel.n_mels(), mel::N_FRAMES), &Device::Cpu)
                .context("mel tensor")?;
            let encoded = self.model.encode(&mel).context("encoding audio")?;
            let ctx = self
                .model
                .audio_context(&encoded)
                .context("cross-attention")?;
            out.encode_seconds += t.elapsed().as_secs_f64();
            let t = std::time::Instant::now();
            out.windows_decoded += 1;
            let lang_id = match &language {
                Some((_, id, _)) => *id,
                None => {
                    let (code, id, p) = self.detect_language(&ctx)?;
                    language = Some((code, id, Some(p)));
                    id
                }
            };
            let result = self.decode_with_fallback(&ctx, lang_id, &mut out.tokens_decoded)?;
            out.decode_seconds += t.elapsed().as_secs_f64();
            let silent = result.no_speech_prob > NO_SPEECH_THRESHOLD
                && result.avg_logprob <= LOGPROB_THRESHOLD;
            if silent {
                seek += segment_size;
                progress(seek);
                continue;
            }
            let (segments, advance) = self.segments(&result, seek, segment_size);
            out.segments.extend(segments);
            seek += advance.max(SAMPLES_PER_TOKEN);
            progress(seek);
        }
        if !out.segments.is_empty()
            && let Some((code, _, p)) = language
        {
            out.language = Some(code);
            out.language_probability = p;
        }
        Ok(out)
    }

    fn detect_language(&mut self, ctx: &model::AudioContext) -> Result<(String, u32, f64)> {
        self.model.reset();
        let logits = self
            .model
            .decode(&[self.special.sot], ctx, &[0])
            .and_then(|l| l.squeeze(0)?.to_vec1::<f32>())
            .context("language detection")?;
        let scores: Vec<f32> = self
            .special
            .languages
            .iter()
            .map(|(_, id)| logits[*id as usize])
            .collect();
        let probs = softmax(&scores, 1.0);
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .ok_or_else(|| Error::Input("this Whisper model knows no language".into()))?;
        let (code, id) = self.special.languages[best].clone();
        Ok((code, id, probs[best] as f64))
    }

    fn decode_with_fallback(
        &mut self,
        ctx: &model::AudioContext,
        lang: u32,
        tokens: &mut usize,
    ) -> Result<Decoded> {
        let mut tried: Vec<Decoded> = Vec::new();
        for (i, &t) in TEMPERATURES.iter().enumerate() {
            let r = self.decode(ctx, lang, t, i as u64)?;
            *tokens += r.tokens.len() + 1;
            tracing::debug!(
                temperature = t,
                avg_logprob = r.avg_logprob,
                compression_ratio = r.compression_ratio,
                no_speech_prob = r.no_speech_prob,
                tokens = r.tokens.len(),
                "whisper window decoded"
            );
            let needs_fallback = (r.compression_ratio > COMPRESSION_RATIO_THRESHOLD
                || r.avg_logprob < LOGPROB_THRESHOLD)
                && r.no_speech_prob <= NO_SPEECH_THRESHOLD;
            if !needs_fallback {
                return Ok(r);
            }
            tried.push(r);
        }
        // Every temperature failed a threshold. The reference keeps the last (most random) try;
        // like faster-whisper, keep the most confident one that is not a repetition loop.
        let repetitive = |r: &Decoded| r.compression_ratio > COMPRESSION_RATIO_THRESHOLD;
        let pool: Vec<Decoded> = if tried.iter().all(repetitive) {
            tried
        } else {
            tried.into_iter().filter(|r| !repetitive(r)).collect()
        };
        pool.into_iter()
            .max_by(|a, b| a.avg_logprob.total_cmp(&b.avg_logprob))
            .ok_or_else(|| Error::Input("no decoding temperature".into()))
    }

    fn decode(
        &mut self,
        ctx: &model::AudioContext,
        lang: u32,
        temperature: f64,
        seed: u64,
    ) -> Result<Decoded> {
        let s = &self.special;
        let prompt = [s.sot, lang, s.transcribe];
        self.model.reset();
        let first = self
            .model
            .decode(&prompt, ctx, &[0, prompt.len() - 1])
            .context("decoding")?;
        let sot_logits = first
            .get(0)
            .and_then(|t| t.to_vec1::<f32>())
            .context("decoding")?;
        let no_speech_prob = softmax(&sot_logits, 1.0)[s.no_speech as usize] as f64;
        let mut logits = first
            .get(1)
            .and_then(|t| t.to_vec1::<f32>())
            .context("decoding")?;
        let sample_len = self.model.config.max_target_positions / 2;
        let mut tokens: Vec<u32> = Vec::new();
        let mut sum_logprob = 0f64;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (seed + 1));
        for _ in 0..sample_len {
            self.apply_rules(&mut logits, &tokens);
            let logprobs = log_softmax(&logits);
            let next = if temperature == 0.0 {
                argmax(&logits)
            } else {
                let p = softmax(&logits, temperature as f32);
                rng.sample(&p)
            };
            sum_logprob += logprobs[next as usize] as f64;
            if next == self.special.eot {
                break;
            }
            tokens.push(next);
            if self.model.config.max_target_positions <= prompt.len() + tokens.len() {
                break;
            }
            logits = self
                .model
                .decode(&[next], ctx, &[0])
                .and_then(|l| l.squeeze(0)?.to_vec1::<f32>())
                .context("decoding")?;
        }
        let text_tokens: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        let text = self.text(&text_tokens)?;
        Ok(Decoded {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            compression_ratio: compression_ratio(&text),
            no_speech_prob,
            temperature,
            tokens,
        })
    }

    /// The reference's logit filters: suppressed tokens, and the timestamp rules.
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let s = &self.special;
        let tb = s.timestamp_begin as usize;
        let ninf = f32::NEG_INFINITY;
        if sampled.is_empty() {
            for &t in &s.begin_suppress {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = ninf;
                }
            }
        }
        for &t in &s.suppress {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        }
        logits[s.no_timestamps as usize] = ninf;
        let is_ts = |t: u32| t >= s.timestamp_begin;
        let last_ts = sampled.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
        if last_ts {
            if penultimate_ts {
                logits[tb..].fill(ninf);
            } else {
                logits[..s.eot as usize].fill(ninf);
            }
        }
        if let Some(&last) = sampled.iter().rev().find(|&&t| is_ts(t)) {
            let floor = if last_ts && !penultimate_ts {
                last
            } else {
                last + 1
            };
            let end = (floor as usize).min(logits.len());
            logits[tb..end].fill(ninf);
        }
        if sampled.is_empty() {
            logits[..tb].fill(ninf);
            let last_allowed = tb + MAX_INITIAL_TIMESTAMP as usize;
            if last_allowed + 1 < logits.len() {
                logits[last_allowed + 1..].fill(ninf);
            }
        }
        let lp = log_softmax(logits);
        let ts_mass = log_sum_exp(&lp[tb..]);
        let text_max = lp[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if ts_mass > text_max {
            logits[..tb].fill(ninf);
        }
    }

    /// Splits a window's tokens into timed segments; returns them and how far to seek.
    fn segments(
        &self,
        r: &Decoded,
        seek: usize,
        segment_size: usize,
    ) -> (Vec<TranscriptSegment>, usize) {
        let tb = self.special.timestamp_begin;
        let t = &r.tokens;
        let is_ts = |x: u32| x >= tb;
        let n = t.len();
        let single_ending = n >= 2 && !is_ts(t[n - 2]) && is_ts(t[n - 1]);
        let consecutive: Vec<usize> = (1..n).filter(|&i| is_ts(t[i - 1]) && is_ts(t[i])).collect();
        let offset_ms = seek as f64 * 1000.0 / SAMPLE_RATE as f64;
        let end_limit = offset_ms + segment_size as f64 * 1000.0 / SAMPLE_RATE as f64;
        let mut out = Vec::new();
        let mut push = |start_ms: f64, end_ms: f64, tokens: &[u32]| {
            let text_tokens: Vec<u32> = tokens
                .iter()
                .copied()
                .filter(|&x| x < self.special.eot)
                .collect();
            let text = self.text(&text_tokens).unwrap_or_default();
            let text = text.trim();
            let end_ms = end_ms.min(end_limit);
            if text.is_empty() || end_ms <= start_ms {
                return;
            }
            out.push(TranscriptSegment {
                start_ms: start_ms.round() as u64,
                end_ms: end_ms.round() as u64,
                text: text.to_string(),
                avg_logprob: r.avg_logprob,
                no_speech_prob: r.no_speech_prob,
                temperature: r.temperature,
            });
        };
        let ts_ms = |x: u32| (x - tb) as f64 * TIME_PRECISION * 1000.0;
        if !consecutive.is_empty() {
            let mut slices = consecutive.clone();
            if single_ending {
                slices.push(n);
            }
            let mut last = 0;
            for &cur in &slices {
                let sliced = &t[last..cur];
                if let (Some(&a), Some(&b)) = (sliced.first(), sliced.last())
                    && is_ts(a)
                    && is_ts(b)
                {
                    push(offset_ms + ts_ms(a), offset_ms + ts_ms(b), sliced);
                }
                last = cur;
            }
            let advance = if single_ending {
                segment_size
            } else {
                (t[last - 1] - tb) as usize * SAMPLES_PER_TOKEN
            };
            (out, advance.min(segment_size))
        } else {
            let mut duration = segment_size as f64 * 1000.0 / SAMPLE_RATE as f64;
            if let Some(&last) = t.iter().rev().find(|&&x| is_ts(x))
                && last != tb
            {
                duration = ts_ms(last);
            }
            let start = t
                .first()
                .filter(|&&x| is_ts(x))
                .map(|&x| ts_ms(x))
                .unwrap_or(0.0);
            push(offset_ms + start, offset_ms + duration, t);
            (out, segment_size)
        }
    }

    fn text(&self, tokens: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(tokens, true)
            .map_err(|e| Error::Tokenizer {
                path: self.dir.join("tokenizer.json"),
                message: e.to_string(),
            })
    }
}

impl Special {
    fn from_tokenizer(tok: &Tokenizer, path: &Path, config: &WhisperConfig) -> Result<Self> {
        let id = |t: &str| -> Result<u32> {
            tok.token_to_id(t).ok_or_else(|| Error::Tokenizer {
                path: path.to_path_buf(),
                message: format!("special token {t} is missing (not a Whisper tokenizer?)"),
            })
        };
        let sot = id("<|startoftranscript|>")?;
        let no_speech = id("<|nospeech|>").or_else(|_| id("<|nocaptions|>"))?;
        let no_timestamps = id("<|notimestamps|>")?;
        let mut suppress = config.suppress_tokens.clone();
        for t in [
            "<|translate|>",
            "<|transcribe|>",
            "<|startoftranscript|>",
            "<|startofprev|>",
            "<|startoflm|>",
        ] {
            if let Some(i) = tok.token_to_id(t) {
                suppress.push(i);
            }
        }
        suppress.push(no_speech);
        let eot = id("<|endoftext|>")?;
        let begin_suppress = if config.begin_suppress_tokens.is_empty() {
            vec![220, eot]
        } else {
            config.begin_suppress_tokens.clone()
        };
        let languages = LANGUAGES
            .iter()
            .filter_map(|c| {
                tok.token_to_id(&format!("<|{c}|>"))
                    .map(|i| (c.to_string(), i))
            })
            .collect();
        Ok(Self {
            sot,
            eot,
            transcribe: id("<|transcribe|>")?,
            no_speech,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            suppress,
            begin_suppress,
            languages,
        })
    }

    fn language_id(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, i)| *i)
    }
}

struct Decoded {
    tokens: Vec<u32>,
    avg_logprob: f64,
    compression_ratio: f64,
    no_speech_prob: f64,
    temperature: f64,
}

/// Index of the first voiced 20 ms frame, if any.
fn first_voiced(samples: &[f32]) -> Option<usize> {
    samples
        .chunks(GATE_FRAME)
        .position(|f| {
            let rms = (f.iter().map(|x| x * x).sum::<f32>() / f.len() as f32).sqrt();
            rms > SILENCE_RMS
        })
        .map(|i| i * GATE_FRAME)
}

fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<f32> = logits
        .iter()
        .map(|&l| ((l - max) / temperature).exp())
        .collect();
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= sum);
    p
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|&x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax(logits: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(logits);
    logits.iter().map(|&l| l - lse).collect()
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len())
        .max_by(|&a, &b| v[a].total_cmp(&v[b]))
        .unwrap_or(0) as u32
}

/// gzip-style compression ratio of the text, as the reference computes it (zlib, default level).
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(text.as_bytes());
    let compressed = enc.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f64 / compressed.max(1) as f64
}

/// A small deterministic generator for temperature sampling (same input, same transcript).
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }

    fn sample(&mut self, p: &[f32]) -> u32 {
        let mut r = self.next_f32();
        for (i, &x) in p.iter().enumerate() {
            r -= x;
            if r <= 0.0 {
                return i as u32;
            }
        }
        argmax(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_choice_is_auto_or_a_whisper_code() {
        assert_eq!(parse_language("auto").unwrap(), None);
        assert_eq!(parse_language(" FR ").unwrap(), Some("fr".into()));
        let e = parse_language("klingon").unwrap_err().to_string();
        assert!(e.contains("\"klingon\" is not auto"), "{e}");
    }

    #[test]
    fn repetition_compresses_well() {
        let loop_text = "thank you. ".repeat(30);
        assert!(compression_ratio(&loop_text) > COMPRESSION_RATIO_THRESHOLD);
        let normal = "The quick brown fox jumps over the lazy dog near the river bank.";
        assert!(compression_ratio(normal) < COMPRESSION_RATIO_THRESHOLD);
    }

    #[test]
    fn energy_gate_finds_the_first_sound() {
        let mut s = vec![0.0f32; 16_000];
        s.extend((0..1600).map(|i| (i as f32 * 0.1).sin() * 0.3));
        assert_eq!(first_voiced(&s), Some(16_000));
        assert_eq!(first_voiced(&vec![0.0005; 48_000]), None);
    }
}

/// Word error rate of `hypothesis` against `reference` (word-level Levenshtein distance over the
/// reference's word count), after a light English normalisation: case, punctuation, hyphens, and
/// the abbreviations a transcriber writes for spoken words (`Mr.` for "mister").
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalize_words(reference);
    let h = normalize_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
}

/// Lower-case words without punctuation, for comparing transcripts.
pub fn normalize_words(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "dr" => "doctor".to_string(),
            "st" => "saint".to_string(),
            w => w.trim_matches('\'').to_string(),
        })
        .filter(|w| !w.is_empty())
        .collect()
}

#[cfg(test)]
mod wer_tests {
    use super::*;

    #[test]
    fn wer_counts_substitutions_insertions_and_deletions() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c d"), 0.25);
        assert_eq!(word_error_rate("a b c d", "a b d"), 0.25);
        assert_eq!(word_error_rate("mister john", "Mr. John."), 0.0);
    }
}
