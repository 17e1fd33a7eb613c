//! Helpers for end-to-end tests: running `kairos`, drawing images with metadata, plain HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use image::{DynamicImage, Rgb, RgbImage};

/// Runs `kairos --data DATA ARGS…` and returns its output.
pub fn kairos(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("KAIROS_MODELS")
        .output()
        .expect("the kairos binary runs")
}

/// Like [`kairos`], asserting success, returning stdout.
pub fn kairos_ok(data: &Path, args: &[&str]) -> String {
    let out = kairos(data, args);
    assert!(
        out.status.success(),
        "kairos {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `kairos`, asserting that it fails with `needle` in its error output.
pub fn kairos_fails_saying(data: &Path, args: &[&str], needle: &str) {
    let out = kairos(data, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kairos {args:?} succeeded");
    assert!(stderr.contains(needle), "kairos {args:?}: {stderr}");
}

/// `kairos search … --json` parsed.
pub fn search_json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&kairos_ok(data, &all)).expect("search prints JSON")
}

/// File names of the hits, best first.
pub fn hit_names(result: &serde_json::Value) -> Vec<String> {
    result["hits"]
        .as_array()
        .expect("hits array")
        .iter()
        .map(|h| {
            let p = h["path"].as_str().expect("path");
            Path::new(p)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// A textured scene, different for every seed.
pub fn scene(w: u32, h: u32, seed: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        let s = seed as f32;
        let v = ((fx * 9.0 + s).sin() * (fy * 6.0 + s * 0.7).cos() * 120.0 + 128.0) as u8;
        Rgb([
            v,
            ((fx + s * 0.1).fract() * 255.0) as u8,
            ((fy * 3.0 + s * 0.2).fract() * 255.0) as u8,
        ])
    }))
}

/// JPEG bytes of an image.
pub fn jpeg(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.to_rgb8()
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 90,
        ))
        .unwrap();
    out
}

/// A JPEG carrying an XMP packet with title, caption (in `lang`) and keywords, as archive
/// photos carry their captions.
pub fn jpeg_with_xmp(
    img: &DynamicImage,
    title: &str,
    caption: &str,
    lang: &str,
    keywords: &[&str],
) -> Vec<u8> {
    use img_parts::Bytes;
    use img_parts::jpeg::{Jpeg, JpegSegment, markers};
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let subjects: String = keywords
        .iter()
        .map(|k| format!("<rdf:li>{}</rdf:li>", esc(k)))
        .collect();
    let xmp = format!(
        r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">{}</rdf:li></rdf:Alt></dc:title><dc:description><rdf:Alt><rdf:li xml:lang="{lang}">{}</rdf:li></rdf:Alt></dc:description><dc:subject><rdf:Bag>{subjects}</rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#,
        esc(title),
        esc(caption)
    );
    let mut j = Jpeg::from_bytes(Bytes::from(jpeg(img))).unwrap();
    let mut contents = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
    contents.extend_from_slice(xmp.as_bytes());
    j.segments_mut().insert(
        1,
        JpegSegment::new_with_contents(markers::APP1, Bytes::from(contents)),
    );
    let mut out = Vec::new();
    j.encoder().write_to(&mut out).unwrap();
    out
}

/// Writes a file, creating its folder.
pub fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(path, bytes).unwrap();
    path.to_path_buf()
}

/// A plain HTTP/1.1 exchange with a local server: (status, body).
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_head(addr, method, path, content_type, body);
    (status, body)
}

/// Like [`http`], with the response head (status line and headers, lower-cased) as well.
pub fn http_with_head(
    addr: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| vec![("Content-Type", ct)])
        .unwrap_or_default();
    http_request(addr, method, path, &headers, body)
}

/// An HTTP/1.1 exchange with extra request headers: (status, head, body).
pub fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect to kairos serve");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head.to_ascii_lowercase(), body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A multipart/form-data body: (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "kairos-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A running `kairos serve`, stopped when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(data: &std::path::Path) -> Server {
    serve_with(data, &[])
}

/// `kairos serve` with extra flags (`--private`, `--max-upload-mb 1`…).
pub fn serve_with(data: &std::path::Path, extra: &[&str]) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .args(["--data", data.to_str().unwrap(), "serve", "--addr", &addr])
        .args(extra)
        .env_remove("KAIROS_MODELS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(&server.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "kairos serve did not start on {}",
            server.addr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

/// Where `scripts/fetch-models.sh` leaves the pinned wheels (`.ci/run` runs it).
pub fn wheels_dir() -> PathBuf {
    std::env::var_os("KAIROS_WHEELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var("HOME").unwrap_or_else(|_| ".".into()))
                .join(".cache/kairos/wheels")
        })
}

/// Runs ffmpeg quietly (overwriting outputs), failing the test with its stderr.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (install Debian's ffmpeg; .ci/run does)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A media file's duration in seconds, as ffprobe reads it.
pub fn media_seconds(path: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (install Debian's ffmpeg; .ci/run does)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe gave no duration for {}: {text:?}", path.display()))
}
