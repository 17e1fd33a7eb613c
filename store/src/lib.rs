//! Kairos storage: everything an archive holds, behind one interface per concern.
//!
//! - [`catalog`]: assets, segments and jobs (sqlx; SQLite embedded) — the source of truth;
//! - [`text`]: the tantivy index of metadata, transcripts and on-screen text;
//! - [`vectors`]: the vector spaces (qdrant-edge embedded, behind [`vectors::VectorIndex`]);
//! - [`thumbnails`]: one JPEG per segment;
//! - [`transcript`]: an asset's speech as JSON, WebVTT or SubRip;
//! - [`search`]: candidates from every signal → fusion → moments grouped into assets.

pub mod catalog;
pub mod error;
pub mod records;
pub mod search;
pub mod text;
pub mod thumbnails;
pub mod timeline;
pub mod transcript;
pub mod vectors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use catalog::{Catalog, Filters};
pub use error::{Error, Result};
pub use records::{
    Asset, AssetKind, AssetStatus, CatalogStats, Job, MediaInfo, Segment, SegmentKind,
};
pub use search::{AssetHit, Group, Mode, Moment, MomentHit, SearchQuery, SearchResponse};
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
        fs_err::create_dir_all(data_dir)?;
        let catalog = Catalog::open(&data_dir.join("catalog.db")).await?;
        let text = Arc::new(TextIndex::open(&data_dir.join("text"))?);
        let vectors: Arc<dyn VectorIndex> = Arc::new(EdgeVectors::open(&data_dir.join("vectors"))?);
        Ok(Self {
            catalog,
            text,
            vectors,
            thumbnails: Thumbnails::new(data_dir),
            data_dir: data_dir.to_path_buf(),
        })
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
        self.catalog.put_assets(&rows).await?;
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

    /// Records an asset that could not be indexed, with its error, and removes anything an earlier
    /// try left of it in the indexes.
    pub async fn record_failure(&self, asset: &Asset) -> Result<()> {
        let mut asset = asset.clone();
        asset.status = AssetStatus::Failed;
        self.text.delete_asset(&asset.id)?;
        self.vectors.delete_asset(&asset.id)?;
        self.catalog.put_asset(&asset, &[]).await
    }
}
