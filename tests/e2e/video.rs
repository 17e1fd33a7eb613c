//! Videos through the real ffmpeg: shots whose truth is known (generated with `lavfi` sources of
//! known lengths), speech at known offsets (espeak-ng through the real Whisper base), containers
//! and codecs, hostile names, bad files, range requests, moments and clip export.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::speech::archive_with_whisper;
use super::support::*;

/// Lengths of the four generated shots (seconds), at 25 frames per second.
const SHOTS: [(&str, f64); 4] = [
    ("testsrc2", 3.0),
    ("smptebars", 2.4),
    ("mandelbrot", 2.0),
    ("testsrc", 3.0),
];
const FRAME_MS: i64 = 40;

/// Where the generated shots cut (ms).
fn cuts() -> Vec<i64> {
    let mut at = 0.0;
    SHOTS[..SHOTS.len() - 1]
        .iter()
        .map(|(_, len)| {
            at += len;
            (at * 1000.0f64).round() as i64
        })
        .collect()
}

/// The four shots, 320×180 at 25 fps, with a tone as audio unless `audio` is false, encoded with
/// `codec` into `out`.
fn shots_video(out: &Path, codec: &[&str], audio: bool) {
    shots_video_with(out, codec, audio, "");
}

/// [`shots_video`] with `filter` (ending in a comma) applied to the pictures before encoding.
fn shots_video_with(out: &Path, codec: &[&str], audio: bool, filter: &str) {
    let mut args: Vec<String> = Vec::new();
    for (source, _) in SHOTS {
        args.extend(["-f".into(), "lavfi".into(), "-i".into()]);
        args.push(format!("{source}=s=320x180:r=25"));
    }
    let total: f64 = SHOTS.iter().map(|s| s.1).sum();
    let mut graph = String::new();
    for (i, (_, len)) in SHOTS.iter().enumerate() {
        graph.push_str(&format!(
            "[{i}:v]trim=duration={len},setpts=PTS-STARTPTS[v{i}];"
        ));
    }
    for i in 0..SHOTS.len() {
        graph.push_str(&format!("[v{i}]"));
    }
    graph.push_str(&format!(
        "concat=n={}:v=1:a=0,{filter}format=yuv420p[v]",
        SHOTS.len()
    ));
    if audio {
        args.extend(["-f".into(), "lavfi".into(), "-i".into()]);
        args.push(format!("sine=f=440:d={total}"));
    }
    args.extend(["-filter_complex".into(), graph, "-map".into(), "[v]".into()]);
    if audio {
        args.extend(["-map".into(), format!("{}:a", SHOTS.len())]);
    }
    args.extend(codec.iter().map(|s| s.to_string()));
    args.push(out.to_str().unwrap().to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
}

/// `kairos moments --json` of a file.
fn moments(data: &Path, file: &Path) -> serde_json::Value {
    json(kairos_ok(data, &["moments", "--json", file.to_str().unwrap()]).as_bytes())
}

/// Start times (ms) of the shots after the first.
fn cut_times(moments: &serde_json::Value) -> Vec<i64> {
    moments["moments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "shot")
        .map(|m| m["start_ms"].as_i64().unwrap())
        .filter(|&s| s > 0)
        .collect()
}

#[test]
fn hard_cuts_are_found_within_a_frame_in_every_container() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    let formats: [(&str, &[&str]); 7] = [
        (
            "mp4",
            &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
        ),
        ("mov", &["-c:v", "mpeg4", "-q:v", "3", "-c:a", "pcm_s16le"]),
        (
            "mkv",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "400k",
                "-c:a",
                "libopus",
            ],
        ),
        (
            "webm",
            &[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "400k",
                "-c:a",
                "libvorbis",
            ],
        ),
        ("avi", &["-c:v", "mpeg4", "-q:v", "3", "-c:a", "libmp3lame"]),
        ("ts", &["-c:v", "mpeg2video", "-q:v", "3", "-c:a", "mp2"]),
        // Broadcast archives: interlaced MPEG-2 with PCM in MXF.
        (
            "mxf",
            &[
                "-c:v",
                "mpeg2video",
                "-q:v",
                "3",
                "-flags",
                "+ilme+ildct",
                "-top",
                "1",
                "-c:a",
                "pcm_s16le",
                "-ar",
                "48000",
            ],
        ),
    ];
    for (ext, codec) in formats {
        let filter = if ext == "mxf" { "setfield=tff," } else { "" };
        shots_video_with(&media.join(format!("shots.{ext}")), codec, true, filter);
    }
    let data = tmp.path().join("data");
    let out = kairos(&data, &["ingest", "--json", media.to_str().unwrap()]);
    let summary = json(&out.stdout);
    assert_eq!(summary["indexed"], 7, "{summary}");
    let want = cuts();
    for (ext, _) in formats {
        let file = media.join(format!("shots.{ext}"));
        let m = moments(&data, &file);
        assert_eq!(m["kind"], "video", "{ext}: {m}");
        let got = cut_times(&m);
        assert_eq!(got.len(), want.len(), "{ext}: cuts {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= FRAME_MS,
                "{ext}: a cut at {g} ms, want {w} ms ± 1 frame ({got:?})"
            );
        }
        let duration = m["duration_ms"].as_i64().unwrap();
        assert!((duration - 10_400).abs() <= 100, "{ext}: {duration} ms");
        // Every shot has a keyframe thumbnail.
        for shot in m["moments"].as_array().unwrap() {
            assert!(shot["thumbnail"].is_string(), "{ext}: {shot}");
        }
    }
}

#[test]
fn fades_and_dissolves_end_shots_in_the_transition() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    // testsrc2 fades out over 1 s (2.0–3.0 s) and smptebars fades in over 1 s (3.0–4.0 s); then a
    // 1 s dissolve from smptebars into testsrc starting at 6.0 s.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=3",
        "-f",
        "lavfi",
        "-i",
        "smptebars=s=320x180:r=25:d=4",
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x180:r=25:d=4",
        "-filter_complex",
        "[0:v]fade=t=out:st=2:d=1[a];[1:v]fade=t=in:st=0:d=1[b];[a][b]concat=n=2:v=1:a=0,settb=1/25[ab];\
         [2:v]settb=1/25[c];[ab][c]xfade=transition=fade:duration=1:offset=6,format=yuv420p[v]",
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        media.join("transitions.mp4").to_str().unwrap(),
    ]);
    let data = tmp.path().join("data");
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    let m = moments(&data, &media.join("transitions.mp4"));
    let shots: Vec<(i64, i64)> = m["moments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "shot")
        .map(|s| {
            (
                s["start_ms"].as_i64().unwrap(),
                s["end_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shots.len(), 3, "{shots:?}");
    // The fade through black: the first shot ends in the fade-out, the second starts in the fade-in.
    assert!((2_000..=3_000).contains(&shots[0].1), "{shots:?}");
    assert!((3_000..=4_000).contains(&shots[1].0), "{shots:?}");
    // The dissolve (6.0–7.0 s): one boundary inside it.
    assert!((5_800..=7_200).contains(&shots[2].0), "{shots:?}");
    assert_eq!(shots[1].1, shots[2].0);
}

#[test]
fn a_long_static_shot_gets_a_keyframe_every_n_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "smptebars=s=320x180:r=25:d=35",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-pix_fmt",
        "yuv420p",
        media.join("static.mp4").to_str().unwrap(),
    ]);
    let data = tmp.path().join("data");
    kairos_ok(
        &data,
        &["ingest", "--keyframe-every", "10", media.to_str().unwrap()],
    );
    let m = moments(&data, &media.join("static.mp4"));
    let kinds: Vec<(String, i64, i64)> = m["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["start_ms"].as_i64().unwrap(),
                s["end_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("shot", 0, 35_000),
        ("keyframe", 10_000, 20_000),
        ("keyframe", 20_000, 30_000),
        ("keyframe", 30_000, 35_000),
    ];
    assert_eq!(kinds.len(), want.len(), "{kinds:?}");
    for ((k, s, e), (wk, ws, we)) in kinds.iter().zip(want) {
        assert_eq!(k, wk, "{kinds:?}");
        assert!(
            (s - ws).abs() <= FRAME_MS && (e - we).abs() <= FRAME_MS,
            "{kinds:?}"
        );
    }
}

/// A video of two shots with a phrase spoken in each, at known offsets, in `dir` (the speech is
/// synthesised in `work`).
pub(super) fn speech_video(dir: &Path, work: &Path) -> PathBuf {
    let say = |name: &str, text: &str| {
        let wav = work.join(name);
        let out = Command::new("espeak-ng")
            .args(["-v", "en", "-s", "150", "-w", wav.to_str().unwrap(), text])
            .output()
            .expect("espeak-ng is installed (.ci/run installs it)");
        assert!(out.status.success());
        wav
    };
    let one = say(
        "one.wav",
        "The swimmer broke the world record in the relay final",
    );
    let two = say(
        "two.wav",
        "Heavy rain stopped the tennis match on the centre court",
    );
    let video = dir.join("match report.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x180:r=25:d=8",
        "-f",
        "lavfi",
        "-i",
        "smptebars=s=320x180:r=25:d=10",
        "-i",
        one.to_str().unwrap(),
        "-i",
        two.to_str().unwrap(),
        "-filter_complex",
        "[0:v][1:v]concat=n=2:v=1:a=0,format=yuv420p[v];\
         [2:a]adelay=1500:all=1[a1];[3:a]adelay=11000:all=1[a2];\
         [a1][a2]amix=inputs=2:duration=longest:normalize=0,apad=whole_dur=18[a]",
        "-map",
        "[v]",
        "-map",
        "[a]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-c:a",
        "aac",
        "-t",
        "18",
        video.to_str().unwrap(),
    ]);
    video
}

#[test]
fn spoken_words_find_their_moment_in_a_video_and_the_api_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    let video = speech_video(&media, tmp.path());
    // A video without an audio track goes through the same archive.
    shots_video(
        &media.join("silent.mp4"),
        &["-c:v", "libx264", "-preset", "veryfast"],
        false,
    );
    let data = archive_with_whisper(tmp.path());
    let summary = json(&kairos(&data, &["ingest", "--json", media.to_str().unwrap()]).stdout);
    assert_eq!(summary["indexed"], 2, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");

    let silent = moments(&data, &media.join("silent.mp4"));
    assert!(
        silent["moments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["kind"] == "shot"),
        "{silent}"
    );
    assert_eq!(cut_times(&silent).len(), 3);

    for (query, at_ms) in [
        ("world record relay", 1_500),
        ("rain stopped the tennis", 11_000),
    ] {
        let r = search_json(&data, &[query, "--group", "moments", "--limit", "3"]);
        let top = &r["moments"][0];
        assert!(
            top["path"].as_str().unwrap().ends_with("match report.mkv"),
            "{r}"
        );
        let start = top["start_ms"].as_i64().unwrap();
        assert!(
            (start - at_ms).abs() <= 1_000,
            "{query:?} found the moment at {start} ms, said at {at_ms} ms: {r}"
        );
        assert!(
            top["why"].as_array().unwrap().iter().any(|w| w == "speech"),
            "{r}"
        );
    }

    let server = serve(&data);
    let (status, body) = http(
        &server.addr,
        "POST",
        "/api/v1/search",
        Some("application/json"),
        br#"{"query": "tennis match", "group": "moments"}"#,
    );
    assert_eq!(status, 200);
    let r = json(&body);
    let top = &r["moments"][0];
    let asset_id = top["asset_id"].as_str().unwrap().to_string();
    // The spoken moment shows what was on screen when the words began.
    let thumb = top["thumbnail"].as_str().expect("a thumbnail URL");
    let (status, jpeg) = http(&server.addr, "GET", thumb, None, b"");
    assert_eq!(status, 200);
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");

    let (status, body) = http(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/moments"),
        None,
        b"",
    );
    assert_eq!(status, 200);
    let m = json(&body);
    let kinds: Vec<&str> = m["moments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "shot").count(), 2, "{m}");
    assert_eq!(kinds.iter().filter(|k| **k == "speech").count(), 2, "{m}");
    let shot = &m["moments"][0];
    assert_eq!(shot["start"], "00:00:00.000");
    assert!(shot["thumbnail"].is_string(), "{m}");

    // The original, seekable: a range request answers 206 with exactly that range.
    let size = fs_err::metadata(&video).unwrap().len();
    let bytes = fs_err::read(&video).unwrap();
    let (status, head, body) = http_request(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/media"),
        &[("Range", "bytes=100-299")],
        b"",
    );
    assert_eq!(status, 206, "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(&format!("content-range: bytes 100-299/{size}")),
        "{head}"
    );
    assert!(head.contains("content-type: video/x-matroska"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    assert_eq!(body, &bytes[100..300]);
    let (status, _, body) = http_request(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/media"),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(body.len() as u64, size);
    let (status, _, _) = http_request(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/media"),
        &[("Range", &format!("bytes={}-", size + 10))],
        b"",
    );
    assert_eq!(status, 416);
    let (status, body) = http(&server.addr, "GET", "/api/v1/assets/nope/media", None, b"");
    assert_eq!(status, 404);
    assert_eq!(json(&body)["error"]["code"], "asset_not_found");

    // A moment as a download of its own.
    let (s_ms, e_ms) = (
        top["start_ms"].as_i64().unwrap(),
        top["end_ms"].as_i64().unwrap(),
    );
    let (status, head, body) = http_request(
        &server.addr,
        "GET",
        &format!(
            "/api/v1/assets/{asset_id}/clip?from={:.3}&to={:.3}",
            s_ms as f64 / 1000.0,
            e_ms as f64 / 1000.0
        ),
        &[],
        b"",
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    let clip = tmp.path().join("moment.mp4");
    fs_err::write(&clip, &body).unwrap();
    let seconds = media_seconds(&clip);
    let want = (e_ms - s_ms) as f64 / 1000.0;
    assert!((seconds - want).abs() < 0.4, "{seconds} s, want {want} s");
    let (status, body) = http(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/clip?from=3&to=2"),
        None,
        b"",
    );
    assert_eq!(status, 400);
    assert_eq!(json(&body)["error"]["code"], "invalid_query");
    let (status, body) = http(
        &server.addr,
        "GET",
        &format!("/api/v1/assets/{asset_id}/clip?from=1&to=2&format=exe"),
        None,
        b"",
    );
    assert_eq!(status, 400);
    assert!(
        json(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("format")
    );

    // The transcript of a video is its speech.
    let vtt = kairos_ok(&data, &["transcript", video.to_str().unwrap()]);
    assert!(vtt.contains("tennis"), "{vtt}");
}

#[test]
fn hostile_names_and_bad_files_fail_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    let x264: &[&str] = &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"];
    let good = media.join("good.mp4");
    shots_video(&good, x264, true);
    for name in [
        "-leading dash.mp4",
        "quote's \"double\".mkv",
        "ünïcødé 日本 – final.mov",
        "a:b;c$(touch pwned).mp4",
    ] {
        // Copies differ by a trailing byte of padding so that none is a duplicate of another.
        let mut bytes = fs_err::read(&good).unwrap();
        bytes.extend(std::iter::repeat_n(0u8, name.len()));
        write(&media.join(name), &bytes);
    }
    // Bad files: empty, not a video at all, and cut short.
    write(&media.join("empty.mp4"), b"");
    write(&media.join("notes.mov"), b"these are not moving pictures\n");
    let mkv = media.join("whole.mkv");
    shots_video(&mkv, x264, true);
    let bytes = fs_err::read(&mkv).unwrap();
    write(&media.join("cut short.mkv"), &bytes[..bytes.len() / 3]);
    fs_err::remove_file(&mkv).unwrap();
    let mp4 = fs_err::read(&good).unwrap();
    write(&media.join("no index.mp4"), &mp4[..mp4.len() / 2]);

    let data = tmp.path().join("data");
    let out = kairos(&data, &["ingest", "--json", media.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "some files failed");
    let summary = json(&out.stdout);
    assert_eq!(summary["indexed"], 5, "{summary}");
    assert_eq!(summary["failed"], 4, "{summary}");
    assert!(
        !media.join("pwned").exists(),
        "a file name ran as a command"
    );
    let failures: Vec<(String, String)> = summary["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f[0].as_str().unwrap().to_string(),
                f[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let error_of = |name: &str| -> String {
        failures
            .iter()
            .find(|(p, _)| p.ends_with(name))
            .unwrap_or_else(|| panic!("{name} did not fail: {failures:?}"))
            .1
            .clone()
    };
    assert!(error_of("empty.mp4").contains("the file is empty"));
    let e = error_of("notes.mov");
    assert!(
        e.contains("notes.mov") && e.contains("ffprobe failed"),
        "{e}"
    );
    let e = error_of("cut short.mkv");
    assert!(e.contains("truncated"), "{e}");
    let e = error_of("no index.mp4");
    assert!(e.contains("moov atom not found"), "ffmpeg's own words: {e}");
    for name in [
        "-leading dash.mp4",
        "quote's \"double\".mkv",
        "ünïcødé 日本 – final.mov",
        "a:b;c$(touch pwned).mp4",
    ] {
        let m = moments(&data, &media.join(name));
        assert_eq!(cut_times(&m).len(), 3, "{name}: {m}");
    }
    // The catalog is consistent: every ready video has its shots, failures have none.
    let doctor = kairos_ok(&data, &["doctor"]);
    assert!(doctor.contains("9 (5 ready, 4 failed)"), "{doctor}");
    assert!(doctor.contains("ffmpeg    ffmpeg version"), "{doctor}");
}

#[test]
fn a_stuck_ffmpeg_is_killed_and_the_batch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    shots_video(
        &media.join("a.mp4"),
        &["-c:v", "libx264", "-preset", "veryfast"],
        false,
    );
    write(&media.join("b.png"), &{
        let mut png = std::io::Cursor::new(Vec::new());
        scene(64, 48, 3)
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        png.into_inner()
    });
    // An ffmpeg that hangs without a word (as one stuck on a network mount would).
    let stuck = tmp.path().join("stuck-ffmpeg");
    write(&stuck, b"#!/bin/sh\nexec sleep 60\n");
    Command::new("chmod")
        .args(["+x", stuck.to_str().unwrap()])
        .status()
        .unwrap();
    let data = tmp.path().join("data");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["--data", data.to_str().unwrap(), "ingest", "--json"])
        .arg(&media)
        .env("KAIROS_FFMPEG", &stuck)
        .env("KAIROS_FFMPEG_TIMEOUT", "2")
        .output()
        .unwrap();
    assert!(started.elapsed().as_secs() < 30);
    let summary = json(&out.stdout);
    assert_eq!(summary["indexed"], 1, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let error = summary["failures"][0][1].as_str().unwrap();
    assert!(
        error.contains("a.mp4") && error.contains("killed"),
        "{error}"
    );
}

#[test]
fn a_moment_is_exported_as_a_clip() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    fs_err::create_dir_all(&media).unwrap();
    let video = media.join("final.mp4");
    shots_video(
        &video,
        &["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"],
        true,
    );
    let data = tmp.path().join("data");
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    let clip = |from: &str, to: &str, out: &Path| -> String {
        kairos_ok(
            &data,
            &[
                "clip",
                video.to_str().unwrap(),
                "--from",
                from,
                "--to",
                to,
                "-o",
                out.to_str().unwrap(),
            ],
        )
    };
    // Mid-shot: re-encoded to start on the exact frame.
    let out = tmp.path().join("-clip one.mp4");
    let said = clip("00:00:01.5", "4", &out);
    assert!(said.contains("re-encoded"), "{said}");
    assert!(
        (media_seconds(&out) - 2.5).abs() < 0.1,
        "{}",
        media_seconds(&out)
    );
    // From the start (a key frame): the streams are copied.
    let out2 = tmp.path().join("opening.mkv");
    let said = clip("0", "3", &out2);
    assert!(said.contains("stream copy"), "{said}");
    // A copy ends on whole packets: a frame or two past the end is the price of losslessness.
    let d = media_seconds(&out2);
    assert!((2.85..=3.4).contains(&d), "{d}");
    // Refusals name the problem.
    let taken = out.to_str().unwrap();
    for (from, to, out, needle) in [
        ("1", "2", taken, "--overwrite"),
        ("1:75", "2", "x.mp4", "--from"),
        ("20", "30", "x.mp4", "past the end"),
    ] {
        kairos_fails_saying(
            &data,
            &[
                "clip",
                video.to_str().unwrap(),
                "--from",
                from,
                "--to",
                to,
                "-o",
                out,
            ],
            needle,
        );
    }
}
