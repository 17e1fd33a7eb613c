//! What searches read of the catalog, remembered while the catalog does not change: the facet
//! fields of their candidates and the records of their pages.
//!
//! A search counts facets over its ~200 candidates and shows ~20 assets with their moments.
//! Reading the candidates' facet fields was a tenth of the CPU under load, and reading the
//! page's rows (three queries, each id an index walk and a table walk, each query a hop to a
//! connection's thread) another sixth; most of what one search reads comes back in the next.
//!
//! Any commit, by this process or another (an ingest beside a server), empties the memory:
//! SQLite's `PRAGMA data_version`, asked once per search on a connection of its own that never
//! writes, changes whenever another connection has committed since it was last asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use foldhash::HashMap;
use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::catalog::Catalog;
use crate::error::Result;
use crate::records::{Asset, FacetFields, Segment};

/// Most assets whose facet fields are remembered (a few dozen bytes each); past it they are
/// forgotten and remembered again from empty.
const MOST_FACET_FIELDS: usize = 200_000;

/// Most assets remembered whole (a kilobyte or two each with their captions and keywords: a
/// page shows 20, so a thousand pages' worth); past it they are forgotten and remembered again
/// from empty.
const MOST_ASSETS: usize = 20_000;

/// Most segments, or first segments, remembered whole (a few hundred bytes each with their
/// words); past it that kind is forgotten and remembered again from empty. With the facet
/// fields, the memory stays around 100 MB at most.
const MOST_SEGMENTS: usize = 50_000;

/// The memory of a catalog's reads, shared by its clones.
#[derive(Debug)]
pub(crate) struct Remembered {
    options: SqliteConnectOptions,
    watcher: tokio::sync::Mutex<Option<SqliteConnection>>,
    state: Mutex<State>,
    /// Per kind of entry ([`KINDS`]): ids answered from memory, and ids read from the catalog.
    counts: [[AtomicU64; 2]; 4],
}

/// The kinds of entry remembered, as [`Catalog::search_read_counts`] names them.
const KINDS: [&str; 4] = ["facet_fields", "asset", "segment", "first_segment"];

/// How many ids of one kind searches asked for since the catalog was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadCount {
    /// `facet_fields`, `asset`, `segment` or `first_segment`.
    pub kind: &'static str,
    /// Answered from memory.
    pub remembered: u64,
    /// Read from the catalog (then remembered).
    pub read: u64,
}

/// What was read at one data version, by id (`None`: asked and not there, or not ready).
#[derive(Debug, Default)]
struct State {
    version: Option<i64>,
    facet_fields: Entries<FacetFields>,
    assets: Entries<Asset>,
    segments: Entries<Segment>,
    /// By asset id.
    first_segments: Entries<Segment>,
}

type Entries<T> = HashMap<String, Option<Arc<T>>>;

/// One kind of entry of [`State`]: where it is kept, the most of it kept, and its place in
/// [`KINDS`].
struct Kind<T> {
    entries: fn(&mut State) -> &mut Entries<T>,
    most: usize,
    index: usize,
}

const FACET_FIELDS: Kind<FacetFields> = Kind {
    entries: |s| &mut s.facet_fields,
    most: MOST_FACET_FIELDS,
    index: 0,
};
const ASSETS: Kind<Asset> = Kind {
    entries: |s| &mut s.assets,
    most: MOST_ASSETS,
    index: 1,
};
const SEGMENTS: Kind<Segment> = Kind {
    entries: |s| &mut s.segments,
    most: MOST_SEGMENTS,
    index: 2,
};
const FIRST_SEGMENTS: Kind<Segment> = Kind {
    entries: |s| &mut s.first_segments,
    most: MOST_SEGMENTS,
    index: 3,
};

impl Remembered {
    /// A memory that asks the catalog opened with `options` for its data version.
    pub(crate) fn new(options: SqliteConnectOptions) -> Self {
        Self {
            options,
            watcher: tokio::sync::Mutex::new(None),
            state: Mutex::new(State::default()),
            counts: Default::default(),
        }
    }

    /// The catalog's data version now.
    async fn version(&self) -> std::result::Result<i64, sqlx::Error> {
        let mut watcher = self.watcher.lock().await;
        if watcher.is_none() {
            *watcher = Some(self.options.connect().await?);
        }
        let conn = watcher.as_mut().expect("connected above");
        sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(conn)
            .await
    }

    /// What is remembered of `ids` at `version` (everything is forgotten if that is not the
    /// version it was remembered at), in their order (`None` for the ones not there), and the
    /// places of the ids it knows nothing of.
    fn known<T>(
        &self,
        version: i64,
        ids: &[&str],
        kind: &Kind<T>,
    ) -> (Vec<Option<Arc<T>>>, Vec<usize>) {
        let mut state = self.state.lock().expect("catalog memory lock");
        if state.version != Some(version) {
            *state = State {
                version: Some(version),
                ..State::default()
            };
        }
        let entries = (kind.entries)(&mut state);
        if entries.len() > kind.most {
            entries.clear();
        }
        let mut unknown = Vec::new();
        let known = ids
            .iter()
            .enumerate()
            .map(|(i, id)| match entries.get(*id) {
                Some(entry) => entry.clone(),
                None => {
                    unknown.push(i);
                    None
                }
            })
            .collect();
        let counts = &self.counts[kind.index];
        counts[0].fetch_add((ids.len() - unknown.len()) as u64, Ordering::Relaxed);
        counts[1].fetch_add(unknown.len() as u64, Ordering::Relaxed);
        (known, unknown)
    }

    /// Remembers what was read of `ids` at `version` (unless the catalog has moved on since):
    /// `read`, and that the others are not there.
    fn remember<T>(
        &self,
        version: i64,
        ids: &[String],
        read: &HashMap<String, Arc<T>>,
        kind: &Kind<T>,
    ) {
        let mut state = self.state.lock().expect("catalog memory lock");
        if state.version != Some(version) {
            return;
        }
        let entries = (kind.entries)(&mut state);
        for id in ids {
            entries.insert(id.clone(), read.get(id).cloned());
        }
    }
}

/// The catalog as one search reads it: remembered reads, valid at the data version asked when
/// the search began to read.
#[derive(Debug)]
pub struct SearchReads<'a> {
    catalog: &'a Catalog,
    version: i64,
}

/// The records a search's page shows, by id.
#[derive(Debug, Default)]
pub struct PageRecords {
    /// The ready ones among the page's assets.
    pub assets: HashMap<String, Arc<Asset>>,
    /// The page's moments that are still there.
    pub segments: HashMap<String, Arc<Segment>>,
    /// The first segment of each asset shown as a whole, by asset id.
    pub first_segments: HashMap<String, Arc<Segment>>,
}

impl Catalog {
    /// How many ids of each kind searches asked for since the catalog was opened, and how many
    /// of them were answered from memory (`/metrics` shows them).
    pub fn search_read_counts(&self) -> Vec<ReadCount> {
        KINDS
            .iter()
            .zip(&self.remembered.counts)
            .map(|(kind, [remembered, read])| ReadCount {
                kind,
                remembered: remembered.load(Ordering::Relaxed),
                read: read.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Reads for one search, from memory where the catalog has not changed since they were
    /// last made ([`remembered`](crate::remembered)).
    pub async fn search_reads(&self) -> Result<SearchReads<'_>> {
        let version = self.remembered.version().await.map_err(self.err())?;
        Ok(SearchReads {
            catalog: self,
            version,
        })
    }
}

impl SearchReads<'_> {
    /// The facet fields of `ids`, in their order: `None` for an asset that is not ready (or
    /// not there). A search counts facets over all its candidates, ~200, and reads whole
    /// assets only for its page. Reading every candidate whole took 2.7 ms of a 7.8 ms search
    /// over 5,000 assets.
    pub async fn facet_fields(&self, ids: &[&str]) -> Result<Vec<Option<Arc<FacetFields>>>> {
        self.read(ids, &FACET_FIELDS, |ids| async move {
            self.catalog.read_facet_fields(&ids).await
        })
        .await
    }

    /// The records shown on a page of `assets`, with the segments `moments` and the first
    /// segment of each of the assets in `whole`. The three reads go to three of the pool's
    /// connections at once.
    pub async fn page(
        &self,
        assets: &[&str],
        moments: &[&str],
        whole: &[&str],
    ) -> Result<PageRecords> {
        let catalog = self.catalog;
        let (found_assets, found_segments, found_firsts) = tokio::try_join!(
            self.read(assets, &ASSETS, |ids| async move {
                let read = catalog.ready_assets(&ids).await?;
                Ok(read.into_iter().map(|a| (a.id.clone(), a)).collect())
            }),
            self.read(moments, &SEGMENTS, |ids| async move {
                let read = catalog.segments_by_id(&ids).await?;
                Ok(read.into_iter().map(|s| (s.id.clone(), s)).collect())
            }),
            self.read(whole, &FIRST_SEGMENTS, |ids| async move {
                let read = catalog.first_segments(&ids).await?;
                Ok(read.into_iter().map(|s| (s.asset_id.clone(), s)).collect())
            }),
        )?;
        Ok(PageRecords {
            assets: by_id(assets, found_assets),
            segments: by_id(moments, found_segments),
            first_segments: by_id(whole, found_firsts),
        })
    }

    /// `ids`' entries of `kind`, in their order: remembered, or read by `read` (given the ids
    /// not remembered, it returns the found ones with their ids) and remembered.
    async fn read<T, F, Fut>(
        &self,
        ids: &[&str],
        kind: &Kind<T>,
        read: F,
    ) -> Result<Vec<Option<Arc<T>>>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<Vec<(String, T)>>>,
    {
        let memory = &self.catalog.remembered;
        let (mut known, unknown) = memory.known(self.version, ids, kind);
        if unknown.is_empty() {
            return Ok(known);
        }
        let unknown_ids: Vec<String> = unknown.iter().map(|&i| ids[i].to_string()).collect();
        let found: HashMap<String, Arc<T>> = read(unknown_ids.clone())
            .await?
            .into_iter()
            .map(|(id, f)| (id, Arc::new(f)))
            .collect();
        memory.remember(self.version, &unknown_ids, &found, kind);
        for (i, id) in unknown.into_iter().zip(&unknown_ids) {
            known[i] = found.get(id).cloned();
        }
        Ok(known)
    }
}

/// The found ones of `ids`, by id, from `found` in the same order.
fn by_id<T>(ids: &[&str], found: Vec<Option<Arc<T>>>) -> HashMap<String, Arc<T>> {
    ids.iter()
        .zip(found)
        .filter_map(|(id, f)| Some((id.to_string(), f?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AssetKind, AssetStatus, SegmentKind};

    async fn facet_fields(catalog: &Catalog, ids: &[&str]) -> Vec<Option<Arc<FacetFields>>> {
        let reads = catalog.search_reads().await.unwrap();
        reads.facet_fields(ids).await.unwrap()
    }

    fn counts(catalog: &Catalog, kind: &str) -> ReadCount {
        catalog
            .search_read_counts()
            .into_iter()
            .find(|c| c.kind == kind)
            .unwrap()
    }

    /// Facet fields are remembered between searches, and forgotten at any commit: by this
    /// catalog, or by another opening the same file (another process).
    #[tokio::test]
    async fn facet_fields_follow_commits_of_any_connection() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("catalog.db");
        let catalog = Catalog::open(&path).await.unwrap();
        let other = Catalog::open(&path).await.unwrap();
        let mut a = Asset::new("ha".into(), "/a.jpg".into(), AssetKind::Image, 1);
        a.collection = Some("first".into());
        let mut b = Asset::new("hb".into(), "/b.jpg".into(), AssetKind::Image, 1);
        b.status = AssetStatus::Indexing;
        for asset in [&a, &b] {
            catalog.put_asset(asset, &[]).await.unwrap();
        }
        catalog
            .mark_ready(std::slice::from_ref(&a.id))
            .await
            .unwrap();
        let owned = [a.id.clone(), b.id.clone()];
        let ids = owned.each_ref().map(String::as_str);
        let collections = |fields: Vec<Option<Arc<FacetFields>>>| -> Vec<(String, Option<String>)> {
            assert_eq!(fields.len(), ids.len(), "one answer per id");
            let mut v: Vec<_> = owned
                .iter()
                .zip(fields)
                .filter_map(|(id, f)| Some((id.clone(), f?.collection.clone())))
                .collect();
            v.sort();
            v
        };
        let want = vec![(a.id.clone(), Some("first".to_string()))];
        let before = counts(&catalog, "facet_fields");
        assert_eq!(collections(facet_fields(&catalog, &ids).await), want);
        // Remembered: the same answer again, the not-ready asset still left out.
        assert_eq!(collections(facet_fields(&catalog, &ids).await), want);

        let after = counts(&catalog, "facet_fields");
        assert_eq!(
            (
                after.read - before.read,
                after.remembered - before.remembered
            ),
            (2, 2),
            "the second search read nothing"
        );

        // Another connection moves a and makes b ready.
        a.collection = Some("second".into());
        other.set_metadata(&a).await.unwrap();
        other.mark_ready(std::slice::from_ref(&b.id)).await.unwrap();
        let mut want = vec![
            (a.id.clone(), Some("second".to_string())),
            (b.id.clone(), None),
        ];
        want.sort();
        assert_eq!(collections(facet_fields(&catalog, &ids).await), want);

        // This catalog's own commit: a is deleted.
        catalog.delete_asset(&a.id).await.unwrap();
        assert_eq!(
            collections(facet_fields(&catalog, &ids).await),
            vec![(b.id.clone(), None)]
        );
    }

    /// Past its most, a kind is forgotten and remembered again from empty; the other kinds
    /// are kept.
    #[test]
    fn a_kind_past_its_most_starts_again_empty() {
        let memory = Remembered::new(SqliteConnectOptions::new());
        let segments = Kind {
            most: 2,
            ..SEGMENTS
        };
        let facets = FACET_FIELDS;
        let fields = FacetFields {
            kind: AssetKind::Image,
            collection: None,
            language: None,
            captured_at: None,
        };
        let found = HashMap::from_iter([("a".to_string(), Arc::new(fields))]);
        memory.known(7, &["a"], &facets);
        memory.remember(7, &["a".to_string()], &found, &facets);
        let ids: Vec<String> = (0..3).map(|i| format!("s{i}")).collect();
        let found = ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Arc::new(Segment::new("a", SegmentKind::Shot, 0, 1)),
                )
            })
            .collect();
        memory.known(7, &["s0", "s1", "s2"], &segments);
        memory.remember(7, &ids, &found, &segments);
        let (known, unknown) = memory.known(7, &["s0", "s1"], &segments);
        assert!(known.iter().all(Option::is_none));
        assert_eq!(
            unknown,
            vec![0, 1],
            "three segments are more than two: forgotten"
        );
        let (known, unknown) = memory.known(7, &["a"], &facets);
        assert!(
            unknown.is_empty() && known[0].is_some(),
            "the facet fields are kept"
        );
        // Another version forgets everything.
        let (_, unknown) = memory.known(8, &["a"], &facets);
        assert_eq!(unknown, vec![0]);
    }

    /// What a search's page shows of `assets`, `moments` and the first segments of `whole`:
    /// the assets' titles, the segments, the first segments' ids, each sorted.
    async fn shown(
        catalog: &Catalog,
        assets: &[&str],
        moments: &[&str],
        whole: &[&str],
    ) -> (
        Vec<(String, Option<String>)>,
        Vec<Segment>,
        Vec<(String, String)>,
    ) {
        let reads = catalog.search_reads().await.unwrap();
        let page = reads.page(assets, moments, whole).await.unwrap();
        let mut titles: Vec<(String, Option<String>)> = page
            .assets
            .values()
            .map(|x| (x.id.clone(), x.title.clone()))
            .collect();
        titles.sort();
        let mut firsts: Vec<(String, String)> = page
            .first_segments
            .iter()
            .map(|(asset, s)| (asset.clone(), s.id.clone()))
            .collect();
        firsts.sort();
        let segments = page.segments.values().map(|s| (**s).clone()).collect();
        (titles, segments, firsts)
    }

    /// A page's records are remembered between searches, and forgotten at any commit: a
    /// retitled asset shows its new title, a deleted one is gone.
    #[tokio::test]
    async fn page_records_follow_commits_of_any_connection() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("catalog.db");
        let catalog = Catalog::open(&path).await.unwrap();
        let other = Catalog::open(&path).await.unwrap();
        let mut a = Asset::new("ha".into(), "/a.mp4".into(), AssetKind::Video, 1);
        a.title = Some("heats".into());
        let b = Asset::new("hb".into(), "/b.mp4".into(), AssetKind::Video, 1);
        let mut said = Segment::new(&a.id, SegmentKind::Speech, 2000, 4000);
        said.text = Some("on your marks".into());
        let shot = Segment::new(&a.id, SegmentKind::Shot, 0, 5000);
        let b_shot = Segment::new(&b.id, SegmentKind::Shot, 0, 3000);
        catalog
            .put_asset(&a, &[said.clone(), shot.clone()])
            .await
            .unwrap();
        catalog
            .put_asset(&b, std::slice::from_ref(&b_shot))
            .await
            .unwrap();
        catalog
            .mark_ready(&[a.id.clone(), b.id.clone()])
            .await
            .unwrap();
        let (a_id, b_id, said_id) = (a.id.clone(), b.id.clone(), said.id.clone());
        let (assets, moments, whole) = (
            [a_id.as_str(), &b_id, "none"],
            [said_id.as_str(), "gone"],
            [b_id.as_str(), &a_id],
        );
        let mut firsts = vec![
            (a.id.clone(), shot.id.clone()),
            (b.id.clone(), b_shot.id.clone()),
        ];
        firsts.sort();
        let mut want = (
            vec![
                (a.id.clone(), Some("heats".to_string())),
                (b.id.clone(), None),
            ],
            vec![said.clone()],
            firsts.clone(),
        );
        want.0.sort();
        let before = ["asset", "segment", "first_segment"].map(|k| counts(&catalog, k));
        assert_eq!(shown(&catalog, &assets, &moments, &whole).await, want);
        assert_eq!(
            shown(&catalog, &assets, &moments, &whole).await,
            want,
            "remembered: the same"
        );
        let after = ["asset", "segment", "first_segment"].map(|k| counts(&catalog, k));
        let delta: Vec<(u64, u64)> = before
            .iter()
            .zip(&after)
            .map(|(b, a)| (a.read - b.read, a.remembered - b.remembered))
            .collect();
        // Every id asked, those not there included, is read once and then remembered.
        assert_eq!(delta, vec![(3, 3), (2, 2), (2, 2)]);

        // Another connection retitles a; this one deletes b.
        a.title = Some("final".into());
        other.set_metadata(&a).await.unwrap();
        for (id, title) in &mut want.0 {
            if *id == a.id {
                *title = Some("final".into());
            }
        }
        assert_eq!(shown(&catalog, &assets, &moments, &whole).await, want);
        catalog.delete_asset(&b.id).await.unwrap();
        want.0.retain(|(id, _)| *id == a.id);
        want.2.retain(|(id, _)| *id == a.id);
        assert_eq!(shown(&catalog, &assets, &moments, &whole).await, want);
    }
}
