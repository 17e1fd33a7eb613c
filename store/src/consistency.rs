//! The consistency check (`kairos doctor --check`): the catalog, the text index, the vector
//! index and the thumbnails compared asset by asset, and the repair of what differs.
//!
//! Ingest writes an asset as `indexing`, then into both indexes, commits them, and only then
//! marks it `ready`; searches show ready assets only. So a crash leaves at most `indexing`
//! assets with index entries nobody sees, thumbnails of moments never committed, and (a
//! delete interrupted between the indexes and the catalog) a ready asset missing from an
//! index. The check finds each of these, and anything else that disagrees.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use crate::error::{Error, Result};
use crate::records::{AssetStatus, Segment};
use crate::text::TextDoc;
use crate::vectors::Space;
use crate::{Store, catalog};

/// What the check found. Every list is empty in a consistent archive.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Assets in the catalog, and how many are ready.
    pub assets: usize,
    pub ready: usize,
    /// Text documents and vector points looked at.
    pub text_documents: usize,
    pub vector_points: usize,
    /// Assets left `indexing` by an ingest that stopped before committing them.
    pub unfinished: Vec<String>,
    /// Assets the text index has documents for, but the catalog does not know or has failed.
    pub text_orphans: Vec<String>,
    /// Ready assets whose documents in the text index are not the ones the catalog implies:
    /// (asset, documents found, documents expected).
    pub text_mismatched: Vec<(String, usize, usize)>,
    /// (space, asset) with vector points, the asset unknown to the catalog or failed.
    pub vector_orphans: Vec<(String, String)>,
    /// (space, asset, segment): a point of a ready asset for a moment the catalog does not have.
    pub vector_strays: Vec<(String, String, String)>,
    /// Thumbnail files no moment refers to (relative to the archive).
    pub thumbnail_orphans: Vec<String>,
    /// (segment, thumbnail): a moment whose thumbnail file is missing.
    pub thumbnails_missing: Vec<(String, String)>,
    /// Jobs whose process stopped without finishing them (`kairos ingest --resume` goes on).
    pub interrupted_jobs: Vec<String>,
}

impl Report {
    /// Whether the catalog, the indexes and the thumbnails agree.
    pub fn is_clean(&self) -> bool {
        self.problems() == 0
    }

    /// Number of divergences found (interrupted jobs are not divergences: they resume).
    pub fn problems(&self) -> usize {
        self.unfinished.len()
            + self.text_orphans.len()
            + self.text_mismatched.len()
            + self.vector_orphans.len()
            + self.vector_strays.len()
            + self.thumbnail_orphans.len()
            + self.thumbnails_missing.len()
    }
}

/// What a repair did.
#[derive(Debug, Default, Serialize)]
pub struct Repaired {
    /// Unfinished assets marked failed (their next ingest does them again).
    pub unfinished_failed: usize,
    /// Assets whose text documents were removed or rebuilt from the catalog.
    pub text_removed: usize,
    pub text_rebuilt: usize,
    /// Assets and moments whose vector points were removed.
    pub vector_assets_removed: usize,
    pub vector_points_removed: usize,
    pub thumbnails_removed: usize,
    /// Moments whose missing thumbnail is no longer referred to.
    pub thumbnail_refs_cleared: usize,
}

/// Error a repair stops with when it should not run now.
fn busy(jobs: &[String]) -> Error {
    Error::InvalidInput {
        field: "repair",
        message: format!(
            "job(s) {} are running: repair while nothing ingests (stop or wait for them)",
            jobs.join(", ")
        ),
    }
}

impl Store {
    /// Compares the catalog with the text index, the vector index and the thumbnails.
    pub async fn check(&self) -> Result<Report> {
        let pool = &self.catalog.pool;
        let err = |source| Error::Catalog {
            path: self.catalog.path.clone(),
            cause: source,
        };
        let mut report = Report::default();
        let statuses: HashMap<String, AssetStatus> = sqlx::query("SELECT id, status FROM assets")
            .fetch_all(pool)
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                let status: String = r.get(1);
                let status = status.parse().unwrap_or(AssetStatus::Failed);
                (r.get::<String, _>(0), status)
            })
            .collect();
        report.assets = statuses.len();
        report.ready = statuses
            .values()
            .filter(|s| **s == AssetStatus::Ready)
            .count();
        let sql = format!("SELECT {} FROM segments", catalog::SEGMENT_COLUMNS);
        let mut segments: HashMap<String, Vec<Segment>> = HashMap::new();
        for row in sqlx::query(AssertSqlSafe(sql))
            .fetch_all(pool)
            .await
            .map_err(err)?
        {
            let s = catalog::segment_from_row(&row, &self.catalog.path)?;
            segments.entry(s.asset_id.clone()).or_default().push(s);
        }
        let mut unfinished: Vec<String> = statuses
            .iter()
            .filter(|(_, s)| **s == AssetStatus::Indexing)
            .map(|(id, _)| id.clone())
            .collect();
        unfinished.sort();
        report.unfinished = unfinished;
        // Only ready assets, unfinished ones (about to be redone) and missing ones (kept so
        // that a moved file comes back without being analysed again) may be in the indexes.
        let orphan = |id: &str| {
            !matches!(
                statuses.get(id),
                Some(AssetStatus::Ready | AssetStatus::Indexing | AssetStatus::Missing)
            )
        };

        let text = self.text.clone();
        let docs = tokio::task::spawn_blocking(move || text.docs_by_asset())
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        report.text_documents = docs.values().sum();
        for (id, status) in &statuses {
            if *status != AssetStatus::Ready {
                continue;
            }
            let expected = 1 + segments
                .get(id)
                .map(|s| s.iter().filter(|s| TextDoc::segment_has_own(s)).count())
                .unwrap_or(0);
            let found = docs.get(id).copied().unwrap_or(0);
            if found != expected {
                report.text_mismatched.push((id.clone(), found, expected));
            }
        }
        report.text_mismatched.sort();
        report.text_orphans = docs.keys().filter(|id| orphan(id)).cloned().collect();
        report.text_orphans.sort();

        for space in Space::ALL {
            let vectors = self.vectors.clone();
            let points = tokio::task::spawn_blocking(move || vectors.points_by_asset(space))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            for (asset, ids) in points {
                report.vector_points += ids.len();
                if orphan(&asset) {
                    report
                        .vector_orphans
                        .push((space.as_str().to_string(), asset));
                    continue;
                }
                if statuses.get(&asset) != Some(&AssetStatus::Ready) {
                    continue;
                }
                let known: HashSet<&str> = segments
                    .get(&asset)
                    .map(|s| s.iter().map(|s| s.id.as_str()).collect())
                    .unwrap_or_default();
                for id in ids {
                    if !known.contains(id.as_str()) {
                        report
                            .vector_strays
                            .push((space.as_str().to_string(), asset.clone(), id));
                    }
                }
            }
        }
        report.vector_orphans.sort();
        report.vector_strays.sort();

        let referenced: HashSet<&str> = segments
            .values()
            .flatten()
            .filter_map(|s| s.thumbnail.as_deref())
            .collect();
        for s in segments.values().flatten() {
            if let Some(t) = &s.thumbnail
                && !self.thumbnails.absolute(t).exists()
            {
                report.thumbnails_missing.push((s.id.clone(), t.clone()));
            }
        }
        report.thumbnails_missing.sort();
        let root = self.data_dir.join("thumbnails");
        if root.exists() {
            for entry in walkdir::WalkDir::new(&root) {
                let entry = entry.map_err(|e| Error::Io(e.into()))?;
                if !entry.file_type().is_file() {
                    continue;
                }
                let relative = entry
                    .path()
                    .strip_prefix(&self.data_dir)
                    .unwrap_or(entry.path())
                    .to_string_lossy()
                    .replace('\\', "/");
                if !referenced.contains(relative.as_str()) {
                    report.thumbnail_orphans.push(relative);
                }
            }
        }
        report.thumbnail_orphans.sort();

        for job in self.catalog.jobs(i64::MAX).await? {
            if job.status == "interrupted" {
                report.interrupted_jobs.push(job.id);
            }
        }
        Ok(report)
    }

    /// Rebuilds the text index from the catalog: every asset that belongs in the indexes, with
    /// its moments that have words of their own. Done when the index's format changed (its
    /// open marks it) and redone from the start if interrupted; `progress(done, total)` counts
    /// assets. Returns how many assets it indexed.
    pub(crate) async fn rebuild_text(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<u64> {
        const PAGE: i64 = 2_000;
        let total = self.catalog.count_indexed_assets().await?;
        progress(0, total);
        self.text.start_rebuild()?;
        let (mut after, mut done) = (String::new(), 0u64);
        loop {
            let assets = self.catalog.indexed_assets_after(&after, PAGE).await?;
            let Some(last) = assets.last() else { break };
            after = last.id.clone();
            let ids: Vec<String> = assets.iter().map(|a| a.id.clone()).collect();
            let mut worded: HashMap<String, Vec<Segment>> = HashMap::new();
            for s in self.catalog.worded_segments(&ids).await? {
                worded.entry(s.asset_id.clone()).or_default().push(s);
            }
            let docs: Vec<TextDoc> = assets
                .iter()
                .flat_map(|a| TextDoc::all_for(a, &worded.remove(&a.id).unwrap_or_default()))
                .collect();
            let text = self.text.clone();
            tokio::task::spawn_blocking(move || text.add(&docs))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
            done += assets.len() as u64;
            progress(done, total);
        }
        let text = self.text.clone();
        tokio::task::spawn_blocking(move || text.finish_rebuild())
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        Ok(done)
    }

    /// Makes the stores agree again, from a fresh [`check`](Self::check): unfinished assets are
    /// taken out of the indexes and marked failed (the next ingest of their files does them
    /// again), orphans leave the indexes, a ready asset's text documents are rebuilt from the
    /// catalog, stray points and unreferenced thumbnails are removed, and moments stop referring
    /// to thumbnails that are gone. Refused while a job is running.
    pub async fn repair(&self) -> Result<(Report, Repaired)> {
        let running: Vec<String> = self
            .catalog
            .jobs(i64::MAX)
            .await?
            .into_iter()
            .filter(|j| j.status == "running")
            .map(|j| j.id)
            .collect();
        if !running.is_empty() {
            return Err(busy(&running));
        }
        let report = self.check().await?;
        let mut done = Repaired::default();
        for id in &report.unfinished {
            let mut asset = self.catalog.asset(id).await?;
            asset.error =
                Some("its ingest stopped before the file was committed: ingest it again".into());
            self.record_failure(&asset).await?;
            done.unfinished_failed += 1;
        }
        for id in &report.text_orphans {
            self.text.delete_asset(id)?;
            done.text_removed += 1;
        }
        for (id, _, _) in &report.text_mismatched {
            let asset = self.catalog.asset(id).await?;
            let docs = self.text_docs(&asset).await?;
            self.text.delete_asset(id)?;
            self.text.add(&docs)?;
            done.text_rebuilt += 1;
        }
        let mut removed_assets = HashSet::new();
        for (_, asset) in &report.vector_orphans {
            if removed_assets.insert(asset.clone()) {
                self.vectors.delete_asset(asset)?;
                done.vector_assets_removed += 1;
            }
        }
        for (space, _, segment) in &report.vector_strays {
            let space = Space::ALL
                .into_iter()
                .find(|s| s.as_str() == space)
                .expect("a space the check named");
            self.vectors.delete_segment(space, segment)?;
            done.vector_points_removed += 1;
        }
        self.text.commit()?;
        self.vectors.flush()?;
        for relative in &report.thumbnail_orphans {
            match fs_err::remove_file(self.thumbnails.absolute(relative)) {
                Ok(()) => done.thumbnails_removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (segment, _) in &report.thumbnails_missing {
            sqlx::query("UPDATE segments SET thumbnail = NULL WHERE id = $1")
                .bind(segment)
                .execute(&self.catalog.pool)
                .await
                .map_err(|source| Error::Catalog {
                    path: self.catalog.path.clone(),
                    cause: source,
                })?;
            done.thumbnail_refs_cleared += 1;
        }
        Ok((report, done))
    }
}
