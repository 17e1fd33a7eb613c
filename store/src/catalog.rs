//! The catalog: assets, segments and jobs in SQLite (sqlx), the source of truth for what is indexed.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqlitePool};

use crate::error::{Error, Result};
use crate::records::{
    Asset, AssetKind, AssetStatus, CatalogStats, FacetFields, Job, Segment, SegmentKind,
};
use crate::remembered::Remembered;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub(crate) const ASSET_COLUMNS: &str = "id, content_hash, path, kind, mime, bytes, mtime, duration_ms, width, height, \
    captured_at, ingested_at, title, caption, keywords, credit, camera, gps_lat, gps_lon, collection, \
    language, phash, status, error, media";

pub(crate) const SEGMENT_COLUMNS: &str = "id, asset_id, kind, start_ms, end_ms, text, thumbnail";

/// Filters on assets shared by every search signal.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Filters {
    pub kind: Option<AssetKind>,
    pub collection: Option<String>,
    /// ISO 639-1 language of the asset (`en`, `fr`…).
    pub language: Option<String>,
    /// Capture time, inclusive.
    pub captured_after: Option<DateTime<Utc>>,
    /// Capture time, inclusive.
    pub captured_before: Option<DateTime<Utc>>,
}

impl Filters {
    /// Parses a filter date: RFC 3339, or `YYYY-MM-DD` (start of day, or its end for an upper bound).
    pub fn parse_date(field: &'static str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(value) {
            return Ok(t.with_timezone(&Utc));
        }
        let d = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| {
            Error::InvalidInput {
                field,
                message: format!("{value:?} is not a date (YYYY-MM-DD or RFC 3339)"),
            }
        })?;
        let t = if end_of_day {
            d.and_hms_opt(23, 59, 59)
        } else {
            d.and_hms_opt(0, 0, 0)
        };
        Ok(t.expect("valid time of day").and_utc())
    }
}

/// An exclusive lock on `<catalog>-lock`, held while a process creates or migrates the
/// catalog; released when dropped (and by the kernel when the process dies).
pub(crate) struct OpenLock(std::fs::File);

impl OpenLock {
    pub(crate) async fn take(catalog: &Path) -> Result<Self> {
        let mut name = catalog.as_os_str().to_owned();
        name.push("-lock");
        let path = PathBuf::from(name);
        let file = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?
            .into_parts()
            .0;
        // Waiting is the point; off the async threads, since another process may migrate
        // for a while.
        tokio::task::spawn_blocking(move || match file.lock() {
            Ok(()) => Ok(Self(file)),
            Err(e) => Err(Error::Io(std::io::Error::new(
                e.kind(),
                format!("locking {}: {e}", path.display()),
            ))),
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}

impl Drop for OpenLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The embedded catalog (SQLite, WAL mode).
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) pool: SqlitePool,
    pub(crate) path: PathBuf,
    pub(crate) remembered: Arc<Remembered>,
}

impl Catalog {
    /// Opens (creating if needed) the catalog database and applies pending migrations.
    ///
    /// Processes opening one archive together (a server and an ingest started at once, or a
    /// `kairos jobs show` polling a starting ingest) take turns: SQLite migrations have no lock
    /// of their own, and two processes both applying migration 1 failed one of them with
    /// "table assets already exists" (half the time, measured with two `kairos jobs list` on a
    /// new archive). The turn is an exclusive lock on `catalog.db-lock`, held until the
    /// schema is current.
    pub async fn open(path: &Path) -> Result<Self> {
        let lock = OpenLock::take(path).await?;
        let catalog = Self::open_locked(path).await;
        drop(lock);
        catalog
    }

    /// [`open`](Self::open) for a caller that holds the [`OpenLock`].
    pub(crate) async fn open_locked(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(30))
            // Reads from the mapped file instead of a `pread` into each connection's cache: a
            // search reads ~200 assets by key, and under load the copies were a tenth of the CPU.
            .pragma("mmap_size", (1u64 << 30).to_string());
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(|source| Error::Catalog {
                path: path.to_path_buf(),
                cause: source,
            })?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| Error::Migration {
                path: path.to_path_buf(),
                cause: source,
            })?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            remembered: Arc::new(Remembered::new(options)),
        })
    }

    pub(crate) fn err(&self) -> impl Fn(sqlx::Error) -> Error + '_ {
        move |source| Error::Catalog {
            path: self.path.clone(),
            cause: source,
        }
    }

    /// The asset with this content hash, whatever its status.
    pub async fn asset_by_hash(&self, hash: &str) -> Result<Option<Asset>> {
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE content_hash = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.map(|r| asset_from_row(&r, &self.path)).transpose()
    }

    /// A ready asset at this path with this size and mtime (its id and when it was indexed): the
    /// file need not even be read.
    pub async fn ready_asset_by_stat(
        &self,
        path: &str,
        bytes: i64,
        mtime: i64,
    ) -> Result<Option<(String, DateTime<Utc>)>> {
        // `+status` keeps SQLite on the path index: the status index would walk every ready asset.
        let row = sqlx::query(
            "SELECT id, ingested_at FROM assets WHERE path = $1 AND bytes = $2 AND mtime = $3 AND +status = 'ready' LIMIT 1",
        )
        .bind(path)
        .bind(bytes)
        .bind(mtime)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        row.map(|r| Ok((r.get(0), parse_time(r.get::<&str, _>(1), &self.path)?)))
            .transpose()
    }

    /// The newest asset recorded at `path` (as the ingest stored it: absolute), if any.
    pub async fn asset_by_path(&self, path: &str) -> Result<Option<Asset>> {
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE path = $1 ORDER BY ingested_at DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(path)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        row.map(|r| asset_from_row(&r, &self.path)).transpose()
    }

    /// One asset by id.
    pub async fn asset(&self, id: &str) -> Result<Asset> {
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        match row {
            Some(r) => asset_from_row(&r, &self.path),
            None => Err(Error::NotFound {
                what: "asset",
                id: id.to_string(),
            }),
        }
    }

    /// Ready assets among `ids` (others are left out: failed, indexing, deleted).
    pub async fn ready_assets(&self, ids: &[String]) -> Result<Vec<Asset>> {
        // `+status`: without it SQLite walks the status index (every ready asset, 42 ms at 100k)
        // instead of looking the ids up by key (under 1 ms).
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE +status = 'ready' AND id IN");
        let rows = self.rows_for_ids(sql, ids).await?;
        rows.iter().map(|r| asset_from_row(r, &self.path)).collect()
    }

    /// The facet fields of the ready assets among `ids` (searches read them through
    /// [`SearchReads::facet_fields`](crate::remembered::SearchReads::facet_fields)).
    pub(crate) async fn read_facet_fields(
        &self,
        ids: &[String],
    ) -> Result<Vec<(String, FacetFields)>> {
        // `+status`: see `ready_assets`.
        let sql = "SELECT id, kind, collection, language, captured_at FROM assets \
                   WHERE +status = 'ready' AND id IN";
        let rows = self.rows_for_ids(sql.to_string(), ids).await?;
        rows.iter()
            .map(|r| {
                let fields = FacetFields {
                    kind: AssetKind::from_str(r.get::<&str, _>(1))?,
                    collection: r.get(2),
                    language: r.get(3),
                    captured_at: r
                        .get::<Option<String>, _>(4)
                        .map(|t| parse_time(&t, &self.path))
                        .transpose()?,
                };
                Ok((r.get(0), fields))
            })
            .collect()
    }

    /// Segments of an asset in time order.
    pub async fn segments(&self, asset_id: &str) -> Result<Vec<Segment>> {
        let sql = format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE asset_id = $1 ORDER BY start_ms, id"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(asset_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter()
            .map(|r| segment_from_row(r, &self.path))
            .collect()
    }

    /// Segments by id (any order; missing ids are left out).
    pub async fn segments_by_id(&self, ids: &[String]) -> Result<Vec<Segment>> {
        self.segments_where("s.id IN", ids, "").await
    }

    /// The first segment of each asset among `asset_ids` (its default moment), in one query.
    pub async fn first_segments(&self, asset_ids: &[String]) -> Result<Vec<Segment>> {
        // The first segment is looked up once per asset. Asking it of each of the asset's
        // segments (`s.id = (SELECT … WHERE f.asset_id = s.asset_id …)`) read every segment of
        // a video once per segment: 1.5 ms for 20 videos of 46 moments, against 0.2 ms.
        self.segments_where(
            "s.id IN (SELECT (SELECT f.id FROM segments f WHERE f.asset_id = a.id \
             ORDER BY f.start_ms, f.id LIMIT 1) FROM assets a WHERE a.id IN",
            asset_ids,
            ")",
        )
        .await
    }

    /// Segments matching `condition (ids…) tail`; `condition` is a fixed SQL fragment ending
    /// in `IN`, `tail` one that closes it.
    async fn segments_where(
        &self,
        condition: &'static str,
        ids: &[String],
        tail: &'static str,
    ) -> Result<Vec<Segment>> {
        let sql = format!("SELECT {SEGMENT_COLUMNS} FROM segments s WHERE {condition}");
        let rows = self.rows_for_ids_then(sql, ids, tail).await?;
        rows.iter()
            .map(|r| segment_from_row(r, &self.path))
            .collect()
    }

    /// The rows of `sql`, a fixed query ending in `IN`, for the list `ids` (none for no ids).
    async fn rows_for_ids(&self, sql: String, ids: &[String]) -> Result<Vec<SqliteRow>> {
        self.rows_for_ids_then(sql, ids, "").await
    }

    /// [`rows_for_ids`](Self::rows_for_ids) with `tail` after the list (closing a subquery).
    async fn rows_for_ids_then(
        &self,
        sql: String,
        ids: &[String],
        tail: &'static str,
    ) -> Result<Vec<SqliteRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{sql} ({}){tail}", placeholders(ids.len()));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(&self.pool).await.map_err(self.err())
    }

    /// One segment by id.
    pub async fn segment(&self, id: &str) -> Result<Segment> {
        self.segments_by_id(&[id.to_string()])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::NotFound {
                what: "segment",
                id: id.to_string(),
            })
    }

    /// Inserts or replaces an asset and all its segments in one transaction. The asset keeps the
    /// status it carries (the indexer writes `indexing` first and `ready` once every index has it).
    pub async fn put_asset(&self, asset: &Asset, segments: &[Segment]) -> Result<()> {
        self.put_assets(&[(asset, segments)]).await
    }

    /// [`put_asset`](Self::put_asset) for many assets, in one transaction.
    pub async fn put_assets(&self, batch: &[(&Asset, &[Segment])]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        for (asset, segments) in batch {
            sqlx::query("DELETE FROM segments WHERE asset_id = $1")
                .bind(&asset.id)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
            let sql = format!(
                "INSERT INTO assets ({ASSET_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25) \
             ON CONFLICT (id) DO UPDATE SET content_hash=excluded.content_hash, path=excluded.path, kind=excluded.kind, \
             mime=excluded.mime, bytes=excluded.bytes, mtime=excluded.mtime, duration_ms=excluded.duration_ms, \
             width=excluded.width, height=excluded.height, captured_at=excluded.captured_at, ingested_at=excluded.ingested_at, \
             title=excluded.title, caption=excluded.caption, keywords=excluded.keywords, credit=excluded.credit, \
             camera=excluded.camera, gps_lat=excluded.gps_lat, gps_lon=excluded.gps_lon, collection=excluded.collection, \
             language=excluded.language, phash=excluded.phash, status=excluded.status, error=excluded.error, media=excluded.media"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(&asset.id)
                .bind(&asset.content_hash)
                .bind(&asset.path)
                .bind(asset.kind.as_str())
                .bind(&asset.mime)
                .bind(asset.bytes)
                .bind(asset.mtime)
                .bind(asset.duration_ms)
                .bind(asset.width)
                .bind(asset.height)
                .bind(asset.captured_at.map(|t| t.to_rfc3339()))
                .bind(asset.ingested_at.to_rfc3339())
                .bind(&asset.title)
                .bind(&asset.caption)
                .bind(serde_json::to_string(&asset.keywords).unwrap_or_else(|_| "[]".into()))
                .bind(&asset.credit)
                .bind(&asset.camera)
                .bind(asset.gps_lat)
                .bind(asset.gps_lon)
                .bind(&asset.collection)
                .bind(&asset.language)
                .bind(asset.phash.map(|p| p as i64))
                .bind(asset.status.as_str())
                .bind(&asset.error)
                .bind(
                    asset
                        .media
                        .as_ref()
                        .and_then(|m| serde_json::to_string(m).ok()),
                )
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
            for s in segments.iter() {
                let sql = format!(
                    "INSERT INTO segments ({SEGMENT_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7)"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(&s.id)
                    .bind(&s.asset_id)
                    .bind(s.kind.as_str())
                    .bind(s.start_ms)
                    .bind(s.end_ms)
                    .bind(&s.text)
                    .bind(&s.thumbnail)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err())?;
            }
        }
        tx.commit().await.map_err(self.err())?;
        Ok(())
    }

    /// Marks assets ready, all at once.
    pub async fn mark_ready(&self, asset_ids: &[String]) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        for id in asset_ids {
            sqlx::query("UPDATE assets SET status = 'ready', error = NULL WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(self.err())?;
        }
        tx.commit().await.map_err(self.err())?;
        Ok(())
    }

    /// Assets in `status` (e.g. `indexing` left by an interrupted run).
    pub async fn assets_with_status(&self, status: AssetStatus) -> Result<Vec<Asset>> {
        let sql = format!("SELECT {ASSET_COLUMNS} FROM assets WHERE status = $1 ORDER BY id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(status.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter().map(|r| asset_from_row(r, &self.path)).collect()
    }

    /// Assets that belong in the indexes (ready, being indexed, or missing their file), by id
    /// after `after`, at most `limit`: the pages of an index rebuild.
    pub async fn indexed_assets_after(&self, after: &str, limit: i64) -> Result<Vec<Asset>> {
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE status IN ('ready', 'indexing', 'missing') \
             AND id > $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        rows.iter().map(|r| asset_from_row(r, &self.path)).collect()
    }

    /// How many assets belong in the indexes (see [`indexed_assets_after`](Self::indexed_assets_after)).
    pub async fn count_indexed_assets(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM assets WHERE status IN ('ready', 'indexing', 'missing')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(n as u64)
    }

    /// The spoken and on-screen-text segments of the assets `asset_ids`.
    pub async fn worded_segments(&self, asset_ids: &[String]) -> Result<Vec<Segment>> {
        self.segments_where(
            "s.kind IN ('speech', 'ocr') AND s.asset_id IN",
            asset_ids,
            "",
        )
        .await
    }

    /// Ready assets with a perceptual hash, matching `filters`: (asset id, hash).
    pub async fn phashes(&self, filters: &Filters) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT id, phash FROM assets WHERE status = 'ready' AND phash IS NOT NULL \
             AND ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR collection = $2) \
             AND ($3 IS NULL OR captured_at >= $3) AND ($4 IS NULL OR captured_at <= $4) \
             AND ($5 IS NULL OR language = $5)",
        )
        .bind(filters.kind.map(|k| k.as_str()))
        .bind(&filters.collection)
        .bind(filters.captured_after.map(|t| t.to_rfc3339()))
        .bind(filters.captured_before.map(|t| t.to_rfc3339()))
        .bind(&filters.language)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    /// Counts of assets and segments.
    pub async fn stats(&self) -> Result<CatalogStats> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM assets), (SELECT COUNT(*) FROM assets WHERE status='ready'), \
             (SELECT COUNT(*) FROM assets WHERE status='failed'), (SELECT COUNT(*) FROM segments)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(CatalogStats {
            assets: row.get(0),
            ready: row.get(1),
            failed: row.get(2),
            segments: row.get(3),
        })
    }

    /// Starts a job and returns it.
    pub async fn create_job(&self, kind: &str, source: &str) -> Result<Job> {
        let job = Job {
            id: uuid::Uuid::now_v7().to_string(),
            kind: kind.into(),
            source: source.into(),
            status: "running".into(),
            total: 0,
            done: 0,
            failed: 0,
            skipped: 0,
            created_at: Utc::now(),
            finished_at: None,
            error: None,
            spec: None,
            heartbeat_at: None,
            cancel_requested: false,
        };
        sqlx::query(
            "INSERT INTO jobs (id, kind, source, status, created_at) VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.source)
        .bind(&job.status)
        .bind(job.created_at.to_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(job)
    }

    /// Records the outcome of one file of a job and updates its counters.
    pub async fn record_job_file(
        &self,
        job_id: &str,
        path: &str,
        status: &str,
        asset_id: Option<&str>,
        error: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        sqlx::query(
            "INSERT INTO job_files (job_id, path, status, asset_id, error) VALUES ($1,$2,$3,$4,$5) \
             ON CONFLICT (job_id, path) DO UPDATE SET status=excluded.status, asset_id=excluded.asset_id, error=excluded.error",
        )
        .bind(job_id)
        .bind(path)
        .bind(status)
        .bind(asset_id)
        .bind(error)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        sqlx::query(
            "UPDATE jobs SET done = (SELECT COUNT(*) FROM job_files WHERE job_id = $1 AND status = 'indexed'), \
             failed = (SELECT COUNT(*) FROM job_files WHERE job_id = $1 AND status = 'failed'), \
             skipped = (SELECT COUNT(*) FROM job_files WHERE job_id = $1 AND status = 'skipped') WHERE id = $1",
        )
        .bind(job_id)
        .execute(&mut *tx)
        .await
        .map_err(self.err())?;
        tx.commit().await.map_err(self.err())?;
        Ok(())
    }

    /// Sets a job's status (`queued`, `running`…).
    pub async fn set_job_status(&self, job_id: &str, status: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = $2 WHERE id = $1")
            .bind(job_id)
            .bind(status)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Ends a job that could not go on, with the reason.
    pub async fn fail_job(&self, job_id: &str, error: &str) -> Result<Job> {
        sqlx::query("UPDATE jobs SET error = $2 WHERE id = $1")
            .bind(job_id)
            .bind(error)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        self.finish_job(job_id, "failed").await
    }

    /// Sets the number of files a job will look at.
    pub async fn set_job_total(&self, job_id: &str, total: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET total = $2 WHERE id = $1")
            .bind(job_id)
            .bind(total)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Ends a job with a final status.
    pub async fn finish_job(&self, job_id: &str, status: &str) -> Result<Job> {
        sqlx::query("UPDATE jobs SET status = $2, finished_at = $3 WHERE id = $1")
            .bind(job_id)
            .bind(status)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        self.job(job_id).await
    }

    /// One job by id. A `running` job whose runner process is gone, or stopped beating its
    /// heartbeat, reads as `interrupted`.
    pub async fn job(&self, id: &str) -> Result<Job> {
        let row = sqlx::query(
            "SELECT id, kind, source, status, total, done, failed, skipped, created_at, finished_at, error, \
             spec, heartbeat_at, cancel_requested, runner_pid FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?
        .ok_or_else(|| Error::NotFound { what: "job", id: id.to_string() })?;
        let time = |t: Option<String>| t.map(|t| parse_time(&t, &self.path)).transpose();
        let heartbeat_at = time(row.get(12))?;
        let mut status: String = row.get(3);
        let runner_gone = row
            .get::<Option<i64>, _>(14)
            .is_some_and(|pid| !process_alive(pid));
        if status == "running"
            && (runner_gone
                || heartbeat_at.is_some_and(|beat| Utc::now() - beat > Job::STALE_AFTER))
        {
            status = "interrupted".into();
        }
        Ok(Job {
            id: row.get(0),
            kind: row.get(1),
            source: row.get(2),
            status,
            total: row.get(4),
            done: row.get(5),
            failed: row.get(6),
            skipped: row.get(7),
            created_at: parse_time(&row.get::<String, _>(8), &self.path)?,
            finished_at: time(row.get(9))?,
            error: row.get(10),
            spec: row.get(11),
            heartbeat_at,
            cancel_requested: row.get::<i64, _>(13) != 0,
        })
    }

    /// Keeps the request that started a job, for resuming it.
    pub async fn set_job_spec(&self, job_id: &str, spec: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET spec = $2 WHERE id = $1")
            .bind(job_id)
            .bind(spec)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// The runner of a job says it is alive (process `pid`); answers whether the job was asked
    /// to stop.
    pub async fn job_heartbeat(&self, job_id: &str, pid: u32) -> Result<bool> {
        let row = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $2, runner_pid = $3 WHERE id = $1 RETURNING cancel_requested",
        )
        .bind(job_id)
        .bind(Utc::now().to_rfc3339())
        .bind(i64::from(pid))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(row.is_some_and(|r| r.get::<i64, _>(0) != 0))
    }

    /// Marks the ready assets of file `path`, or of every file under folder `path`, missing
    /// (their source was deleted or moved away); returns their ids. They leave search results
    /// but keep their record and index entries, so the file coming back restores them.
    pub async fn mark_missing(&self, path: &str) -> Result<Vec<String>> {
        let under = format!("{}/", path.trim_end_matches('/'));
        let rows = sqlx::query(
            "UPDATE assets SET status = 'missing' WHERE status = 'ready' \
             AND (path = $1 OR substr(path, 1, length($2)) = $2) RETURNING id",
        )
        .bind(path)
        .bind(&under)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// After asset `keep` was indexed from `path`, the other ready assets of that path are
    /// earlier contents of a file that changed: missing, not silently kept or dropped.
    pub async fn supersede(&self, path: &str, keep: &str) -> Result<()> {
        sqlx::query(
            "UPDATE assets SET status = 'missing' WHERE path = $1 AND id <> $2 AND status = 'ready'",
        )
        .bind(path)
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// A missing asset found again at `path` (moved): ready again there, nothing re-analysed.
    pub async fn relink(&self, id: &str, path: &str, mtime: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE assets SET path = $2, mtime = $3, status = 'ready' WHERE id = $1")
            .bind(id)
            .bind(path)
            .bind(mtime)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(())
    }

    /// Whether someone asked job `job_id` to stop.
    pub async fn job_cancel_requested(&self, job_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT cancel_requested FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(row.is_some_and(|r| r.get::<i64, _>(0) != 0))
    }

    /// Asks a job to stop; whichever process runs it stops after the files in progress. A job
    /// that nothing runs any more (interrupted, queued in a stopped server) ends `cancelled` now.
    pub async fn request_cancel(&self, job_id: &str) -> Result<Job> {
        let job = self.job(job_id).await?;
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
            .bind(job_id)
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        if job.status == "interrupted" {
            return self.finish_job(job_id, "cancelled").await;
        }
        self.job(job_id).await
    }

    /// Clears a job's cancel request and marks it running again (a resumed job).
    pub async fn reopen_job(&self, job_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'running', cancel_requested = 0, finished_at = NULL, error = NULL WHERE id = $1",
        )
        .bind(job_id)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }

    /// The newest job of `kind` started with exactly `spec` that stopped before finishing
    /// (interrupted or cancelled): running the same ingest again goes on with it.
    pub async fn unfinished_job_with_spec(&self, kind: &str, spec: &str) -> Result<Option<Job>> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE kind = $1 AND spec = $2 AND status IN ('running', 'cancelled') \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(kind)
        .bind(spec)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        for r in rows {
            let job = self.job(&r.get::<String, _>(0)).await?;
            if matches!(job.status.as_str(), "interrupted" | "cancelled") {
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    /// The paths a job has already recorded an outcome for.
    pub async fn job_file_paths(&self, job_id: &str) -> Result<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT path FROM job_files WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Closes the pool (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `$1,$2,…,$n` for an `IN` list of `n` bound values.
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn parse_time(text: &str, path: &Path) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::DataCorruption {
            path: path.to_path_buf(),
            message: format!("time {text:?}: {e}"),
        })
}

pub(crate) fn asset_from_row(r: &SqliteRow, path: &Path) -> Result<Asset> {
    let corrupt = |message: String| Error::DataCorruption {
        path: path.to_path_buf(),
        message,
    };
    let keywords: String = r.get("keywords");
    Ok(Asset {
        id: r.get("id"),
        content_hash: r.get("content_hash"),
        path: r.get("path"),
        kind: AssetKind::from_str(&r.get::<String, _>("kind"))?,
        mime: r.get("mime"),
        bytes: r.get("bytes"),
        mtime: r.get("mtime"),
        duration_ms: r.get("duration_ms"),
        width: r.get("width"),
        height: r.get("height"),
        captured_at: r
            .get::<Option<String>, _>("captured_at")
            .map(|t| parse_time(&t, path))
            .transpose()?,
        ingested_at: parse_time(&r.get::<String, _>("ingested_at"), path)?,
        title: r.get("title"),
        caption: r.get("caption"),
        keywords: serde_json::from_str(&keywords)
            .map_err(|e| corrupt(format!("keywords {keywords:?}: {e}")))?,
        credit: r.get("credit"),
        camera: r.get("camera"),
        gps_lat: r.get("gps_lat"),
        gps_lon: r.get("gps_lon"),
        collection: r.get("collection"),
        language: r.get("language"),
        phash: r.get::<Option<i64>, _>("phash").map(|p| p as u64),
        status: AssetStatus::from_str(&r.get::<String, _>("status"))?,
        error: r.get("error"),
        media: r
            .get::<Option<String>, _>("media")
            .map(|m| serde_json::from_str(&m).map_err(|e| corrupt(format!("media {m:?}: {e}"))))
            .transpose()?,
    })
}

pub(crate) fn segment_from_row(r: &SqliteRow, _path: &Path) -> Result<Segment> {
    Ok(Segment {
        id: r.get("id"),
        asset_id: r.get("asset_id"),
        kind: SegmentKind::from_str(&r.get::<String, _>("kind"))?,
        start_ms: r.get("start_ms"),
        end_ms: r.get("end_ms"),
        text: r.get("text"),
        thumbnail: r.get("thumbnail"),
    })
}

/// Whether process `pid` of this machine is alive (the archive is a local folder, so a job's
/// runner is a process here). Where that cannot be known, it is assumed alive and the heartbeat
/// decides.
fn process_alive(pid: i64) -> bool {
    if pid == i64::from(std::process::id()) {
        return true;
    }
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    // A zombie (killed, not yet reaped by its parent) is not alive either.
    match fs_err::read_to_string(proc.join(pid.to_string()).join("stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn asset_and_segments_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&tmp.path().join("catalog.db")).await.unwrap();
        let mut asset = Asset::new("h1".into(), "/a/b.jpg".into(), AssetKind::Image, 10);
        asset.keywords = vec!["boxing".into(), "final".into()];
        asset.phash = Some(u64::MAX - 3);
        asset.status = AssetStatus::Indexing;
        let seg = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        catalog
            .put_asset(&asset, std::slice::from_ref(&seg))
            .await
            .unwrap();
        assert_eq!(catalog.asset(&asset.id).await.unwrap(), asset);
        assert!(
            catalog
                .ready_assets(std::slice::from_ref(&asset.id))
                .await
                .unwrap()
                .is_empty()
        );
        catalog
            .mark_ready(std::slice::from_ref(&asset.id))
            .await
            .unwrap();
        assert_eq!(
            catalog
                .ready_assets(std::slice::from_ref(&asset.id))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(catalog.segments(&asset.id).await.unwrap(), vec![seg]);
        assert_eq!(
            catalog.phashes(&Filters::default()).await.unwrap()[0].1,
            u64::MAX - 3
        );
    }

    /// Two processes opening a new archive at once (a server and an ingest; a `jobs show`
    /// polling a starting ingest) both applied migration 1, and one failed with "table assets
    /// already exists". Separate opens here race the same way: each has its own connections
    /// and its own descriptor of the lock file.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn catalogs_opened_together_on_a_new_archive_all_open() {
        for _ in 0..5 {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join("catalog.db");
            let opens = (0..4).map(|_| {
                let path = path.clone();
                tokio::spawn(async move { Catalog::open(&path).await })
            });
            for open in opens.collect::<Vec<_>>() {
                let catalog = open.await.unwrap().unwrap();
                assert!(catalog.jobs(10).await.unwrap().is_empty());
            }
        }
    }

    #[tokio::test]
    async fn replacing_an_asset_replaces_its_segments() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&tmp.path().join("catalog.db")).await.unwrap();
        let asset = Asset::new("h".into(), "/x.png".into(), AssetKind::Image, 1);
        let s1 = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        catalog.put_asset(&asset, &[s1]).await.unwrap();
        let s2 = Segment::new(&asset.id, SegmentKind::Image, 0, 0);
        catalog
            .put_asset(&asset, std::slice::from_ref(&s2))
            .await
            .unwrap();
        assert_eq!(catalog.segments(&asset.id).await.unwrap(), vec![s2]);
    }

    #[tokio::test]
    async fn first_segments_gives_each_assets_earliest_moment_in_one_query() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&tmp.path().join("catalog.db")).await.unwrap();
        let a = Asset::new("ha".into(), "/a.mp4".into(), AssetKind::Video, 1);
        let b = Asset::new("hb".into(), "/b.mp4".into(), AssetKind::Video, 1);
        let late = Segment::new(&a.id, SegmentKind::Shot, 5000, 9000);
        let early = Segment::new(&a.id, SegmentKind::Shot, 0, 5000);
        let only = Segment::new(&b.id, SegmentKind::Speech, 1200, 3000);
        catalog.put_asset(&a, &[late, early.clone()]).await.unwrap();
        catalog
            .put_asset(&b, std::slice::from_ref(&only))
            .await
            .unwrap();
        let mut firsts = catalog
            .first_segments(&[a.id.clone(), b.id.clone(), "none".into()])
            .await
            .unwrap();
        firsts.sort_by_key(|s| s.start_ms);
        assert_eq!(firsts, vec![early, only]);
    }

    #[tokio::test]
    async fn job_counts_follow_recorded_files() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&tmp.path().join("catalog.db")).await.unwrap();
        let job = catalog.create_job("ingest", "/archive").await.unwrap();
        catalog
            .record_job_file(&job.id, "/a", "indexed", None, None)
            .await
            .unwrap();
        catalog
            .record_job_file(&job.id, "/b", "failed", None, Some("bad"))
            .await
            .unwrap();
        catalog
            .record_job_file(&job.id, "/b", "failed", None, Some("bad"))
            .await
            .unwrap();
        let job = catalog.finish_job(&job.id, "done").await.unwrap();
        assert_eq!((job.done, job.failed, job.status.as_str()), (1, 1, "done"));
    }
}
