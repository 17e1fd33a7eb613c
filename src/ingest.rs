//! `kairos ingest`: the bulk-ingest command line — its options, the progress bar with per-stage
//! counters, the dry run, resuming, the summary and the report file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kairos_indexer::ingest::{FileOutcome, IngestSummary, WalkOptions};
use kairos_indexer::{Analyzers, IngestOptions, Ingester, Progress};
use kairos_store::Store;

use crate::cli::{Global, open, peak_memory_bytes, positive_seconds, timecode};

/// `kairos ingest` options.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files or folders (none with --resume).
    #[arg(required_unless_present = "resume")]
    pub paths: Vec<PathBuf>,
    /// Collection the new assets join.
    #[arg(long)]
    pub collection: Option<String>,
    /// Language of captions whose metadata does not say (en, fr).
    #[arg(long)]
    pub language: Option<String>,
    /// Spoken language of the recordings (en, fr, … or auto to detect it per file).
    #[arg(long, default_value = "auto")]
    pub speech_language: String,
    /// Files analysed and committed together.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// A long video shot gets a searchable keyframe every this many seconds.
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    pub keyframe_every: f64,
    /// Threads for decoding and the models [default: every core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Only files matching this glob (repeat for more), e.g. '*.jpg' or '2024/**'.
    #[arg(long)]
    pub include: Vec<String>,
    /// Leave out files and folders matching this glob (repeat for more), e.g. '**/proxies'.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Walk into linked folders and take linked files.
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Catalogue records (CSV or JSON) merged into the assets: title, caption, keywords,
    /// collection, date, credit, language by path or file name.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Show what would be indexed and what is already, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write every file's outcome to this file (.json or .csv).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Go on with an interrupted or cancelled job: the last one, or the job named.
    #[arg(long, num_args = 0..=1, default_missing_value = "last", value_name = "JOB",
          conflicts_with_all = ["paths", "collection", "language", "include", "exclude", "manifest", "dry_run", "follow_symlinks"])]
    pub resume: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kairos ingest`.
pub async fn run(g: &Global, args: IngestArgs) -> Result<ExitCode> {
    if let Some(report) = &args.report {
        report_format(report)?;
    }
    let (store, analyzers) = open(g).await?;
    if !args.json {
        for notice in analyzers.notice_texts() {
            eprintln!("note: {notice}");
        }
    }
    if let Some(job) = &args.resume {
        let job_id = resolve_job(&store, job, true).await?;
        if !args.json {
            eprintln!("Resuming job {job_id}.");
        }
        let display = Display::new(args.json);
        let summary = Ingester::resume(store.clone(), analyzers, &job_id, &|p| display.show(p))
            .await
            .with_context(|| format!("resuming job {job_id}"))?;
        return finish(&store, display, &summary, args.json, args.report.as_deref()).await;
    }
    let speech_language = kairos_models::whisper::parse_language(&args.speech_language)
        .context("--speech-language")?;
    let mut options = IngestOptions {
        collection: args.collection,
        language: args.language,
        batch_size: args.batch_size,
        speech_language,
        keyframe_every_s: args.keyframe_every,
        walk: WalkOptions {
            include: args.include,
            exclude: args.exclude,
            follow_symlinks: args.follow_symlinks,
        },
        manifest_path: args
            .manifest
            .as_ref()
            .map(|m| fs_err::canonicalize(m).with_context(|| "--manifest".to_string()))
            .transpose()?,
        ..Default::default()
    };
    options.load_manifest()?;
    if let Some(m) = &options.manifest
        && !args.json
    {
        eprintln!("Manifest {}: {} records.", m.path.display(), m.len());
        if !m.ignored.is_empty() {
            eprintln!("note: manifest columns ignored: {}", m.ignored.join(", "));
        }
    }
    let ingester = Ingester::new(store.clone(), analyzers, options);
    if args.dry_run {
        return dry_run(&ingester, &args.paths, args.json).await;
    }
    let display = Display::new(args.json);
    let summary = ingester.run(&args.paths, &|p| display.show(p)).await?;
    finish(&store, display, &summary, args.json, args.report.as_deref()).await
}

/// A job named on the command line: its id, `last` (the newest ingest job that can be resumed
/// when `resumable`, else the newest job), or an unambiguous beginning of an id.
pub async fn resolve_job(store: &Store, name: &str, resumable: bool) -> Result<String> {
    let jobs = store.catalog.jobs(10_000).await?;
    if name == "last" {
        let job = jobs
            .iter()
            .find(|j| {
                !resumable
                    || (j.kind == "ingest"
                        && matches!(j.status.as_str(), "interrupted" | "cancelled" | "failed"))
            })
            .with_context(|| {
                if resumable {
                    "no interrupted, cancelled or failed ingest job to resume"
                } else {
                    "no job yet"
                }
            })?;
        return Ok(job.id.clone());
    }
    let matching: Vec<_> = jobs.iter().filter(|j| j.id.starts_with(name)).collect();
    match matching.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => bail!("no job {name:?} (`kairos jobs list` shows them)"),
        many => bail!(
            "{name:?} names {} jobs: give more of the id ({})",
            many.len(),
            many.iter()
                .map(|j| j.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

async fn dry_run(ingester: &Ingester, paths: &[PathBuf], json: bool) -> Result<ExitCode> {
    let plan = ingester.plan(paths).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (path, kind, bytes) in &plan.new {
        println!(
            "would index  {kind:<5}  {:>10}  {}",
            size(*bytes),
            path.display()
        );
    }
    for (path, error) in &plan.failed {
        println!("would fail   {}: {error}", path.display());
    }
    let mut by_kind = std::collections::BTreeMap::<String, (usize, u64)>::new();
    for (_, kind, bytes) in &plan.new {
        let slot = by_kind.entry(kind.to_string()).or_default();
        slot.0 += 1;
        slot.1 += bytes;
    }
    let kinds = by_kind
        .iter()
        .map(|(k, (n, b))| format!("{n} {k} ({})", size(*b)))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "Dry run, nothing changed: {} files to index{}{}, {} already indexed and unchanged, {} left out by --include/--exclude, {} would fail.",
        plan.new.len(),
        if kinds.is_empty() {
            String::new()
        } else {
            format!(" ({kinds})")
        },
        if plan.with_record > 0 {
            format!(", {} with a manifest record", plan.with_record)
        } else {
            String::new()
        },
        plan.unchanged,
        plan.excluded,
        plan.failed.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

/// Counters shown beside the bar.
#[derive(Default)]
struct Counters {
    probed: usize,
    decoded: usize,
    embedded: usize,
    indexed: usize,
    skipped: usize,
    failed: usize,
}

/// The progress bar: files done of those found, rate and ETA, and per-stage counters.
pub struct Display {
    bar: ProgressBar,
    counters: Mutex<Counters>,
}

impl Display {
    pub fn new(hidden: bool) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {per_sec}  ETA {eta}\n  {msg}",
            )
            .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            counters: Mutex::default(),
        }
    }

    fn counts(&self, c: &Counters) -> String {
        format!(
            "probed {} · decoded {} · embedded {} · indexed {} · skipped {} · failed {}",
            c.probed, c.decoded, c.embedded, c.indexed, c.skipped, c.failed
        )
    }

    pub fn show(&self, p: &Progress) {
        let mut c = self.counters.lock().expect("progress counters");
        match p {
            Progress::Discovered { files, done } => {
                self.bar.set_length(*files as u64);
                self.bar.set_position(*done as u64);
                // Rate and ETA from this run's files only.
                self.bar.reset_eta();
            }
            Progress::Stage { stage, files } => {
                match *stage {
                    "probed" => c.probed += files,
                    "decoded" => c.decoded += files,
                    "embedded" => c.embedded += files,
                    _ => {}
                }
                self.bar.set_message(self.counts(&c));
            }
            Progress::File { path, outcome } => {
                match outcome {
                    FileOutcome::Indexed { .. } => c.indexed += 1,
                    FileOutcome::Skipped { .. } => c.skipped += 1,
                    FileOutcome::Failed { error } => {
                        c.failed += 1;
                        self.bar
                            .println(format!("failed: {}: {error}", path.display()));
                    }
                }
                self.bar.set_message(self.counts(&c));
                self.bar.inc(1);
            }
            Progress::IndexingVectors => self
                .bar
                .set_message(format!("{}\n  building the vector index", self.counts(&c))),
            Progress::Working {
                path,
                stage,
                done_ms,
                total_ms,
            } => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let total = total_ms
                    .map(|t| format!(" / {}", timecode(t as i64)))
                    .unwrap_or_default();
                self.bar.set_message(format!(
                    "{}\n  {stage} {name} {}{total}",
                    self.counts(&c),
                    timecode(*done_ms as i64)
                ));
            }
        }
    }
}

/// Prints the summary, writes the report, and picks the exit code: 2 when files failed, 3 when
/// the job was cancelled.
pub async fn finish(
    store: &Store,
    display: Display,
    summary: &IngestSummary,
    json: bool,
    report: Option<&Path>,
) -> Result<ExitCode> {
    display.bar.finish_and_clear();
    let peak = peak_memory_bytes();
    if json {
        let mut value = serde_json::to_value(summary)?;
        value["peak_memory_bytes"] = serde_json::json!(peak);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let secs = summary.elapsed.as_secs_f64();
        let worked = summary.indexed + summary.skipped + summary.failed;
        println!(
            "{} files in {:.1} s ({:.1} files/s): {} indexed, {} skipped (already indexed), {} failed{}{}{}. Job {}.",
            worked,
            secs,
            worked as f64 / secs.max(1e-9),
            summary.indexed,
            summary.skipped,
            summary.failed,
            if summary.resumed > 0 {
                format!(", {} done before the job was resumed", summary.resumed)
            } else {
                String::new()
            },
            if summary.excluded > 0 {
                format!(", {} left out by --include/--exclude", summary.excluded)
            } else {
                String::new()
            },
            if summary.cancelled {
                "; cancelled: `kairos ingest --resume` goes on"
            } else {
                ""
            },
            summary.job_id
        );
        for (path, error) in &summary.failures {
            println!("  failed {path}: {error}");
        }
        if let Some(bytes) = peak {
            println!("Peak memory {} MiB.", bytes / (1 << 20));
        }
    }
    if let Some(path) = report {
        write_report(store, &summary.job_id, path).await?;
        if !json {
            println!("Report: {}", path.display());
        }
    }
    Ok(if summary.cancelled {
        ExitCode::from(3)
    } else if summary.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

enum ReportFormat {
    Json,
    Csv,
}

fn report_format(path: &Path) -> Result<ReportFormat> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => Ok(ReportFormat::Json),
        Some("csv") => Ok(ReportFormat::Csv),
        _ => bail!("--report {}: name a .json or a .csv file", path.display()),
    }
}

/// Every file of job `job_id` with its outcome (the whole job, earlier runs of a resumed one
/// included), as JSON or CSV.
pub async fn write_report(store: &Store, job_id: &str, path: &Path) -> Result<()> {
    let job = store.catalog.job(job_id).await?;
    let files = store.catalog.job_files(job_id, None, i64::MAX).await?;
    let text = match report_format(path)? {
        ReportFormat::Json => {
            serde_json::to_string_pretty(&serde_json::json!({ "job": job, "files": files }))?
        }
        ReportFormat::Csv => {
            let mut w = csv_escape_line(&["path", "status", "asset_id", "error"]);
            for f in &files {
                w.push_str(&csv_escape_line(&[
                    &f.path,
                    &f.status,
                    f.asset_id.as_deref().unwrap_or(""),
                    f.error.as_deref().unwrap_or(""),
                ]));
            }
            w
        }
    };
    // Written whole to a sibling then renamed: a report is never half there.
    let tmp = path.with_extension("partial");
    fs_err::write(&tmp, text)?;
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// One CSV line (RFC 4180 quoting).
fn csv_escape_line(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect();
    format!("{}\n", quoted.join(","))
}

/// Runs an ingest over `paths` with `options` as job of its own, shown like `kairos ingest`.
pub async fn run_paths(
    store: Store,
    analyzers: Arc<Analyzers>,
    options: IngestOptions,
    paths: &[PathBuf],
    json: bool,
) -> Result<ExitCode> {
    let display = Display::new(json);
    let summary = Ingester::new(store.clone(), analyzers, options)
        .run(paths, &|p| display.show(p))
        .await?;
    finish(&store, display, &summary, json, None).await
}

/// `kairos watch` options.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Folders to watch (each is ingested first, then kept up to date).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Collection the new assets join.
    #[arg(long)]
    pub collection: Option<String>,
    /// Language of captions whose metadata does not say (en, fr).
    #[arg(long)]
    pub language: Option<String>,
    /// Only files matching this glob (repeat for more).
    #[arg(long)]
    pub include: Vec<String>,
    /// Leave out files and folders matching this glob (repeat for more).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Catalogue records (CSV or JSON) merged into the assets.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// A file is ingested once it has not changed for this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
}

/// Runs `kairos watch` until the process is stopped (Ctrl-C is safe at any moment: what was
/// committed stays, and the next start catches up).
pub async fn watch(g: &Global, args: WatchArgs) -> Result<ExitCode> {
    let (store, analyzers) = open(g).await?;
    for notice in analyzers.notice_texts() {
        eprintln!("note: {notice}");
    }
    let mut options = IngestOptions {
        collection: args.collection,
        language: args.language,
        walk: WalkOptions {
            include: args.include,
            exclude: args.exclude,
            follow_symlinks: false,
        },
        manifest_path: args
            .manifest
            .as_ref()
            .map(|m| fs_err::canonicalize(m).with_context(|| "--manifest".to_string()))
            .transpose()?,
        ..Default::default()
    };
    options.load_manifest()?;
    let ingester = Ingester::new(store.clone(), analyzers, options);
    // Catch up with what changed while nothing watched.
    let summary = ingester.run(&args.paths, &|_| {}).await?;
    println!(
        "caught up: {} indexed, {} skipped, {} failed (job {})",
        summary.indexed, summary.skipped, summary.failed, summary.job_id
    );
    for (path, error) in &summary.failures {
        println!("  failed {path}: {error}");
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let on_event = |e: &kairos_indexer::watch::WatchEvent| {
        use kairos_indexer::watch::WatchEvent;
        match e {
            WatchEvent::Watching(roots) => {
                let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                println!("watching {}", roots.join(", "));
            }
            WatchEvent::Ingested(s) => {
                println!(
                    "ingested: {} indexed, {} skipped, {} failed (job {})",
                    s.indexed, s.skipped, s.failed, s.job_id
                );
                for (path, error) in &s.failures {
                    println!("  failed {path}: {error}");
                }
            }
            WatchEvent::Missing { path, assets } => println!(
                "missing: {} ({} asset(s) marked missing: {})",
                path.display(),
                assets.len(),
                assets.join(", ")
            ),
            WatchEvent::Error(e) => eprintln!("error: {e}"),
        }
        // Lines reach a log or a pipe as they happen.
        use std::io::Write;
        let _ = std::io::stdout().flush();
    };
    kairos_indexer::watch::watch(
        &ingester,
        &args.paths,
        Duration::from_millis(args.settle_ms),
        &stop,
        &on_event,
        &|_| {},
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
