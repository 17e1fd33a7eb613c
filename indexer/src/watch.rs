//! Watching folders: new and changed media files are ingested once they have stopped changing;
//! a deleted (or moved away) file marks its asset missing, and a missing asset's file turning
//! up again — moved, renamed, restored — makes it ready at its new path without analysing it
//! again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};

use crate::error::{Error, Result};
use crate::ingest::{IngestSummary, Ingester, Progress};

/// What the watcher did, for the command line's log.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// Watching these folders now.
    Watching(&'a [PathBuf]),
    /// An ingest of files that appeared or changed is done.
    Ingested(&'a IngestSummary),
    /// A file (or folder) went away: these assets are now missing.
    Missing {
        path: &'a Path,
        assets: &'a [String],
    },
    /// A watch error that does not stop the watcher (an ingest that failed, say).
    Error(String),
}

/// Watches `roots` until `stop` says so; files must be quiet for `settle` (no event, same size)
/// before they are ingested, so that a file being copied in is read once, whole.
pub async fn watch(
    ingester: &Ingester,
    roots: &[PathBuf],
    settle: Duration,
    stop: &std::sync::atomic::AtomicBool,
    on_event: &(dyn Fn(&WatchEvent) + Send + Sync),
    progress: &(dyn Fn(&Progress) + Send + Sync),
) -> Result<()> {
    let roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| fs_err::canonicalize(r).map_err(Error::Io))
        .collect::<Result<_>>()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            let _ = tx.send(event);
        }
    })
    .map_err(|e| Error::Tool {
        tool: "file watcher".into(),
        message: e.to_string(),
    })?;
    for root in &roots {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| Error::Tool {
                tool: "file watcher".into(),
                message: format!("{}: {e}", root.display()),
            })?;
    }
    on_event(&WatchEvent::Watching(&roots));
    // Path → (last event, size then).
    let mut pending: HashMap<PathBuf, (Instant, Option<u64>)> = HashMap::new();
    let tick = Duration::from_millis(200).min(settle);
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        while let Ok(event) = rx.try_recv() {
            handle(ingester, event, &mut pending, on_event).await;
        }
        let now = Instant::now();
        let mut ready = Vec::new();
        pending.retain(|path, (at, size)| {
            if now.duration_since(*at) < settle {
                return true;
            }
            let current = fs_err::metadata(path).ok().map(|m| m.len());
            if current.is_none() {
                return false; // gone before it settled
            }
            if current != *size {
                *at = now;
                *size = current;
                return true;
            }
            ready.push(path.clone());
            false
        });
        let admitted: Vec<PathBuf> = ready
            .into_iter()
            .filter(|p| {
                roots.iter().any(|root| {
                    p.starts_with(root)
                        && (p.is_dir() || ingester.walk().admits(root, p).unwrap_or(false))
                })
            })
            .collect();
        if !admitted.is_empty() {
            match ingester.run(&admitted, progress).await {
                Ok(summary) => on_event(&WatchEvent::Ingested(&summary)),
                Err(e) => on_event(&WatchEvent::Error(e.to_string())),
            }
        }
        tokio::select! {
            Some(event) = rx.recv() => handle(ingester, event, &mut pending, on_event).await,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

async fn handle(
    ingester: &Ingester,
    event: notify::Event,
    pending: &mut HashMap<PathBuf, (Instant, Option<u64>)>,
    on_event: &(dyn Fn(&WatchEvent) + Send + Sync),
) {
    let gone = matches!(
        event.kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
    );
    let arrived = matches!(
        event.kind,
        EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Data(_))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To))
            | EventKind::Modify(ModifyKind::Any)
    );
    let both = matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both))
    );
    for (i, path) in event.paths.iter().enumerate() {
        // A rename reported as one event names the old path, then the new.
        let is_gone = gone || (both && i == 0);
        let is_new = arrived || (both && i == 1);
        if is_gone {
            pending.remove(path);
            match ingester.mark_missing(path).await {
                Ok(assets) if !assets.is_empty() => on_event(&WatchEvent::Missing {
                    path,
                    assets: &assets,
                }),
                Ok(_) => {}
                Err(e) => on_event(&WatchEvent::Error(e.to_string())),
            }
        } else if is_new {
            let size = fs_err::metadata(path).ok().map(|m| m.len());
            pending.insert(path.clone(), (Instant::now(), size));
        }
    }
}
