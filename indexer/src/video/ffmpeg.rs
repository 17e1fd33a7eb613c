//! ffmpeg and ffprobe as subprocesses: probing a file, streaming its frames and its audio.
//!
//! Arguments go as an argv array, never through a shell, and every source path goes as
//! `file:PATH`, so no file name is ever read as an option, a protocol or a pipe. A process that
//! produces nothing for the stall timeout is killed; one that fails leaves its own error message
//! (the tail of its stderr) in ours.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::audio::SampleQueue;
use crate::error::{Error, Result};

/// How long ffmpeg may produce nothing before it is killed, unless `KAIROS_FFMPEG_TIMEOUT`
/// (seconds) says otherwise.
const DEFAULT_STALL: Duration = Duration::from_secs(120);
/// Bytes of a failing process's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Where ffmpeg and ffprobe are, and how long they may stall.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    pub stall: Duration,
}

impl Default for Tools {
    fn default() -> Self {
        Self::from_env()
    }
}

impl Tools {
    /// `ffmpeg` and `ffprobe` from `PATH`, or from `KAIROS_FFMPEG` / `KAIROS_FFPROBE`;
    /// the stall timeout from `KAIROS_FFMPEG_TIMEOUT` (seconds).
    pub fn from_env() -> Self {
        let var = |name: &str, default: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        let stall = std::env::var("KAIROS_FFMPEG_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_STALL);
        Self {
            ffmpeg: var("KAIROS_FFMPEG", "ffmpeg"),
            ffprobe: var("KAIROS_FFPROBE", "ffprobe"),
            stall,
        }
    }

    /// The first line of `ffmpeg -version` ("ffmpeg version 5.1.6-0+deb12u1 …").
    pub fn version(&self) -> Result<String> {
        let out = Command::new(&self.ffmpeg)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.missing(&self.ffmpeg, None, e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .next()
            .unwrap_or("ffmpeg (version unknown)")
            .to_string())
    }

    /// The error for a tool that cannot be started, naming the file it was needed for.
    fn missing(&self, tool: &Path, path: Option<&Path>, e: std::io::Error) -> Error {
        let needed = path
            .map(|p| format!(" (needed for {})", p.display()))
            .unwrap_or_default();
        Error::Tool {
            tool: tool.display().to_string(),
            message: format!(
                "{e}{needed}. Video needs ffmpeg and ffprobe: install the Debian package `ffmpeg` \
                 (scripts/system-packages.sh does), or point KAIROS_FFMPEG / KAIROS_FFPROBE at them"
            ),
        }
    }

    /// Starts `cmd` (ffmpeg or ffprobe, working on `path`) with its output piped and watched.
    fn start(&self, cmd: Command, path: &Path) -> Result<Pipe> {
        let program = PathBuf::from(cmd.get_program());
        let tool = if program == self.ffprobe {
            "ffprobe"
        } else {
            "ffmpeg"
        };
        Pipe::spawn(cmd, self.stall, tool).map_err(|e| self.missing(&program, Some(path), e))
    }

    /// Runs ffprobe with `args` on `path` and returns its whole answer.
    fn ffprobe(&self, args: &[&str], path: &Path) -> Result<Vec<u8>> {
        let mut cmd = Command::new(&self.ffprobe);
        cmd.args(["-v", "error"]).args(args).arg(file_url(path));
        let mut pipe = self.start(cmd, path)?;
        let mut out = Vec::new();
        pipe.waiting.store(true, Ordering::Relaxed);
        let read = pipe.stdout.read_to_end(&mut out);
        pipe.finish(path)?;
        read.map_err(|e| decode_error(path, format!("reading ffprobe's answer: {e}")))?;
        Ok(out)
    }

    /// Container and stream facts of `path`.
    pub fn probe(&self, path: &Path) -> Result<Probe> {
        let json = self.ffprobe(
            &["-print_format", "json", "-show_format", "-show_streams"],
            path,
        )?;
        let raw: RawProbe = serde_json::from_slice(&json)
            .map_err(|e| decode_error(path, format!("ffprobe's answer is not JSON: {e}")))?;
        Ok(Probe::from_raw(raw))
    }

    /// Every frame of the first video stream at `rate` frames per second (constant: frames are
    /// duplicated or dropped as needed), scaled to `width`×`height`, as packed RGB.
    /// An interlaced stream is read one field per frame (the top one: no combing, half the
    /// scaling work).
    pub fn frames(
        &self,
        path: &Path,
        rate: (u32, u32),
        (width, height): (u32, u32),
        interlaced: bool,
    ) -> Result<FrameReader> {
        let mut cmd = Command::new(&self.ffmpeg);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .to_string();
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error"])
            // Scaling runs in the filter graph: slice it across the cores.
            .args(["-filter_threads", &threads])
            // Deblocking is invisible at analysis size and costs a tenth of the decode; `fast`
            // allows the decoder's shortcuts that are not bit-exact.
            .args(["-skip_loop_filter", "all", "-flags2", "+fast"])
            .arg("-i")
            .arg(file_url(path))
            .args(["-map", "0:v:0", "-an", "-sn", "-dn", "-vf"])
            .arg(format!(
                "{}fps={}/{},scale={width}:{height}:flags=fast_bilinear,setsar=1",
                if interlaced { "field=top," } else { "" },
                rate.0,
                rate.1
            ))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        let pipe = self.start(cmd, path)?;
        Ok(FrameReader {
            pipe,
            width,
            height,
        })
    }

    /// The audio track `track` (0-based among audio streams) as 16 kHz mono f32 samples.
    pub fn pcm(&self, path: &Path, track: usize) -> Result<PcmReader> {
        let mut cmd = Command::new(&self.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(file_url(path))
            .args(["-map", &format!("0:a:{track}"), "-vn", "-sn", "-dn"])
            .args(["-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"]);
        let pipe = self.start(cmd, path)?;
        Ok(PcmReader {
            pipe,
            buf: SampleQueue::default(),
            ended: false,
            path: path.to_path_buf(),
        })
    }

    /// Runs ffmpeg with `args` to the end (clip export). It reports progress on stdout, so a long
    /// re-encode is not mistaken for a stall; its stderr tail is the error.
    pub fn run(&self, args: &[std::ffi::OsString], about: &Path) -> Result<()> {
        let mut cmd = Command::new(&self.ffmpeg);
        cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-nostats"])
            .args(["-progress", "pipe:1"])
            .args(args);
        let mut pipe = self.start(cmd, about)?;
        let mut sink = [0u8; 1024];
        while let Ok(n) = pipe.fill_some(&mut sink) {
            if n == 0 {
                break;
            }
        }
        pipe.finish(about)
    }

    /// Presentation times (seconds) of the video key frames of `path` between `from` and `to`
    /// seconds: where a clip can start without re-encoding.
    pub fn keyframe_times(&self, path: &Path, from: f64, to: f64) -> Result<Vec<f64>> {
        let interval = format!("{:.3}%{:.3}", from.max(0.0), to);
        let csv = self.ffprobe(
            &[
                "-select_streams",
                "v:0",
                "-skip_frame",
                "nokey",
                "-read_intervals",
                &interval,
                "-show_entries",
                "frame=pts_time,best_effort_timestamp_time",
                "-of",
                "csv=p=0",
            ],
            path,
        )?;
        Ok(String::from_utf8_lossy(&csv)
            .lines()
            .filter_map(|l| l.split(',').find_map(|v| v.trim().parse::<f64>().ok()))
            .collect())
    }
}

/// `file:` + the path: ffmpeg then reads the name as a plain file whatever it looks like
/// (`-x.mp4`, `a:b.mov`, `-`).
pub fn file_url(path: &Path) -> std::ffi::OsString {
    let mut url = std::ffi::OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn decode_error(path: &Path, message: String) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        message,
    }
}

/// A running ffmpeg/ffprobe: its stdout to read, its stderr collected, and a watchdog that kills
/// it when it stalls.
pub struct Pipe {
    child: Arc<Mutex<Child>>,
    stdout: ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    /// Milliseconds after `started` of the last output.
    last: Arc<AtomicU64>,
    /// Whether we are waiting on the process (reading or waiting for its exit): time spent in
    /// our own work between reads is not the process stalling.
    waiting: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    stall: Duration,
    tool: &'static str,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe").field("tool", &self.tool).finish()
    }
}

impl Pipe {
    fn spawn(mut cmd: Command, stall: Duration, tool: &'static str) -> std::io::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 4 * STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
            tail
        });
        let pipe = Self {
            child: Arc::new(Mutex::new(child)),
            stdout,
            stderr: Some(stderr),
            started: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
            waiting: Arc::new(AtomicBool::new(false)),
            done: Arc::new(AtomicBool::new(false)),
            killed: Arc::new(AtomicBool::new(false)),
            stall,
            tool,
        };
        pipe.watch();
        Ok(pipe)
    }

    /// The watchdog: kills the process once it has been silent for the stall timeout.
    fn watch(&self) {
        let (child, last, waiting, done, killed) = (
            self.child.clone(),
            self.last.clone(),
            self.waiting.clone(),
            self.done.clone(),
            self.killed.clone(),
        );
        let (started, stall) = (self.started, self.stall);
        std::thread::spawn(move || {
            let tick = (stall / 10).clamp(Duration::from_millis(20), Duration::from_millis(500));
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                let idle = (started.elapsed().as_millis() as u64)
                    .saturating_sub(last.load(Ordering::Relaxed));
                if waiting.load(Ordering::Relaxed)
                    && idle > stall.as_millis() as u64
                    && !done.load(Ordering::Relaxed)
                {
                    killed.store(true, Ordering::Relaxed);
                    if let Ok(mut c) = child.lock() {
                        let _ = c.kill();
                    }
                    return;
                }
            }
        });
    }

    fn touch(&self) {
        self.last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Fills `buf` from stdout; `Ok(n)` with `n < buf.len()` only at the end of the output.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.touch();
        self.waiting.store(true, Ordering::Relaxed);
        let r = self.fill_inner(buf);
        self.waiting.store(false, Ordering::Relaxed);
        r
    }

    /// Reads whatever is there (at least one byte unless at the end).
    fn fill_some(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.touch();
        self.waiting.store(true, Ordering::Relaxed);
        let r = loop {
            match self.stdout.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.waiting.store(false, Ordering::Relaxed);
        r
    }

    fn fill_inner(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.stdout.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    self.touch();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    /// Waits for the process: an error carrying its stderr when it failed or was killed.
    fn finish(mut self, path: &Path) -> Result<()> {
        self.touch();
        self.waiting.store(true, Ordering::Relaxed);
        let status = loop {
            // Poll rather than wait(): the watchdog may need the lock to kill.
            let polled = self.child.lock().map(|mut c| c.try_wait());
            match polled {
                Ok(Ok(Some(status))) => break Some(status),
                Ok(Ok(None)) => std::thread::sleep(Duration::from_millis(5)),
                _ => break None,
            }
        };
        self.done.store(true, Ordering::Relaxed);
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if self.killed.load(Ordering::Relaxed) {
            return Err(decode_error(
                path,
                format!(
                    "{} produced nothing for {} s and was killed (KAIROS_FFMPEG_TIMEOUT sets the limit)",
                    self.tool,
                    self.stall.as_secs_f64()
                ),
            ));
        }
        match status {
            Some(s) if s.success() => Ok(()),
            other => {
                let text = String::from_utf8_lossy(&stderr);
                let text = text.trim();
                let text = match text.char_indices().rev().nth(STDERR_TAIL) {
                    Some((at, _)) => &text[at..],
                    None => text,
                };
                let how = match other {
                    Some(s) => s.to_string(),
                    None => "no exit status".to_string(),
                };
                let said = if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", text.lines().collect::<Vec<_>>().join(" | "))
                };
                Err(decode_error(
                    path,
                    format!("{} failed ({how}){said}", self.tool),
                ))
            }
        }
    }

    /// Stops the process early (the reader has what it needs) without reporting an error.
    fn stop(self) {
        self.done.store(true, Ordering::Relaxed);
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Decoded frames from an ffmpeg pipe.
#[derive(Debug)]
pub struct FrameReader {
    pipe: Pipe,
    pub width: u32,
    pub height: u32,
}

impl FrameReader {
    /// The next frame into `buf` (packed RGB, `width*height*3` bytes); `false` at the end.
    pub fn next_frame(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        let len = (self.width * self.height * 3) as usize;
        buf.resize(len, 0);
        let n = self.pipe.fill(buf)?;
        Ok(n == len)
    }

    /// Waits for ffmpeg; its error when it failed.
    pub fn finish(self, path: &Path) -> Result<()> {
        self.pipe.finish(path)
    }
}

/// 16 kHz mono samples from an ffmpeg pipe, windowed for Whisper (only the current window is
/// kept).
#[derive(Debug)]
pub struct PcmReader {
    pipe: Pipe,
    buf: SampleQueue,
    ended: bool,
    path: PathBuf,
}

impl PcmReader {
    fn read_until(&mut self, end: usize) -> std::io::Result<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        while !self.ended && self.buf.end() < end {
            let n = self.pipe.fill(&mut chunk)?;
            let samples: Vec<f32> = chunk[..n - n % 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            self.buf.extend(&samples);
            if n < chunk.len() {
                self.ended = true;
            }
        }
        Ok(())
    }

    /// Reads what is left and waits for ffmpeg: the total number of samples, or ffmpeg's error.
    pub fn finish(mut self) -> Result<usize> {
        let path = self.path.clone();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut total = self.buf.end();
        if !self.ended {
            loop {
                match self.pipe.fill(&mut chunk) {
                    Ok(n) => {
                        total += n / 4;
                        if n < chunk.len() {
                            break;
                        }
                    }
                    Err(e) => return Err(decode_error(&path, format!("reading audio: {e}"))),
                }
            }
        }
        self.pipe.finish(&path)?;
        Ok(total)
    }

    /// Abandons the read (another stage failed).
    pub fn stop(self) {
        self.pipe.stop();
    }
}

impl kairos_models::whisper::PcmSource for PcmReader {
    fn window(
        &mut self,
        start: usize,
        len: usize,
    ) -> std::result::Result<Vec<f32>, Box<dyn std::error::Error + Send + Sync>> {
        self.read_until(start + len)?;
        self.buf.forget_before(start);
        Ok(self.buf.window(start, len))
    }
}

/// What ffprobe says about a file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    pub container: Option<String>,
    pub duration_ms: Option<u64>,
    pub bit_rate: Option<i64>,
    pub created: Option<DateTime<Utc>>,
    /// Container tags, keys lower-cased.
    pub tags: Vec<(String, String)>,
    pub video: Option<VideoStream>,
    pub audio: Vec<AudioStream>,
}

/// The video stream that is analysed (the first that is not cover art).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    pub codec: Option<String>,
    /// Coded size.
    pub width: u32,
    pub height: u32,
    /// Size as displayed: pixel aspect and rotation applied.
    pub display_width: u32,
    pub display_height: u32,
    /// Frames per second as a fraction.
    pub frame_rate: Option<(u32, u32)>,
    pub duration_ms: Option<u64>,
    /// Interlaced (two fields per frame), as the stream's field order says.
    pub interlaced: bool,
}

/// One audio track.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    pub codec: Option<String>,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
    /// ISO 639 tag as the file gives it (`eng`, `fre`, `fr`).
    pub language: Option<String>,
}

impl Probe {
    /// A container tag by (lower-case) name.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn from_raw(raw: RawProbe) -> Self {
        let format = raw.format.unwrap_or_default();
        let tags: Vec<(String, String)> = format
            .tags
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        let video = raw
            .streams
            .iter()
            .filter(|s| s.codec_type.as_deref() == Some("video"))
            .find(|s| s.disposition.attached_pic != 1)
            .and_then(VideoStream::from_raw);
        let audio = raw
            .streams
            .iter()
            .filter(|s| s.codec_type.as_deref() == Some("audio"))
            .map(|s| AudioStream {
                codec: s.codec_name.clone(),
                channels: s.channels,
                sample_rate: s.sample_rate.as_deref().and_then(|r| r.parse().ok()),
                language: s
                    .tags
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("language"))
                    .map(|(_, v)| v.trim().to_string())
                    .filter(|v| !v.is_empty() && v != "und"),
            })
            .collect();
        let created = tags
            .iter()
            .find(|(k, _)| k == "creation_time")
            .and_then(|(_, v)| DateTime::parse_from_rfc3339(v.trim()).ok())
            .map(|t| t.with_timezone(&Utc));
        Self {
            container: format.format_name,
            duration_ms: seconds_ms(format.duration.as_deref()),
            bit_rate: format.bit_rate.as_deref().and_then(|b| b.parse().ok()),
            created,
            tags,
            video,
            audio,
        }
    }
}

impl VideoStream {
    fn from_raw(s: &RawStream) -> Option<Self> {
        let (width, height) = (s.width?, s.height?);
        if width == 0 || height == 0 {
            return None;
        }
        let sar = s
            .sample_aspect_ratio
            .as_deref()
            .and_then(ratio)
            .filter(|(n, d)| *n > 0 && *d > 0)
            .map(|(n, d)| n as f64 / d as f64)
            .unwrap_or(1.0);
        let mut dw = ((width as f64 * sar).round() as u32).max(1);
        let mut dh = height;
        let rotation = s
            .side_data_list
            .iter()
            .find_map(|d| d.rotation)
            .or_else(|| {
                s.tags
                    .iter()
                    .find(|(k, _)| *k == "rotate")
                    .and_then(|(_, v)| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        if (rotation.abs().round() as i64) % 180 == 90 {
            std::mem::swap(&mut dw, &mut dh);
        }
        let frame_rate = [s.avg_frame_rate.as_deref(), s.r_frame_rate.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(ratio)
            .find(|(n, d)| *n > 0 && *d > 0 && (*n as f64 / *d as f64) < 1000.0);
        Some(Self {
            codec: s.codec_name.clone(),
            width,
            height,
            display_width: dw,
            display_height: dh,
            frame_rate,
            duration_ms: seconds_ms(s.duration.as_deref()),
            interlaced: matches!(s.field_order.as_deref(), Some("tt" | "bb" | "tb" | "bt")),
        })
    }

    /// Frames per second.
    pub fn fps(&self) -> Option<f64> {
        self.frame_rate.map(|(n, d)| n as f64 / d as f64)
    }
}

fn ratio(text: &str) -> Option<(u32, u32)> {
    let (n, d) = text.split_once(['/', ':'])?;
    Some((n.trim().parse().ok()?, d.trim().parse().ok()?))
}

fn seconds_ms(text: Option<&str>) -> Option<u64> {
    let s: f64 = text?.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0).then(|| (s * 1000.0).round() as u64)
}

#[derive(Debug, Default, Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Debug, Default, Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    bit_rate: Option<String>,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_aspect_ratio: Option<String>,
    field_order: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    duration: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    #[serde(default)]
    disposition: RawDisposition,
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    side_data_list: Vec<RawSideData>,
}

#[derive(Debug, Default, Deserialize)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

#[derive(Debug, Default, Deserialize)]
struct RawSideData {
    rotation: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_json_gives_display_size_rate_languages_and_creation_time() {
        let json = r#"{"streams":[
            {"index":0,"codec_name":"mjpeg","codec_type":"video","width":300,"height":300,
             "disposition":{"attached_pic":1}},
            {"index":1,"codec_name":"h264","codec_type":"video","width":1440,"height":1080,
             "sample_aspect_ratio":"4:3","avg_frame_rate":"30000/1001","r_frame_rate":"30000/1001",
             "duration":"12.012","disposition":{"attached_pic":0},"field_order":"tt",
             "side_data_list":[{"rotation":-90}]},
            {"index":2,"codec_name":"aac","codec_type":"audio","channels":2,"sample_rate":"48000",
             "tags":{"language":"fre"}},
            {"index":3,"codec_name":"ac3","codec_type":"audio","tags":{"language":"und"}}],
          "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"12.050000",
             "bit_rate":"8000000","tags":{"creation_time":"2024-07-27T19:30:00.000000Z","TITLE":"Final"}}}"#;
        let probe = Probe::from_raw(serde_json::from_str(json).unwrap());
        let v = probe.video.as_ref().unwrap();
        assert_eq!(v.codec.as_deref(), Some("h264"));
        // 1440×1080 with 4:3 pixels is 1920×1080, rotated a quarter turn.
        assert_eq!((v.display_width, v.display_height), (1080, 1920));
        assert!((v.fps().unwrap() - 29.97).abs() < 0.01);
        assert!(v.interlaced);
        assert_eq!(probe.duration_ms, Some(12050));
        assert_eq!(probe.audio.len(), 2);
        assert_eq!(probe.audio[0].language.as_deref(), Some("fre"));
        assert_eq!(probe.audio[1].language, None);
        assert_eq!(probe.tag("title"), Some("Final"));
        assert_eq!(
            probe.created.unwrap().to_rfc3339(),
            "2024-07-27T19:30:00+00:00"
        );
    }

    #[test]
    fn a_silent_process_is_killed_after_the_stall_timeout() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let started = Instant::now();
        let mut pipe = Pipe::spawn(cmd, Duration::from_millis(300), "ffmpeg").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(pipe.fill(&mut buf).unwrap(), 0);
        let err = pipe
            .finish(Path::new("/x/stuck.mp4"))
            .unwrap_err()
            .to_string();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(err.contains("/x/stuck.mp4"), "{err}");
        assert!(err.contains("was killed"), "{err}");
    }

    #[test]
    fn a_failing_process_reports_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'moov atom not found' >&2; exit 1"]);
        let mut pipe = Pipe::spawn(cmd, Duration::from_secs(30), "ffmpeg").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(pipe.fill(&mut buf).unwrap(), 0);
        let err = pipe.finish(Path::new("/x/a.mp4")).unwrap_err().to_string();
        assert!(err.contains("moov atom not found"), "{err}");
        assert!(err.contains("ffmpeg failed"), "{err}");
    }

    #[test]
    fn a_missing_tool_names_the_file_it_was_needed_for() {
        let tools = Tools {
            ffmpeg: "/nonexistent/ffmpeg".into(),
            ffprobe: "/nonexistent/ffprobe".into(),
            stall: DEFAULT_STALL,
        };
        let err = tools
            .probe(Path::new("/x/final.mxf"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/ffprobe"), "{err}");
        assert!(err.contains("needed for /x/final.mxf"), "{err}");
        assert!(err.contains("install the Debian package"), "{err}");
    }

    #[test]
    fn paths_go_to_ffmpeg_as_file_urls() {
        assert_eq!(file_url(Path::new("/a/-x y.mp4")), "file:/a/-x y.mp4");
    }
}
