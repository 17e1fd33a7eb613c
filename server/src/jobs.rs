//! Ingest jobs started over HTTP (uploads): queued, run one at a time in the background (the
//! models want every core), with the file in progress kept in memory for job status.
//! An upload job whose server stopped is queued again at the next start: its files are in the
//! archive's `uploads/` folder, and the ingest skips those already indexed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kairos_indexer::{Analyzers, IngestOptions, Ingester, Progress};
use kairos_store::Store;
use serde::Serialize;

/// What a running job is doing right now.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LiveProgress {
    /// The file being analysed.
    pub file: Option<String>,
    /// `transcribing`, `finding shots in`… for a long file; `building the vector index` once
    /// every file is written.
    pub stage: Option<String>,
    /// Milliseconds of the file's media analysed so far, and its length.
    pub done_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

/// The job queue of one server.
#[derive(Debug)]
pub struct JobRunner {
    store: Store,
    analyzers: Arc<Analyzers>,
    /// Held by the job that runs: the others wait their turn.
    turn: Arc<tokio::sync::Mutex<()>>,
    live: Arc<Mutex<HashMap<String, LiveProgress>>>,
    /// The stop flag of each job queued or running here.
    stops: Arc<Mutex<HashMap<String, Arc<AtomicBool>>>>,
}

/// What a cancel request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// The job is queued or running here: it stops after the files in progress.
    Stopping,
    /// The job is not in this server's queue (finished, or run by a `kairos ingest`).
    NotHere,
}

impl JobRunner {
    /// A queue ingesting into `store` with `analyzers`.
    pub fn new(store: Store, analyzers: Arc<Analyzers>) -> Self {
        Self {
            store,
            analyzers,
            turn: Arc::default(),
            live: Arc::default(),
            stops: Arc::default(),
        }
    }

    /// Asks job `id` to stop. A queued job never starts; a running one finishes the files in
    /// progress (so that nothing is half-indexed) and ends `cancelled`.
    pub fn cancel(&self, id: &str) -> Cancel {
        match self.stops.lock().expect("job stops").get(id) {
            Some(stop) => {
                stop.store(true, Ordering::Relaxed);
                Cancel::Stopping
            }
            None => Cancel::NotHere,
        }
    }

    /// What job `id` is doing, when it is running.
    pub fn live(&self, id: &str) -> Option<LiveProgress> {
        self.live.lock().expect("job progress").get(id).cloned()
    }

    /// Queues job `job_id` (already in the catalog as `queued`) to ingest `paths`.
    pub fn submit(&self, job_id: String, paths: Vec<PathBuf>, mut options: IngestOptions) {
        let stop = Arc::new(AtomicBool::new(false));
        options.stop = Some(stop.clone());
        self.stops
            .lock()
            .expect("job stops")
            .insert(job_id.clone(), stop.clone());
        let ingester = Ingester::new(self.store.clone(), self.analyzers.clone(), options);
        let turn = self.turn.clone();
        let live = self.live.clone();
        let stops = self.stops.clone();
        let store = self.store.clone();
        tokio::spawn(async move {
            let _turn = turn.lock().await;
            if stop.load(Ordering::Relaxed) {
                if let Err(e) = store.catalog.finish_job(&job_id, "cancelled").await {
                    tracing::error!("cannot mark upload job {job_id} cancelled: {e}");
                }
                stops.lock().expect("job stops").remove(&job_id);
                return;
            }
            live.lock()
                .expect("job progress")
                .insert(job_id.clone(), LiveProgress::default());
            let progress_live = live.clone();
            let id = job_id.clone();
            let progress = move |p: &Progress| {
                let mut live = progress_live.lock().expect("job progress");
                let Some(slot) = live.get_mut(&id) else {
                    return;
                };
                match p {
                    Progress::Working {
                        path,
                        stage,
                        done_ms,
                        total_ms,
                    } => {
                        *slot = LiveProgress {
                            file: Some(file_name(path)),
                            stage: Some(stage.to_string()),
                            done_ms: Some(*done_ms),
                            total_ms: *total_ms,
                        }
                    }
                    Progress::File { .. } | Progress::Discovered { .. } => {
                        *slot = LiveProgress::default()
                    }
                    Progress::IndexingVectors => {
                        *slot = LiveProgress {
                            stage: Some("building the vector index".into()),
                            ..LiveProgress::default()
                        }
                    }
                    Progress::Stage { .. } => {}
                }
            };
            if let Err(e) = ingester.run_job(&job_id, &paths, &progress).await {
                tracing::error!("job {job_id} failed: {e}");
            }
            live.lock().expect("job progress").remove(&job_id);
            stops.lock().expect("job stops").remove(&job_id);
        });
    }

    /// Queues again the jobs (uploads, server-side ingests) that a stopped server left queued or
    /// running; the ingest skips the files they had already indexed.
    pub async fn resume_interrupted(&self) {
        for kind in ["upload", SERVER_INGEST] {
            let jobs = match self.store.catalog.unfinished_jobs(kind).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!("cannot list unfinished {kind} jobs: {e}");
                    return;
                }
            };
            for job in jobs {
                let options = IngestOptions {
                    collection: job_option(&job.source, "collection"),
                    language: job_option(&job.source, "language"),
                    ..Default::default()
                };
                let paths = if kind == "upload" {
                    vec![self.store.data_dir().join("uploads").join(&job.id)]
                } else {
                    source_paths(&job.source)
                };
                tracing::info!("resuming {kind} job {}", job.id);
                self.submit(job.id, paths, options);
            }
        }
    }
}

/// The job kind of `POST /api/v1/ingest`.
pub const SERVER_INGEST: &str = "server_ingest";

/// The source text of a server-side ingest: its paths, one a line, then its options; they come
/// back out of it when the job is resumed.
pub fn ingest_source(
    paths: &[PathBuf],
    collection: Option<&str>,
    language: Option<&str>,
) -> String {
    let mut source: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    if let Some(c) = collection {
        source.push(format!("(collection={c})"));
    }
    if let Some(l) = language {
        source.push(format!("(language={l})"));
    }
    source.join("\n")
}

fn source_paths(source: &str) -> Vec<PathBuf> {
    source
        .lines()
        .filter(|l| !l.starts_with('('))
        .map(PathBuf::from)
        .collect()
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The source text of an upload job: `upload of N files (collection=NAME)`; options come back
/// out of it when a job is resumed.
pub fn upload_source(files: usize, collection: Option<&str>) -> String {
    match collection {
        Some(c) => format!("upload of {files} file(s) (collection={c})"),
        None => format!("upload of {files} file(s)"),
    }
}

fn job_option(source: &str, name: &str) -> Option<String> {
    let start = source.find(&format!("({name}="))? + name.len() + 2;
    let rest = source[start..].lines().next()?;
    Some(rest[..rest.rfind(')')?].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_upload_keeps_its_collection() {
        let source = upload_source(3, Some("Paris 2024 (finals)"));
        assert_eq!(
            job_option(&source, "collection").as_deref(),
            Some("Paris 2024 (finals)")
        );
        assert_eq!(job_option(&upload_source(1, None), "collection"), None);
    }

    #[test]
    fn a_resumed_server_ingest_keeps_its_paths_and_options() {
        let paths = [PathBuf::from("/archive/a (1)"), PathBuf::from("/archive/b")];
        let source = ingest_source(&paths, Some("Finals (2024)"), Some("fr"));
        assert_eq!(source_paths(&source), paths);
        assert_eq!(
            job_option(&source, "collection").as_deref(),
            Some("Finals (2024)")
        );
        assert_eq!(job_option(&source, "language").as_deref(), Some("fr"));
        let bare = ingest_source(&paths[..1], None, None);
        assert_eq!(source_paths(&bare), paths[..1]);
        assert_eq!(job_option(&bare, "collection"), None);
    }
}
