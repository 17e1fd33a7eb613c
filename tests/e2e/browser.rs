//! The web UI in headless Chromium, driven over the WebDriver protocol (chromedriver, Debian
//! `chromium-driver`; plain JSON over HTTP, so no driver crate): search → a moment plays at its
//! timecode; an image dropped on the search box finds its look-alike; an upload becomes a job
//! that completes and is searchable. With `KAIROS_SCREENSHOTS=DIR` the pages are saved there
//! (`scripts/screenshots.sh` refreshes `docs/screenshots/`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::support::*;
use super::video::speech_video;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver with one headless Chromium session, both stopped when dropped.
struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = driver_http(
            &self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (Debian chromium-driver; .ci/run installs it)");
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
            }
        }}});
        let (status, body) = driver_http(&addr, "POST", "/session", caps.to_string().as_bytes());
        let reply = json(&body);
        assert_eq!(status, 200, "no browser session: {reply}");
        let session = reply["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            addr,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (status, reply) = driver_http(
            &self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_bytes(),
        );
        let reply = json(&reply);
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    fn goto(&self, url: &str) {
        eprintln!("browser: {url}");
        self.call("POST", "/url", json!({ "url": url }));
    }

    fn js(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        );
        v[ELEMENT].as_str().unwrap().to_string()
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.call("POST", &format!("/element/{el}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        );
    }

    /// Waits until `expression` (JavaScript) is truthy; returns its value.
    fn wait_for(&self, expression: &str, what: &str) -> Value {
        eprintln!("browser: waiting for {what}");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let v = self.js(&format!(
                "try {{ return {expression}; }} catch (e) {{ return null; }}"
            ));
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page: {}",
                self.js("return document.querySelector('main').innerText")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves the page under `$KAIROS_SCREENSHOTS/NAME.png` when that is set.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("KAIROS_SCREENSHOTS") else {
            return;
        };
        let png = base64(
            self.call("GET", "/screenshot", Value::Null)
                .as_str()
                .unwrap(),
        );
        write(&PathBuf::from(dir).join(format!("{name}.png")), &png);
    }
}

/// One WebDriver exchange: chromedriver keeps connections open, so the answer is read by its
/// `Content-Length`, with a timeout rather than to the end of the stream.
fn driver_http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to chromedriver");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).expect("chromedriver answers");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            if let Some(length) = length
                && raw.len() >= split + 4 + length
            {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (status, raw[split + 4..split + 4 + length].to_vec());
            }
        }
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head")
        + 4;
    let status = String::from_utf8_lossy(&raw[..split])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    (status, raw[split..].to_vec())
}

fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let v: Vec<u32> = chunk.iter().map(|&c| value(c) as u32).collect();
        let n = v
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (x << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if v.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if v.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

fn mp4_copy(mkv: &Path, mp4: &Path) {
    ffmpeg(&[
        "-i",
        mkv.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        mp4.to_str().unwrap(),
    ]);
}

#[test]
fn the_ui_plays_a_moment_at_its_timecode_finds_a_dropped_image_and_ingests_an_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let work = tmp.path().join("work");
    fs_err::create_dir_all(&work).unwrap();
    fs_err::create_dir_all(&media).unwrap();
    let mkv = speech_video(&work, &work);
    mp4_copy(&mkv, &media.join("match report.mp4"));
    write(
        &media.join("lake.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 5),
            "Lake",
            "A quiet lake at dawn",
            "en",
            &[],
        ),
    );
    write(
        &media.join("velo.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 2),
            "Vélo",
            "Le peloton dans la montée",
            "fr",
            &[],
        ),
    );
    let data = super::speech::archive_with_whisper(tmp.path());
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    let secret = kairos_ok(&data, &["keys", "create", "--name", "browser"])
        .trim()
        .to_string();
    let server = serve(&data);
    let base = format!("http://{}", server.addr);
    let browser = Browser::start();

    // Search by words said; a moment opens the player at its timecode.
    browser.goto(&format!("{base}/"));
    browser.wait_for("document.querySelector('#q')", "the search box");
    browser.type_into("#q", "rain stopped the tennis");
    browser.click("#search-form button[type=submit]");
    browser.wait_for(
        "[...document.querySelectorAll('.moment')].find((b) => b.innerText.includes('tennis'))",
        "a spoken moment in the results",
    );
    browser.screenshot("search");
    browser.js(
        "[...document.querySelectorAll('.moment')].find((b) => b.innerText.includes('tennis')).click()",
    );
    let at = browser.wait_for(
        "document.querySelector('#player').open && document.querySelector('#video').readyState >= 1 && document.querySelector('#video').currentTime",
        "the player at the moment",
    );
    let at = at.as_f64().unwrap();
    assert!(
        (10.5..14.0).contains(&at),
        "the player starts at {at} s, the words at 11 s"
    );
    browser.click("#close");

    // The asset page: transcript lines and shots, the player at ?t=.
    browser.click(".hit h3 a");
    browser.wait_for(
        "document.querySelectorAll('.cue').length >= 2",
        "the transcript",
    );
    assert!(
        browser
            .js("return document.querySelectorAll('.shot').length")
            .as_u64()
            .unwrap()
            >= 2
    );
    browser.js("window.scrollTo(0, 0)");
    browser.screenshot("asset");

    // An image dropped on the search box finds its look-alike (its thumbnail, a resized copy).
    browser.goto(&format!("{base}/#/"));
    browser.wait_for("document.querySelector('#drop')", "the search page");
    browser.js(
        "const ids = []; \
         fetch('/api/v1/assets?sort=name').then((r) => r.json()).then(async (list) => { \
           const lake = list.assets.find((a) => a.path.endsWith('lake.jpg')); \
           const blob = await (await fetch(`/api/v1/assets/${lake.id}/thumbnail`)).blob(); \
           const dt = new DataTransfer(); dt.items.add(new File([blob], 'example.jpg', { type: 'image/jpeg' })); \
           document.querySelector('#drop').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true })); });",
    );
    let first = browser.wait_for(
        "document.querySelector('.hit h3 a') && document.querySelector('#example img') && document.querySelector('.hit h3 a').innerText",
        "results for the dropped image",
    );
    assert_eq!(first, "Lake");

    // Upload with the key: the job completes and the file is searchable.
    let upload = write(
        &work.join("boxing final.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 9),
            "Final",
            "Boxer lands an uppercut",
            "en",
            &["boxing"],
        ),
    );
    browser.js(&format!("localStorage.setItem('kairos.key', '{secret}')"));
    browser.goto(&format!("{base}/#/upload"));
    browser.wait_for("document.querySelector('#upload')", "the upload page");
    browser.type_into("input[name=files]", upload.to_str().unwrap());
    browser.type_into("input[name=collection]", "Uploads");
    browser.click("#upload button");
    browser.wait_for(
        "[...document.querySelectorAll('tr[data-status]')].find((r) => r.dataset.status.startsWith('done') && r.innerText.includes('upload'))",
        "the upload job to finish",
    );
    browser.screenshot("upload");
    let r = search_json(&data, &["uppercut", "--collection", "Uploads"]);
    assert_eq!(hit_names(&r), ["boxing final.jpg"], "{r}");

    // Browse shows facets from the whole archive.
    browser.goto(&format!("{base}/#/browse"));
    browser.wait_for("document.querySelectorAll('.facet').length >= 3", "facets");
    browser.screenshot("browse");
}
