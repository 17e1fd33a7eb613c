//! Bulk ingest at archive scale: killed and resumed, cancelled from another process, globs,
//! dry runs, manifests, reports, retries, and hostile input. No model is installed: what is
//! tested is the pipeline and the stores, with the real catalog, indexes and thumbnails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

/// `n` small distinct PNG images in ten nested folders; their paths.
fn tree(root: &Path, n: u32) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let img = scene(24, 24, i + 1);
            let mut bytes = Vec::new();
            img.write_to(
                &mut std::io::Cursor::new(&mut bytes),
                image::ImageFormat::Png,
            )
            .unwrap();
            write(
                &root.join(format!("d{}/e{}/img{i:04}.png", i % 10, i % 3)),
                &bytes,
            )
        })
        .collect()
}

fn spawn_ingest(data: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kairos"))
        .arg("--data")
        .arg(data)
        .arg("ingest")
        .args(args)
        .env_remove("KAIROS_MODELS")
        .stdout(Stdio::piped())
        .stderr(
            fs_err::File::create(stderr_log(data))
                .unwrap()
                .into_parts()
                .0,
        )
        .spawn()
        .expect("kairos starts")
}

/// Where a spawned ingest's stderr goes, for the message when it ends too early.
fn stderr_log(data: &Path) -> PathBuf {
    data.with_extension("stderr.log")
}

/// The newest job, as `kairos jobs show last --json` gives it.
fn last_job(data: &Path) -> serde_json::Value {
    json(kairos_ok(data, &["jobs", "show", "last", "--json"]).as_bytes())["job"].clone()
}

/// Waits until the newest job has finished `files` files (so a kill lands mid-job).
fn wait_for_progress(data: &Path, files: i64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if data.join("catalog.db").exists() {
            let out = kairos(data, &["jobs", "show", "last", "--json"]);
            if out.status.success() {
                let job = &json(&out.stdout)["job"];
                let done = ["done", "skipped", "failed"]
                    .iter()
                    .map(|k| job[k].as_i64().unwrap_or(0))
                    .sum::<i64>();
                if done >= files {
                    return;
                }
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the ingest ended ({status}) before it was interrupted; its stderr:\n{}",
                fs_err::read_to_string(stderr_log(data)).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A pseudo-random number from the clock (the kill moments need not be reproducible: every
/// moment must be safe).
fn jitter(max_ms: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    (nanos.wrapping_mul(6364136223846793005) >> 33) % max_ms.max(1)
}

#[test]
fn killed_ingests_resume_until_every_file_is_indexed_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let files = tree(&media, 1000);
    let data = tmp.path().join("data");
    let m = media.to_str().unwrap();
    let args = ["--batch-size", "8", m];
    // KAIROS_LONG_TESTS=1 kills it 20 times; by default 3.
    let kills = if std::env::var_os("KAIROS_LONG_TESTS").is_some() {
        20
    } else {
        3
    };
    for k in 0..kills {
        let mut child = spawn_ingest(&data, &args);
        // The first kill waits for committed files; the others land anywhere, start-up included.
        if k == 0 {
            wait_for_progress(&data, 40, &mut child);
        } else {
            std::thread::sleep(Duration::from_millis(50 + jitter(400)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // The archive opens, and the job reads interrupted, not running.
    let job = last_job(&data);
    assert_eq!(job["status"], "interrupted", "{job}");
    // Running the same command again goes on with that job to the end.
    let out = kairos(&data, &["ingest", "--json", "--batch-size", "8", m]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(&out.stdout);
    assert!(summary["resumed"].as_u64().unwrap() >= 40, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    let jobs = json(kairos_ok(&data, &["jobs", "list", "--json"]).as_bytes());
    assert_eq!(
        jobs.as_array().unwrap().len(),
        1,
        "one job, resumed: {jobs}"
    );
    let job = last_job(&data);
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["total"], 1000);
    assert_eq!(job["done"], 1000, "every file indexed by this job: {job}");
    // Exactly once: one ready asset and one text document per file, nothing else anywhere.
    let check =
        json(kairos_ok(&data, &["doctor", "--check", "--json"]).as_bytes())["check"].clone();
    assert_eq!(check["assets"], files.len(), "{check}");
    assert_eq!(check["ready"], files.len(), "{check}");
    assert_eq!(check["text_documents"], files.len(), "{check}");
    for list in [
        "unfinished",
        "text_orphans",
        "text_mismatched",
        "vector_orphans",
        "vector_strays",
        "thumbnail_orphans",
        "thumbnails_missing",
        "interrupted_jobs",
    ] {
        assert_eq!(check[list], serde_json::json!([]), "{list}: {check}");
    }
    // Every file is searchable by its name.
    let hits = search_json(&data, &["--mode", "keyword", "img0999", "--limit", "3"]);
    assert_eq!(hit_names(&hits), ["img0999.png"]);
}

#[test]
fn a_job_is_cancelled_from_another_process_and_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    tree(&media, 600);
    let data = tmp.path().join("data");
    let m = media.to_str().unwrap();
    let mut child = spawn_ingest(&data, &["--json", "--batch-size", "2", "--jobs", "1", m]);
    wait_for_progress(&data, 10, &mut child);
    let said = kairos_ok(&data, &["jobs", "cancel", "last"]);
    assert!(said.contains("asked to stop"), "{said}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "a cancelled ingest exits 3");
    let summary = json(&out.stdout);
    assert_eq!(summary["cancelled"], true, "{summary}");
    let job = last_job(&data);
    assert_eq!(job["status"], "cancelled", "{job}");
    let done = job["done"].as_i64().unwrap();
    assert!((10..600).contains(&done), "{job}");
    // Cancelling a finished job is refused; --resume goes on with the cancelled one.
    kairos_fails_saying(&data, &["jobs", "cancel", "last"], "nothing to cancel");
    let out = kairos_ok(&data, &["ingest", "--resume", "--json"]);
    let summary = json(out.as_bytes());
    assert_eq!(summary["resumed"].as_i64(), Some(done), "{summary}");
    assert_eq!(summary["indexed"].as_i64(), Some(600 - done), "{summary}");
    assert_eq!(last_job(&data)["status"], "done");
    kairos_fails_saying(
        &data,
        &["ingest", "--resume"],
        "no interrupted, cancelled or failed ingest job",
    );
}

#[test]
fn globs_dry_run_manifest_report_and_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let img = |seed| jpeg(&scene(64, 48, seed));
    write(
        &media.join("a.jpg"),
        &jpeg_with_xmp(&scene(64, 48, 1), "Own title", "Own caption", "en", &[]),
    );
    write(&media.join("b.jpg"), &img(2));
    write(&media.join("proxies/b-low.jpg"), &img(3));
    write(&media.join("raw/c.jpg"), &img(4));
    write(&media.join("deep/er/e.jpg"), &img(5));
    write(&media.join("f.jpg"), &img(6)[..300]);
    let manifest = write(
        &tmp.path().join("records.csv"),
        "path,title,caption,keywords,date,shelf\n\
         media/a.jpg,Catalogue title,Sprinters at the start of the hundred metres,athletics;sprint,1936-08-03,B1\n\
         e.jpg,Rowing eight,A rowing eight crosses the line,,1948,B2\n"
            .as_bytes(),
    );
    let data = tmp.path().join("data");
    let m = media.to_str().unwrap();
    let mf = manifest.to_str().unwrap();
    let walk = [
        "--exclude",
        "proxies",
        "--exclude",
        "raw/**",
        "--manifest",
        mf,
    ];

    // A dry run lists what would happen and writes nothing.
    let plan = json(
        kairos_ok(
            &data,
            &[&["ingest", "--dry-run", "--json", m][..], &walk[..]].concat(),
        )
        .as_bytes(),
    );
    let planned: Vec<String> = plan["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            n[0].as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(planned, ["a.jpg", "b.jpg", "e.jpg", "f.jpg"], "{plan}");
    assert_eq!(plan["with_record"], 2, "{plan}");
    let jobs = json(kairos_ok(&data, &["jobs", "list", "--json"]).as_bytes());
    assert_eq!(jobs, serde_json::json!([]), "a dry run starts no job");
    let only_e = json(
        kairos_ok(
            &data,
            &["ingest", "--dry-run", "--json", "--include", "deep/**", m],
        )
        .as_bytes(),
    );
    assert_eq!(only_e["new"].as_array().unwrap().len(), 1, "{only_e}");
    kairos_fails_saying(&data, &["ingest", "--include", "[", m], "--include: \"[\"");
    let bad = write(
        &tmp.path().join("bad.csv"),
        b"path,date\na.jpg,1936\nb.jpg,03/08/1936\n",
    );
    kairos_fails_saying(
        &data,
        &["ingest", "--manifest", bad.to_str().unwrap(), m],
        "line 3, field date",
    );

    // The real ingest, with a report.
    let report = tmp.path().join("report.csv");
    let out = kairos(
        &data,
        &[
            &["ingest", "--json", "--report", report.to_str().unwrap(), m][..],
            &walk[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(2), "f.jpg is cut short");
    let rows = fs_err::read_to_string(&report).unwrap();
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines[0], "path,status,asset_id,error");
    assert_eq!(lines.len(), 5, "{rows}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("f.jpg,failed,,") && l.contains("f.jpg")),
        "{rows}"
    );
    // The manifest's record wins over the file's own metadata, and is searchable.
    let hits = search_json(&data, &["--mode", "keyword", "sprinters hundred"]);
    assert_eq!(hit_names(&hits), ["a.jpg"]);
    let hit = &hits["hits"][0];
    assert_eq!(hit["title"], "Catalogue title", "{hit}");
    let hits = search_json(&data, &["--mode", "keyword", "rowing"]);
    assert_eq!(
        hit_names(&hits),
        ["e.jpg"],
        "a bare file name matches at any depth"
    );
    let hits = search_json(
        &data,
        &[
            "--mode",
            "keyword",
            "rowing",
            "--from",
            "1948-01-01",
            "--to",
            "1948-12-31",
        ],
    );
    assert_eq!(
        hit_names(&hits),
        ["e.jpg"],
        "the manifest's date is the capture date"
    );

    // A changed record reaches an unchanged file on the next run.
    fs_err::write(&manifest, "path,title\nmedia/a.jpg,Corrected title\n").unwrap();
    let out = kairos(&data, &[&["ingest", "--json", m][..], &walk[..]].concat());
    assert_eq!(out.status.code(), Some(2), "f.jpg still fails");
    let hits = search_json(&data, &["--mode", "keyword", "corrected"]);
    assert_eq!(hit_names(&hits), ["a.jpg"]);

    // The cut file is replaced; retrying the failed files indexes it.
    write(&media.join("f.jpg"), &img(6));
    let out = kairos_ok(&data, &["jobs", "retry-failed", "last", "--json"]);
    let summary = json(out.as_bytes());
    assert_eq!(
        (summary["indexed"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(0)),
        "{summary}"
    );
    let shown = kairos_ok(&data, &["jobs", "show", "last", "--files", "indexed"]);
    assert!(shown.contains("f.jpg"), "{shown}");
    let check = kairos(&data, &["doctor", "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// CRC-32 (IEEE), for the forged PNG header.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small PNG whose header claims 60000 × 60000 pixels: 10 GiB once decoded.
fn decompression_bomb() -> Vec<u8> {
    let mut bytes = Vec::new();
    scene(8, 8, 9)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    // Signature (8), IHDR length (4), "IHDR" (4), width (4), height (4) …, CRC after 13 bytes.
    bytes[16..20].copy_from_slice(&60000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

#[test]
fn hostile_files_each_fail_alone_and_the_rest_is_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    let good = |seed| jpeg(&scene(64, 48, seed));
    let mut deep = media.clone();
    for i in 0..60 {
        deep.push(format!("level{i}"));
    }
    let goods = [
        write(&deep.join("deep.jpg"), &good(1)),
        write(&media.join("-rf.jpg"), &good(2)),
        write(&media.join("quote\"d 'name'.jpg"), &good(3)),
        write(&media.join("new\nline.jpg"), &good(4)),
        write(&media.join("ünïcödé 東京.jpg"), &good(5)),
        // A PNG named .jpg is still a good image: the content decides.
        write(&media.join("really-a-png.jpg"), &{
            let mut b = Vec::new();
            scene(32, 32, 6)
                .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
                .unwrap();
            b
        }),
    ];
    let mut bads = vec![
        write(&media.join("bomb.png"), &decompression_bomb()),
        write(&media.join("zero.jpg"), b""),
        write(&media.join("cut.jpg"), &good(7)[..500]),
        write(&media.join("text.jpg"), b"just some text, not an image"),
        write(&media.join("garbage.mp4"), &[0x5a; 4096]),
    ];
    // Named pipes with media names, one in the tree and one named on the command line: opening
    // one with no writer waits forever.
    let pipe = media.join("pipe.jpg");
    let named_pipe = tmp.path().join("named-pipe.mp4");
    for p in [&pipe, &named_pipe] {
        let made = Command::new("mkfifo").arg(p).status().unwrap();
        assert!(made.success(), "mkfifo {}", p.display());
        bads.push(p.clone());
    }
    // A file its owner may not read. Root reads it anyway: then kairos runs without the
    // capabilities that override file permissions.
    let locked = write(&media.join("locked.jpg"), &good(8));
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let drop_caps = ["--bounding-set=-dac_override,-dac_read_search"];
    let privileged = fs_err::read(&locked).is_ok();
    let mut command = if privileged {
        let mut c = Command::new("setpriv");
        c.args(drop_caps).arg(env!("CARGO_BIN_EXE_kairos"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_kairos"))
    };
    if privileged {
        let denied = Command::new("setpriv")
            .args(drop_caps)
            .arg("cat")
            .arg(&locked)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            !denied.success(),
            "setpriv takes away root's right to read any file"
        );
    }
    bads.push(locked);
    let data = tmp.path().join("data");
    let started = Instant::now();
    let out = command
        .arg("--data")
        .arg(&data)
        .args(["ingest", "--json"])
        .arg(&media)
        .arg(&named_pipe)
        .env_remove("KAIROS_MODELS")
        .output()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "no file makes the ingest hang"
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(&out.stdout);
    assert_eq!(summary["indexed"], goods.len(), "{summary}");
    assert_eq!(summary["failed"], bads.len(), "{summary}");
    let failures = summary["failures"].as_array().unwrap();
    for bad in &bads {
        let name = bad.display().to_string();
        let f = failures
            .iter()
            .find(|f| f[0] == name.as_str())
            .unwrap_or_else(|| panic!("{name} failed alone: {summary}"));
        assert!(
            f[1].as_str().unwrap().contains(&name),
            "the error names the file: {f}"
        );
    }
    let reason = |name: &str| {
        let f = failures
            .iter()
            .find(|f| f[0].as_str().unwrap().ends_with(name))
            .unwrap();
        f[1].as_str().unwrap().to_string()
    };
    assert!(
        reason("bomb.png").contains("60000"),
        "the bomb is refused for its size: {summary}"
    );
    for name in ["pipe.jpg", "named-pipe.mp4"] {
        assert!(
            reason(name).contains("not a regular file"),
            "{name}: {summary}"
        );
    }
    assert!(
        reason("locked.jpg").contains("ermission denied"),
        "{summary}"
    );
    let check = kairos(&data, &["doctor", "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let hits = search_json(&data, &["--mode", "keyword", "rf"]);
    assert_eq!(hit_names(&hits), ["-rf.jpg"]);
}

#[test]
fn doctor_check_finds_and_repair_fixes_divergence() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    tree(&media, 20);
    let data = tmp.path().join("data");
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    kairos_ok(&data, &["doctor", "--check"]);
    // Damage: a thumbnail file removed, a stray one added, an asset dropped from the catalog
    // behind the indexes' back (as a delete interrupted half-way would leave it).
    let db = data.join("catalog.db");
    let sqlite = |sql: &str| -> String {
        let out = Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .expect("sqlite3 runs (scripts/system-packages.sh --tests installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    // The newest asset loses its thumbnail file; the oldest leaves the catalog only.
    let thumb = sqlite(
        "SELECT thumbnail FROM segments WHERE asset_id = (SELECT id FROM assets ORDER BY id DESC LIMIT 1)",
    );
    fs_err::remove_file(data.join(&thumb)).unwrap();
    write(&data.join("thumbnails/zz/stray.jpg"), b"x");
    sqlite(
        "DELETE FROM segments WHERE asset_id = (SELECT id FROM assets ORDER BY id LIMIT 1); \
         DELETE FROM assets WHERE id = (SELECT id FROM assets ORDER BY id LIMIT 1);",
    );
    let out = kairos(&data, &["doctor", "--check", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a divergent archive fails the check"
    );
    let check = json(&out.stdout)["check"].clone();
    assert_eq!(
        check["thumbnails_missing"].as_array().unwrap().len(),
        1,
        "{check}"
    );
    assert!(
        !check["thumbnail_orphans"].as_array().unwrap().is_empty(),
        "{check}"
    );
    assert_eq!(
        check["text_orphans"].as_array().unwrap().len(),
        1,
        "{check}"
    );
    let repaired = kairos_ok(&data, &["doctor", "--repair"]);
    assert!(repaired.contains("repaired:"), "{repaired}");
    let again = kairos(&data, &["doctor", "--check"]);
    assert!(
        again.status.success(),
        "clean after the repair: {}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (e.g. `1m`) at `at`; `None` when this user may not mount.
    fn mount(at: &Path, size: &str) -> Option<Self> {
        fs_err::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at.to_path_buf()))
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_ingest_cleanly_and_it_resumes_once_space_is_freed() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    tree(&media, 300);
    let Some(disk) = SmallDisk::mount(&tmp.path().join("disk"), "1m") else {
        // CI runs as root (`.ci/run` installs packages); a user without mount rights cannot
        // make a small disk.
        eprintln!("skipped: this user cannot mount a tmpfs");
        return;
    };
    let data = disk.0.join("data");
    let m = media.to_str().unwrap();
    let out = kairos(&data, &["ingest", m]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "1 MiB cannot hold the archive");
    assert!(
        stderr.contains("disk is full") || stderr.contains("No space left on device"),
        "a clear error: {stderr}"
    );
    // The archive still opens; the job failed with the reason, or, when even that could not be
    // written, reads interrupted (its process is gone). Either resumes.
    let job = last_job(&data);
    assert!(
        job["status"] == "failed" || job["status"] == "interrupted",
        "{job}"
    );
    assert!(job["done"].as_i64().unwrap() < 300, "{job}");
    disk.grow("64m");
    let out = kairos(&data, &["ingest", "--resume", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_job(&data)["status"], "done");
    let check =
        json(kairos_ok(&data, &["doctor", "--check", "--json"]).as_bytes())["check"].clone();
    assert_eq!(check["ready"], 300, "{check}");
    assert_eq!(check["text_documents"], 300, "{check}");
}

/// Waits until `sql` on the catalog prints `want`.
fn wait_for_catalog(data: &Path, sql: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("sqlite3")
            .arg(data.join("catalog.db"))
            .arg(sql)
            .output()
            .expect("sqlite3 runs (scripts/system-packages.sh --tests installs it)");
        let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: waited for {want:?}, have {got:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn watch_ingests_new_files_marks_deleted_ones_missing_and_follows_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    write(&media.join("first.jpg"), &jpeg(&scene(64, 48, 1)));
    let media = media.canonicalize().unwrap();
    let data = tmp.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kairos"))
        .arg("--data")
        .arg(&data)
        .args(["watch", "--settle-ms", "300", "--exclude", "*.tmp.jpg"])
        .arg(&media)
        .env_remove("KAIROS_MODELS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let caught_up = lines.next().unwrap().unwrap();
    assert!(caught_up.starts_with("caught up: 1 indexed"), "{caught_up}");
    let watching = lines.next().unwrap().unwrap();
    assert!(watching.starts_with("watching "), "{watching}");

    // A new file, written in two steps, is ingested once it settles.
    let new = media.join("sub/second.jpg");
    let bytes = jpeg(&scene(64, 48, 2));
    fs_err::create_dir_all(new.parent().unwrap()).unwrap();
    fs_err::write(&new, &bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    fs_err::write(&new, &bytes).unwrap();
    write(&media.join("ignored.tmp.jpg"), &jpeg(&scene(64, 48, 3)));
    let count = "SELECT COUNT(*) FROM assets WHERE status = 'ready'";
    wait_for_catalog(&data, count, "2");
    let failed = "SELECT COUNT(*) FROM assets WHERE status = 'failed'";
    wait_for_catalog(&data, failed, "0");

    // Deleted: missing, not dropped, and out of search results.
    fs_err::remove_file(media.join("first.jpg")).unwrap();
    let first = format!(
        "SELECT status FROM assets WHERE path = '{}'",
        media.join("first.jpg").display()
    );
    wait_for_catalog(&data, &first, "missing");
    let hits = search_json(&data, &["--mode", "keyword", "first"]);
    assert!(hit_names(&hits).is_empty(), "{hits}");

    // Moved: the same asset, ready at its new path, found by its new name.
    let moved = media.join("renamed.jpg");
    fs_err::rename(&new, &moved).unwrap();
    let at_new = format!(
        "SELECT status FROM assets WHERE path = '{}'",
        moved.display()
    );
    wait_for_catalog(&data, &at_new, "ready");
    wait_for_catalog(&data, "SELECT COUNT(*) FROM assets", "2");
    let hits = search_json(&data, &["--mode", "keyword", "renamed"]);
    assert_eq!(hit_names(&hits), ["renamed.jpg"]);
    let check = kairos(&data, &["doctor", "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}
