//! `kairos jobs`: the ingest jobs of an archive — list them, show one with its files, retry the
//! files that failed, cancel one that another process runs.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use kairos_indexer::IngestOptions;
use kairos_indexer::ingest::JobSpec;
use kairos_store::Job;

use crate::cli::{Global, open};
use crate::ingest::{resolve_job, run_paths};

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The newest jobs first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One job (an id, its beginning, or `last`) and its files.
    Show {
        job: String,
        /// Which files to list: failed, indexed, skipped or all.
        #[arg(long, default_value = "failed")]
        files: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ingest again, as a new job with the same options, the files a job failed on (after the
    /// cause is fixed: a file replaced, a model installed, space freed).
    RetryFailed {
        job: String,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ask a job to stop: the process running it (a `kairos ingest`, a server) stops after the
    /// files in progress, within a few seconds; an interrupted job is marked cancelled.
    Cancel { job: String },
}

pub async fn run(g: &Global, command: JobsCommand) -> Result<ExitCode> {
    match command {
        JobsCommand::List { limit, json } => {
            let store = crate::cli::open_archive(g).await?;
            let jobs = store.catalog.jobs(limit.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else if jobs.is_empty() {
                println!("No job yet.");
            } else {
                println!(
                    "{:<36}  {:<13}  {:<16}  {:>15}  {:>7}  {:>7}  started",
                    "job", "kind", "status", "done/total", "skipped", "failed"
                );
                for j in &jobs {
                    println!(
                        "{:<36}  {:<13}  {:<16}  {:>15}  {:>7}  {:>7}  {}",
                        j.id,
                        j.kind,
                        j.status,
                        format!("{}/{}", j.done + j.skipped + j.failed, j.total),
                        j.skipped,
                        j.failed,
                        j.created_at.format("%Y-%m-%d %H:%M:%S")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { job, files, json } => {
            let store = crate::cli::open_archive(g).await?;
            let id = resolve_job(&store, &job, false).await?;
            let job = store.catalog.job(&id).await?;
            let status = match files.as_str() {
                "all" => None,
                s @ ("failed" | "indexed" | "skipped") => Some(s),
                other => bail!("--files {other:?}: failed, indexed, skipped or all"),
            };
            let list = store.catalog.job_files(&id, status, i64::MAX).await?;
            if json {
                let value = serde_json::json!({ "job": job, "files": list });
                println!("{}", serde_json::to_string_pretty(&value)?);
                return Ok(ExitCode::SUCCESS);
            }
            print_job(&job);
            if !list.is_empty() {
                println!("{} files:", status.unwrap_or("all"));
            }
            for f in &list {
                match (&f.asset_id, &f.error) {
                    (_, Some(e)) => println!("  {} {}: {e}", f.status, f.path),
                    (Some(a), None) => println!("  {} {} → {a}", f.status, f.path),
                    (None, None) => println!("  {} {}", f.status, f.path),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::RetryFailed { job, json } => {
            let (store, analyzers) = open(g).await?;
            let id = resolve_job(&store, &job, false).await?;
            let job = store.catalog.job(&id).await?;
            let failed: Vec<_> = store
                .catalog
                .job_files(&id, Some("failed"), i64::MAX)
                .await?
                .into_iter()
                .map(|f| std::path::PathBuf::from(f.path))
                .collect();
            if failed.is_empty() {
                println!("Job {id} has no failed file.");
                return Ok(ExitCode::SUCCESS);
            }
            let mut options = JobSpec::of(&job)?
                .map(|s| s.options)
                .unwrap_or_else(IngestOptions::default);
            // The files are named one by one: the globs chose them already.
            options.walk.include.clear();
            options.walk.exclude.clear();
            options
                .load_manifest()
                .with_context(|| format!("the manifest of job {id}"))?;
            if !json {
                eprintln!("Retrying the {} failed files of job {id}.", failed.len());
            }
            run_paths(store, analyzers, options, &failed, json).await
        }
        JobsCommand::Cancel { job } => {
            let store = crate::cli::open_archive(g).await?;
            let id = resolve_job(&store, &job, false).await?;
            let before = store.catalog.job(&id).await?;
            if !matches!(before.status.as_str(), "running" | "queued" | "interrupted") {
                bail!("job {id} is {}: there is nothing to cancel", before.status);
            }
            let job = store.catalog.request_cancel(&id).await?;
            if job.status == "cancelled" {
                println!("Job {id} was interrupted; it is now cancelled.");
            } else {
                println!(
                    "Job {id} was asked to stop; it ends `cancelled` after the files in progress (`kairos jobs show {id}`)."
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_job(job: &Job) {
    println!("Job {} ({}): {}", job.id, job.kind, job.status);
    println!("  source:   {}", job.source.replace('\n', "; "));
    println!(
        "  files:    {} of {} done: {} indexed, {} skipped, {} failed",
        job.done + job.skipped + job.failed,
        job.total,
        job.done,
        job.skipped,
        job.failed
    );
    println!("  started:  {}", job.created_at.to_rfc3339());
    if let Some(t) = job.finished_at {
        println!("  finished: {}", t.to_rfc3339());
    }
    if let Some(e) = &job.error {
        println!("  error:    {e}");
    }
    if job.status == "interrupted" {
        println!("  resume:   kairos ingest --resume {}", job.id);
    }
}
