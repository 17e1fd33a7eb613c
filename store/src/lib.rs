//! Kairos storage: everything an archive holds, behind one interface per concern.
//!
//! - [`catalog`]: assets, segments and jobs (sqlx; SQLite embedded) — the source of truth;
//! - [`remembered`]: what searches read of the catalog, kept while it does not change;
//! - [`text`]: the tantivy index of metadata, transcripts and on-screen text, and
//!   [`highlight`]: its snippets;
//! - [`vectors`]: the vector spaces (qdrant-edge embedded, behind [`vectors::VectorIndex`]);
//! - [`thumbnails`]: one JPEG per segment;
//! - [`transcript`]: an asset's speech as JSON, WebVTT or SubRip;
//! - [`search`]: candidates from every signal → fusion → moments grouped into assets, its CPU
//!   work taken in turns, oldest search first (`turns`).

pub mod catalog;
pub mod consistency;
pub mod error;
pub mod highlight;
pub mod keys;
pub mod listing;
pub mod records;
pub mod remembered;
pub mod search;
mod term_bitsets;
pub mod text;
pub mod thumbnails;
pub mod timeline;
pub mod transcript;
mod turns;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use catalog::{Catalog, Filters};
pub use error::{Error, Result};
pub use listing::{AssetPage, Sort};
pub use records::{
    ApiKey, Asset, AssetKind, AssetStatus, CatalogStats, Facets, Job, JobFile, MediaInfo,
    MetadataPatch, SearchId, Segment, SegmentKind,
};
pub use search::{
    AssetHit, Group, MAX_CANDIDATES, Mode, Moment, MomentHit, SearchQuery, SearchResponse,
};
pub use text::{TextDoc, TextIndex};
pub use thumbnails::Thumbnails;
pub use transcript::TranscriptFormat;
pub use vectors::{EdgeVectors, Space, VectorIndex, VectorPoint};

/// One archive: a data directory with its catalog, indexes and thumbnails.
#[derive(Debug, Clone)]
pub struct Store {
    pub catalog: Catalog,
    pub text: Arc<TextIndex>,
    pub vectors: Arc<dyn VectorIndex>,
    pub thumbnails: Thumbnails,
    data_dir: PathBuf,
    /// Turns of the searches' CPU work.
    turns: turns::Turns,
}

/// Everything one asset puts in the indexes.
#[derive(Debug, Clone)]
pub struct AssetWrite {
    pub asset: Asset,
    pub segments: Vec<Segment>,
    pub text_docs: Vec<TextDoc>,
    pub points: Vec<(Space, VectorPoint)>,
}

impl Store {
    /// Opens (creating if needed) the archive in `data_dir` with the embedded backends.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        Self::open_reporting(data_dir, &|_, _| {}).await
    }

    /// [`open`](Self::open), telling `progress(done, total)` how a rebuild of the text index
    /// from the catalog goes when the index was of an earlier format.
    pub async fn open_reporting(
        data_dir: &Path,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Self> {
        fs_err::create_dir_all(data_dir)?;
        let catalog_path = data_dir.join("catalog.db");
        // Processes opening one archive together take turns until it is current: the
        // catalog's migrations, then the text index's format, its rebuild included (a second
        // process finds it done instead of emptying it under the first).
        let _turn = catalog::OpenLock::take(&catalog_path).await?;
        let catalog = Catalog::open_locked(&catalog_path).await?;
        let text = Arc::new(TextIndex::open(&data_dir.join("text"))?);
        let vectors: Arc<dyn VectorIndex> = Arc::new(EdgeVectors::open(&data_dir.join("vectors"))?);
        let store = Self {
            catalog,
            text,
            vectors,
            thumbnails: Thumbnails::new(data_dir),
            data_dir: data_dir.to_path_buf(),
            turns: turns::Turns::per_core(),
        };
        if store.text.rebuild_pending() {
            store.rebuild_text(progress).await?;
        }
        Ok(store)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Fails early when a space holds vectors of another size than the installed model makes.
    pub fn check_dims(&self, space: Space, model_dims: usize) -> Result<()> {
        self.vectors.check_dims(space, model_dims)
    }

    /// Writes a batch of assets into the catalog (status `indexing`) and every index. Nothing is
    /// searchable until [`commit`](Self::commit): a crash in between leaves `indexing` assets that
    /// the next ingest redoes (every write here replaces what an earlier try left).
    pub async fn write(&self, batch: &[AssetWrite]) -> Result<()> {
        let assets: Vec<Asset> = batch
            .iter()
            .map(|w| Asset {
                status: AssetStatus::Indexing,
                ..w.asset.clone()
            })
            .collect();
        let rows: Vec<(&Asset, &[Segment])> = assets
            .iter()
            .zip(batch)
            .map(|(a, w)| (a, w.segments.as_slice()))
            .collect();
        let redone: Vec<String> = batch
            .iter()
            .filter(|w| w.asset.status != AssetStatus::Ready)
            .map(|w| w.asset.id.clone())
            .collect();
        let replaced = self.replaced_thumbnails(redone).await?;
        self.catalog.put_assets(&rows).await?;
        self.remove_thumbnails(replaced, batch.iter().flat_map(|w| &w.segments));
        let text = self.text.clone();
        let vectors = self.vectors.clone();
        let batch = batch.to_vec();
        tokio::task::spawn_blocking(move || -> Result<()> {
            for w in &batch {
                text.delete_asset(&w.asset.id)?;
                vectors.delete_asset(&w.asset.id)?;
            }
            for w in &batch {
                text.add(&w.text_docs)?;
            }
            let mut by_space: std::collections::HashMap<Space, Vec<VectorPoint>> =
                Default::default();
            for w in batch {
                for (space, p) in w.points {
                    by_space.entry(space).or_default().push(p);
                }
            }
            for (space, points) in by_space {
                vectors.upsert(space, points)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Makes written assets durable in every index, then marks them ready in the catalog.
    pub async fn commit(&self, asset_ids: &[String]) -> Result<()> {
        let text = self.text.clone();
        let vectors = self.vectors.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            text.commit()?;
            vectors.flush()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        self.catalog.mark_ready(asset_ids).await
    }

    /// Builds the vector index over what ingests added ([`VectorIndex::optimize`]): until then a
    /// search compares the query with each new vector. Searches go on meanwhile. Idempotent: a
    /// killed build is done again by the next.
    pub async fn build_vector_index(&self) -> Result<()> {
        let vectors = self.vectors.clone();
        tokio::task::spawn_blocking(move || vectors.optimize())
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Records an asset that could not be indexed, with its error, and removes anything an earlier
    /// try left of it in the indexes.
    pub async fn record_failure(&self, asset: &Asset) -> Result<()> {
        let mut asset = asset.clone();
        asset.status = AssetStatus::Failed;
        self.text.delete_asset(&asset.id)?;
        self.vectors.delete_asset(&asset.id)?;
        let replaced = self.replaced_thumbnails(vec![asset.id.clone()]).await?;
        self.catalog.put_asset(&asset, &[]).await?;
        self.remove_thumbnails(replaced, []);
        Ok(())
    }

    /// The thumbnails of the moments an earlier try of these assets left (a redo replaces its
    /// moments: their files must go with them).
    async fn replaced_thumbnails(&self, asset_ids: Vec<String>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in asset_ids {
            for s in self.catalog.segments(&id).await? {
                out.extend(s.thumbnail);
            }
        }
        Ok(out)
    }

    /// Removes thumbnail files that no moment of `kept` uses (best effort: a file left behind
    /// is found by `kairos doctor --check`).
    fn remove_thumbnails<'a>(
        &self,
        replaced: Vec<String>,
        kept: impl IntoIterator<Item = &'a Segment>,
    ) {
        if replaced.is_empty() {
            return;
        }
        let kept: std::collections::HashSet<&str> = kept
            .into_iter()
            .filter_map(|s| s.thumbnail.as_deref())
            .collect();
        for relative in replaced {
            if !kept.contains(relative.as_str()) {
                self.thumbnails.remove(&relative);
            }
        }
    }

    /// Deletes an asset from every index, then from the catalog, then its thumbnails. The
    /// indexes go first: a crash half-way leaves a catalog entry that is not searchable (and is
    /// deleted again by a second try), never a search hit pointing at nothing.
    pub async fn delete_asset(&self, id: &str) -> Result<Asset> {
        let asset = self.catalog.asset(id).await?;
        let text = self.text.clone();
        let vectors = self.vectors.clone();
        let owned = id.to_string();
        tokio::task::spawn_blocking(move || -> Result<()> {
            text.delete_asset(&owned)?;
            vectors.delete_asset(&owned)?;
            text.commit()?;
            vectors.flush()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        for relative in self.catalog.delete_asset(id).await? {
            // A thumbnail already gone is what we wanted.
            self.thumbnails.remove(&relative);
        }
        Ok(asset)
    }

    /// The text documents of `asset` as it is now: its own and those of its segments.
    async fn text_docs(&self, asset: &Asset) -> Result<Vec<TextDoc>> {
        let segments = self.catalog.segments(&asset.id).await?;
        Ok(TextDoc::all_for(asset, &segments))
    }

    /// A missing asset found again at `path` (moved, renamed, restored): its text documents
    /// follow the new path (the file name is searchable), then the catalog makes it ready
    /// there. In that order, so that `ready` means searchable under the new name; a crash
    /// between the two leaves it missing, and the same file relinks it again.
    pub async fn relink(&self, id: &str, path: &str, mtime: Option<i64>) -> Result<Asset> {
        let mut asset = self.catalog.asset(id).await?;
        asset.path = path.to_string();
        asset.mtime = mtime;
        let docs = self.text_docs(&asset).await?;
        let text = self.text.clone();
        let owned = asset.id.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            text.delete_asset(&owned)?;
            text.add(&docs)?;
            text.commit()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        self.catalog.relink(id, path, mtime).await?;
        asset.status = AssetStatus::Ready;
        Ok(asset)
    }

    /// Changes an asset's title, caption, keywords or collection everywhere they are kept: the
    /// catalog, its text documents (rebuilt), and the collection of its vectors. Returns the
    /// changed asset. (Re-embedding the caption is the indexer's job: the store knows no models.)
    pub async fn update_metadata(&self, id: &str, patch: &MetadataPatch) -> Result<Asset> {
        let mut asset = self.catalog.asset(id).await?;
        patch.apply(&mut asset);
        self.catalog.set_metadata(&asset).await?;
        let docs = self.text_docs(&asset).await?;
        let text = self.text.clone();
        let vectors = self.vectors.clone();
        let ready = asset.status == AssetStatus::Ready;
        let (owned, collection) = (asset.id.clone(), asset.collection.clone());
        tokio::task::spawn_blocking(move || -> Result<()> {
            if ready {
                text.delete_asset(&owned)?;
                text.add(&docs)?;
                text.commit()?;
            }
            vectors.set_collection(&owned, collection.as_deref())?;
            vectors.flush()
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        Ok(asset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image asset with one segment, a text document and a visual vector, written and
    /// committed as the indexer does.
    async fn indexed(store: &Store, name: &str, collection: &str, v: Vec<f32>) -> Asset {
        let mut asset = Asset::new(
            format!("hash-{name}"),
            format!("/archive/{name}.jpg"),
            AssetKind::Image,
            1,
        );
        asset.caption = Some(format!("{name} at the stadium"));
        asset.collection = Some(collection.into());
        asset.language = Some("en".into());
        asset.captured_at = Some("2024-08-01T10:00:00Z".parse().unwrap());
        let mut segment = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        segment.thumbnail = Some(store.thumbnails.write(&segment.id, b"jpeg").unwrap());
        let point = VectorPoint {
            segment_id: segment.id.clone(),
            asset_id: asset.id.clone(),
            asset_kind: asset.kind,
            segment_kind: segment.kind,
            start_ms: 0,
            end_ms: 0,
            captured_at: asset.captured_at,
            collection: asset.collection.clone(),
            language: asset.language.clone(),
            vector: v,
        };
        store
            .write(&[AssetWrite {
                asset: asset.clone(),
                segments: vec![segment],
                text_docs: vec![TextDoc::for_asset(&asset)],
                points: vec![(Space::Visual, point)],
            }])
            .await
            .unwrap();
        store.commit(std::slice::from_ref(&asset.id)).await.unwrap();
        asset
    }

    fn by_collection(c: &str) -> Filters {
        Filters {
            collection: Some(c.into()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn edits_reach_every_index_and_deletes_leave_nothing_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let sprint = indexed(&store, "sprint", "paris", vec![1.0, 0.0, 0.0]).await;
        let relay = indexed(&store, "relay", "paris", vec![0.0, 1.0, 0.0]).await;

        let facets = store
            .catalog
            .facets(&Filters::default(), None)
            .await
            .unwrap();
        assert_eq!(facets.collection["paris"], 2);
        assert_eq!(facets.year["2024"], 2);
        assert_eq!(facets.language["en"], 2);

        // Moving an asset to another collection moves it in the catalog, the text index and the
        // vector payloads; new words are searchable, old ones are not.
        let patch = MetadataPatch {
            caption: Some("photo finish of the marathon".into()),
            collection: Some("tokyo".into()),
            keywords: Some(vec![" finish ".into(), "".into()]),
            ..Default::default()
        };
        let changed = store.update_metadata(&sprint.id, &patch).await.unwrap();
        assert_eq!(changed.keywords, ["finish"]);
        let stored = store.catalog.asset(&sprint.id).await.unwrap();
        assert_eq!(stored.collection.as_deref(), Some("tokyo"));
        let hits = store
            .text
            .search("marathon", &by_collection("tokyo"), 10)
            .unwrap()
            .hits;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert!(
            store
                .text
                .search("stadium sprint", &by_collection("paris"), 10)
                .unwrap()
                .hits
                .iter()
                .all(|h| h.asset_id != sprint.id)
        );
        let near = store
            .vectors
            .search(Space::Visual, &[1.0, 0.0, 0.0], &by_collection("tokyo"), 10)
            .unwrap();
        assert_eq!(near.len(), 1);
        assert_eq!(near[0].asset_id, sprint.id);
        let segment = &store.catalog.segments(&sprint.id).await.unwrap()[0];
        assert_eq!(
            store.vectors.vector(Space::Visual, &segment.id).unwrap(),
            Some(vec![1.0, 0.0, 0.0])
        );

        // Deleting removes the asset, its segments, its documents, vectors and thumbnail.
        let thumb = store
            .thumbnails
            .absolute(segment.thumbnail.as_deref().unwrap());
        assert!(thumb.is_file());
        store.delete_asset(&sprint.id).await.unwrap();
        assert!(matches!(
            store.catalog.asset(&sprint.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(store.catalog.segments(&sprint.id).await.unwrap().is_empty());
        assert!(
            store
                .text
                .search("marathon", &Filters::default(), 10)
                .unwrap()
                .hits
                .is_empty()
        );
        assert_eq!(store.vectors.count(Space::Visual).unwrap(), 1);
        assert!(!thumb.exists());
        assert!(matches!(
            store.delete_asset(&sprint.id).await,
            Err(Error::NotFound { .. })
        ));
        let page = store
            .catalog
            .list_assets(&Filters::default(), None, Sort::Name, 10, 0)
            .await
            .unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.assets[0].id, relay.id);
    }

    #[tokio::test]
    async fn redoing_an_unfinished_asset_removes_the_thumbnail_a_killed_writer_left_half_written() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        // A first try wrote the rows (status indexing) and was killed between the thumbnail's
        // write and its rename: only the temporary file is on disk.
        let asset = Asset::new(
            "hash-a".into(),
            "/archive/a.jpg".into(),
            AssetKind::Image,
            1,
        );
        let mut first = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        let relative = Thumbnails::relative_path(&first.id);
        first.thumbnail = Some(relative.clone());
        let write = |segment: Segment| AssetWrite {
            asset: asset.clone(),
            segments: vec![segment],
            text_docs: vec![TextDoc::for_asset(&asset)],
            points: vec![],
        };
        store.write(&[write(first)]).await.unwrap();
        let half = store
            .thumbnails
            .absolute(&relative)
            .with_extension("jpg.tmp");
        fs_err::create_dir_all(half.parent().unwrap()).unwrap();
        fs_err::write(&half, b"jp").unwrap();
        assert_eq!(store.check().await.unwrap().thumbnail_orphans.len(), 1);

        // The next ingest redoes it with a new segment and its own thumbnail.
        let mut again = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        again.thumbnail = Some(Thumbnails::relative_path(&again.id));
        let id = again.id.clone();
        store.write(&[write(again)]).await.unwrap();
        store.thumbnails.write(&id, b"jpeg").unwrap();
        store.commit(std::slice::from_ref(&asset.id)).await.unwrap();
        assert!(!half.exists());
        let report = store.check().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
    }

    #[tokio::test]
    async fn fewer_candidates_keep_the_first_places_and_count_facets_over_fewer() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let names = [
            "sprint",
            "relay",
            "hurdles",
            "javelin",
            "discus",
            "pole vault",
            "long jump",
        ];
        for (i, name) in names.iter().enumerate() {
            let collection = if i % 2 == 0 { "paris" } else { "tokyo" };
            indexed(&store, name, collection, vec![1.0, i as f32, 0.0]).await;
        }
        let query = |candidates| SearchQuery {
            text: Some("stadium".into()),
            mode: Mode::Keyword,
            limit: 2,
            candidates,
            ..Default::default()
        };
        let ids = |r: &SearchResponse| {
            r.hits
                .iter()
                .map(|h| h.asset_id.clone())
                .collect::<Vec<_>>()
        };
        let counted = |r: &SearchResponse| r.facets.collection.values().sum::<u64>();

        let all = store.search(&query(None)).await.unwrap();
        assert_eq!((all.total, counted(&all)), (7, 7));
        let fewer = store.search(&query(Some(3))).await.unwrap();
        assert_eq!((fewer.total, counted(&fewer)), (3, 3));
        assert_eq!(ids(&fewer), ids(&all));
        assert_eq!(ids(&all).len(), 2);

        for bad in [1, MAX_CANDIDATES + 1] {
            let err = store.search(&query(Some(bad))).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "candidates",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains(&bad.to_string()), "{err}");
        }
    }

    #[tokio::test]
    async fn a_relinked_asset_is_searchable_by_its_new_name_once_ready() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).await.unwrap();
        let sprint = indexed(&store, "sprint", "paris", vec![1.0, 0.0, 0.0]).await;
        let gone = store.catalog.mark_missing(&sprint.path).await.unwrap();
        assert_eq!(gone, std::slice::from_ref(&sprint.id));

        let moved = store
            .relink(&sprint.id, "/archive/moved/finish_line.jpg", Some(7))
            .await
            .unwrap();
        assert_eq!(moved.status, AssetStatus::Ready);
        let stored = store.catalog.asset(&sprint.id).await.unwrap();
        assert_eq!(stored.status, AssetStatus::Ready);
        assert_eq!(stored.path, "/archive/moved/finish_line.jpg");
        assert_eq!(stored.mtime, Some(7));
        let hits = store
            .text
            .search("finish_line", &Filters::default(), 10)
            .unwrap()
            .hits;
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].asset_id, sprint.id);
        // Its caption is still searchable, and it has one asset document, not two.
        assert_eq!(
            store
                .text
                .search("stadium", &Filters::default(), 10)
                .unwrap()
                .hits
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_text_index_of_an_earlier_format_is_rebuilt_from_the_catalog_as_the_archive_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let said_id;
        {
            let store = Store::open(tmp.path()).await.unwrap();
            indexed(&store, "sprint", "paris", vec![1.0, 0.0, 0.0]).await;
            let mut video = Asset::new(
                "hash-v".into(),
                "/archive/finale.mp4".into(),
                AssetKind::Video,
                1,
            );
            video.language = Some("fr".into());
            video.title = Some("Finale du relais".into());
            let shot = Segment::new(&video.id, SegmentKind::Shot, 0, 4_000);
            let mut said = Segment::new(&video.id, SegmentKind::Speech, 4_000, 8_000);
            said.text = Some("les nageuses battent le record".into());
            said_id = said.id.clone();
            let text_docs = vec![
                TextDoc::for_asset(&video),
                TextDoc::for_segment(&video, &said),
            ];
            store
                .write(&[AssetWrite {
                    asset: video.clone(),
                    segments: vec![shot, said],
                    text_docs,
                    points: Vec::new(),
                }])
                .await
                .unwrap();
            store.commit(std::slice::from_ref(&video.id)).await.unwrap();
            store.catalog.close().await;
        }
        // The text index as an earlier version left it: one field per text field and language.
        let dir = tmp.path().join("text");
        fs_err::remove_dir_all(&dir).unwrap();
        fs_err::create_dir_all(&dir).unwrap();
        crate::text::write_earlier_format(&dir, "sprint at the stadium");

        let seen = std::sync::Mutex::new(Vec::new());
        let store = Store::open_reporting(tmp.path(), &|done, total| {
            seen.lock().unwrap().push((done, total))
        })
        .await
        .unwrap();
        assert_eq!(*seen.lock().unwrap(), [(0, 2), (2, 2)]);
        assert!(!store.text.rebuild_pending());
        // The asset's metadata and the moment's words, each analysed in its language.
        let words = |q: &str| -> Vec<Option<String>> {
            store
                .text
                .search(q, &Filters::default(), 10)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.segment_id.map(|s| s.to_id()))
                .collect()
        };
        assert_eq!(words("stadium sprint"), [None]);
        assert_eq!(words("nageuse record"), [Some(said_id)]);
        assert_eq!(words("relais finale"), [None]);
        let report = store.check().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        store.catalog.close().await;
        drop(store);

        // Opened again: nothing to rebuild.
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let store = Store::open_reporting(tmp.path(), &|_, _| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
        assert_eq!(calls.into_inner(), 0);
        assert_eq!(store.text.num_docs(), 3);
    }
}
