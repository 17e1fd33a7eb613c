//! Audio: probing, container tags, and a streaming decoder that turns any file symphonia reads
//! (WAV, FLAC, MP3, AAC/M4A, OGG/Vorbis, ALAC, …) into 16 kHz mono for Whisper. Samples are
//! decoded, downmixed and resampled (rubato's FFT resampler) only as far as the reader asks, and
//! dropped once it has moved past them, so memory stays bounded whatever the file's length.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use kairos_models::whisper::{PcmSource, SAMPLE_RATE};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Indexing, Resampler};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::{MetadataOptions, StandardTag, Tag};

use crate::error::{Error, Result};

/// Audio extensions the indexer reads.
pub const AUDIO_EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "m4a", "aac", "mp4a", "ogg", "oga", "opus", "caf", "aif", "aiff",
    "mka", "alac",
];

/// Resampler input chunk (source-rate frames).
const CHUNK: usize = 1024;

/// What the container says about a recording.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioTags {
    pub title: Option<String>,
    pub credit: Option<String>,
    pub caption: Option<String>,
    pub keywords: Vec<String>,
    pub captured_at: Option<DateTime<Utc>>,
    pub language: Option<String>,
}

/// An opened audio file: its format, tags and a 16 kHz mono stream.
pub struct AudioFile {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    source_rate: u32,
    /// Frames the container declares, when it does (to tell a truncated file).
    declared_frames: Option<u64>,
    decoded_frames: u64,
    resampler: Option<Fft<f32>>,
    /// Mono source-rate samples waiting for a full resampler chunk.
    pending: Vec<f32>,
    /// Resampler output frames still to drop (its delay).
    skip: usize,
    /// 16 kHz mono samples not yet read past.
    out: SampleQueue,
    /// Output samples the whole file should give (source frames × ratio), known at the end.
    ended: bool,
    input_total: u64,
    produced: usize,
    bad_packets: usize,
    good_packets: usize,
    pub codec: String,
    pub channels: usize,
    pub tags: AudioTags,
}

impl std::fmt::Debug for AudioFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioFile")
            .field("path", &self.path)
            .finish()
    }
}

fn decode_err(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

impl AudioFile {
    /// Opens and probes `path`; fails with a message naming the file when it is empty, not audio,
    /// or in a codec symphonia does not decode.
    pub fn open(path: &Path) -> Result<Self> {
        let file = fs_err::File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Err(decode_err(path, "the file is empty"));
        }
        let mss = MediaSourceStream::new(Box::new(file.into_parts().0), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let mut format = symphonia::default::get_probe()
            .probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
            .map_err(|e| decode_err(path, format!("not a readable audio file ({e})")))?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| decode_err(path, "no audio track"))?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| decode_err(path, "the audio track has no codec parameters"))?
            .clone();
        let track_id = track.id;
        let declared_frames = track.num_frames;
        let track_language = track
            .language
            .clone()
            .filter(|l| !l.is_empty() && l != "und");
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(&params, &AudioDecoderOptions::default())
            .map_err(|e| decode_err(path, format!("unsupported audio codec ({e})")))?;
        let source_rate = params
            .sample_rate
            .ok_or_else(|| decode_err(path, "the audio track has no sample rate"))?;
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(1);
        let mut tags = AudioTags::default();
        if let Some(rev) = format.metadata().skip_to_latest() {
            read_tags(&rev.media.tags, &mut tags);
            for t in &rev.per_track {
                read_tags(&t.metadata.tags, &mut tags);
            }
        }
        tags.language = tags.language.or(track_language).map(|l| iso_639_1(&l));
        let resampler = if source_rate as usize == SAMPLE_RATE {
            None
        } else {
            Some(
                Fft::<f32>::new(
                    source_rate as usize,
                    SAMPLE_RATE,
                    CHUNK,
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| {
                    decode_err(path, format!("cannot resample from {source_rate} Hz: {e}"))
                })?,
            )
        };
        let skip = resampler.as_ref().map(|r| r.output_delay()).unwrap_or(0);
        Ok(Self {
            codec: format!("{:?}", params.codec),
            path: path.to_path_buf(),
            format,
            decoder,
            track_id,
            source_rate,
            declared_frames,
            decoded_frames: 0,
            resampler,
            pending: Vec::with_capacity(CHUNK * 2),
            skip,
            out: SampleQueue::default(),
            ended: false,
            input_total: 0,
            produced: 0,
            bad_packets: 0,
            good_packets: 0,
            channels,
            tags,
        })
    }

    /// Duration the container declares, in ms (absent for streams that do not say).
    pub fn declared_ms(&self) -> Option<u64> {
        self.declared_frames
            .filter(|_| self.source_rate > 0)
            .map(|f| f * 1000 / self.source_rate as u64)
    }

    /// The source sample rate.
    pub fn source_rate(&self) -> u32 {
        self.source_rate
    }

    /// Decodes one more packet into the output queue; `false` at the end of the stream.
    fn pump(&mut self) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let packet = loop {
            match self.format.next_packet() {
                Ok(Some(p)) if p.track_id == self.track_id => break Some(p),
                Ok(Some(_)) => continue,
                Ok(None) => break None,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    break None;
                }
                Err(SymError::ResetRequired) => break None,
                Err(e) => {
                    return Err(decode_err(
                        &self.path,
                        format!(
                            "corrupt audio stream after {:.1} s ({e})",
                            self.seconds_decoded()
                        ),
                    ));
                }
            }
        };
        let Some(packet) = packet else {
            self.finish()?;
            return Ok(false);
        };
        match self.decoder.decode(&packet) {
            Ok(buf) => {
                self.good_packets += 1;
                let ch = buf.num_planes().max(1);
                let mut interleaved: Vec<f32> = Vec::new();
                buf.copy_to_vec_interleaved(&mut interleaved);
                let frames = interleaved.len() / ch;
                self.decoded_frames += frames as u64;
                self.pending.extend(
                    interleaved
                        .chunks_exact(ch)
                        .map(|f| f.iter().sum::<f32>() / ch as f32),
                );
            }
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                // A damaged packet: skip it, as players do; too many and the file is corrupt.
                self.bad_packets += 1;
                if self.bad_packets > 8 && self.bad_packets * 4 > self.good_packets {
                    return Err(decode_err(
                        &self.path,
                        format!(
                            "corrupt audio: {} of {} packets do not decode",
                            self.bad_packets,
                            self.bad_packets + self.good_packets
                        ),
                    ));
                }
            }
            Err(e) => return Err(decode_err(&self.path, e)),
        }
        self.resample(false)?;
        Ok(true)
    }

    fn seconds_decoded(&self) -> f64 {
        self.decoded_frames as f64 / self.source_rate.max(1) as f64
    }

    /// Moves pending source samples through the resampler (all of them when `flush`).
    fn resample(&mut self, flush: bool) -> Result<()> {
        let Some(rs) = self.resampler.as_mut() else {
            self.input_total += self.pending.len() as u64;
            self.produced += self.pending.len();
            self.out.extend(&self.pending);
            self.pending.clear();
            return Ok(());
        };
        let mut buf = vec![0f32; rs.output_frames_max()];
        let err = |e: rubato::ResampleError| Error::Decode {
            path: self.path.clone(),
            message: format!("resampling: {e}"),
        };
        let mut consumed = 0;
        while self.pending.len() - consumed >= CHUNK || (flush && consumed < self.pending.len()) {
            let avail = (self.pending.len() - consumed).min(CHUNK);
            let input = InterleavedSlice::new(&self.pending[consumed..consumed + avail], 1, avail)
                .map_err(|e| decode_err(&self.path, e))?;
            let frames = buf.len();
            let mut output = InterleavedSlice::new_mut(&mut buf, 1, frames)
                .map_err(|e| decode_err(&self.path, e))?;
            let indexing = Indexing {
                partial_len: (avail < CHUNK).then_some(avail),
                ..Indexing::new()
            };
            let (_, n) = rs
                .process_into_buffer(&input, &mut output, Some(&indexing))
                .map_err(err)?;
            consumed += avail;
            self.input_total += avail as u64;
            let drop = self.skip.min(n);
            self.skip -= drop;
            self.out.extend(&buf[drop..n]);
            self.produced += n - drop;
        }
        self.pending.drain(..consumed);
        Ok(())
    }

    /// End of stream: flush the resampler, trim to the exact resampled length, and tell a
    /// truncated file from a complete one.
    fn finish(&mut self) -> Result<()> {
        self.ended = true;
        if let Some(declared) = self.declared_frames
            && declared > 0
            && self.decoded_frames * 10 < declared * 9
        {
            return Err(decode_err(
                &self.path,
                format!(
                    "truncated: the header announces {:.1} s of audio, only {:.1} s is there",
                    declared as f64 / self.source_rate as f64,
                    self.seconds_decoded()
                ),
            ));
        }
        if self.good_packets == 0 {
            return Err(decode_err(&self.path, "no decodable audio in the file"));
        }
        if self.resampler.is_some() {
            self.resample(true)?;
            let expected = (self.input_total as f64 * SAMPLE_RATE as f64 / self.source_rate as f64)
                .round() as usize;
            // Flush the resampler's delay with silence until the expected length is out.
            let mut guard = 0;
            while self.produced < expected && guard < 16 {
                let Some(rs) = self.resampler.as_mut() else {
                    break;
                };
                let mut buf = vec![0f32; rs.output_frames_max()];
                let frames = buf.len();
                let empty: [f32; 0] = [];
                let input = InterleavedSlice::new(&empty[..], 1, 0)
                    .map_err(|e| decode_err(&self.path, e))?;
                let mut output = InterleavedSlice::new_mut(&mut buf, 1, frames)
                    .map_err(|e| decode_err(&self.path, e))?;
                let indexing = Indexing {
                    partial_len: Some(0),
                    ..Indexing::new()
                };
                let (_, n) = rs
                    .process_into_buffer(&input, &mut output, Some(&indexing))
                    .map_err(|e| decode_err(&self.path, e))?;
                let drop = self.skip.min(n);
                self.skip -= drop;
                self.out.extend(&buf[drop..n]);
                self.produced += n - drop;
                guard += 1;
            }
            if self.produced > expected {
                let extra = self.produced - expected;
                self.out.drop_last(extra);
                self.produced = expected;
            }
        }
        Ok(())
    }

    /// Decodes to the end, dropping samples (validates a file and measures it without a model).
    pub fn drain(&mut self) -> Result<usize> {
        while self.pump()? {
            self.out.forget_all();
        }
        self.out.forget_all();
        Ok(self.produced)
    }

    /// 16 kHz samples produced so far (the whole file's length once it has been read through).
    pub fn samples(&self) -> usize {
        self.produced
    }

    fn window_impl(&mut self, start: usize, len: usize) -> Result<Vec<f32>> {
        // Drop what the reader has moved past, before and while decoding more.
        self.out.forget_before(start);
        while self.out.end() < start + len && self.pump()? {
            self.out.forget_before(start);
        }
        Ok(self.out.window(start, len))
    }
}

/// The samples of a stream from an absolute index on: what a windowed reader (Whisper asks for
/// non-decreasing windows) still needs, and nothing before.
#[derive(Debug, Default)]
pub(crate) struct SampleQueue {
    samples: VecDeque<f32>,
    /// Absolute index of `samples[0]`.
    start: usize,
}

impl SampleQueue {
    pub(crate) fn extend(&mut self, samples: &[f32]) {
        self.samples.extend(samples);
    }

    /// Samples held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.samples.len()
    }

    /// Absolute index one past the last sample held.
    pub(crate) fn end(&self) -> usize {
        self.start + self.samples.len()
    }

    /// Drops the samples before absolute index `at`.
    pub(crate) fn forget_before(&mut self, at: usize) {
        let drop = at.saturating_sub(self.start).min(self.samples.len());
        self.samples.drain(..drop);
        self.start += drop;
    }

    /// Drops everything held (the stream position stays).
    pub(crate) fn forget_all(&mut self) {
        self.forget_before(self.end());
    }

    /// Drops the last `n` samples.
    pub(crate) fn drop_last(&mut self, n: usize) {
        let keep = self.samples.len().saturating_sub(n);
        self.samples.truncate(keep);
    }

    /// Up to `len` samples from absolute index `start` (fewer at the end of what is held).
    pub(crate) fn window(&self, start: usize, len: usize) -> Vec<f32> {
        let from = start.saturating_sub(self.start).min(self.samples.len());
        let to = (from + len).min(self.samples.len());
        self.samples.range(from..to).copied().collect()
    }
}

impl PcmSource for AudioFile {
    fn window(
        &mut self,
        start: usize,
        len: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        self.window_impl(start, len)
            .map_err(|e| e.to_string().into())
    }
}

/// Writes 16-bit PCM WAV (mono) — for generated test and benchmark recordings.
pub fn write_wav(path: &Path, rate: u32, samples: &[f32]) -> Result<()> {
    let mut bytes = Vec::with_capacity(44 + samples.len() * 2);
    let data_len = (samples.len() * 2) as u32;
    bytes.extend(b"RIFF");
    bytes.extend((36 + data_len).to_le_bytes());
    bytes.extend(b"WAVEfmt ");
    bytes.extend(16u32.to_le_bytes());
    bytes.extend(1u16.to_le_bytes());
    bytes.extend(1u16.to_le_bytes());
    bytes.extend(rate.to_le_bytes());
    bytes.extend((rate * 2).to_le_bytes());
    bytes.extend(2u16.to_le_bytes());
    bytes.extend(16u16.to_le_bytes());
    bytes.extend(b"data");
    bytes.extend(data_len.to_le_bytes());
    for s in samples {
        bytes.extend(((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    fs_err::write(path, bytes)?;
    Ok(())
}

/// Reads a whole (short) file as 16 kHz mono.
pub fn read_all(path: &Path) -> Result<Vec<f32>> {
    let mut f = AudioFile::open(path)?;
    let mut out = Vec::new();
    loop {
        let w = f.window_impl(out.len(), 16 * SAMPLE_RATE)?;
        if w.is_empty() {
            break;
        }
        out.extend(w);
    }
    Ok(out)
}

fn read_tags(tags: &[Tag], out: &mut AudioTags) {
    for tag in tags {
        let Some(std) = &tag.std else { continue };
        let set = |slot: &mut Option<String>, v: &str| {
            let v = v.trim();
            if slot.is_none() && !v.is_empty() {
                *slot = Some(v.to_string());
            }
        };
        match std {
            StandardTag::TrackTitle(v) => set(&mut out.title, v),
            StandardTag::Artist(v) | StandardTag::AlbumArtist(v) | StandardTag::Composer(v) => {
                set(&mut out.credit, v)
            }
            StandardTag::Comment(v) | StandardTag::Description(v) => set(&mut out.caption, v),
            StandardTag::Language(v) => set(&mut out.language, v),
            StandardTag::Genre(v) | StandardTag::Keywords(v) | StandardTag::Album(v) => {
                for k in v.split([';', ',']) {
                    let k = k.trim();
                    if !k.is_empty() && !out.keywords.iter().any(|x| x == k) {
                        out.keywords.push(k.to_string());
                    }
                }
            }
            StandardTag::RecordingDate(v)
            | StandardTag::RecordingTime(v)
            | StandardTag::ReleaseDate(v)
            | StandardTag::OriginalRecordingDate(v)
                if out.captured_at.is_none() =>
            {
                out.captured_at = parse_tag_date(v);
            }
            StandardTag::RecordingYear(y) | StandardTag::ReleaseYear(y)
                if out.captured_at.is_none() =>
            {
                out.captured_at = parse_tag_date(&y.to_string());
            }
            _ => {}
        }
    }
}

/// Tag dates come as `2024`, `2024-07-26`, `2024-07-26T20:24:00Z` and the like.
fn parse_tag_date(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let date = v
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let date = date.or_else(|| {
        v.get(..4)
            .and_then(|y| y.parse::<i32>().ok())
            .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
    })?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

/// `eng`/`fre`/`fra`/`en-GB` → `en`/`fr`; other codes pass through lower-cased.
/// A two-letter ISO 639-1 code for a language tag (`eng`, `fre`, `en-GB` → `en`, `fr`, `en`).
pub(crate) fn iso_639_1(code: &str) -> String {
    let c = code.trim().to_ascii_lowercase();
    let base = c.split(['-', '_']).next().unwrap_or(&c).to_string();
    match base.as_str() {
        "eng" => "en".into(),
        "fre" | "fra" => "fr".into(),
        "ger" | "deu" => "de".into(),
        "spa" => "es".into(),
        "ita" => "it".into(),
        "por" => "pt".into(),
        "nld" | "dut" => "nl".into(),
        "rus" => "ru".into(),
        "jpn" => "ja".into(),
        "zho" | "chi" => "zh".into(),
        "kor" => "ko".into(),
        "ara" => "ar".into(),
        "pol" => "pl".into(),
        "tur" => "tr".into(),
        "swe" => "sv".into(),
        "nor" | "nob" => "no".into(),
        "dan" => "da".into(),
        "fin" => "fi".into(),
        "ukr" => "uk".into(),
        "ell" | "gre" => "el".into(),
        "ces" | "cze" => "cs".into(),
        "hun" => "hu".into(),
        "ron" | "rum" => "ro".into(),
        "cat" => "ca".into(),
        "hin" => "hi".into(),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(path: &Path, rate: u32, channels: u16, samples: &[f32]) {
        let mut bytes = Vec::new();
        let data_len = (samples.len() * 2) as u32;
        bytes.extend(b"RIFF");
        bytes.extend((36 + data_len).to_le_bytes());
        bytes.extend(b"WAVEfmt ");
        bytes.extend(16u32.to_le_bytes());
        bytes.extend(1u16.to_le_bytes());
        bytes.extend(channels.to_le_bytes());
        bytes.extend(rate.to_le_bytes());
        bytes.extend((rate * channels as u32 * 2).to_le_bytes());
        bytes.extend((channels * 2).to_le_bytes());
        bytes.extend(16u16.to_le_bytes());
        bytes.extend(b"data");
        bytes.extend(data_len.to_le_bytes());
        for s in samples {
            bytes.extend(((s * 32767.0) as i16).to_le_bytes());
        }
        fs_err::write(path, bytes).unwrap();
    }

    #[test]
    fn stereo_44k_streams_to_16k_mono_of_the_right_length_and_pitch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let rate = 44_100;
        let secs = 3;
        let mut s = Vec::new();
        for i in 0..rate * secs {
            let v = (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin() * 0.5;
            s.push(v);
            s.push(v);
        }
        write_wav(&path, rate, 2, &s);
        let mut f = AudioFile::open(&path).unwrap();
        assert_eq!((f.source_rate(), f.channels), (44_100, 2));
        // Read in windows, as the transcriber does, then check the total length.
        let a = f.window_impl(0, 16_000).unwrap();
        assert_eq!(a.len(), 16_000);
        let b = f.window_impl(16_000, 100_000).unwrap();
        assert_eq!(b.len(), 32_000, "3 s at 16 kHz in all");
        // 440 Hz: count zero crossings over the middle second.
        let crossings = b[..16_000]
            .windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count();
        assert!((438..=442).contains(&crossings), "{crossings}");
        assert!(f.out.len() <= 100_000);
    }

    #[test]
    fn empty_and_non_audio_files_fail_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        fs_err::write(&empty, b"").unwrap();
        let e = AudioFile::open(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.wav") && e.contains("empty"), "{e}");
        let text = dir.path().join("notes.mp3");
        fs_err::write(
            &text,
            b"this is not audio at all, just some words in a file",
        )
        .unwrap();
        let e = AudioFile::open(&text).unwrap_err().to_string();
        assert!(e.contains("notes.mp3"), "{e}");
    }

    #[test]
    fn tag_dates_and_languages_normalise() {
        assert_eq!(
            parse_tag_date("2024-07-26").unwrap().to_rfc3339(),
            "2024-07-26T00:00:00+00:00"
        );
        assert!(parse_tag_date("2024").is_some());
        assert_eq!(iso_639_1("fre"), "fr");
        assert_eq!(iso_639_1("en-GB"), "en");
    }
}
