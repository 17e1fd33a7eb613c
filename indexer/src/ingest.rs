//! Ingest: files and folders → indexed assets. Files go through in batches: read and hash,
//! skip what is already indexed, decode and analyse in parallel, embed each batch with the
//! models, then write and commit the batch to every index. A file that fails becomes a failed
//! asset with its error, and the batch goes on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kairos_store::{
    Asset, AssetKind, AssetStatus, AssetWrite, Segment, SegmentKind, Space, Store, TextDoc,
    VectorPoint,
};
use rayon::prelude::*;

use crate::analysis::Analyzers;
use crate::error::{Error, Result};
use crate::image::{self as img, fingerprint, metadata};
use crate::probe;

/// How an ingest runs.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Collection every new asset joins.
    pub collection: Option<String>,
    /// Language of captions when their metadata does not say (ISO 639-1).
    pub language: Option<String>,
    /// Files analysed and committed together.
    pub batch_size: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            collection: None,
            language: None,
            batch_size: 16,
        }
    }
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileOutcome {
    Indexed { asset_id: String },
    Skipped { reason: String },
    Failed { error: String },
}

/// Progress events for bars and job status.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The walk found this many candidate files.
    Discovered { files: usize },
    /// One file is done.
    File { path: PathBuf, outcome: FileOutcome },
}

/// The end of an ingest.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestSummary {
    pub job_id: String,
    pub files: usize,
    pub indexed: usize,
    pub skipped: usize,
    pub failed: usize,
    /// (path, error) of every failed file.
    pub failures: Vec<(String, String)>,
    pub elapsed: Duration,
}

/// A file's bytes, its BLAKE3 hash and its modification time.
type FileRead = (Vec<u8>, String, Option<i64>);

/// Runs ingests into one store with one set of models.
#[derive(Debug, Clone)]
pub struct Ingester {
    store: Store,
    analyzers: Arc<Analyzers>,
    options: IngestOptions,
}

/// A file after the CPU work: ready to embed and write, or failed.
enum Prepared {
    Ready(Box<ReadyImage>),
    Failed { asset: Box<Asset>, error: String },
}

struct ReadyImage {
    asset: Asset,
    segment: Segment,
    thumbnail: Vec<u8>,
    /// CLIP input tensor values, when a CLIP model is installed.
    clip_input: Option<Vec<f32>>,
    /// Caption, title and keywords: what the sentence embedder reads.
    description: Option<String>,
}

impl Ingester {
    /// An ingester writing to `store` with `analyzers`.
    pub fn new(store: Store, analyzers: Arc<Analyzers>, options: IngestOptions) -> Self {
        Self {
            store,
            analyzers,
            options,
        }
    }

    /// Ingests files and folder trees; `progress` hears of every file.
    pub async fn run(
        &self,
        paths: &[PathBuf],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IngestSummary> {
        let started = Instant::now();
        self.analyzers.check_store(&self.store)?;
        let source = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let job = self.store.catalog.create_job("ingest", &source).await?;
        let (files, mut early) = discover(paths);
        progress(&Progress::Discovered {
            files: files.len() + early.len(),
        });
        self.store
            .catalog
            .set_job_total(&job.id, (files.len() + early.len()) as i64)
            .await?;
        let mut summary = IngestSummary {
            job_id: job.id.clone(),
            files: files.len() + early.len(),
            ..Default::default()
        };
        for (path, error) in early.drain(..) {
            self.finish_file(
                &job.id,
                &path,
                FileOutcome::Failed { error },
                &mut summary,
                progress,
            )
            .await?;
        }
        let mut seen_hashes = HashSet::new();
        for chunk in files.chunks(self.options.batch_size.max(1)) {
            self.run_batch(&job.id, chunk, &mut seen_hashes, &mut summary, progress)
                .await?;
        }
        let status = if summary.failed > 0 {
            "done_with_errors"
        } else {
            "done"
        };
        self.store.catalog.finish_job(&job.id, status).await?;
        summary.elapsed = started.elapsed();
        Ok(summary)
    }

    async fn finish_file(
        &self,
        job_id: &str,
        path: &Path,
        outcome: FileOutcome,
        summary: &mut IngestSummary,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let shown = path.display().to_string();
        let (status, asset_id, error) = match &outcome {
            FileOutcome::Indexed { asset_id } => {
                summary.indexed += 1;
                ("indexed", Some(asset_id.as_str()), None)
            }
            FileOutcome::Skipped { reason } => {
                summary.skipped += 1;
                ("skipped", None, Some(reason.as_str()))
            }
            FileOutcome::Failed { error } => {
                summary.failed += 1;
                summary.failures.push((shown.clone(), error.clone()));
                ("failed", None, Some(error.as_str()))
            }
        };
        self.store
            .catalog
            .record_job_file(job_id, &shown, status, asset_id, error)
            .await?;
        progress(&Progress::File {
            path: path.to_path_buf(),
            outcome,
        });
        Ok(())
    }

    async fn run_batch(
        &self,
        job_id: &str,
        chunk: &[PathBuf],
        seen_hashes: &mut HashSet<String>,
        summary: &mut IngestSummary,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        // 1. Cheap skip by path, size and modification time: unchanged files are not even read.
        let mut to_read = Vec::new();
        for path in chunk {
            let shown = path.display().to_string();
            if let Ok(meta) = fs_err::metadata(path)
                && let Some(mtime) = mtime_secs(&meta)
                && let Some(id) = self
                    .store
                    .catalog
                    .ready_asset_by_stat(&shown, meta.len() as i64, mtime)
                    .await?
            {
                let reason = format!("unchanged since indexed as asset {id}");
                self.finish_file(
                    job_id,
                    path,
                    FileOutcome::Skipped { reason },
                    summary,
                    progress,
                )
                .await?;
                continue;
            }
            to_read.push(path.clone());
        }
        // 2. Read and hash in parallel.
        let read: Vec<(PathBuf, std::io::Result<FileRead>)> = blocking(move || {
            to_read
                .into_par_iter()
                .map(|p| {
                    let r = fs_err::read(&p).map(|bytes| {
                        let hash = blake3::hash(&bytes).to_hex().to_string();
                        let mtime = fs_err::metadata(&p).ok().and_then(|m| mtime_secs(&m));
                        (bytes, hash, mtime)
                    });
                    (p, r)
                })
                .collect()
        })
        .await?;
        // 3. Skip content already indexed (under any name); reuse the id of an unfinished try.
        let mut work = Vec::new();
        for (path, r) in read {
            let (bytes, hash, mtime) = match r {
                Ok(x) => x,
                Err(e) => {
                    let error = format!("cannot read {}: {e}", path.display());
                    self.finish_file(
                        job_id,
                        &path,
                        FileOutcome::Failed { error },
                        summary,
                        progress,
                    )
                    .await?;
                    continue;
                }
            };
            if !seen_hashes.insert(hash.clone()) {
                let reason = "same content as another file of this ingest".to_string();
                self.finish_file(
                    job_id,
                    &path,
                    FileOutcome::Skipped { reason },
                    summary,
                    progress,
                )
                .await?;
                continue;
            }
            let existing = self.store.catalog.asset_by_hash(&hash).await?;
            if let Some(a) = existing.as_ref().filter(|a| a.status == AssetStatus::Ready) {
                let reason = format!("same content as asset {} ({})", a.id, a.path);
                self.finish_file(
                    job_id,
                    &path,
                    FileOutcome::Skipped { reason },
                    summary,
                    progress,
                )
                .await?;
                continue;
            }
            let mut asset = Asset::new(
                hash,
                path.display().to_string(),
                AssetKind::Image,
                bytes.len() as i64,
            );
            if let Some(old) = existing {
                asset.id = old.id;
            }
            asset.mtime = mtime;
            asset.collection = self.options.collection.clone();
            work.push((path, bytes, asset));
        }
        if work.is_empty() {
            return Ok(());
        }
        // 4. Decode and analyse in parallel (CPU).
        let analyzers = self.analyzers.clone();
        let default_language = self.options.language.clone();
        let prepared: Vec<(PathBuf, Prepared)> = blocking(move || {
            work.into_par_iter()
                .map(|(path, bytes, asset)| {
                    let p = prepare_image(
                        &path,
                        &bytes,
                        asset,
                        &analyzers,
                        default_language.as_deref(),
                    );
                    (path, p)
                })
                .collect()
        })
        .await?;
        // 5. Embed the batch with each model.
        let analyzers = self.analyzers.clone();
        let (prepared, visual, text) = blocking(move || -> Result<_> {
            let ready: Vec<&ReadyImage> = prepared
                .iter()
                .filter_map(|(_, p)| match p {
                    Prepared::Ready(r) => Some(r.as_ref()),
                    _ => None,
                })
                .collect();
            let visual = match &analyzers.clip {
                Some(clip) => {
                    let inputs: Vec<Vec<f32>> =
                        ready.iter().filter_map(|r| r.clip_input.clone()).collect();
                    clip.embed_preprocessed(&inputs)?
                }
                None => Vec::new(),
            };
            let text = match &analyzers.sentence {
                Some(s) => {
                    let texts: Vec<&str> = ready
                        .iter()
                        .filter_map(|r| r.description.as_deref())
                        .collect();
                    s.embed(&texts)?
                }
                None => Vec::new(),
            };
            Ok((prepared, visual, text))
        })
        .await??;
        // 6. Write thumbnails and every index, then commit the batch.
        let mut visual = visual.into_iter();
        let mut text = text.into_iter();
        let mut writes = Vec::new();
        let mut outcomes = Vec::new();
        for (path, p) in prepared {
            match p {
                Prepared::Failed { asset, error } => {
                    self.store
                        .record_failure(&Asset {
                            error: Some(error.clone()),
                            ..*asset
                        })
                        .await?;
                    outcomes.push((path, FileOutcome::Failed { error }));
                }
                Prepared::Ready(r) => {
                    let ReadyImage {
                        asset,
                        mut segment,
                        thumbnail,
                        clip_input,
                        description,
                    } = *r;
                    segment.thumbnail = Some(self.store.thumbnails.write(&segment.id, &thumbnail)?);
                    let mut points = Vec::new();
                    let point = |vector: Vec<f32>| VectorPoint {
                        segment_id: segment.id.clone(),
                        asset_id: asset.id.clone(),
                        asset_kind: asset.kind,
                        segment_kind: segment.kind,
                        start_ms: segment.start_ms,
                        end_ms: segment.end_ms,
                        captured_at: asset.captured_at,
                        collection: asset.collection.clone(),
                        language: asset.language.clone(),
                        vector,
                    };
                    if clip_input.is_some()
                        && let Some(v) = visual.next()
                    {
                        points.push((Space::Visual, point(v)));
                    }
                    if description.is_some()
                        && let Some(v) = text.next()
                    {
                        points.push((Space::Text, point(v)));
                    }
                    let doc = TextDoc {
                        asset_id: asset.id.clone(),
                        segment_id: None,
                        asset_kind: Some(asset.kind),
                        segment_kind: None,
                        collection: asset.collection.clone(),
                        language: asset.language.clone(),
                        captured_at: asset.captured_at,
                        title: asset.title.clone(),
                        caption: asset.caption.clone(),
                        keywords: asset.keywords.clone(),
                        credit: asset.credit.clone(),
                        filename: Some(asset.file_name().to_string()),
                        text: None,
                    };
                    outcomes.push((
                        path,
                        FileOutcome::Indexed {
                            asset_id: asset.id.clone(),
                        },
                    ));
                    writes.push(AssetWrite {
                        asset,
                        segments: vec![segment],
                        text_docs: vec![doc],
                        points,
                    });
                }
            }
        }
        if !writes.is_empty() {
            self.store.write(&writes).await?;
            let ids: Vec<String> = writes.iter().map(|w| w.asset.id.clone()).collect();
            self.store.commit(&ids).await?;
        }
        for (path, outcome) in outcomes {
            self.finish_file(job_id, &path, outcome, summary, progress)
                .await?;
        }
        Ok(())
    }
}

/// Everything about one image that needs only the CPU: decode, metadata, thumbnail,
/// fingerprint, CLIP preprocessing.
fn prepare_image(
    path: &Path,
    bytes: &[u8],
    mut asset: Asset,
    analyzers: &Analyzers,
    language: Option<&str>,
) -> Prepared {
    let decoded = match img::decode(path, bytes) {
        Ok(d) => d,
        Err(e) => {
            asset.status = AssetStatus::Failed;
            return Prepared::Failed {
                asset: Box::new(asset),
                error: e.to_string(),
            };
        }
    };
    let meta = metadata::read(bytes, decoded.format);
    asset.mime = Some(probe::image_mime(decoded.format).to_string());
    asset.width = Some(decoded.image.width() as i64);
    asset.height = Some(decoded.image.height() as i64);
    asset.captured_at = meta.captured_at;
    asset.camera = meta.camera;
    asset.gps_lat = meta.gps.map(|g| g.0);
    asset.gps_lon = meta.gps.map(|g| g.1);
    asset.title = meta.title;
    asset.caption = meta.caption;
    asset.keywords = meta.keywords;
    asset.credit = meta.credit;
    asset.language = meta
        .language
        .or_else(|| asset.caption.as_deref().and_then(detect_language))
        .or_else(|| language.map(str::to_string));
    asset.phash = Some(fingerprint::phash(&decoded.image));
    let thumbnail = match img::thumbnail_jpeg(&decoded.image) {
        Ok(t) => t,
        Err(e) => {
            asset.status = AssetStatus::Failed;
            return Prepared::Failed {
                asset: Box::new(asset),
                error: format!("thumbnail of {}: {e}", path.display()),
            };
        }
    };
    let clip_input = analyzers
        .clip
        .as_ref()
        .map(|c| c.preprocess().apply(&decoded.image));
    let description = [
        asset.title.clone(),
        asset.caption.clone(),
        (!asset.keywords.is_empty()).then(|| asset.keywords.join(", ")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let description =
        (!description.is_empty() && analyzers.sentence.is_some()).then(|| description.join(". "));
    let segment = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
    Prepared::Ready(Box::new(ReadyImage {
        asset,
        segment,
        thumbnail,
        clip_input,
        description,
    }))
}

/// English or French when the caption says so with confidence.
fn detect_language(text: &str) -> Option<String> {
    let info = whatlang::detect(text)?;
    if !info.is_reliable() {
        return None;
    }
    match info.lang() {
        whatlang::Lang::Eng => Some("en".into()),
        whatlang::Lang::Fra => Some("fr".into()),
        _ => None,
    }
}

/// Media files under `paths` in a stable order, and the paths that failed before reading
/// (missing, unsupported when named explicitly, unreadable folders).
fn discover(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut failed = Vec::new();
    for root in paths {
        // Absolute paths: the catalog must name the same file whatever folder `kairos` ran in.
        let root = &root.canonicalize().unwrap_or_else(|_| root.clone());
        if root.is_file() {
            if probe::kind_of(root).is_some() {
                files.push(root.clone());
            } else {
                let e = Error::Unsupported {
                    path: root.clone(),
                    reason: format!(
                        "Kairos indexes images ({})",
                        probe::IMAGE_EXTENSIONS.join(", ")
                    ),
                };
                failed.push((root.clone(), e.to_string()));
            }
            continue;
        }
        if !root.exists() {
            failed.push((
                root.clone(),
                format!("{}: no such file or folder", root.display()),
            ));
            continue;
        }
        for entry in walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
        {
            match entry {
                Ok(e) if e.file_type().is_file() && probe::kind_of(e.path()).is_some() => {
                    files.push(e.into_path())
                }
                Ok(_) => {}
                Err(e) => {
                    let p = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    failed.push((p.clone(), format!("cannot read {}: {e}", p.display())));
                }
            }
        }
    }
    (files, failed)
}

fn mtime_secs(meta: &std::fs::Metadata) -> Option<i64> {
    meta.modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// Runs CPU-bound work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))
}
