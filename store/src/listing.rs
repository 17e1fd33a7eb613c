//! Browsing the catalog: assets listed with filters and pages, counted by facet, and the jobs
//! with the files they touched.

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, Row};

use crate::catalog::{ASSET_COLUMNS, Catalog, Filters, asset_from_row, parse_time};
use crate::error::{Error, Result};
use crate::records::{Asset, AssetStatus, Facets, Job, JobFile};

/// How a listing is ordered.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Most recently ingested first (the default).
    #[default]
    Newest,
    /// Oldest capture first; assets with no capture date last.
    Captured,
    /// By file name.
    Name,
}

impl std::str::FromStr for Sort {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "newest" => Ok(Sort::Newest),
            "captured" => Ok(Sort::Captured),
            "name" => Ok(Sort::Name),
            other => Err(Error::InvalidInput {
                field: "sort",
                message: format!("{other:?} is not one of: newest, captured, name"),
            }),
        }
    }
}

/// A page of assets.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AssetPage {
    pub assets: Vec<Asset>,
    /// Matching assets over all pages.
    pub total: i64,
}

/// The `WHERE` clause shared by listings and facets, with `$1…$6` bound by [`bind_filters`].
const FILTER_SQL: &str = "($1 IS NULL OR kind = $1) AND ($2 IS NULL OR collection = $2) \
     AND ($3 IS NULL OR captured_at >= $3) AND ($4 IS NULL OR captured_at <= $4) \
     AND ($5 IS NULL OR language = $5) AND ($6 IS NULL OR status = $6)";

fn bind_filters<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    filters: &'q Filters,
    status: Option<AssetStatus>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(filters.kind.map(|k| k.as_str()))
        .bind(filters.collection.as_deref())
        .bind(filters.captured_after.map(|t| t.to_rfc3339()))
        .bind(filters.captured_before.map(|t| t.to_rfc3339()))
        .bind(filters.language.as_deref())
        .bind(status.map(|s| s.as_str()))
}

impl Catalog {
    /// Assets matching `filters` (and `status`, when given), one page in `sort` order.
    pub async fn list_assets(
        &self,
        filters: &Filters,
        status: Option<AssetStatus>,
        sort: Sort,
        limit: i64,
        offset: i64,
    ) -> Result<AssetPage> {
        let order = match sort {
            Sort::Newest => "ingested_at DESC, id DESC",
            Sort::Captured => "captured_at IS NULL, captured_at, id",
            Sort::Name => "path, id",
        };
        let sql = format!(
            "SELECT {ASSET_COLUMNS} FROM assets WHERE {FILTER_SQL} ORDER BY {order} LIMIT $7 OFFSET $8"
        );
        let rows = bind_filters(sqlx::query(AssertSqlSafe(sql)), filters, status)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let assets = rows
            .iter()
            .map(|r| asset_from_row(r, &self.path))
            .collect::<Result<Vec<_>>>()?;
        let sql = format!("SELECT COUNT(*) FROM assets WHERE {FILTER_SQL}");
        let total: i64 = bind_filters(sqlx::query(AssertSqlSafe(sql)), filters, status)
            .fetch_one(&self.pool)
            .await
            .map_err(self.err())?
            .get(0);
        Ok(AssetPage { assets, total })
    }

    /// Counts of the assets matching `filters` (and `status`) by kind, collection, language and
    /// capture year.
    pub async fn facets(&self, filters: &Filters, status: Option<AssetStatus>) -> Result<Facets> {
        let mut facets = Facets::default();
        for (column, slot) in [
            ("kind", &mut facets.kind),
            ("collection", &mut facets.collection),
            ("language", &mut facets.language),
            ("substr(captured_at, 1, 4)", &mut facets.year),
        ] {
            let sql = format!(
                "SELECT {column} AS v, COUNT(*) FROM assets WHERE {FILTER_SQL} AND {column} IS NOT NULL GROUP BY v"
            );
            let rows = bind_filters(sqlx::query(AssertSqlSafe(sql)), filters, status)
                .fetch_all(&self.pool)
                .await
                .map_err(self.err())?;
            let counts: BTreeMap<String, u64> = rows
                .iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1) as u64))
                .collect();
            *slot = counts;
        }
        Ok(facets)
    }

    /// The most recent jobs, newest first.
    pub async fn jobs(&self, limit: i64) -> Result<Vec<Job>> {
        let rows = sqlx::query("SELECT id FROM jobs ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err())?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in rows {
            jobs.push(self.job(&r.get::<String, _>(0)).await?);
        }
        Ok(jobs)
    }

    /// Files of a job (those with `status`, when given), in the order they finished.
    pub async fn job_files(
        &self,
        job_id: &str,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<JobFile>> {
        let rows = sqlx::query(
            "SELECT path, status, asset_id, error FROM job_files WHERE job_id = $1 \
             AND ($2 IS NULL OR status = $2) ORDER BY rowid LIMIT $3",
        )
        .bind(job_id)
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(rows
            .iter()
            .map(|r| JobFile {
                path: r.get(0),
                status: r.get(1),
                asset_id: r.get(2),
                error: r.get(3),
            })
            .collect())
    }

    /// Jobs of `kind` that are queued or running (after a restart: those it interrupted).
    pub async fn unfinished_jobs(&self, kind: &str) -> Result<Vec<Job>> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE kind = $1 AND status IN ('queued', 'running') ORDER BY created_at, id",
        )
        .bind(kind)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        let mut jobs = Vec::with_capacity(rows.len());
        for r in rows {
            jobs.push(self.job(&r.get::<String, _>(0)).await?);
        }
        Ok(jobs)
    }

    /// Deletes an asset and its segments from the catalog; returns the thumbnails it had.
    pub async fn delete_asset(&self, id: &str) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await.map_err(self.err())?;
        let thumbnails: Vec<String> = sqlx::query(
            "SELECT thumbnail FROM segments WHERE asset_id = $1 AND thumbnail IS NOT NULL",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err())?
        .iter()
        .map(|r| r.get(0))
        .collect();
        sqlx::query("DELETE FROM segments WHERE asset_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        let gone = sqlx::query("DELETE FROM assets WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(self.err())?;
        if gone.rows_affected() == 0 {
            return Err(Error::NotFound {
                what: "asset",
                id: id.to_string(),
            });
        }
        tx.commit().await.map_err(self.err())?;
        Ok(thumbnails)
    }

    /// Writes the user-editable metadata of an asset.
    pub async fn set_metadata(&self, asset: &Asset) -> Result<()> {
        sqlx::query(
            "UPDATE assets SET title = $2, caption = $3, keywords = $4, collection = $5 WHERE id = $1",
        )
        .bind(&asset.id)
        .bind(&asset.title)
        .bind(&asset.caption)
        .bind(serde_json::to_string(&asset.keywords).unwrap_or_else(|_| "[]".into()))
        .bind(&asset.collection)
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok(())
    }
}

/// Parses an optional stored time.
pub(crate) fn parse_optional_time(
    text: Option<String>,
    path: &std::path::Path,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    text.map(|t| parse_time(&t, path)).transpose()
}
