//! `kairos bench load`: search latency under load over HTTP. A synthetic archive of `--assets`
//! assets and `--segments` segments (photos with captions; videos whose moments alternate shots
//! and spoken sentences) is built once and kept; a `kairos serve` child process serves it; this
//! process runs `--clients` concurrent keep-alive clients on loopback, each sending a hybrid
//! text query and waiting for its answer before the next (closed loop, like `wrk`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kairos_store::{
    Asset, AssetKind, AssetStatus, AssetWrite, EdgeVectors, Filters, SearchQuery, Segment,
    SegmentKind, Space, Store, TextDoc, TextIndex, VectorIndex, VectorPoint,
};
use rayon::prelude::*;
use serde_json::json;

use crate::bench::{
    StepOptions, WORDS, caption, machine, query_words, random_unit, uuid_like, xorshift,
};
use crate::cli::Global;

/// One out of this many assets is a video; the rest are photos.
const VIDEO_EVERY: usize = 5;
/// Length of a video moment.
const MOMENT_MS: i64 = 4_000;

pub struct LoadOptions {
    pub assets: usize,
    pub segments: usize,
    pub clients: usize,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub archive: PathBuf,
    pub mode: String,
    pub server_threads: usize,
    /// Whether the assets' sentence vectors embed their captions, or are random unit vectors
    /// (`None`: captions where a sentence model is installed).
    pub captions_embedded: Option<bool>,
    /// The `candidates` each search asks for (`None`: the server's default).
    pub candidates: Option<usize>,
}

pub async fn load(g: &Global, o: &LoadOptions) -> Result<serde_json::Value> {
    let models = g.models.clone().unwrap_or_else(|| g.data.join("models"));
    let analyzers = kairos_indexer::Analyzers::load(&kairos_models::ModelStore::new(&models))
        .context("loading models")?;
    let text_dims = analyzers.sentence.as_ref().map(|s| s.dims());
    let encoders = json!({
        "sentence": if text_dims.is_some() { "all-MiniLM-L6-v2 (real)" } else { "none: no semantic text signal" },
        "clip": if analyzers.clip.is_some() { "installed" } else { "none: no CLIP text pass" },
    });
    let embedder = match (o.captions_embedded, &analyzers.sentence) {
        (Some(false), _) | (None, None) => None,
        (Some(true) | None, Some(s)) => Some(s),
        (Some(true), None) => bail!(
            "--text-vectors captions needs a sentence model in {}",
            models.display()
        ),
    };
    let build = build_archive(o, text_dims.unwrap_or(384), embedder).await?;
    drop(analyzers);

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let server = Server::start(&o.archive, &models, &addr, o.server_threads)?;
    let deadline = Instant::now() + Duration::from_secs(300);
    while get(&addr, "/api/v1/health")
        .map(|s| s != 200)
        .unwrap_or(true)
    {
        if Instant::now() > deadline {
            bail!("kairos serve did not answer on {addr} within 300 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let idle_rss = rss_kib(server.child.id())?;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(o.warmup_seconds);
    let threads: Vec<_> = (0..o.clients)
        .map(|client| {
            let (addr, stop, mode) = (addr.clone(), stop.clone(), o.mode.clone());
            let seed = (o.assets + 1_000_003 * (client + 1)) as u64;
            let candidates = o.candidates;
            std::thread::spawn(move || {
                client_loop(&addr, &mode, candidates, seed, &stop, measure_from)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(o.warmup_seconds));
    let server_pid = server.child.id().to_string();
    let before = CpuSample::take(&server_pid)?;
    let reads_before = catalog_reads(&addr)?;
    std::thread::sleep(Duration::from_secs_f64(o.seconds));
    let cpu = CpuSample::take(&server_pid)?.since(&before);
    let reads_after = catalog_reads(&addr)?;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0usize, None);
    for t in threads {
        let r = t.join().expect("a load client panicked");
        latencies.extend(r.latencies_ms);
        errors += r.errors;
        first_error = first_error.or(r.first_error);
    }
    let measured_s = started.elapsed().as_secs_f64() - o.warmup_seconds;
    let (rss, peak_rss) = (
        rss_kib(server.child.id())?,
        status_kib(server.child.id(), "VmHWM:")?,
    );
    // VmRSS counts a mapped file's resident pages once per mapping (the catalog is mapped by
    // each SQLite connection), so the private memory is given apart.
    let (anon, file) = (
        status_kib(server.child.id(), "RssAnon:")?,
        status_kib(server.child.id(), "RssFile:")?,
    );
    // After the measured window, so that it warms nothing the load then finds.
    let signals = page_signals(&addr, &o.mode, o.candidates)?;
    let pages = match o.candidates {
        Some(c) => Some(compare_pages(&addr, &o.mode, c)?),
        None => None,
    };
    drop(server);
    if latencies.is_empty() {
        bail!("no query was answered: {}", first_error.unwrap_or_default());
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Ok(json!({
        "benchmark": "search_load",
        "machine": machine(),
        "archive": build,
        "encoders": encoders,
        "clients": o.clients,
        "server_threads": o.server_threads,
        "mode": o.mode,
        // What each signal was asked for: the server's own rule for a page, unless set.
        "candidates": o.candidates.unwrap_or_else(|| SearchQuery {
            limit: PAGE,
            ..Default::default()
        }
        .candidates()),
        "candidates_set": o.candidates.is_some(),
        "query": format!("3 words drawn from the caption vocabulary, each query new (no repeats), limit {PAGE}, group assets"),
        "warmup_seconds": o.warmup_seconds,
        "measured_seconds": measured_s,
        "queries": latencies.len(),
        "queries_per_second": latencies.len() as f64 / measured_s,
        "errors": errors,
        "first_error": first_error,
        "latency_ms": {
            "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0),
        },
        // CPU time is less at the mercy of the VM's speed than the rate: a change that saves
        // CPU outside the steps that bound the rate shows here first.
        "cpu": {
            "server_ms_per_query": cpu.server_s * 1000.0 / latencies.len() as f64,
            "server_cores": cpu.server_s / cpu.seconds,
            "load_generator_cores": cpu.generator_s / cpu.seconds,
            "machine_idle_share": cpu.idle_share,
            "machine_steal_share": cpu.steal_share,
        },
        // Searches' catalog reads answered from memory (the catalog did not change while
        // measured), over the measured window.
        "catalog_reads": remembered_shares(&reads_before, &reads_after, latencies.len()),
        "page_signals": signals,
        "pages_against_default": pages,
        "server_rss_mib": {
            "idle": idle_rss as f64 / 1024.0,
            "after_load": rss as f64 / 1024.0,
            "peak": peak_rss as f64 / 1024.0,
            "after_load_private": anon as f64 / 1024.0,
            "after_load_mapped_files": file as f64 / 1024.0,
        },
    }))
}

/// Builds the synthetic archive in `o.archive` unless one of the same shape is there already
/// (building 1M segments and the HNSW graphs takes minutes; the queries do not change it).
async fn build_archive(
    o: &LoadOptions,
    text_dims: usize,
    embedder: Option<&kairos_models::SentenceEmbedder>,
) -> Result<serde_json::Value> {
    let marker = o.archive.join("bench-archive.json");
    let mut shape = json!({
        "assets": o.assets,
        "segments": o.segments,
        "text_dims": text_dims,
    });
    // Archives built before the option had random vectors, and no such key.
    let captions = embedder.is_some();
    if captions {
        shape["text_vectors"] = json!("captions embedded");
    }
    if let Ok(text) = fs_err::read_to_string(&marker) {
        let built: serde_json::Value = serde_json::from_str(&text)?;
        if built["shape"] == shape {
            eprintln!("reusing the archive in {}", o.archive.display());
            return Ok(built);
        }
        eprintln!(
            "the archive in {} has another shape: rebuilding it",
            o.archive.display()
        );
    }
    if o.archive.exists() {
        fs_err::remove_dir_all(&o.archive)?;
    }
    let videos = o.assets / VIDEO_EVERY;
    let photos = o.assets - videos;
    if videos == 0 || o.segments < photos + 2 * videos {
        bail!(
            "--segments {} is too few for {} assets: photos take one each, videos at least two",
            o.segments,
            o.assets
        );
    }
    let per_video = (o.segments - photos) / videos;
    let store = Store::open(&o.archive).await?;
    let t = Instant::now();
    let batch = 1000;
    let mut segments = 0usize;
    let mut vectors = 0usize;
    for start in (0..o.assets).step_by(batch) {
        let range = start..(start + batch).min(o.assets);
        let embedded: Option<Vec<Vec<f32>>> = match embedder {
            None => None,
            Some(e) => {
                let captions: Vec<String> = range.clone().map(caption).collect();
                let mut vectors = Vec::with_capacity(captions.len());
                for chunk in captions.chunks(128) {
                    let texts: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    vectors.extend(e.embed(&texts).context("embedding captions")?);
                }
                Some(vectors)
            }
        };
        let writes: Vec<AssetWrite> = range
            .into_par_iter()
            .map(|i| {
                let text_vector = embedded.as_ref().map(|v| v[i - start].clone());
                synthetic_asset(i, per_video, text_dims, text_vector)
            })
            .collect();
        segments += writes.iter().map(|w| w.segments.len()).sum::<usize>();
        vectors += writes.iter().map(|w| w.points.len()).sum::<usize>();
        store.write(&writes).await?;
        let ids: Vec<String> = writes.iter().map(|w| w.asset.id.clone()).collect();
        store.commit(&ids).await?;
        if (start / batch).is_multiple_of(10) {
            eprintln!(
                "  {} / {} assets, {segments} segments, {:.0} s",
                start + writes.len(),
                o.assets,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.build_vector_index().await?;
    let optimize_s = t.elapsed().as_secs_f64();
    drop(store);
    let built = json!({
        "shape": shape,
        "photos": photos,
        "videos": videos,
        "segments": segments,
        "moments_per_video": per_video,
        "spoken_moments": videos * per_video.div_ceil(2),
        "vectors": vectors,
        "vectors_note": if captions {
            "one CLIP-space vector per asset (random unit vector) and one sentence-space vector per asset (the sentence model's embedding of its caption); the spoken moments' own sentence vectors are left out to keep the HNSW build in minutes on 2 cores"
        } else {
            "one CLIP-space and one sentence-space vector per asset (random unit vectors); the spoken moments' own sentence vectors are left out to keep the HNSW build in minutes on 2 cores"
        },
        "load_seconds": load_s,
        "hnsw_optimize_seconds": optimize_s,
    });
    fs_err::write(&marker, serde_json::to_string_pretty(&built)?)?;
    Ok(built)
}

/// Photo `i` (one image segment, a caption) or video `i` (`per_video` moments alternating a shot
/// and a spoken sentence), with a visual and a sentence vector.
fn synthetic_asset(
    i: usize,
    per_video: usize,
    text_dims: usize,
    text_vector: Option<Vec<f32>>,
) -> AssetWrite {
    let video = i.is_multiple_of(VIDEO_EVERY);
    let (kind, ext) = if video {
        (AssetKind::Video, "mp4")
    } else {
        (AssetKind::Image, "jpg")
    };
    let mut asset = Asset::new(
        format!("load-{i}-{}", uuid_like(i)),
        format!("/bench/{i:07}.{ext}"),
        kind,
        1,
    );
    asset.caption = Some(caption(i));
    asset.language = Some(if i.is_multiple_of(7) { "fr" } else { "en" }.into());
    asset.collection = Some(format!("collection {}", i % 12));
    asset.status = AssetStatus::Indexing;
    if video {
        asset.duration_ms = Some(per_video as i64 * MOMENT_MS);
    }
    let segments: Vec<Segment> = if video {
        let mut x = (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
        (0..per_video)
            .map(|m| {
                let start = m as i64 * MOMENT_MS;
                if m % 2 == 0 {
                    Segment::new(&asset.id, SegmentKind::Shot, start, start + MOMENT_MS)
                } else {
                    let mut s =
                        Segment::new(&asset.id, SegmentKind::Speech, start, start + MOMENT_MS);
                    s.text = Some(
                        (0..10)
                            .map(|_| WORDS[(xorshift(&mut x) % WORDS.len() as u64) as usize])
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                    s
                }
            })
            .collect()
    } else {
        vec![Segment::new(&asset.id, SegmentKind::Image, 0, 0)]
    };
    let point = |segment: &Segment, vector: Vec<f32>| VectorPoint {
        segment_id: segment.id.clone(),
        asset_id: asset.id.clone(),
        asset_kind: asset.kind,
        segment_kind: segment.kind,
        start_ms: segment.start_ms,
        end_ms: segment.end_ms,
        captured_at: None,
        collection: asset.collection.clone(),
        language: asset.language.clone(),
        vector,
    };
    let text_segment = segments
        .iter()
        .find(|s| s.kind != SegmentKind::Shot)
        .unwrap_or(&segments[0]);
    let points = vec![
        (
            Space::Visual,
            point(&segments[0], random_unit(512, i as u64 * 2 + 1)),
        ),
        (
            Space::Text,
            point(
                text_segment,
                text_vector.unwrap_or_else(|| random_unit(text_dims, i as u64 * 2 + 2)),
            ),
        ),
    ];
    let text_docs = TextDoc::all_for(&asset, &segments);
    AssetWrite {
        asset,
        segments,
        text_docs,
        points,
    }
}

/// The `kairos serve` child, stopped when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(archive: &Path, models: &Path, addr: &str, threads: usize) -> Result<Self> {
        let child = Command::new(std::env::current_exe()?)
            .arg("--data")
            .arg(archive)
            .arg("--models")
            .arg(models)
            .args(["serve", "--addr", addr, "--threads", &threads.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting kairos serve")?;
        Ok(Server { child })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct ClientResult {
    latencies_ms: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

/// One closed-loop client on one keep-alive connection (reopened after an error).
fn client_loop(
    addr: &str,
    mode: &str,
    candidates: Option<usize>,
    seed: u64,
    stop: &AtomicBool,
    measure_from: Instant,
) -> ClientResult {
    let mut r = ClientResult {
        latencies_ms: Vec::new(),
        errors: 0,
        first_error: None,
    };
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = search_body(&query_words((seed + n) as usize), mode, candidates);
        let t = Instant::now();
        let outcome = (|| -> Result<(u16, Vec<u8>)> {
            if conn.is_none() {
                let s = TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(60)))?;
                conn = Some(BufReader::new(s));
            }
            post_search(conn.as_mut().unwrap(), addr, &body)
        })();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let counted = t >= measure_from && !stop.load(Ordering::Relaxed);
        match outcome {
            Ok((200, _)) => {
                if counted {
                    r.latencies_ms.push(ms);
                }
            }
            Ok((status, body)) => {
                r.errors += 1;
                r.first_error
                    .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&body)));
            }
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| e.to_string());
                conn = None;
            }
        }
    }
    r
}

/// The BM25 step alone (`kairos bench text`): rounds of queries of the load's kind, each asking
/// for `candidates` documents, over the text index of an archive `bench load` built.
pub fn text(o: &StepOptions) -> Result<serde_json::Value> {
    let built = built_archive(o)?;
    let index = TextIndex::open(&o.archive.join("text"))?;
    let filters = Filters::default();
    let words = step_queries(o);
    // The words' bitsets are built by the first searches of them.
    for q in words.iter().take(200) {
        index.search(q, &filters, o.candidates)?;
    }
    let timed = time_rounds(o, &words, |q| {
        Ok(index.search(q, &filters, o.candidates)?.hits.len())
    })?;
    let mut figures = timed.figures("text", built, o);
    figures["documents"] = index.num_docs().into();
    Ok(figures)
}

/// The sentence-space vector search alone (`kairos bench vectors`): the installed sentence
/// model embeds the queries first, then rounds of their HNSW searches, each asking for
/// `candidates` points, over the vectors of an archive `bench load` built; then the share of
/// the true nearest `candidates` the walk finds (its recall), over the first queries.
pub fn vectors(g: &Global, o: &StepOptions) -> Result<serde_json::Value> {
    use kairos_models::{ModelKind, ModelStore, SentenceEmbedder};
    let built = built_archive(o)?;
    let models = ModelStore::new(g.models.clone().unwrap_or_else(|| g.data.join("models")));
    let embedder = SentenceEmbedder::load(&models.require(ModelKind::Sentence)?.dir)?;
    let mut embedded = Vec::with_capacity(o.queries);
    for batch in step_queries(o).chunks(16) {
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        embedded.extend(embedder.embed(&refs)?);
    }
    let index = EdgeVectors::open(&o.archive.join("vectors"))?;
    let filters = Filters::default();
    // The first searches read the index into memory and remember their hits' assets.
    for v in &embedded {
        index.search(Space::Text, v, &filters, o.candidates)?;
    }
    let timed = time_rounds(o, &embedded, |v| {
        Ok(index.search(Space::Text, v, &filters, o.candidates)?.len())
    })?;
    // How much of the true nearest the walk finds: the first queries searched exactly too.
    // Where many points are about as near as each other (random vectors; captions of a few
    // words), the walk's hits can be as near as the true ones without being them: their mean
    // similarity is given beside the true ones'.
    let (mut found, mut wanted) = (0usize, 0usize);
    let (mut walked_score, mut true_score) = (0f64, 0f64);
    let compared = embedded.len().min(RECALL_QUERIES);
    for v in &embedded[..compared] {
        let truth = index.search_exact(Space::Text, v, &filters, o.candidates)?;
        let walked = index.search(Space::Text, v, &filters, o.candidates)?;
        wanted += truth.len();
        found += truth
            .iter()
            .filter(|t| walked.iter().any(|w| w.segment_id == t.segment_id))
            .count();
        true_score += truth.iter().map(|h| f64::from(h.score)).sum::<f64>();
        walked_score += walked.iter().map(|h| f64::from(h.score)).sum::<f64>();
    }
    let mut figures = timed.figures("vectors", built, o);
    figures["recall"] = json!({
        "queries": compared,
        "of_exact_nearest": found as f64 / wanted.max(1) as f64,
        "mean_similarity_exact": true_score / wanted.max(1) as f64,
        "mean_similarity_walked": walked_score / wanted.max(1) as f64,
    });
    Ok(figures)
}

/// Queries `bench vectors` also searches exactly (a full scan each), for the walk's recall.
const RECALL_QUERIES: usize = 200;

/// The queries a step bench runs: the load's kind, the same on every run.
fn step_queries(o: &StepOptions) -> Vec<String> {
    (0..o.queries).map(|i| query_words(i * 7919 + 13)).collect()
}

/// A step bench's timings.
struct Timed {
    us_per_query: Vec<f64>,
    median_us_per_query: f64,
    hits_per_query: f64,
}

impl Timed {
    /// The JSON a step bench writes.
    fn figures(
        self,
        benchmark: &str,
        built: serde_json::Value,
        o: &StepOptions,
    ) -> serde_json::Value {
        json!({
            "benchmark": benchmark,
            "machine": machine(),
            "archive": built,
            "queries": o.queries,
            "rounds": o.rounds,
            "candidates": o.candidates,
            "us_per_query": self.us_per_query,
            "median_us_per_query": self.median_us_per_query,
            "hits_per_query": self.hits_per_query,
        })
    }
}

/// Times `o.rounds` rounds of `search` over `queries`, one after the other on this thread;
/// `search` returns its hits.
fn time_rounds<Q>(
    o: &StepOptions,
    queries: &[Q],
    mut search: impl FnMut(&Q) -> Result<usize>,
) -> Result<Timed> {
    let mut us_per_query = Vec::with_capacity(o.rounds);
    let mut hits = 0usize;
    for _ in 0..o.rounds {
        let t = Instant::now();
        for q in queries {
            hits += search(q)?;
        }
        us_per_query.push(t.elapsed().as_secs_f64() * 1e6 / queries.len() as f64);
    }
    let mut sorted = us_per_query.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Timed {
        median_us_per_query: sorted[o.rounds / 2],
        hits_per_query: hits as f64 / (queries.len() * o.rounds) as f64,
        us_per_query,
    })
}

/// The description `bench load` wrote of the archive a step bench runs on; `--queries` and
/// `--rounds` checked.
fn built_archive(o: &StepOptions) -> Result<serde_json::Value> {
    if o.queries == 0 || o.rounds == 0 {
        bail!("--queries and --rounds must be above 0");
    }
    let marker = o.archive.join("bench-archive.json");
    Ok(serde_json::from_str(
        &fs_err::read_to_string(&marker).with_context(|| {
            format!(
                "{}: build an archive with `kairos bench load` first",
                marker.display()
            )
        })?,
    )?)
}

/// Queries [`compare_pages`] asks both ways.
const COMPARED_QUERIES: usize = 300;

/// How the first page ([`PAGE`] assets) of searches asking for `candidates` differs from the
/// default's, over [`COMPARED_QUERIES`] queries of the load's kind, each asked both ways: the
/// share of the default page's assets on the other page, of pages the same in the same order,
/// and of first hits the same; the other search's `total` against the default's; and the facet
/// counts' summed differences against the default's sum.
fn compare_pages(addr: &str, mode: &str, candidates: usize) -> Result<serde_json::Value> {
    let mut conn = BufReader::new(TcpStream::connect(addr)?);
    let mut search = |query: &str, candidates: Option<usize>| {
        search_page(&mut conn, addr, query, mode, candidates)
    };
    let ids = |page: &serde_json::Value| -> Vec<String> {
        page["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .filter_map(|h| h["asset_id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let facet_counts = |page: &serde_json::Value| -> BTreeMap<String, f64> {
        let mut counts = BTreeMap::new();
        if let Some(fields) = page["facets"].as_object() {
            for (field, values) in fields {
                for (value, n) in values.as_object().into_iter().flatten() {
                    counts.insert(format!("{field}={value}"), n.as_f64().unwrap_or(0.0));
                }
            }
        }
        counts
    };
    let (mut kept, mut shown, mut same_order, mut same_first) = (0usize, 0usize, 0usize, 0usize);
    let (mut total_ratio, mut facet_difference) = (0.0, 0.0);
    for i in 0..COMPARED_QUERIES {
        let query = query_words(i * 104_729 + 7);
        let (default, other) = (search(&query, None)?, search(&query, Some(candidates))?);
        let (d, o) = (ids(&default), ids(&other));
        shown += d.len();
        kept += d.iter().filter(|id| o.contains(id)).count();
        same_order += usize::from(d == o);
        same_first += usize::from(d.first() == o.first());
        let totals = (
            default["total"].as_f64().unwrap_or(0.0),
            other["total"].as_f64().unwrap_or(0.0),
        );
        total_ratio += if totals.0 > 0.0 {
            totals.1 / totals.0
        } else {
            1.0
        };
        let (fd, fo) = (facet_counts(&default), facet_counts(&other));
        let sum: f64 = fd.values().sum();
        let diff: f64 = fd
            .keys()
            .chain(fo.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .map(|k| (fd.get(k).unwrap_or(&0.0) - fo.get(k).unwrap_or(&0.0)).abs())
            .sum();
        facet_difference += if sum > 0.0 { diff / sum } else { 0.0 };
    }
    let n = COMPARED_QUERIES as f64;
    Ok(json!({
        "queries": COMPARED_QUERIES,
        "candidates": candidates,
        "default_page_assets_kept_share": kept as f64 / shown.max(1) as f64,
        "same_page_same_order_share": same_order as f64 / n,
        "same_first_hit_share": same_first as f64 / n,
        "total_against_default": total_ratio / n,
        "facet_counts_difference_against_default": facet_difference / n,
    }))
}

/// Queries [`page_signals`] asks.
const SIGNAL_QUERIES: usize = 100;

/// Which signals brought the assets of the load's pages, over [`SIGNAL_QUERIES`] other queries
/// of its kind asked after the measured window: the share of the pages' assets each signal
/// matched, and the mean `total`. A hybrid load whose pages no semantic hit reaches (random
/// sentence vectors are all below the search's similarity floor) pays for the encoder and the
/// HNSW walk, and fuses one list.
fn page_signals(addr: &str, mode: &str, candidates: Option<usize>) -> Result<serde_json::Value> {
    let mut conn = BufReader::new(TcpStream::connect(addr)?);
    let mut matched: BTreeMap<String, usize> = BTreeMap::new();
    let (mut shown, mut total) = (0usize, 0.0);
    for i in 0..SIGNAL_QUERIES {
        let page = search_page(
            &mut conn,
            addr,
            &query_words(i * 7_919 + 5),
            mode,
            candidates,
        )?;
        total += page["total"].as_f64().unwrap_or(0.0);
        for hit in page["hits"].as_array().into_iter().flatten() {
            shown += 1;
            for signal in hit["signals"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
            {
                *matched.entry(signal.clone()).or_default() += 1;
            }
        }
    }
    let shares: serde_json::Map<String, serde_json::Value> = matched
        .into_iter()
        .map(|(signal, n)| (signal, json!(n as f64 / shown.max(1) as f64)))
        .collect();
    Ok(json!({
        "queries": SIGNAL_QUERIES,
        "page_assets": shown,
        "share_matched_by": shares,
        "mean_total": total / SIGNAL_QUERIES as f64,
    }))
}

/// Assets a page of the load's searches shows.
const PAGE: usize = 20;

/// The load's search: `query`, a page of [`PAGE`] assets, `mode`, and `candidates` if set.
fn search_body(query: &str, mode: &str, candidates: Option<usize>) -> String {
    let mut body = json!({ "query": query, "limit": PAGE, "mode": mode });
    if let Some(c) = candidates {
        body["candidates"] = c.into();
    }
    body.to_string()
}

/// The page the load's search for `query` answers on the keep-alive connection `c`; anything
/// but a 200 is an error naming the query.
fn search_page(
    c: &mut BufReader<TcpStream>,
    addr: &str,
    query: &str,
    mode: &str,
    candidates: Option<usize>,
) -> Result<serde_json::Value> {
    let (status, body) = post_search(c, addr, &search_body(query, mode, candidates))?;
    if status != 200 {
        bail!(
            "{query:?} with candidates {candidates:?}: {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Sends the search `body` on the keep-alive connection `c` and reads the answer.
fn post_search(c: &mut BufReader<TcpStream>, addr: &str, body: &str) -> Result<(u16, Vec<u8>)> {
    write!(
        c.get_mut(),
        "POST /api/v1/search HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    read_response(c)
}

/// Reads one HTTP/1.1 response with a `Content-Length` body.
fn read_response(c: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    c.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .context("no HTTP status line")?
        .parse()?;
    let mut length = 0usize;
    loop {
        line.clear();
        if c.read_line(&mut line)? == 0 {
            bail!("connection closed in the response head");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    c.read_exact(&mut body)?;
    Ok((status, body))
}

fn get(addr: &str, path: &str) -> Result<u16> {
    Ok(get_body(addr, path)?.0)
}

fn get_body(addr: &str, path: &str) -> Result<(u16, Vec<u8>)> {
    let mut s = BufReader::new(TcpStream::connect(addr)?);
    write!(
        s.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    read_response(&mut s)
}

/// The server's `kairos_search_catalog_reads_total` counters from its `/metrics`: (kind,
/// from) → ids; and its `kairos_search_catalog_memory_bytes` gauges: (kind, "bytes") → bytes.
fn catalog_reads(addr: &str) -> Result<BTreeMap<(String, String), f64>> {
    let (status, body) = get_body(addr, "/metrics")?;
    if status != 200 {
        bail!("/metrics answered {status}");
    }
    let text = String::from_utf8_lossy(&body);
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("kairos_search_catalog_memory_bytes{kind=\"") {
            let (kind, value) = rest.split_once("\"} ").unwrap_or_default();
            if let Ok(value) = value.trim().parse::<f64>() {
                counts.insert((kind.to_string(), "bytes".to_string()), value);
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("kairos_search_catalog_reads_total{kind=\"") else {
            continue;
        };
        let (kind, rest) = rest.split_once("\",from=\"").unwrap_or_default();
        let (from, value) = rest.split_once("\"} ").unwrap_or_default();
        if let Ok(value) = value.trim().parse::<f64>() {
            counts.insert((kind.to_string(), from.to_string()), value);
        }
    }
    Ok(counts)
}

/// The share of each kind of catalog read answered from memory between two readings of
/// [`catalog_reads`], with the ids asked per query and the memory the kind holds at the end.
fn remembered_shares(
    before: &BTreeMap<(String, String), f64>,
    after: &BTreeMap<(String, String), f64>,
    queries: usize,
) -> serde_json::Value {
    let delta = |kind: &str, from: &str| {
        let key = (kind.to_string(), from.to_string());
        after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
    };
    let kinds: std::collections::BTreeSet<&String> = after.keys().map(|(k, _)| k).collect();
    kinds
        .into_iter()
        .map(|kind| {
            let (memory, catalog) = (delta(kind, "memory"), delta(kind, "catalog"));
            let asked = memory + catalog;
            (
                kind.clone(),
                json!({
                    "ids_per_query": asked / queries.max(1) as f64,
                    "from_memory_share": if asked > 0.0 { memory / asked } else { 0.0 },
                    "memory_mib_after": after
                        .get(&(kind.clone(), "bytes".to_string()))
                        .map(|b| b / (1u64 << 20) as f64),
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// CPU time over the measured window, from `/proc`.
struct CpuSample {
    at: Instant,
    /// User and system seconds of the server (its exited threads included) and of this
    /// process (the load generator).
    server_s: f64,
    generator_s: f64,
    /// `/proc/stat`'s first line: all ticks, idle ones (iowait included), stolen ones.
    machine: [u64; 3],
}

/// Over a window: seconds of it, CPU seconds spent, and the machine's shares idle and stolen
/// by the hypervisor.
struct CpuUse {
    seconds: f64,
    server_s: f64,
    generator_s: f64,
    idle_share: f64,
    steal_share: f64,
}

impl CpuSample {
    fn take(server_pid: &str) -> Result<Self> {
        Ok(Self {
            at: Instant::now(),
            server_s: process_cpu_s(server_pid)?,
            generator_s: process_cpu_s("self")?,
            machine: machine_ticks()?,
        })
    }

    fn since(&self, start: &Self) -> CpuUse {
        let d = |i: usize| self.machine[i].saturating_sub(start.machine[i]) as f64;
        let all = d(0).max(1.0);
        CpuUse {
            seconds: self.at.duration_since(start.at).as_secs_f64(),
            server_s: self.server_s - start.server_s,
            generator_s: self.generator_s - start.generator_s,
            idle_share: d(1) / all,
            steal_share: d(2) / all,
        }
    }
}

/// `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 a second for user space.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of process `pid` (or `self`), from `/proc/PID/stat`.
fn process_cpu_s(pid: &str) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs_err::read_to_string(&path)?;
    // The fields after the command name (in parentheses, which may hold spaces) start at the
    // third; utime and stime are the 14th and 15th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / USER_HZ),
        _ => bail!("no utime and stime in {path}"),
    }
}

/// All, idle (with iowait) and stolen ticks of every CPU, from `/proc/stat`'s `cpu` line.
fn machine_ticks() -> Result<[u64; 3]> {
    let stat = fs_err::read_to_string("/proc/stat")?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if ticks.len() < 8 {
        bail!("no cpu line in /proc/stat");
    }
    // user nice system idle iowait irq softirq steal; guest time is counted in user already.
    Ok([ticks[..8].iter().sum(), ticks[3] + ticks[4], ticks[7]])
}

fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CPU time read from `/proc` is this process's: it grows by the work done between two
    /// readings, and the machine's ticks hold its idle and stolen ones.
    #[test]
    fn cpu_time_grows_with_the_work_done() {
        let start = process_cpu_s("self").unwrap();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let spent = process_cpu_s("self").unwrap() - start;
        assert!(
            (0.2..1.0).contains(&spent),
            "{spent} s of CPU for 0.3 s of spinning"
        );
        let [all, idle, steal] = machine_ticks().unwrap();
        assert!(all > 0 && idle + steal <= all);
        assert!(process_cpu_s("0").is_err());
    }

    /// `bench text` and `bench vectors` on a folder `bench load` has not built say which file
    /// they looked for and how to make it; on a built one they read its description, and they
    /// refuse no queries or no rounds.
    #[test]
    fn the_step_benches_name_the_archive_they_need() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = StepOptions {
            queries: 10,
            rounds: 2,
            candidates: 100,
            archive: dir.path().to_path_buf(),
        };
        let message = format!("{:#}", built_archive(&o).unwrap_err());
        assert!(
            message.contains(&dir.path().join("bench-archive.json").display().to_string())
                && message.contains("kairos bench load"),
            "{message}"
        );
        fs_err::write(dir.path().join("bench-archive.json"), r#"{"segments": 7}"#).unwrap();
        assert_eq!(built_archive(&o).unwrap()["segments"], 7);
        o.rounds = 0;
        assert!(format!("{:#}", built_archive(&o).unwrap_err()).contains("--rounds"));
    }

    /// Each round's time is per query, the median is the middle round's, and the hits are
    /// averaged over every search.
    #[test]
    fn step_rounds_are_timed_per_query() {
        let o = StepOptions {
            queries: 4,
            rounds: 3,
            candidates: 100,
            archive: PathBuf::new(),
        };
        let mut calls = 0;
        let timed = time_rounds(&o, &[1usize, 2, 3, 4], |q| {
            calls += 1;
            std::thread::sleep(Duration::from_millis(1));
            Ok(*q)
        })
        .unwrap();
        assert_eq!(calls, 12);
        assert_eq!(timed.us_per_query.len(), 3);
        assert!(
            timed.us_per_query.iter().all(|&t| t >= 1000.0),
            "{:?}",
            timed.us_per_query
        );
        assert!(timed.us_per_query.contains(&timed.median_us_per_query));
        assert_eq!(timed.hits_per_query, 2.5);
        assert!(time_rounds(&o, &[1usize], |_| anyhow::bail!("broken")).is_err());
    }
}
