//! Search: candidates from every signal (BM25, sentence vectors, CLIP vectors, perceptual hash),
//! weighted reciprocal-rank fusion, then grouping of moments into their assets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt, HashSet};

use serde::{Deserialize, Serialize};

use crate::Store;
use crate::catalog::Filters;
use crate::error::Result;
use crate::highlight::Highlighter;
use crate::records::{Asset, AssetKind, FacetCounter, Facets, SearchId, SegmentKind};
use crate::remembered::PageRecords;
use crate::text::{TextIndex, TextResults};
use crate::turns::Ticket;
use crate::vectors::{Space, VectorIndex};

/// Reciprocal-rank fusion constant (Cormack et al.): damps the weight of the very first ranks.
const RRF_K: f32 = 60.0;
/// Sentence similarity below which a text-vector hit is noise, not meaning.
const MIN_SEMANTIC: f32 = 0.25;
/// Hamming distance (of 64 bits) up to which two images are near-duplicates: unrelated images
/// differ in 32 ± 4 bits, so 16 is four standard deviations from chance.
pub const MAX_DUPLICATE_DISTANCE: u32 = 16;
/// Moments listed per asset.
const MOMENTS_PER_ASSET: usize = 3;

/// Which signals a search uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every signal, fused.
    #[default]
    Hybrid,
    /// CLIP similarity (and near-duplicates) only.
    Visual,
    /// BM25 and sentence similarity only.
    Keyword,
}

impl std::str::FromStr for Mode {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "hybrid" => Ok(Mode::Hybrid),
            "visual" => Ok(Mode::Visual),
            "keyword" => Ok(Mode::Keyword),
            other => Err(crate::Error::InvalidInput {
                field: "mode",
                message: format!("{other:?} is not one of: hybrid, visual, keyword"),
            }),
        }
    }
}

/// How results are listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// One hit per asset with its best moments (coarse).
    #[default]
    Assets,
    /// One hit per moment, across assets (fine).
    Moments,
}

impl std::str::FromStr for Group {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "assets" => Ok(Group::Assets),
            "moments" => Ok(Group::Moments),
            other => Err(crate::Error::InvalidInput {
                field: "group",
                message: format!("{other:?} is not one of: assets, moments"),
            }),
        }
    }
}

/// A search request with its query embeddings already computed (the store knows no models).
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub filters: Filters,
    pub mode: Mode,
    pub group: Group,
    pub limit: usize,
    pub offset: usize,
    /// Sentence embedding of `text` (the `text` space).
    pub text_embedding: Option<Vec<f32>>,
    /// CLIP embedding of `text`, or of the example image (the `visual` space).
    pub visual_embedding: Option<Vec<f32>>,
    /// Perceptual hash of the example image.
    pub phash: Option<u64>,
    /// An asset left out of the results (the one a "find similar" started from).
    pub exclude_asset: Option<String>,
    /// Candidates each signal brings to the fusion, where the query sets them (see
    /// [`SearchQuery::candidates`]).
    pub candidates: Option<usize>,
}

/// The most candidates a search may ask each signal for.
pub const MAX_CANDIDATES: usize = 10_000;

/// A matching moment of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Moment {
    pub segment_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub kind: SegmentKind,
    /// Matched words in `<b>…</b>`, HTML-escaped.
    pub snippet: Option<String>,
    pub score: f32,
    /// Why it matched: `visual` (what is seen), `speech` (what is said), `metadata` (title,
    /// caption, keywords…), `on_screen_text`. A shot and the words spoken over it make one
    /// moment that matched for both.
    pub why: Vec<String>,
    /// Where its thumbnail is served (set by the HTTP layer; `None` when it has none).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thumbnail: Option<String>,
    /// Whether the moment has a thumbnail.
    #[serde(skip)]
    pub has_thumbnail: bool,
}

/// One moment in the results listed per moment (`group=moments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MomentHit {
    pub asset_id: String,
    pub path: String,
    pub asset_kind: AssetKind,
    pub title: Option<String>,
    #[serde(flatten)]
    pub moment: Moment,
}

/// One asset in the results with its best moments and why it matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetHit {
    pub asset_id: String,
    pub path: String,
    pub kind: AssetKind,
    pub title: Option<String>,
    pub score: f32,
    /// Raw score per signal: `keyword` (BM25), `semantic` and `visual` (cosine), `duplicate`
    /// (1 − Hamming distance / 64).
    pub signals: BTreeMap<String, f32>,
    pub moments: Vec<Moment>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub group: Group,
    /// Assets (`group=assets`; empty otherwise).
    #[serde(default)]
    pub hits: Vec<AssetHit>,
    /// Moments (`group=moments`; empty otherwise).
    #[serde(default)]
    pub moments: Vec<MomentHit>,
    /// Matching assets (or moments) over all pages.
    pub total: usize,
    /// The matching assets counted by kind, collection, language and capture year.
    #[serde(default)]
    pub facets: Facets,
}

/// A signal a search fuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Keyword,
    Semantic,
    Visual,
    Duplicate,
}

impl Signal {
    const ALL: [Signal; 4] = [
        Signal::Keyword,
        Signal::Semantic,
        Signal::Visual,
        Signal::Duplicate,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Signal::Keyword => "keyword",
            Signal::Semantic => "semantic",
            Signal::Visual => "visual",
            Signal::Duplicate => "duplicate",
        }
    }
}

/// Signals, one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Signals(u8);

impl Signals {
    fn insert(&mut self, signal: Signal) {
        self.0 |= 1 << signal as u8;
    }

    fn iter(self) -> impl Iterator<Item = Signal> {
        Signal::ALL
            .into_iter()
            .filter(move |s| self.0 & (1 << *s as u8) != 0)
    }
}

// The accumulators hold no maps: a search fuses about 200 candidates, and their maps' and
// sets' allocations (and frees) were a good part of the fusion's time under load.
#[derive(Default)]
struct MomentAcc {
    score: f32,
    signals: Signals,
}

#[derive(Default)]
struct AssetAcc {
    /// Fused score of signals about the asset as a whole (its metadata, its fingerprint).
    asset_score: f32,
    /// The best raw score of each signal that found the asset, by [`Signal`].
    signals: [Option<f32>; 4],
    /// Its moments found (segment id), in the order met: a few, looked up one by one.
    moments: Vec<(SearchId, MomentAcc)>,
}

impl AssetAcc {
    fn total(&self) -> f32 {
        self.asset_score + self.moments.iter().map(|m| m.1.score).fold(0.0, f32::max)
    }

    fn note_signal(&mut self, signal: Signal, raw: f32) {
        let slot = &mut self.signals[signal as usize];
        *slot = Some(slot.map_or(raw, |s| s.max(raw)));
    }

    fn moment(&mut self, segment_id: SearchId) -> &mut MomentAcc {
        let at = match self.moments.iter().position(|(id, _)| *id == segment_id) {
            Some(at) => at,
            None => {
                self.moments.push((segment_id, MomentAcc::default()));
                self.moments.len() - 1
            }
        };
        &mut self.moments[at].1
    }

    /// The raw score of each signal that found the asset, by name.
    fn signal_scores(&self) -> BTreeMap<String, f32> {
        Signal::ALL
            .into_iter()
            .filter_map(|s| Some((s.as_str().to_string(), self.signals[s as usize]?)))
            .collect()
    }
}

/// One ranked list of candidates from one signal.
struct Ranked {
    signal: Signal,
    weight: f32,
    /// (asset id, segment id when the hit is a moment, raw score)
    items: Vec<(SearchId, Option<SearchId>, f32)>,
}

/// Fuses ranked lists: each item earns `weight / (k + rank)` from every list it is in.
fn fuse(lists: Vec<Ranked>) -> HashMap<SearchId, AssetAcc> {
    let mut assets: HashMap<SearchId, AssetAcc> =
        HashMap::with_capacity(lists.iter().map(|l| l.items.len()).sum());
    for list in lists {
        for (rank, (asset_id, segment_id, raw)) in list.items.into_iter().enumerate() {
            let contribution = list.weight / (RRF_K + rank as f32 + 1.0);
            let acc = assets.entry(asset_id).or_default();
            acc.note_signal(list.signal, raw);
            match segment_id {
                Some(seg) => {
                    let m = acc.moment(seg);
                    m.score += contribution;
                    m.signals.insert(list.signal);
                }
                None => acc.asset_score += contribution,
            }
        }
    }
    assets
}

/// A search's keyword candidates, found ahead of the rest of it (while its words are embedded).
#[derive(Debug)]
pub struct KeywordCandidates {
    found: Option<TextResults>,
    /// The search's place in the turns of the CPU work.
    ticket: Ticket,
}

impl SearchQuery {
    /// Candidates each signal (BM25, each vector space, the example image's copies) brings to
    /// the fusion: what the query asks ([`check`](Self::check) bounds it), else twice the
    /// page's depth, at least 100. The facets and `total` count the fused candidates, and an
    /// HNSW walk keeps as many as it returns (at least 40), so fewer make a search cheaper and
    /// its ranking, its facets and its total rougher.
    pub fn candidates(&self) -> usize {
        let depth = self.depth();
        match self.candidates {
            Some(c) => c.clamp(depth, MAX_CANDIDATES.max(depth)),
            None => depth.max(50) * 2,
        }
    }

    /// Refuses candidates the query cannot be answered with: fewer than its page's depth
    /// (`offset + limit`), or more than [`MAX_CANDIDATES`].
    pub fn check(&self) -> Result<()> {
        let Some(c) = self.candidates else {
            return Ok(());
        };
        let depth = self.depth();
        if c < depth || c > MAX_CANDIDATES {
            return Err(crate::Error::InvalidInput {
                field: "candidates",
                message: format!(
                    "{c} is not between offset + limit ({depth}) and {MAX_CANDIDATES}"
                ),
            });
        }
        Ok(())
    }

    /// The places down to the end of the page asked for.
    fn depth(&self) -> usize {
        self.offset + self.limit.clamp(1, 200)
    }

    fn wants_text(&self) -> bool {
        matches!(self.mode, Mode::Hybrid | Mode::Keyword)
    }
}

impl Store {
    /// The BM25 candidates of `query` (none when its mode or words want none), for
    /// [`search_with`](Self::search_with): they need no embedding, so they can be found while
    /// the query's words are embedded (under load a search otherwise waits for the shared
    /// encoder pass with one core idle). `started` is told when this search's turn on the cores
    /// begins (at once when it needs none): under load it first waits behind the searches that
    /// came before it, and work done for it alongside its own steps is best started then.
    pub async fn keyword_candidates(
        &self,
        query: &SearchQuery,
        started: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<KeywordCandidates> {
        let ticket = self.turns.ticket();
        let (true, Some(words)) = (query.wants_text(), query.text.clone()) else {
            if let Some(started) = started {
                let _ = started.send(());
            }
            return Ok(KeywordCandidates {
                found: None,
                ticket,
            });
        };
        let (text, filters, candidates) =
            (self.text.clone(), query.filters.clone(), query.candidates());
        self.turns
            .run(ticket, move || {
                if let Some(started) = started {
                    let _ = started.send(());
                }
                text.search(&words, &filters, candidates)
            })
            .await?
            .map(|found| KeywordCandidates {
                found: Some(found),
                ticket,
            })
    }

    /// Runs a search: candidates → fusion → assets with their moments.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchResponse> {
        self.search_with(query, None).await
    }

    /// [`search`](Self::search), with the keyword candidates of this same query found ahead.
    pub async fn search_with(
        &self,
        query: &SearchQuery,
        keywords: Option<KeywordCandidates>,
    ) -> Result<SearchResponse> {
        query.check()?;
        let limit = query.limit.clamp(1, 200);
        let candidates = query.candidates();
        let lists = {
            let (text, vectors, q) = (self.text.clone(), self.vectors.clone(), query.clone());
            let ticket = keywords
                .as_ref()
                .map_or_else(|| self.turns.ticket(), |k| k.ticket);
            // One turn for the step, though with a CLIP model installed a hybrid query's visual
            // walk runs on a second thread beside the words' lists (not measured under load: no
            // CLIP weights can be installed on the development machine).
            self.turns
                .run(ticket, move || {
                    candidate_lists(&text, vectors.as_ref(), &q, keywords, candidates)
                })
                .await??
        };
        let (mut lists, mut highlighter) = lists;
        if let Some(hash) = query.phash.filter(|_| query.mode != Mode::Keyword) {
            let mut dups: Vec<(String, u32)> = self
                .catalog
                .phashes(&query.filters)
                .await?
                .into_iter()
                .map(|(id, h)| (id, (h ^ hash).count_ones()))
                .filter(|(_, d)| *d <= MAX_DUPLICATE_DISTANCE)
                .collect();
            dups.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            dups.truncate(candidates);
            lists.push(Ranked {
                signal: Signal::Duplicate,
                // A copy of the example image is the best possible answer to "find this image".
                weight: 3.0,
                items: dups
                    .into_iter()
                    .map(|(id, d)| (SearchId::new(&id), None, 1.0 - d as f32 / 64.0))
                    .collect(),
            });
        }
        let fused: Vec<(SearchId, AssetAcc)> = fuse(lists).into_iter().collect();
        let reads = self.catalog.search_reads().await?;
        let ready = {
            let ids: Vec<SearchId> = fused.iter().map(|(id, _)| id.clone()).collect();
            reads.facet_fields(&ids).await?
        };
        let mut counter = FacetCounter::default();
        let ranked: Vec<(SearchId, AssetAcc)> = fused
            .into_iter()
            .zip(&ready)
            .filter_map(|((id, acc), fields)| {
                let fields = fields.as_deref()?;
                if query.exclude_asset.as_deref().is_some_and(|e| id == e) {
                    return None;
                }
                counter.count(fields);
                Some((id, acc))
            })
            .collect();
        let mut facets = Facets::default();
        counter.add_to(&mut facets);
        // Each asset's total once: computed in the comparison, it walked the asset's moments
        // twice per comparison (~2,000 walks for 150 candidates).
        let mut totals: Vec<(f32, (SearchId, AssetAcc))> =
            ranked.into_iter().map(|r| (r.1.total(), r)).collect();
        totals.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.0.cmp(&b.1.0)));
        let ranked: Vec<(SearchId, AssetAcc)> = totals.into_iter().map(|(_, r)| r).collect();
        let total_assets = ranked.len();
        let page: Vec<(SearchId, AssetAcc)> = match query.group {
            Group::Assets => ranked.into_iter().skip(query.offset).take(limit).collect(),
            // Moments are ranked across assets: every matching asset's moments are needed.
            Group::Moments => ranked,
        };

        let moment_ids: Vec<SearchId> = page
            .iter()
            .flat_map(|(_, acc)| acc.moments.iter().map(|(id, _)| id))
            .collect::<HashSet<_>>()
            .into_iter()
            .cloned()
            .collect();
        // Assets matched only as a whole show their first moment: fetched for the page at once.
        let whole: Vec<SearchId> = page
            .iter()
            .filter(|(_, acc)| acc.moments.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        let page_ids: Vec<SearchId> = page.iter().map(|(id, _)| id.clone()).collect();
        let PageRecords {
            assets,
            segments,
            first_segments: first,
        } = reads.page(&page_ids, &moment_ids, &whole).await?;
        // The words of the moments that have some, for their snippets.
        let words: HashMap<&str, &str> = segments
            .values()
            .chain(first.values())
            .filter_map(|s| Some((s.id.as_str(), s.text.as_deref()?)))
            .collect();
        // Each hit with its asset's record, for its snippets.
        let mut hits: Vec<(AssetHit, Arc<Asset>)> = Vec::with_capacity(page.len());
        for (asset_id, acc) in page {
            // Deleted since its facet fields were read.
            let Some(asset) = assets.get(&asset_id) else {
                continue;
            };
            let score = acc.total();
            let mut moments = merge_moments(
                acc.moments
                    .iter()
                    .filter_map(|(id, m)| {
                        let s = segments.get(id)?;
                        Some(Moment {
                            segment_id: s.id.clone(),
                            start_ms: s.start_ms,
                            end_ms: s.end_ms,
                            kind: s.kind,
                            snippet: None,
                            score: m.score,
                            why: why(s.kind, m.signals),
                            thumbnail: None,
                            has_thumbnail: s.thumbnail.is_some(),
                        })
                    })
                    .collect(),
            );
            if moments.is_empty()
                && let Some(s) = first.get(&asset_id)
            {
                moments.push(Moment {
                    segment_id: s.id.clone(),
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    kind: s.kind,
                    snippet: None,
                    score: acc.asset_score,
                    why: Vec::new(),
                    thumbnail: None,
                    has_thumbnail: s.thumbnail.is_some(),
                });
            }
            // A match of the asset as a whole is its first moment's; an image's one moment is
            // the asset.
            if let Some(first) = moments.first_mut()
                && acc.asset_score > 0.0
                && (first.kind == SegmentKind::Image || acc.moments.is_empty())
                && !first.why.iter().any(|w| w == "metadata")
            {
                first.why.push("metadata".into());
            }
            let hit = AssetHit {
                asset_id: asset.id.clone(),
                path: asset.path.clone(),
                kind: asset.kind,
                title: asset.title.clone(),
                score,
                signals: acc.signal_scores(),
                moments,
            };
            hits.push((hit, asset.clone()));
        }
        match query.group {
            Group::Assets => {
                for (hit, asset) in &mut hits {
                    hit.moments.truncate(MOMENTS_PER_ASSET);
                    if let Some(h) = &mut highlighter {
                        for m in &mut hit.moments {
                            m.snippet = snippet(h, m, asset, &words)?;
                        }
                    }
                }
                Ok(SearchResponse {
                    group: Group::Assets,
                    hits: hits.into_iter().map(|(hit, _)| hit).collect(),
                    moments: Vec::new(),
                    total: total_assets,
                    facets,
                })
            }
            Group::Moments => {
                let mut all: Vec<(MomentHit, Arc<Asset>)> = hits
                    .into_iter()
                    .flat_map(|(h, asset)| {
                        let (asset_id, path, kind, title) = (h.asset_id, h.path, h.kind, h.title);
                        h.moments.into_iter().map(move |m| {
                            let hit = MomentHit {
                                asset_id: asset_id.clone(),
                                path: path.clone(),
                                asset_kind: kind,
                                title: title.clone(),
                                moment: m,
                            };
                            (hit, asset.clone())
                        })
                    })
                    .collect();
                all.sort_by(|(a, _), (b, _)| {
                    b.moment
                        .score
                        .total_cmp(&a.moment.score)
                        .then_with(|| a.asset_id.cmp(&b.asset_id))
                        .then(a.moment.start_ms.cmp(&b.moment.start_ms))
                });
                let total = all.len();
                let mut moments: Vec<(MomentHit, Arc<Asset>)> =
                    all.into_iter().skip(query.offset).take(limit).collect();
                if let Some(h) = &mut highlighter {
                    for (m, asset) in &mut moments {
                        m.moment.snippet = snippet(h, &m.moment, asset, &words)?;
                    }
                }
                Ok(SearchResponse {
                    group: Group::Moments,
                    hits: Vec::new(),
                    moments: moments.into_iter().map(|(m, _)| m).collect(),
                    total,
                    facets,
                })
            }
        }
    }
}

/// The candidate lists of `q` but the duplicates': its keyword candidates (found ahead, or
/// now), its semantic and its visual neighbours. The lists are independent: the visual HNSW
/// search runs on a second core while BM25 and the semantic one run here.
fn candidate_lists(
    text: &TextIndex,
    vectors: &dyn VectorIndex,
    q: &SearchQuery,
    keywords: Option<KeywordCandidates>,
    candidates: usize,
) -> Result<(Vec<Ranked>, Option<Highlighter>)> {
    let ahead = std::cell::Cell::new(keywords);
    let wants_text = q.wants_text();
    let wants_visual = matches!(q.mode, Mode::Hybrid | Mode::Visual);
    let visual = || -> Result<Option<Ranked>> {
        let (true, Some(v)) = (wants_visual, q.visual_embedding.as_deref()) else {
            return Ok(None);
        };
        let hits = vectors.search(Space::Visual, v, &q.filters, candidates)?;
        Ok(Some(Ranked {
            signal: Signal::Visual,
            weight: 1.0,
            items: hits
                .into_iter()
                .map(|h| (h.asset_id, Some(h.segment_id), h.score))
                .collect(),
        }))
    };
    let words = || -> Result<(Vec<Ranked>, Option<Highlighter>)> {
        let mut lists = Vec::new();
        let mut highlighter = None;
        let found = match (ahead.take(), wants_text, q.text.as_deref()) {
            (Some(KeywordCandidates { found, .. }), _, _) => found,
            (None, true, Some(t)) => Some(text.search(t, &q.filters, candidates)?),
            (None, _, _) => None,
        };
        if let Some(found) = found {
            lists.push(Ranked {
                signal: Signal::Keyword,
                weight: 1.0,
                items: found
                    .hits
                    .into_iter()
                    .map(|h| (h.asset_id, h.segment_id, h.score))
                    .collect(),
            });
            highlighter = Some(found.highlighter);
        }
        if let (true, Some(v)) = (wants_text, q.text_embedding.as_deref()) {
            let hits = vectors.search(Space::Text, v, &q.filters, candidates)?;
            lists.push(Ranked {
                signal: Signal::Semantic,
                weight: 1.0,
                items: hits
                    .into_iter()
                    .filter(|h| h.score >= MIN_SEMANTIC)
                    .map(|h| (h.asset_id, Some(h.segment_id), h.score))
                    .collect(),
            });
        }
        Ok((lists, highlighter))
    };
    // A thread of its own rather than rayon's pool, whose threads an ingest in the
    // same process keeps busy decoding; and only when both sides have work (an
    // image query has only the visual list).
    let has_words = wants_text && (q.text.is_some() || q.text_embedding.is_some());
    let (lists, visual) = if has_words && q.visual_embedding.is_some() {
        std::thread::scope(|scope| {
            let visual = scope.spawn(visual);
            let lists = words();
            let visual = visual
                .join()
                .unwrap_or_else(|_| Err(crate::Error::Task("the visual search panicked".into())));
            (lists, visual)
        })
    } else {
        (words(), visual())
    };
    let (mut lists, highlighter) = lists?;
    lists.extend(visual?);
    Ok((lists, highlighter))
}

/// The query's words highlighted in what a shown moment holds: its own words (speech,
/// on-screen text), else its asset's metadata when that is part of why it matched. Made only
/// for the page: the text index stores no text, and most candidates are never shown.
fn snippet(
    h: &mut Highlighter,
    m: &Moment,
    asset: &Asset,
    words: &HashMap<&str, &str>,
) -> Result<Option<String>> {
    let lang = asset.language.as_deref();
    if matches!(m.kind, SegmentKind::Speech | SegmentKind::Ocr)
        && let Some(text) = words.get(m.segment_id.as_str())
        && let Some(s) = h.snippet(lang, &[text])?
    {
        return Ok(Some(s));
    }
    if !m.why.iter().any(|w| w == "metadata") {
        return Ok(None);
    }
    let keywords = asset.keywords.join(", ");
    let texts: Vec<&str> = [
        asset.title.as_deref(),
        Some(keywords.as_str()),
        asset.caption.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    h.snippet(lang, &texts)
}

/// Why a moment of `kind` matched, from the signals that found it.
fn why(kind: SegmentKind, signals: Signals) -> Vec<String> {
    // In the order of their names.
    const REASONS: [&str; 4] = ["metadata", "on_screen_text", "speech", "visual"];
    let mut found = [false; 4];
    for s in signals.iter() {
        found[match (s, kind) {
            (Signal::Visual | Signal::Duplicate, _) => 3,
            (_, SegmentKind::Speech) => 2,
            (_, SegmentKind::Ocr) => 1,
            _ => 0,
        }] = true;
    }
    REASONS
        .iter()
        .zip(found)
        .filter(|(_, f)| *f)
        .map(|(r, _)| r.to_string())
        .collect()
}

/// Best first, with each spoken moment folded into a visual moment it overlaps: the words give
/// the timecode and the snippet, the picture adds its reason and its score.
fn merge_moments(mut moments: Vec<Moment>) -> Vec<Moment> {
    moments.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.start_ms.cmp(&b.start_ms))
    });
    let mut out: Vec<Moment> = Vec::with_capacity(moments.len());
    let mut absorbed = vec![false; moments.len()];
    for i in 0..moments.len() {
        if absorbed[i] {
            continue;
        }
        let mut m = moments[i].clone();
        let visual = |k: SegmentKind| matches!(k, SegmentKind::Shot | SegmentKind::Keyframe);
        for j in i + 1..moments.len() {
            if absorbed[j] {
                continue;
            }
            let o = &moments[j];
            let pair = (m.kind == SegmentKind::Speech && visual(o.kind))
                || (visual(m.kind) && o.kind == SegmentKind::Speech);
            let overlap = m.start_ms < o.end_ms.max(o.start_ms + 1)
                && o.start_ms < m.end_ms.max(m.start_ms + 1);
            if pair && overlap && !m.why.iter().any(|w| o.why.contains(w)) {
                absorbed[j] = true;
                let speech = if m.kind == SegmentKind::Speech {
                    m.clone()
                } else {
                    o.clone()
                };
                let mut why: BTreeSet<String> = m.why.iter().cloned().collect();
                why.extend(o.why.iter().cloned());
                m = Moment {
                    score: m.score + o.score,
                    why: why.into_iter().collect(),
                    has_thumbnail: speech.has_thumbnail,
                    ..speech
                };
                break;
            }
        }
        out.push(m);
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.start_ms.cmp(&b.start_ms))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement_between_signals() {
        let a = |id: &str, seg: Option<&str>| (SearchId::new(id), seg.map(SearchId::new), 1.0);
        let fused = fuse(vec![
            Ranked {
                signal: Signal::Keyword,
                weight: 1.0,
                items: vec![a("x", None), a("y", None)],
            },
            Ranked {
                signal: Signal::Visual,
                weight: 1.0,
                items: vec![a("z", Some("z1")), a("y", Some("y1"))],
            },
        ]);
        let mut order: Vec<(&SearchId, f32)> = fused.iter().map(|(k, v)| (k, v.total())).collect();
        order.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(
            order[0].0, "y",
            "the asset found by both signals ranks first: {order:?}"
        );
        assert_eq!(
            fused[&SearchId::new("y")].signal_scores(),
            BTreeMap::from([("keyword".to_string(), 1.0), ("visual".to_string(), 1.0)])
        );
    }
    fn moment(id: &str, kind: SegmentKind, range: (i64, i64), score: f32, why: &str) -> Moment {
        Moment {
            segment_id: id.into(),
            start_ms: range.0,
            end_ms: range.1,
            kind,
            snippet: (kind == SegmentKind::Speech).then(|| format!("words of {id}")),
            score,
            why: vec![why.into()],
            thumbnail: None,
            has_thumbnail: true,
        }
    }

    #[test]
    fn a_shot_and_the_words_over_it_are_one_moment_matched_for_both() {
        let merged = merge_moments(vec![
            moment("shot1", SegmentKind::Shot, (0, 6_000), 0.010, "visual"),
            moment(
                "said1",
                SegmentKind::Speech,
                (1_500, 4_000),
                0.020,
                "speech",
            ),
            moment("shot2", SegmentKind::Shot, (6_000, 9_000), 0.015, "visual"),
            moment(
                "said2",
                SegmentKind::Speech,
                (12_000, 14_000),
                0.005,
                "speech",
            ),
        ]);
        assert_eq!(merged.len(), 3, "{merged:?}");
        let first = &merged[0];
        // The words keep their timecode and snippet; the shot adds its reason and score.
        assert_eq!(first.segment_id, "said1");
        assert_eq!((first.start_ms, first.end_ms), (1_500, 4_000));
        assert_eq!(first.why, ["speech", "visual"]);
        assert!((first.score - 0.030).abs() < 1e-6);
        assert_eq!(first.snippet.as_deref(), Some("words of said1"));
        // A shot with no words over it, and words over no matching shot, stay apart.
        assert_eq!(merged[1].segment_id, "shot2");
        assert_eq!(merged[2].segment_id, "said2");
        assert_eq!(merged[2].why, ["speech"]);
    }

    #[test]
    fn why_names_what_matched() {
        let signals = |s: &[Signal]| {
            let mut set = Signals::default();
            s.iter().for_each(|s| set.insert(*s));
            set
        };
        use Signal::*;
        assert_eq!(
            why(SegmentKind::Speech, signals(&[Keyword, Semantic])),
            ["speech"]
        );
        assert_eq!(why(SegmentKind::Shot, signals(&[Visual])), ["visual"]);
        assert_eq!(
            why(SegmentKind::Image, signals(&[Duplicate, Semantic])),
            ["metadata", "visual"]
        );
        assert_eq!(
            why(SegmentKind::Ocr, signals(&[Keyword])),
            ["on_screen_text"]
        );
        assert_eq!(
            why(SegmentKind::Shot, signals(&[Visual, Keyword, Semantic])),
            ["metadata", "visual"]
        );
    }
}
