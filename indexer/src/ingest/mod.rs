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
    Thumbnails, VectorPoint,
};
use rayon::prelude::*;

use kairos_models::whisper::{SAMPLE_RATE, TranscribeOptions};

use crate::analysis::Analyzers;
use crate::audio::AudioFile;
use crate::blocking;
use crate::error::{Error, Result};
use crate::image::{self as img, fingerprint, metadata};
use crate::manifest::Manifest;
use crate::probe;
use crate::video::Tools;

mod pool;
mod video;
mod walk;
pub use video::VideoTimings;
pub use walk::WalkOptions;

/// How an ingest runs. It is kept with its job (as JSON) so that an interrupted job resumes
/// with the options it was started with.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct IngestOptions {
    /// Collection every new asset joins.
    pub collection: Option<String>,
    /// Language of captions when their metadata does not say (ISO 639-1).
    pub language: Option<String>,
    /// Files analysed and committed together.
    pub batch_size: usize,
    /// Spoken language of recordings (`en`, `fr`, …); `None` detects it per file.
    pub speech_language: Option<String>,
    /// A long video shot gets a keyframe (a searchable moment) every this many seconds.
    pub keyframe_every_s: f64,
    /// Which files of the folders to take.
    pub walk: WalkOptions,
    /// A manifest of catalogue records merged into the assets (see [`crate::manifest`]).
    pub manifest_path: Option<PathBuf>,
    /// The manifest, read (by [`IngestOptions::load_manifest`]).
    #[serde(skip)]
    pub manifest: Option<Arc<Manifest>>,
    /// Set to stop the job: it ends after the files in progress are committed, `cancelled`.
    #[serde(skip)]
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            collection: None,
            language: None,
            batch_size: 16,
            speech_language: None,
            keyframe_every_s: 10.0,
            walk: WalkOptions::default(),
            manifest_path: None,
            manifest: None,
            stop: None,
        }
    }
}

impl IngestOptions {
    /// Reads the manifest `manifest_path` names, if any.
    pub fn load_manifest(&mut self) -> Result<()> {
        self.manifest = match &self.manifest_path {
            Some(p) => Some(Arc::new(Manifest::load(p)?)),
            None => None,
        };
        Ok(())
    }
}

/// What a job was asked to do: kept with the job, read back to resume it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobSpec {
    pub paths: Vec<PathBuf>,
    pub options: IngestOptions,
}

impl JobSpec {
    /// The spec a job kept, if it kept one.
    pub fn of(job: &kairos_store::Job) -> Result<Option<Self>> {
        job.spec
            .as_deref()
            .map(|s| {
                serde_json::from_str(s).map_err(|e| Error::Task(format!("job {}: {e}", job.id)))
            })
            .transpose()
    }
}

/// What an ingest would do, without doing it (`kairos ingest --dry-run`).
#[derive(Debug, Default, serde::Serialize)]
pub struct Plan {
    /// Files it would read and index: (path, kind, bytes).
    pub new: Vec<(PathBuf, AssetKind, u64)>,
    /// Files already indexed and unchanged (same path, size and modification time).
    pub unchanged: usize,
    /// Files the include and exclude globs leave out.
    pub excluded: usize,
    /// Paths that would fail before reading, with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Files the manifest has a record for.
    pub with_record: usize,
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
    /// The walk found this many candidate files, `done` of them finished by an earlier run of
    /// the same (resumed) job.
    Discovered { files: usize, done: usize },
    /// One file is done.
    File { path: PathBuf, outcome: FileOutcome },
    /// Files of a batch passed a stage: `probed` (read, hashed, checked against the archive),
    /// `decoded` (decoded and analysed), `embedded` (through the models).
    Stage { stage: &'static str, files: usize },
    /// Every file is written; the vector index is being built over the new vectors (67 s for
    /// 100,000 in each of the two spaces on 2 cores, `kairos bench load`'s archive).
    IndexingVectors,
    /// A long file is on its way: `done_ms` of `total_ms` (when the container says) analysed.
    Working {
        path: PathBuf,
        /// What is being done: `transcribing` (speech), `finding shots in` (a video's frames).
        stage: &'static str,
        done_ms: u64,
        total_ms: Option<u64>,
    },
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
    /// (path, where its time went) of every video analysed.
    pub videos: Vec<(String, VideoTimings)>,
    pub elapsed: Duration,
    /// Files an earlier run of this (resumed) job had finished.
    pub resumed: usize,
    /// Files the include and exclude globs left out.
    pub excluded: usize,
    /// Whether the job was stopped by a cancel request.
    pub cancelled: bool,
}

/// A file's bytes (images only: recordings are streamed later), its size, BLAKE3 hash and
/// modification time.
type FileRead = (Vec<u8>, u64, String, Option<i64>);

/// Runs ingests into one store with one set of models.
#[derive(Debug, Clone)]
pub struct Ingester {
    store: Store,
    analyzers: Arc<Analyzers>,
    options: IngestOptions,
    tools: Tools,
}

/// A file that failed, with the reason.
fn failed(mut asset: Asset, error: String) -> Prepared {
    asset.status = AssetStatus::Failed;
    Prepared::Failed {
        asset: Box::new(asset),
        error,
    }
}

/// A file after the CPU work: ready to embed and write, or failed.
enum Prepared {
    Ready(Box<ReadyAsset>),
    Failed { asset: Box<Asset>, error: String },
}

struct ReadyAsset {
    asset: Asset,
    segments: Vec<ReadySegment>,
}

/// A moment of an asset with what the batch models still have to read of it.
struct ReadySegment {
    segment: Segment,
    thumbnail: Option<Vec<u8>>,
    /// CLIP input tensor values, when a CLIP model is installed (embedded with the batch).
    clip_input: Option<Vec<f32>>,
    /// A CLIP vector already computed (video keyframes are embedded during the frame pass).
    visual: Option<Vec<f32>>,
    /// What the sentence embedder reads: an image's caption, title and keywords; a transcript
    /// segment's words.
    embed_text: Option<String>,
    /// Whether the moment has its own text document (speech does; an image's text is the asset's).
    own_doc: bool,
}

/// How often a running job says it is alive (and looks for a cancel request).
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Sentences per sentence-embedder call: bounds the padded batch for long transcripts.
const EMBED_BATCH: usize = 64;

impl Ingester {
    /// An ingester writing to `store` with `analyzers`.
    pub fn new(store: Store, analyzers: Arc<Analyzers>, options: IngestOptions) -> Self {
        Self {
            store,
            analyzers,
            options,
            tools: Tools::from_env(),
        }
    }

    /// Ingests files and folder trees; `progress` hears of every file. The job keeps the
    /// paths and options, so that `resume` can finish it if this process is stopped.
    pub async fn run(
        &self,
        paths: &[PathBuf],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IngestSummary> {
        self.analyzers.check_store(&self.store)?;
        // Absolute paths: a resumed job must find the same files from any folder.
        let paths: Vec<PathBuf> = paths
            .iter()
            .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
            .collect();
        let source = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let spec = JobSpec {
            paths: paths.clone(),
            options: self.options.clone(),
        };
        let spec = serde_json::to_string(&spec).map_err(|e| Error::Task(e.to_string()))?;
        // The same ingest run again goes on with the job it left unfinished.
        if let Some(job) = self
            .store
            .catalog
            .unfinished_job_with_spec("ingest", &spec)
            .await?
        {
            self.store.catalog.reopen_job(&job.id).await?;
            return self.run_job(&job.id, &paths, progress).await;
        }
        let job = self.store.catalog.create_job("ingest", &source).await?;
        self.store.catalog.set_job_spec(&job.id, &spec).await?;
        self.run_job(&job.id, &paths, progress).await
    }

    /// Which files of the folders this ingester takes.
    pub fn walk(&self) -> &WalkOptions {
        &self.options.walk
    }

    /// Marks the assets of a deleted file (or of every file under a deleted folder) missing.
    pub async fn mark_missing(&self, path: &Path) -> Result<Vec<String>> {
        Ok(self
            .store
            .catalog
            .mark_missing(&path.display().to_string())
            .await?)
    }

    /// Goes on with job `job_id` (interrupted, cancelled or failed) with the paths and options it
    /// was started with; the files it had already finished are not looked at again.
    pub async fn resume(
        store: Store,
        analyzers: Arc<Analyzers>,
        job_id: &str,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IngestSummary> {
        let job = store.catalog.job(job_id).await?;
        let Some(spec) = JobSpec::of(&job)? else {
            return Err(Error::Option {
                option: "--resume",
                message: format!(
                    "job {job_id} ({}) did not keep its paths and options: run the ingest again",
                    job.kind
                ),
            });
        };
        if matches!(job.status.as_str(), "running" | "queued") {
            return Err(Error::Option {
                option: "--resume",
                message: format!(
                    "job {job_id} is {} (its process is alive): it cannot be resumed twice",
                    job.status
                ),
            });
        }
        let mut options = spec.options;
        options.load_manifest()?;
        store.catalog.reopen_job(job_id).await?;
        Ingester::new(store, analyzers, options)
            .run_job(job_id, &spec.paths, progress)
            .await
    }

    /// What `run` would do with `paths`: the files it would index, and those it would skip
    /// because they are indexed and unchanged. Writes nothing.
    pub async fn plan(&self, paths: &[PathBuf]) -> Result<Plan> {
        let found = walk::discover(paths, &self.options.walk)?;
        let mut plan = Plan {
            excluded: found.excluded,
            failed: found.failed,
            ..Default::default()
        };
        for path in found.files {
            let meta = match fs_err::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    plan.failed.push((path, e.to_string()));
                    continue;
                }
            };
            if let Some(mtime) = mtime_secs(&meta)
                && self
                    .store
                    .catalog
                    .ready_asset_by_stat(&path.display().to_string(), meta.len() as i64, mtime)
                    .await?
                    .is_some()
            {
                plan.unchanged += 1;
                continue;
            }
            if self
                .options
                .manifest
                .as_ref()
                .is_some_and(|m| m.record(&path).is_some())
            {
                plan.with_record += 1;
            }
            let kind = probe::kind_of(&path).unwrap_or(AssetKind::Image);
            plan.new.push((path, kind, meta.len()));
        }
        Ok(plan)
    }

    /// Runs job `job_id` (created beforehand, e.g. by an upload that answers at once) over
    /// `paths`; the job ends `done`, `done_with_errors`, `cancelled` or, when the archive itself
    /// fails, `failed` with the reason. While it runs it beats the job's heartbeat and heeds a
    /// cancel request from any process.
    pub async fn run_job(
        &self,
        job_id: &str,
        paths: &[PathBuf],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IngestSummary> {
        self.store.catalog.set_job_status(job_id, "running").await?;
        let stop = self.options.stop.clone().unwrap_or_default();
        let pid = std::process::id();
        if self.store.catalog.job_heartbeat(job_id, pid).await? {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let heartbeat = {
            let catalog = self.store.catalog.clone();
            let (id, stop) = (job_id.to_string(), stop.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(HEARTBEAT).await;
                    match catalog.job_heartbeat(&id, pid).await {
                        Ok(true) => stop.store(true, std::sync::atomic::Ordering::Relaxed),
                        Ok(false) => {}
                        Err(e) => tracing::warn!("job {id}: heartbeat: {e}"),
                    }
                }
            })
        };
        let outcome = self.run_job_files(job_id, paths, &stop, progress).await;
        heartbeat.abort();
        if let Err(e) = &outcome {
            // Best effort: the archive that failed may fail this write too.
            let _ = self.store.catalog.fail_job(job_id, &e.to_string()).await;
        }
        outcome
    }

    async fn run_job_files(
        &self,
        job_id: &str,
        paths: &[PathBuf],
        stop: &std::sync::atomic::AtomicBool,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IngestSummary> {
        let started = Instant::now();
        self.analyzers.check_store(&self.store)?;
        let job = self.store.catalog.job(job_id).await?;
        let found = walk::discover(paths, &self.options.walk)?;
        // A resumed job does not look again at the files it has finished.
        let recorded = self.store.catalog.job_file_paths(&job.id).await?;
        let total = found.files.len() + found.failed.len();
        let (files, finished): (Vec<PathBuf>, Vec<PathBuf>) = found
            .files
            .into_iter()
            .partition(|f| !recorded.contains(&f.display().to_string()));
        let early: Vec<_> = found
            .failed
            .into_iter()
            .filter(|(p, _)| !recorded.contains(&p.display().to_string()))
            .collect();
        let done_before = total - files.len() - early.len();
        drop(finished);
        progress(&Progress::Discovered {
            files: total,
            done: done_before,
        });
        self.store
            .catalog
            .set_job_total(&job.id, total as i64)
            .await?;
        let mut summary = IngestSummary {
            job_id: job.id.clone(),
            files: total,
            resumed: done_before,
            excluded: found.excluded,
            ..Default::default()
        };
        for (path, error) in early {
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
        let mut cancelled = false;
        // The stages overlap, one batch each: batch N+1 is read and decoded while batch N is
        // embedded, and batch N is written and committed while N+1 is embedded. At most three
        // batches are in memory (prepared, embedding, writing), whatever the archive's size.
        let mut embedding: Option<tokio::task::JoinHandle<Result<Embedded>>> = None;
        let mut pending = Pending::new();
        for chunk in batches(&files, self.options.batch_size) {
            // A cancel request from another process is seen before the next batch.
            if stop.load(std::sync::atomic::Ordering::Relaxed)
                || self.store.catalog.job_cancel_requested(&job.id).await?
            {
                cancelled = true;
                break;
            }
            let behind_encoder = embedding.is_some() && self.analyzers.clip.is_some();
            let prepared = self
                .prepare_batch(
                    &job,
                    chunk,
                    behind_encoder,
                    &mut seen_hashes,
                    &mut summary,
                    progress,
                )
                .await?;
            let previous = match embedding.take() {
                Some(task) => Some(joined(task).await?),
                None => None,
            };
            if !prepared.is_empty() {
                let analyzers = self.analyzers.clone();
                embedding = Some(tokio::task::spawn_blocking(move || {
                    embed_batch(&analyzers, prepared)
                }));
            }
            if let Some(done) = previous {
                self.write_batch(&job.id, done, &mut pending, &mut summary, progress)
                    .await?;
            }
        }
        // The batch still embedding is finished and written, also when cancelled: its files
        // were read and analysed, and a cancel stops before the next batch, not inside one.
        if let Some(task) = embedding.take() {
            let done = joined(task).await?;
            self.write_batch(&job.id, done, &mut pending, &mut summary, progress)
                .await?;
        }
        self.commit_pending(&job.id, &mut pending, &mut summary, progress)
            .await?;
        // Before the job is done, so that a killed build is done again when it resumes. Not
        // when cancelled: a cancel is to stop now, and the next ingest builds it.
        if !cancelled {
            progress(&Progress::IndexingVectors);
            self.store.build_vector_index().await?;
        }
        // Failures of an earlier run of a resumed job count too.
        let failed_in_job = self.store.catalog.job(&job.id).await?.failed;
        let status = if cancelled {
            "cancelled"
        } else if summary.failed > 0 || failed_in_job > 0 {
            "done_with_errors"
        } else {
            "done"
        };
        self.store.catalog.finish_job(&job.id, status).await?;
        summary.elapsed = started.elapsed();
        summary.cancelled = cancelled;
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

    /// The first stage of a batch: skips what is indexed, reads, hashes and decodes the rest.
    /// Files that end here (skipped, unreadable, relinked) are recorded at once.
    /// `behind_encoder`: the previous batch is being embedded meanwhile.
    async fn prepare_batch(
        &self,
        job: &kairos_store::Job,
        chunk: &[PathBuf],
        behind_encoder: bool,
        seen_hashes: &mut HashSet<String>,
        summary: &mut IngestSummary,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<Vec<(PathBuf, Prepared)>> {
        let job_id = job.id.as_str();
        // 1. Cheap skip by path, size and modification time: unchanged files are not even read.
        let mut to_read = Vec::new();
        for path in chunk {
            let shown = path.display().to_string();
            if let Ok(meta) = fs_err::metadata(path)
                && let Some(mtime) = mtime_secs(&meta)
                && let Some((id, indexed_at)) = self
                    .store
                    .catalog
                    .ready_asset_by_stat(&shown, meta.len() as i64, mtime)
                    .await?
            {
                // Indexed since this job began, yet not recorded in it: an earlier run of this
                // (resumed) job was killed between committing the file and recording it.
                if indexed_at >= job.created_at {
                    self.finish_file(
                        job_id,
                        path,
                        FileOutcome::Indexed { asset_id: id },
                        summary,
                        progress,
                    )
                    .await?;
                    continue;
                }
                let mut reason = format!("unchanged since indexed as asset {id}");
                if self.apply_record_to_indexed(path, &id).await? {
                    reason.push_str("; its catalogue record updated from the manifest");
                }
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
            pool::decode(behind_encoder, || {
                to_read
                    .into_par_iter()
                    .map(|p| {
                        let r = read_and_hash(&p);
                        (p, r)
                    })
                    .collect()
            })
        })
        .await?;
        // 3. Skip content already indexed (under any name); reuse the id of an unfinished try.
        let mut work = Vec::new();
        for (path, r) in read {
            let (bytes, size, hash, mtime) = match r {
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
            // A missing asset's file has come back (moved or restored): ready again at its
            // new path, with everything it had.
            if let Some(a) = existing
                .as_ref()
                .filter(|a| a.status == AssetStatus::Missing)
            {
                self.store
                    .relink(&a.id, &path.display().to_string(), mtime)
                    .await?;
                let outcome = FileOutcome::Indexed {
                    asset_id: a.id.clone(),
                };
                self.finish_file(job_id, &path, outcome, summary, progress)
                    .await?;
                continue;
            }
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
            let kind = probe::kind_of(&path).unwrap_or(AssetKind::Image);
            let mut asset = Asset::new(hash, path.display().to_string(), kind, size as i64);
            if let Some(old) = existing {
                asset.id = old.id;
            }
            asset.mtime = mtime;
            asset.collection = self.options.collection.clone();
            work.push((path, bytes, asset));
        }
        progress(&Progress::Stage {
            stage: "probed",
            files: work.len(),
        });
        if work.is_empty() {
            return Ok(Vec::new());
        }
        // 4. Decode and analyse: images in parallel, recordings one at a time (transcription
        //    already uses every core), streamed from disk.
        let (images, timed): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|(_, _, a)| a.kind == AssetKind::Image);
        let analyzers = self.analyzers.clone();
        let default_language = self.options.language.clone();
        let mut prepared: Vec<(PathBuf, Prepared)> = blocking(move || {
            pool::decode(behind_encoder, || {
                images
                    .into_par_iter()
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
        })
        .await?;
        for (path, _, asset) in timed {
            let (p, timings) = self.prepare_timed(path.clone(), asset, progress).await?;
            if let Some(t) = timings {
                summary.videos.push((path.display().to_string(), t));
            }
            prepared.push((path, p));
        }
        // The archive's catalogue records win over what the files say of themselves.
        if let Some(manifest) = &self.options.manifest {
            for (path, p) in &mut prepared {
                if let Some(record) = manifest.record(path) {
                    self.apply_record(record, p);
                }
            }
        }
        progress(&Progress::Stage {
            stage: "decoded",
            files: prepared.len(),
        });
        Ok(prepared)
    }

    /// The last stage of a batch: thumbnails and every index written; committed, and each
    /// file's outcome recorded in its job, with the batches before it once a commit is due
    /// ([`COMMIT_EVERY`]).
    async fn write_batch(
        &self,
        job_id: &str,
        embedded: Embedded,
        pending: &mut Pending,
        summary: &mut IngestSummary,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let Embedded {
            prepared,
            visual,
            text,
        } = embedded;
        progress(&Progress::Stage {
            stage: "embedded",
            files: prepared
                .iter()
                .filter(|(_, p)| matches!(p, Prepared::Ready(_)))
                .count(),
        });
        let mut visual = visual.into_iter();
        let mut text = text.into_iter();
        let mut writes = Vec::new();
        let mut outcomes = Vec::new();
        let mut thumbnails = Vec::new();
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
                    let ReadyAsset { asset, segments } = *r;
                    let mut points = Vec::new();
                    let mut text_docs = vec![TextDoc::for_asset(&asset)];
                    let mut written = Vec::with_capacity(segments.len());
                    for ready in segments {
                        let ReadySegment {
                            mut segment,
                            thumbnail,
                            clip_input,
                            visual: computed,
                            embed_text,
                            own_doc,
                        } = ready;
                        // The catalog names the thumbnail before its file exists: the file is
                        // written after the rows and before the commit, so a crash leaves either
                        // nothing or an unfinished asset whose redo replaces it.
                        if let Some(t) = thumbnail {
                            segment.thumbnail = Some(Thumbnails::relative_path(&segment.id));
                            thumbnails.push((segment.id.clone(), t));
                        }
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
                        if let Some(v) = computed {
                            points.push((Space::Visual, point(v)));
                        } else if clip_input.is_some()
                            && let Some(v) = visual.next()
                        {
                            points.push((Space::Visual, point(v)));
                        }
                        if embed_text.is_some()
                            && let Some(v) = text.next()
                        {
                            points.push((Space::Text, point(v)));
                        }
                        if own_doc {
                            text_docs.push(TextDoc::for_segment(&asset, &segment));
                        }
                        written.push(segment);
                    }
                    outcomes.push((
                        path,
                        FileOutcome::Indexed {
                            asset_id: asset.id.clone(),
                        },
                    ));
                    writes.push(AssetWrite {
                        asset,
                        segments: written,
                        text_docs,
                        points,
                    });
                }
            }
        }
        if !writes.is_empty() {
            self.store.write(&writes).await?;
            for (segment_id, jpeg) in &thumbnails {
                self.store.thumbnails.write(segment_id, jpeg)?;
            }
            pending
                .ids
                .extend(writes.iter().map(|w| w.asset.id.clone()));
        }
        pending.outcomes.extend(outcomes);
        if pending.since.elapsed() >= COMMIT_EVERY {
            self.commit_pending(job_id, pending, summary, progress)
                .await?;
        }
        Ok(())
    }

    /// Commits the assets written since the last commit, then records their files' outcomes.
    async fn commit_pending(
        &self,
        job_id: &str,
        pending: &mut Pending,
        summary: &mut IngestSummary,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let Pending { ids, outcomes, .. } = std::mem::replace(pending, Pending::new());
        if !ids.is_empty() {
            self.store.commit(&ids).await?;
        }
        for (path, outcome) in outcomes {
            if let FileOutcome::Indexed { asset_id } = &outcome {
                self.store
                    .catalog
                    .supersede(&path.display().to_string(), asset_id)
                    .await?;
            }
            self.finish_file(job_id, &path, outcome, summary, progress)
                .await?;
        }
        Ok(())
    }
}

impl Ingester {
    /// Merges a manifest record into a file just analysed; an image's description, which its
    /// sentence vector is made from, is made again from the merged title, caption and keywords.
    fn apply_record(&self, record: &crate::manifest::Record, prepared: &mut Prepared) {
        match prepared {
            Prepared::Ready(ready) => {
                record.apply(&mut ready.asset);
                if ready.asset.kind == AssetKind::Image && self.analyzers.sentence.is_some() {
                    let text = description(&ready.asset);
                    for s in &mut ready.segments {
                        if s.segment.kind == SegmentKind::Image {
                            s.embed_text = text.clone();
                        }
                    }
                }
            }
            Prepared::Failed { asset, .. } => record.apply(asset),
        }
    }

    /// Brings the manifest's title, caption, keywords and collection to `path`, indexed and
    /// unchanged as asset `id`; answers whether anything changed.
    async fn apply_record_to_indexed(&self, path: &Path, id: &str) -> Result<bool> {
        let Some(record) = self.options.manifest.as_ref().and_then(|m| m.record(path)) else {
            return Ok(false);
        };
        let asset = self.store.catalog.asset(id).await?;
        let Some(patch) = record.patch_for(&asset) else {
            return Ok(false);
        };
        crate::edit::update_metadata(&self.store, &self.analyzers, id, &patch).await?;
        Ok(true)
    }

    /// Analyses one recording or video off the async runtime, relaying its progress.
    async fn prepare_timed(
        &self,
        path: PathBuf,
        asset: Asset,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<(Prepared, Option<VideoTimings>)> {
        let (tx, mut rx) =
            tokio::sync::mpsc::unbounded_channel::<(&'static str, u64, Option<u64>)>();
        let analyzers = self.analyzers.clone();
        let options = self.options.clone();
        let tools = self.tools.clone();
        let p = path.clone();
        let task = tokio::task::spawn_blocking(move || {
            let report = move |stage: &'static str, done: u64, total: Option<u64>| {
                let _ = tx.send((stage, done, total));
            };
            if asset.kind == AssetKind::Video {
                let mut timings = VideoTimings::default();
                let prepared = video::prepare_video(
                    &p,
                    asset,
                    &analyzers,
                    &options,
                    &tools,
                    &report,
                    &mut timings,
                );
                tracing::debug!(path = %p.display(), ?timings, "video analysed");
                (prepared, Some(timings))
            } else {
                (
                    prepare_audio(&p, asset, &analyzers, &options, &|done, total| {
                        report("transcribing", done, total)
                    }),
                    None,
                )
            }
        });
        while let Some((stage, done_ms, total_ms)) = rx.recv().await {
            progress(&Progress::Working {
                path: path.clone(),
                stage,
                done_ms,
                total_ms,
            });
        }
        task.await.map_err(|e| Error::Task(e.to_string()))
    }
}

/// One recording: tags, duration, and (with a speech model) its transcript as speech moments.
/// Nothing but a window of samples is in memory at a time.
fn prepare_audio(
    path: &Path,
    mut asset: Asset,
    analyzers: &Analyzers,
    options: &IngestOptions,
    progress: &dyn Fn(u64, Option<u64>),
) -> Prepared {
    let fail = failed;
    let mut file = match AudioFile::open(path) {
        Ok(f) => f,
        Err(e) => return fail(asset, e.to_string()),
    };
    asset.mime = probe::audio_mime(path).map(str::to_string);
    let tags = file.tags.clone();
    asset.title = tags.title;
    asset.caption = tags.caption;
    asset.keywords = tags.keywords;
    asset.credit = tags.credit;
    asset.captured_at = tags.captured_at;
    let total_ms = file.declared_ms();
    let mut transcript = None;
    if let Some(whisper) = &analyzers.whisper {
        let mut whisper = match whisper.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        };
        let opts = TranscribeOptions {
            language: options.speech_language.clone().or(tags
                .language
                .clone()
                .filter(|l| kairos_models::whisper::LANGUAGES.contains(&l.as_str()))),
        };
        let result = whisper.transcribe(&mut file, &opts, &mut |samples| {
            progress(samples_to_ms(samples), total_ms);
        });
        match result {
            Ok(t) => transcript = Some(t),
            Err(kairos_models::Error::Audio(message)) => return fail(asset, message),
            Err(e) => return fail(asset, format!("transcribing {}: {e}", path.display())),
        }
    }
    // Read to the end whatever the transcription needed: a truncated or corrupt tail fails the
    // file here, and the duration is the decoded one.
    if let Err(e) = file.drain() {
        return fail(asset, e.to_string());
    }
    asset.duration_ms = Some(samples_to_ms(file.samples()) as i64);
    // The language the words were transcribed in (forced, tagged or detected) is the one their
    // text is analysed with.
    let spoken = transcript.as_ref().and_then(|t| t.language.clone());
    asset.language = spoken
        .or_else(|| options.speech_language.clone())
        .or(tags.language)
        .or_else(|| options.language.clone());
    let segments = speech_moments(&asset.id, transcript, analyzers, |_| None);
    Prepared::Ready(Box::new(ReadyAsset { asset, segments }))
}

/// Each non-empty Whisper segment as a `speech` moment with its own text document and (with a
/// sentence model) a sentence vector; `thumbnail_at(start_ms)` gives it a picture, if any.
fn speech_moments(
    asset_id: &str,
    transcript: Option<kairos_models::whisper::Transcript>,
    analyzers: &Analyzers,
    thumbnail_at: impl Fn(i64) -> Option<Vec<u8>>,
) -> Vec<ReadySegment> {
    let mut out = Vec::new();
    for t in transcript.map(|t| t.segments).unwrap_or_default() {
        let text = t.text.trim();
        if text.is_empty() {
            continue;
        }
        let (start, end) = (t.start_ms as i64, t.end_ms as i64);
        let mut segment = Segment::new(asset_id, SegmentKind::Speech, start, end.max(start));
        segment.text = Some(text.to_string());
        out.push(ReadySegment {
            segment,
            thumbnail: thumbnail_at(start),
            clip_input: None,
            visual: None,
            embed_text: analyzers.sentence.as_ref().map(|_| text.to_string()),
            own_doc: true,
        });
    }
    out
}

pub(crate) fn samples_to_ms(samples: usize) -> u64 {
    samples as u64 * 1000 / SAMPLE_RATE as u64
}

/// Reads an image whole, or streams a recording through the hash (recordings can be hours long);
/// either way the content hash, size and modification time.
fn read_and_hash(path: &Path) -> std::io::Result<FileRead> {
    let meta = fs_err::metadata(path)?;
    if !meta.is_file() {
        // Opening a pipe with no writer would wait forever.
        return Err(std::io::Error::other(walk::NOT_REGULAR));
    }
    let mtime = mtime_secs(&meta);
    if probe::kind_of(path) == Some(AssetKind::Image) {
        let bytes = fs_err::read(path)?;
        let hash = blake3::hash(&bytes).to_hex().to_string();
        let size = bytes.len() as u64;
        return Ok((bytes, size, hash, mtime));
    }
    let mut hasher = blake3::Hasher::new();
    let file = fs_err::File::open(path)?;
    let size = std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 20, file),
        &mut hasher,
    )?;
    Ok((
        Vec::new(),
        size,
        hasher.finalize().to_hex().to_string(),
        mtime,
    ))
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
    let description = description(&asset).filter(|_| analyzers.sentence.is_some());
    let segment = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
    Prepared::Ready(Box::new(ReadyAsset {
        asset,
        segments: vec![ReadySegment {
            segment,
            thumbnail: Some(thumbnail),
            clip_input,
            visual: None,
            embed_text: description,
            own_doc: false,
        }],
    }))
}

/// What an image's sentence vector embeds: its title, caption and keywords.
pub fn description(asset: &Asset) -> Option<String> {
    let parts = [
        asset.title.clone(),
        asset.caption.clone(),
        (!asset.keywords.is_empty()).then(|| asset.keywords.join(", ")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    (!parts.is_empty()).then(|| parts.join(". "))
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

/// Commit groups: up to `size` images together (cheap, analysed in parallel), but every recording
/// and video alone, so that killing a long ingest loses at most the file in progress.
fn batches(files: &[PathBuf], size: usize) -> Vec<&[PathBuf]> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for (i, path) in files.iter().enumerate() {
        if matches!(
            probe::kind_of(path),
            Some(AssetKind::Audio | AssetKind::Video)
        ) {
            if start < i {
                out.push(&files[start..i]);
            }
            out.push(&files[i..=i]);
            start = i + 1;
        } else if i + 1 - start == size {
            out.push(&files[start..=i]);
            start = i + 1;
        }
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

fn mtime_secs(meta: &std::fs::Metadata) -> Option<i64> {
    meta.modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// A batch after its models: the files, and the vectors in the order of their segments.
struct Embedded {
    prepared: Vec<(PathBuf, Prepared)>,
    visual: Vec<Vec<f32>>,
    text: Vec<Vec<f32>>,
}

/// How often written batches are committed (and their files recorded as done). A commit costs
/// tantivy a segment and qdrant a flush, ~25–40 ms whatever the batch's size: once per batch of
/// 16 small images that was a third of an ingest without models. A crash loses at most this
/// much work: the assets written since are unfinished, and the next run redoes them.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Assets written but not yet committed, and the outcomes of their batches' files.
struct Pending {
    ids: Vec<String>,
    outcomes: Vec<(PathBuf, FileOutcome)>,
    since: Instant,
}

impl Pending {
    fn new() -> Self {
        Self {
            ids: Vec::new(),
            outcomes: Vec::new(),
            since: Instant::now(),
        }
    }
}

/// The middle stage of a batch: one CLIP call for its images, sentence vectors for its texts.
fn embed_batch(analyzers: &Analyzers, prepared: Vec<(PathBuf, Prepared)>) -> Result<Embedded> {
    let ready: Vec<&ReadySegment> = prepared
        .iter()
        .filter_map(|(_, p)| match p {
            Prepared::Ready(r) => Some(r.segments.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    let visual = match &analyzers.clip {
        Some(clip) => {
            let inputs: Vec<Vec<f32>> = ready.iter().filter_map(|r| r.clip_input.clone()).collect();
            clip.embed_preprocessed(&inputs)?
        }
        None => Vec::new(),
    };
    let mut text = Vec::new();
    if let Some(s) = &analyzers.sentence {
        let texts: Vec<&str> = ready
            .iter()
            .filter_map(|r| r.embed_text.as_deref())
            .collect();
        for chunk in texts.chunks(EMBED_BATCH) {
            text.extend(s.embed(chunk)?);
        }
    }
    Ok(Embedded {
        prepared,
        visual,
        text,
    })
}

/// Waits for a batch's embedding task.
async fn joined(task: tokio::task::JoinHandle<Result<Embedded>>) -> Result<Embedded> {
    task.await.map_err(|e| Error::Task(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_commit_alone_and_images_in_groups() {
        let files: Vec<PathBuf> = [
            "a.jpg", "b.jpg", "c.jpg", "talk.mp3", "d.png", "e.jpg", "f.jpg", "g.jpg", "h.wav",
            "i.mkv",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let names =
            |b: &[PathBuf]| -> Vec<String> { b.iter().map(|p| p.display().to_string()).collect() };
        let got: Vec<Vec<String>> = batches(&files, 2).into_iter().map(names).collect();
        assert_eq!(
            got,
            [
                vec!["a.jpg", "b.jpg"],
                vec!["c.jpg"],
                vec!["talk.mp3"],
                vec!["d.png", "e.jpg"],
                vec!["f.jpg", "g.jpg"],
                vec!["h.wav"],
                vec!["i.mkv"],
            ]
        );
        assert_eq!(batches(&files, 0).len(), files.len());
        assert!(batches(&[], 16).is_empty());
    }
}
