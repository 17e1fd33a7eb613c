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
use crate::records::{Asset, FacetFields, SearchId, Segment};

/// Bytes each kind of entry may take, as [`Weigh`] counts them (128 MiB in all); past it a
/// random half of that kind is forgotten. Bounds by count would let long captions and
/// transcripts grow the memory tenfold. The bench's searches (session 21) met ~30,000 distinct
/// page assets and more moments than these hold; with the captions' embeddings (session 30)
/// they met 46 MiB of asset records (~800 bytes each) in 25 s of load. There, forgetting half
/// kept 83% of a page's assets in memory where forgetting all kept 79%; a bound of 96 MiB kept
/// 92%, for 2% more queries/s over six alternating pairs, inside the VM's spread.
const FACET_FIELDS_BYTES: usize = 24 << 20;
const ASSETS_BYTES: usize = 40 << 20;
const SEGMENTS_BYTES: usize = 48 << 20;
const FIRST_SEGMENTS_BYTES: usize = 16 << 20;

/// A remembered entry's bytes beside its record: its slot in the map and the record's
/// reference counts.
const ENTRY_BYTES: usize = size_of::<(SearchId, Option<Arc<()>>)>() + 8 + 16;

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
    /// Bytes the memory holds of this kind now (its budget bounds them).
    pub bytes: usize,
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

/// One kind's entries by id, and their bytes.
#[derive(Debug)]
struct Entries<T> {
    by_id: HashMap<SearchId, Option<Arc<T>>>,
    bytes: usize,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Self {
            by_id: HashMap::default(),
            bytes: 0,
        }
    }
}

impl<T: Weigh> Entries<T> {
    /// Forgets every other entry in the map's order, which follows the ids' hashes and not
    /// when they were asked for: a random half.
    fn forget_half(&mut self) {
        let mut keep = false;
        let mut forgotten = 0;
        self.by_id.retain(|id, record| {
            keep = !keep;
            if !keep {
                forgotten += T::entry_bytes(id, record.as_ref());
            }
            keep
        });
        self.bytes -= forgotten;
    }
}

/// What a remembered record holds on the heap besides itself (its strings), for the bounds.
trait Weigh: Sized {
    fn heap_bytes(&self) -> usize;

    /// The bytes an entry of `id` holding `record` takes.
    fn entry_bytes(id: &SearchId, record: Option<&Arc<Self>>) -> usize {
        let id_bytes = match id {
            SearchId::Uuid(_) => 0,
            SearchId::Text(text) => text.len(),
        };
        ENTRY_BYTES + id_bytes + record.map_or(0, |r| size_of::<Self>() + r.heap_bytes())
    }
}

fn text_bytes(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::capacity)
}

impl Weigh for FacetFields {
    fn heap_bytes(&self) -> usize {
        text_bytes(&self.collection) + text_bytes(&self.language)
    }
}

impl Weigh for Segment {
    fn heap_bytes(&self) -> usize {
        self.id.capacity()
            + self.asset_id.capacity()
            + text_bytes(&self.text)
            + text_bytes(&self.thumbnail)
    }
}

impl Weigh for Asset {
    fn heap_bytes(&self) -> usize {
        let words = |v: &Vec<String>| -> usize {
            v.iter().map(|w| size_of::<String>() + w.capacity()).sum()
        };
        let media = self.media.as_ref().map_or(0, |m| {
            size_of_val(m)
                + text_bytes(&m.container)
                + text_bytes(&m.video_codec)
                + text_bytes(&m.audio_codec)
                + words(&m.audio_languages)
        });
        [
            &self.mime,
            &self.title,
            &self.caption,
            &self.credit,
            &self.camera,
            &self.collection,
            &self.language,
            &self.error,
        ]
        .into_iter()
        .map(text_bytes)
        .sum::<usize>()
            + self.id.capacity()
            + self.content_hash.capacity()
            + self.path.capacity()
            + words(&self.keywords)
            + media
    }
}

/// One kind of entry of [`State`]: where it is kept, the bytes it may take, and its place in
/// [`KINDS`].
struct Kind<T> {
    entries: fn(&mut State) -> &mut Entries<T>,
    budget: usize,
    index: usize,
}

impl<T> Kind<T> {
    const fn new(entries: fn(&mut State) -> &mut Entries<T>, budget: usize, index: usize) -> Self {
        Kind {
            entries,
            budget,
            index,
        }
    }
}

const FACET_FIELDS: Kind<FacetFields> = Kind::new(|s| &mut s.facet_fields, FACET_FIELDS_BYTES, 0);
const ASSETS: Kind<Asset> = Kind::new(|s| &mut s.assets, ASSETS_BYTES, 1);
const SEGMENTS: Kind<Segment> = Kind::new(|s| &mut s.segments, SEGMENTS_BYTES, 2);
const FIRST_SEGMENTS: Kind<Segment> = Kind::new(|s| &mut s.first_segments, FIRST_SEGMENTS_BYTES, 3);

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
    fn known<T: Weigh>(
        &self,
        version: i64,
        ids: &[SearchId],
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
        if entries.bytes > kind.budget {
            entries.forget_half();
        }
        let mut unknown = Vec::new();
        let known = ids
            .iter()
            .enumerate()
            .map(|(i, id)| match entries.by_id.get(id) {
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
    fn remember<T: Weigh>(
        &self,
        version: i64,
        ids: &[SearchId],
        read: &HashMap<SearchId, Arc<T>>,
        kind: &Kind<T>,
    ) {
        let mut state = self.state.lock().expect("catalog memory lock");
        if state.version != Some(version) {
            return;
        }
        let entries = (kind.entries)(&mut state);
        for id in ids {
            let record = read.get(id);
            entries.bytes += T::entry_bytes(id, record);
            if let Some(old) = entries.by_id.insert(id.clone(), record.cloned()) {
                entries.bytes -= T::entry_bytes(id, old.as_ref());
            }
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
    pub assets: HashMap<SearchId, Arc<Asset>>,
    /// The page's moments that are still there.
    pub segments: HashMap<SearchId, Arc<Segment>>,
    /// The first segment of each asset shown as a whole, by asset id.
    pub first_segments: HashMap<SearchId, Arc<Segment>>,
}

impl Catalog {
    /// How many ids of each kind searches asked for since the catalog was opened, how many of
    /// them were answered from memory, and the bytes held of each kind (`/metrics` shows them).
    pub fn search_read_counts(&self) -> Vec<ReadCount> {
        let bytes = {
            let state = self.remembered.state.lock().expect("catalog memory lock");
            [
                state.facet_fields.bytes,
                state.assets.bytes,
                state.segments.bytes,
                state.first_segments.bytes,
            ]
        };
        KINDS
            .iter()
            .zip(&self.remembered.counts)
            .zip(bytes)
            .map(|((kind, [remembered, read]), bytes)| ReadCount {
                kind,
                remembered: remembered.load(Ordering::Relaxed),
                read: read.load(Ordering::Relaxed),
                bytes,
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
    pub async fn facet_fields(&self, ids: &[SearchId]) -> Result<Vec<Option<Arc<FacetFields>>>> {
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
        assets: &[SearchId],
        moments: &[SearchId],
        whole: &[SearchId],
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
    async fn read<T: Weigh, F, Fut>(
        &self,
        ids: &[SearchId],
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
        let unknown_ids: Vec<SearchId> = unknown.iter().map(|&i| ids[i].clone()).collect();
        let found: HashMap<SearchId, Arc<T>> =
            read(unknown_ids.iter().map(SearchId::to_id).collect())
                .await?
                .into_iter()
                .map(|(id, f)| (SearchId::new(&id), Arc::new(f)))
                .collect();
        memory.remember(self.version, &unknown_ids, &found, kind);
        for (i, id) in unknown.into_iter().zip(&unknown_ids) {
            known[i] = found.get(id).cloned();
        }
        Ok(known)
    }
}

/// The found ones of `ids`, by id, from `found` in the same order.
fn by_id<T>(ids: &[SearchId], found: Vec<Option<Arc<T>>>) -> HashMap<SearchId, Arc<T>> {
    ids.iter()
        .zip(found)
        .filter_map(|(id, f)| Some((id.clone(), f?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{AssetKind, AssetStatus, SegmentKind};

    fn sid(ids: &[&str]) -> Vec<SearchId> {
        ids.iter().map(|id| SearchId::new(id)).collect()
    }

    async fn facet_fields(catalog: &Catalog, ids: &[&str]) -> Vec<Option<Arc<FacetFields>>> {
        let reads = catalog.search_reads().await.unwrap();
        reads.facet_fields(&sid(ids)).await.unwrap()
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

    /// Past its bytes, half of a kind is forgotten; the other kinds are kept.
    #[test]
    fn a_kind_past_its_budget_forgets_half() {
        let memory = Remembered::new(SqliteConnectOptions::new());
        let segments = Kind {
            budget: 1,
            ..SEGMENTS
        };
        let facets = FACET_FIELDS;
        let fields = FacetFields {
            kind: AssetKind::Image,
            collection: None,
            language: None,
            captured_at: None,
        };
        let found = HashMap::from_iter([(SearchId::new("a"), Arc::new(fields))]);
        memory.known(7, &sid(&["a"]), &facets);
        memory.remember(7, &sid(&["a"]), &found, &facets);
        let ids: Vec<SearchId> = (0..4).map(|i| SearchId::new(&format!("s{i}"))).collect();
        let found = ids
            .iter()
            .map(|id| {
                (
                    id.clone(),
                    Arc::new(Segment::new("a", SegmentKind::Shot, 0, 1)),
                )
            })
            .collect();
        memory.known(7, &ids, &segments);
        memory.remember(7, &ids, &found, &segments);
        let bytes = |memory: &Remembered| memory.state.lock().unwrap().segments.bytes;
        let full = bytes(&memory);
        let (known, unknown) = memory.known(7, &ids, &segments);
        assert_eq!(
            (known.iter().flatten().count(), unknown.len()),
            (2, 2),
            "over a byte: half forgotten"
        );
        assert_eq!(bytes(&memory), full / 2, "and their bytes");
        let (known, unknown) = memory.known(7, &sid(&["a"]), &facets);
        assert!(
            unknown.is_empty() && known[0].is_some(),
            "the facet fields are kept"
        );
        // Another version forgets everything.
        let (_, unknown) = memory.known(8, &sid(&["a"]), &facets);
        assert_eq!(unknown, vec![0]);
    }

    /// An entry weighs its record's strings, and remembering an id again replaces its weight.
    #[test]
    fn entries_weigh_their_strings_once() {
        let memory = Remembered::new(SqliteConnectOptions::new());
        let mut asset = Asset::new("h".into(), "/a.jpg".into(), AssetKind::Image, 1);
        asset.caption = Some("x".repeat(10_000));
        let found = HashMap::from_iter([(SearchId::new(&asset.id), Arc::new(asset.clone()))]);
        let ids = sid(&[&asset.id, "gone"]);
        memory.known(1, &ids, &ASSETS);
        memory.remember(1, &ids, &found, &ASSETS);
        let bytes = memory.state.lock().unwrap().assets.bytes;
        assert!(
            (10_000 + size_of::<Asset>()..12_000 + size_of::<Asset>()).contains(&bytes),
            "{bytes}"
        );
        memory.remember(1, &ids, &found, &ASSETS);
        assert_eq!(memory.state.lock().unwrap().assets.bytes, bytes);
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
        let page = reads
            .page(&sid(assets), &sid(moments), &sid(whole))
            .await
            .unwrap();
        let mut titles: Vec<(String, Option<String>)> = page
            .assets
            .values()
            .map(|x| (x.id.clone(), x.title.clone()))
            .collect();
        titles.sort();
        let mut firsts: Vec<(String, String)> = page
            .first_segments
            .iter()
            .map(|(asset, s)| (asset.to_id(), s.id.clone()))
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
        assert!(after.iter().all(|c| c.bytes > 0), "{after:?}");

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
