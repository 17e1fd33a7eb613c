//! `kairos bench ingest`: the bulk-ingest pipeline (walk, read and hash, decode, CLIP
//! preprocessing, batched embedding, commit to every store) over generated JPEG files, against
//! the encoder's own limit on preprocessed batches; resident memory sampled as the archive grows.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kairos_indexer::{Analyzers, IngestOptions, Ingester, Progress};
use kairos_models::ClipEncoder;
use kairos_models::clip::{HfClipConfig, word_level_tokenizer_json};
use kairos_store::Store;
use rayon::prelude::*;
use serde_json::json;

use crate::bench::machine;

/// What `kairos bench ingest` runs.
#[derive(Debug, Clone)]
pub struct IngestBenchOptions {
    pub images: usize,
    /// `b32` (a CLIP ViT-B/32-shaped encoder, random weights) or `none`.
    pub model: String,
    pub width: u32,
    pub height: u32,
    pub batch: usize,
    /// Where the generated files are kept between runs.
    pub media: PathBuf,
}

/// A generated photo-like JPEG, different for every seed.
fn jpeg(seed: usize, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let s = seed as f32;
        let v = ((x as f32 * 0.02 + s).sin() * (y as f32 * 0.015 + s * 0.3).cos() * 120.0 + 128.0)
            as u8;
        image::Rgb([
            v,
            (x / 4) as u8 ^ (seed as u8),
            (y / 3) as u8 ^ ((seed >> 8) as u8),
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 85,
        ))
        .expect("encoding to memory");
    out
}

/// Makes (or reuses) `n` files of `w`×`h` in 100 folders under `root`.
fn generate(root: &Path, n: usize, w: u32, h: u32) -> Result<()> {
    let marker = root.join("generated.json");
    let spec = json!({ "images": n, "width": w, "height": h }).to_string();
    if fs_err::read_to_string(&marker).is_ok_and(|s| s == spec) {
        return Ok(());
    }
    if root.exists() {
        fs_err::remove_dir_all(root)?;
    }
    (0..n).into_par_iter().try_for_each(|i| -> Result<()> {
        let path = root.join(format!("{:02}/img{i:06}.jpg", i % 100));
        fs_err::create_dir_all(path.parent().expect("a folder"))?;
        fs_err::write(&path, jpeg(i, w, h))?;
        Ok(())
    })?;
    fs_err::write(&marker, spec)?;
    Ok(())
}

fn rss_mib(field: &str) -> Option<f64> {
    let status = fs_err::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Batches the encoder embeds alone each time its limit is measured.
const ENCODER_ROUNDS: usize = 6;

/// Seconds of each of [`ENCODER_ROUNDS`] embeddings of `probe` (none without an encoder).
fn encoder_batch_seconds(clip: Option<&ClipEncoder>, probe: &[Vec<f32>]) -> Result<Vec<f64>> {
    let Some(c) = clip else {
        return Ok(Vec::new());
    };
    (0..ENCODER_ROUNDS)
        .map(|_| {
            let t = Instant::now();
            c.embed_preprocessed(probe)?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

/// How many files [`stage_times`] times.
const STAGE_SAMPLE: usize = 32;

/// The CPU work of one image around the encoder, stage by stage, on one thread (median ms over
/// the first files): what the pipeline spends besides the encoder, and where.
fn stage_times(media: &Path, clip: Option<&ClipEncoder>) -> Result<serde_json::Value> {
    use kairos_indexer::image::{self as img, fingerprint, metadata};
    let files: Vec<PathBuf> = (0..STAGE_SAMPLE)
        .map(|i| media.join(format!("{:02}/img{i:06}.jpg", i % 100)))
        .filter(|p| p.is_file())
        .collect();
    let mut times: Vec<(&str, Vec<f64>)> = [
        "read_and_hash",
        "decode",
        "metadata",
        "fingerprint",
        "thumbnail",
        "clip_preprocess",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    let mut timed = |stage: usize, t: Instant| times[stage].1.push(t.elapsed().as_secs_f64() * 1e3);
    for path in &files {
        let t = Instant::now();
        let bytes = fs_err::read(path)?;
        std::hint::black_box(blake3::hash(&bytes));
        timed(0, t);
        let t = Instant::now();
        let decoded = img::decode(path, &bytes)?;
        timed(1, t);
        let t = Instant::now();
        std::hint::black_box(metadata::read(&bytes, decoded.format));
        timed(2, t);
        let t = Instant::now();
        std::hint::black_box(fingerprint::phash(&decoded.image));
        timed(3, t);
        let t = Instant::now();
        std::hint::black_box(img::thumbnail_jpeg(&decoded.image)?);
        timed(4, t);
        if let Some(c) = clip {
            let t = Instant::now();
            std::hint::black_box(c.preprocess().apply(&decoded.image));
            timed(5, t);
        }
    }
    let mut out = serde_json::Map::new();
    let mut total = 0.0;
    for (name, mut ms) in times {
        if ms.is_empty() {
            continue;
        }
        ms.sort_by(f64::total_cmp);
        let median = ms[ms.len() / 2];
        total += median;
        out.insert(name.into(), json!(median));
    }
    out.insert("total".into(), json!(total));
    out.insert("files".into(), json!(files.len()));
    Ok(out.into())
}

pub async fn ingest(o: &IngestBenchOptions) -> Result<serde_json::Value> {
    let clip = match o.model.as_str() {
        "b32" => {
            let tokenizer = word_level_tokenizer_json(&["a", "photo"]);
            let mut config = HfClipConfig::vit_base_patch32();
            config.text_config.vocab_size = 8;
            Some(ClipEncoder::random(&config, &tokenizer)?.0)
        }
        "none" => None,
        other => bail!("--model {other:?}: b32 or none"),
    };
    let rss_with_encoder = rss_mib("VmRSS:");
    eprintln!(
        "generating {} {}×{} JPEGs in {} (kept for the next run)…",
        o.images,
        o.width,
        o.height,
        o.media.display()
    );
    generate(&o.media, o.images, o.width, o.height).context("generating the images")?;

    // The encoder's own limit: preprocessed batches, nothing else, timed before and after the
    // pipeline (this VM's speed drifts within minutes); the median batch of both sets counts.
    let probe: Vec<Vec<f32>> = (0..o.batch).map(|_| vec![0.1f32; 3 * 224 * 224]).collect();
    if let Some(c) = &clip {
        c.embed_preprocessed(&probe)?; // warm-up
    }
    let mut encoder_batches = encoder_batch_seconds(clip.as_ref(), &probe)?;

    let stages = stage_times(&o.media, clip.as_ref())?;

    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path()).await?;
    let analyzers = Arc::new(Analyzers {
        clip,
        ..Default::default()
    });
    let options = IngestOptions {
        batch_size: o.batch,
        ..Default::default()
    };
    let samples: Mutex<Vec<(usize, f64)>> = Mutex::default();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let every = (o.images / 20).max(1);
    let progress = |p: &Progress| {
        if let Progress::File { .. } = p {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            if n.is_multiple_of(every) {
                let rss = rss_mib("VmRSS:").unwrap_or(0.0);
                samples.lock().expect("samples").push((n, rss));
            }
        }
    };
    let started = Instant::now();
    let summary = Ingester::new(store.clone(), analyzers.clone(), options)
        .run(std::slice::from_ref(&o.media), &progress)
        .await?;
    let secs = started.elapsed().as_secs_f64();
    if summary.indexed != o.images {
        bail!(
            "indexed {} of {} images: {:?}",
            summary.indexed,
            o.images,
            summary.failures.first()
        );
    }
    let rate = o.images as f64 / secs;
    let before = encoder_batches.len();
    encoder_batches.extend(encoder_batch_seconds(analyzers.clip.as_ref(), &probe)?);
    let encoder_rate = |batches: &[f64]| -> Option<f64> {
        let mut sorted = batches.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).map(|t| o.batch as f64 / t)
    };
    let encoder_only = encoder_rate(&encoder_batches);
    let samples = samples.into_inner().expect("samples");
    let rss_first_tenth = samples
        .iter()
        .find(|(n, _)| *n >= o.images / 10)
        .map(|s| s.1);
    let rss_end = samples.last().map(|s| s.1);
    Ok(json!({
        "benchmark": "bulk_ingest",
        "machine": machine(),
        "model": match o.model.as_str() {
            "b32" => "CLIP ViT-B/32 shape, random weights",
            _ => "none: read, hash, decode, thumbnail, fingerprint, commit",
        },
        "images": o.images,
        "image_size": format!("{}x{} JPEG", o.width, o.height),
        "batch": o.batch,
        "seconds": secs,
        "images_per_second": rate,
        "encoder_only_images_per_second": encoder_only,
        "encoder_only_before_and_after": [
            encoder_rate(&encoder_batches[..before]),
            encoder_rate(&encoder_batches[before..]),
        ],
        "pipeline_share_of_encoder_limit": encoder_only.map(|e| rate / e),
        "cpu_ms_per_image_by_stage": stages,
        "rss_mib_with_the_encoder_loaded": rss_with_encoder,
        "rss_mib_by_files": samples,
        "rss_mib_at_one_tenth": rss_first_tenth,
        "rss_mib_at_end": rss_end,
        "peak_rss_mib": rss_mib("VmHWM:"),
        "command": format!(
            "kairos bench ingest --images {} --model {} --size {}x{} --batch {}",
            o.images, o.model, o.width, o.height, o.batch
        ),
    }))
}
