//! The text index (tantivy): one document per asset (its metadata) and per segment with text
//! (transcript, on-screen text), analysed per language (English, French) with stemming.
//!
//! All the words of a document go into one indexed field, the one of its language, each
//! field's words repeated by its weight (BM25F by repetition): a query is then one plain
//! intersection of posting lists per language, not a union over every field for every word,
//! which under load was most of a search's time. The index stores only the ids: snippets are
//! made for the page's hits from the catalog's text.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, EmptyQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, TantivyDocument,
    Term,
};

use crate::catalog::Filters;
use crate::error::{Error, Result};
use crate::highlight::Highlighter;
use crate::records::{Asset, AssetKind, SearchId, Segment, SegmentKind, canonical_uuid};
use crate::term_bitsets::{Conjunction, TermBitsets};

/// Languages with their own analyzer; anything else is indexed as English.
pub const LANGUAGES: [&str; 2] = ["en", "fr"];

/// How many times a field's words are indexed: its weight in BM25 (the term frequency
/// saturates, so a title word counts about 1.4 times a caption word, not twice).
mod weight {
    pub const TITLE: usize = 2;
    pub const KEYWORD: usize = 2;
    pub const CAPTION: usize = 1;
    pub const TEXT: usize = 1;
    pub const CREDIT: usize = 1;
    pub const FILENAME: usize = 1;
}

/// A file in the index's directory while the index is being rebuilt from the catalog: an
/// index that has it is incomplete, and the next open rebuilds it again.
const REBUILD_MARKER: &str = "kairos-rebuild-pending";

/// The ids again, as the two 64-bit halves of their UUIDs, in fast fields: a search reads its
/// ~100 candidates' ids from these columns (a few nanoseconds each) rather than from the doc
/// store (a block lookup and a document decoded each: 5% of a search under load). Zero
/// stands for no id (an asset's own document has no segment) or an id that is not a UUID in
/// its canonical form, which the doc store still answers.
const ID_HALVES: [&str; 4] = ["asset_hi", "asset_lo", "segment_hi", "segment_lo"];

/// The id columns of one segment of the index.
#[derive(Clone)]
struct IdColumns([tantivy::columnar::Column<u64>; 4]);

impl IdColumns {
    fn open(reader: &tantivy::SegmentReader) -> tantivy::Result<Self> {
        let fast = reader.fast_fields();
        Ok(IdColumns([
            fast.u64(ID_HALVES[0])?,
            fast.u64(ID_HALVES[1])?,
            fast.u64(ID_HALVES[2])?,
            fast.u64(ID_HALVES[3])?,
        ]))
    }

    /// The asset's and the segment's UUID bits of `doc` (zero where none).
    fn ids(&self, doc: tantivy::DocId) -> (u128, u128) {
        let half = |i: usize| u128::from(self.0[i].first(doc).unwrap_or(0));
        ((half(0) << 64) | half(1), (half(2) << 64) | half(3))
    }
}

/// What the text index holds for one asset or one segment.
#[derive(Debug, Clone, Default)]
pub struct TextDoc {
    pub asset_id: String,
    /// `None` for the asset's own (metadata) document.
    pub segment_id: Option<String>,
    pub asset_kind: Option<AssetKind>,
    pub segment_kind: Option<SegmentKind>,
    pub collection: Option<String>,
    pub language: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Vec<String>,
    pub credit: Option<String>,
    pub filename: Option<String>,
    /// Transcript or on-screen text of a segment.
    pub text: Option<String>,
}

impl TextDoc {
    /// The asset's own document: its metadata and file name.
    pub fn for_asset(asset: &Asset) -> Self {
        TextDoc {
            asset_id: asset.id.clone(),
            segment_id: None,
            asset_kind: Some(asset.kind),
            segment_kind: None,
            collection: asset.collection.clone(),
            language: asset.language.clone(),
            captured_at: asset.captured_at,
            title: asset.title.clone(),
            caption: asset.caption.clone(),
            keywords: asset.keywords.clone(),
            credit: asset.credit.clone(),
            filename: Some(asset.file_name().to_string()),
            text: None,
        }
    }

    /// The document of a moment with words of its own (speech, on-screen text).
    pub fn for_segment(asset: &Asset, segment: &Segment) -> Self {
        TextDoc {
            asset_id: asset.id.clone(),
            segment_id: Some(segment.id.clone()),
            asset_kind: Some(asset.kind),
            segment_kind: Some(segment.kind),
            collection: asset.collection.clone(),
            language: asset.language.clone(),
            captured_at: asset.captured_at,
            text: segment.text.clone(),
            ..Default::default()
        }
    }

    /// Every document of `asset` with `segments`: its own, and one per segment with words of
    /// its own.
    pub fn all_for(asset: &Asset, segments: &[Segment]) -> Vec<Self> {
        let mut docs = vec![Self::for_asset(asset)];
        docs.extend(
            segments
                .iter()
                .filter(|s| Self::segment_has_own(s))
                .map(|s| Self::for_segment(asset, s)),
        );
        docs
    }

    /// Whether a segment has its own document: one with words of its own. An image's words are
    /// its asset's; a shot has none.
    pub fn segment_has_own(segment: &Segment) -> bool {
        matches!(segment.kind, SegmentKind::Speech | SegmentKind::Ocr)
            && segment
                .text
                .as_deref()
                .is_some_and(|t| !t.trim().is_empty())
    }
}

/// A keyword hit.
#[derive(Debug, Clone, PartialEq)]
pub struct TextHit {
    pub asset_id: SearchId,
    pub segment_id: Option<SearchId>,
    pub score: f32,
}

/// The hits of a search, and what highlights the query's words in their text.
#[derive(Debug)]
pub struct TextResults {
    pub hits: Vec<TextHit>,
    pub highlighter: Highlighter,
}

/// Which of [`LANGUAGES`] (its analyzer and field) a document of `language` uses: English for
/// any other.
pub(crate) fn language_slot(language: Option<&str>) -> usize {
    LANGUAGES
        .iter()
        .position(|l| Some(*l) == language)
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    asset_id: Field,
    segment_id: Field,
    id_halves: [Field; 4],
    kind: Field,
    segment_kind: Field,
    collection: Field,
    language: Field,
    captured_at: Field,
}

/// The tantivy index of the archive.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    /// Created on the first write, so that read-only processes never take tantivy's writer lock.
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// The one indexed field of each of [`LANGUAGES`].
    words: [Field; 2],
    /// The documents of common words per segment, for queries requiring every word.
    bitsets: Arc<TermBitsets>,
    /// The id columns of each segment searches have read.
    id_columns: Mutex<HashMap<tantivy::index::SegmentId, IdColumns>>,
    path: PathBuf,
}

impl std::fmt::Debug for TextIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextIndex")
            .field("path", &self.path)
            .finish()
    }
}

fn analyzer_name(lang: &str) -> String {
    format!("kairos_{lang}")
}

fn words_field(lang: &str) -> String {
    format!("words_{lang}")
}

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_text_field("asset_id", STRING | STORED);
    b.add_text_field("segment_id", STRING | STORED);
    for half in ID_HALVES {
        b.add_u64_field(half, FAST);
    }
    b.add_text_field("kind", STRING | FAST);
    b.add_text_field("segment_kind", STRING);
    b.add_text_field("collection", STRING | FAST);
    b.add_text_field("language", STRING | FAST);
    b.add_date_field("captured_at", INDEXED | FAST);
    for lang in LANGUAGES {
        b.add_text_field(
            &words_field(lang),
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(&analyzer_name(lang))
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        );
    }
    b.build()
}

pub(crate) fn analyzer(lang: &str) -> TextAnalyzer {
    let language = match lang {
        "fr" => Language::French,
        _ => Language::English,
    };
    // Stop words go: transcripts are full of them, and "the" must not make every recording a
    // hit. Phrase queries keep their positions, so `"final of the relay"` still matches.
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(language).unwrap_or_else(|| StopWordFilter::remove([])));
    match lang {
        // Stem before folding: the French stemmer knows its accents; folding after lets
        // "équipe" and "equipe" meet.
        "fr" => builder
            .filter(Stemmer::new(Language::French))
            .filter(AsciiFoldingFilter)
            .build(),
        _ => builder
            .filter(AsciiFoldingFilter)
            .filter(Stemmer::new(Language::English))
            .build(),
    }
}

/// Empties `dir` but for the rebuild marker.
fn clear_except_marker(dir: &Path) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name() == REBUILD_MARKER {
            continue;
        }
        if entry.file_type()?.is_dir() {
            fs_err::remove_dir_all(entry.path())?;
        } else {
            fs_err::remove_file(entry.path())?;
        }
    }
    Ok(())
}

impl TextIndex {
    /// Opens (creating if needed) the index in `dir`. An index of an earlier format is emptied
    /// and marked for a rebuild ([`rebuild_pending`](Self::rebuild_pending)), which the
    /// [`Store`](crate::Store) does from the catalog as it opens.
    pub fn open(dir: &Path) -> Result<Self> {
        fs_err::create_dir_all(dir)?;
        let err = |source| Error::TextIndex {
            path: dir.to_path_buf(),
            cause: source,
        };
        let open = || {
            let directory = MmapDirectory::open(dir).map_err(|e| Error::TextIndex {
                path: dir.to_path_buf(),
                cause: tantivy::TantivyError::from(e),
            })?;
            Index::open_or_create(directory, schema()).map_err(err)
        };
        let index = match open() {
            Err(Error::TextIndex {
                cause: tantivy::TantivyError::SchemaError(_),
                ..
            }) => {
                // Marked first, so that a crash while emptying it still ends in a rebuild.
                fs_err::write(dir.join(REBUILD_MARKER), b"")?;
                clear_except_marker(dir)?;
                open()?
            }
            other => other?,
        };
        for lang in LANGUAGES {
            index
                .tokenizers()
                .register(&analyzer_name(lang), analyzer(lang));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        let s = index.schema();
        let field = |name: &str| s.get_field(name).expect("field is in the schema we built");
        let fields = Fields {
            asset_id: field("asset_id"),
            segment_id: field("segment_id"),
            id_halves: ID_HALVES.map(field),
            kind: field("kind"),
            segment_kind: field("segment_kind"),
            collection: field("collection"),
            language: field("language"),
            captured_at: field("captured_at"),
        };
        let words = LANGUAGES.map(|lang| field(&words_field(lang)));
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            words,
            bitsets: Arc::default(),
            id_columns: Mutex::default(),
            path: dir.to_path_buf(),
        })
    }

    /// Whether the index must be rebuilt from the catalog: it was of an earlier format, or a
    /// rebuild was interrupted.
    pub fn rebuild_pending(&self) -> bool {
        self.path.join(REBUILD_MARKER).exists()
    }

    /// Starts a rebuild: every document goes (visible after commit) and the index stays marked
    /// until [`finish_rebuild`](Self::finish_rebuild).
    pub(crate) fn start_rebuild(&self) -> Result<()> {
        fs_err::write(self.path.join(REBUILD_MARKER), b"")?;
        self.with_writer(|writer| {
            writer.delete_all_documents().map_err(self.err())?;
            Ok(())
        })
    }

    /// Commits a rebuild and takes its mark away.
    pub(crate) fn finish_rebuild(&self) -> Result<()> {
        self.commit()?;
        fs_err::remove_file(self.path.join(REBUILD_MARKER))?;
        Ok(())
    }

    fn err(&self) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
        move |source| Error::TextIndex {
            path: self.path.clone(),
            cause: source,
        }
    }

    fn io_err(&self, e: std::io::Error) -> Error {
        Error::TextIndex {
            path: self.path.clone(),
            cause: tantivy::TantivyError::from(e),
        }
    }

    fn with_writer<R>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<R>) -> Result<R> {
        let mut guard = self.writer.lock().expect("text index writer lock");
        if guard.is_none() {
            *guard = Some(self.index.writer(64 * 1024 * 1024).map_err(self.err())?);
        }
        f(guard.as_mut().expect("writer was just created"))
    }

    /// Adds documents (visible after [`commit`](Self::commit)).
    pub fn add(&self, docs: &[TextDoc]) -> Result<()> {
        self.with_writer(|writer| self.add_with(writer, docs))
    }

    fn add_with(&self, writer: &mut IndexWriter, docs: &[TextDoc]) -> Result<()> {
        for d in docs {
            let mut doc = TantivyDocument::default();
            let f = &self.fields;
            doc.add_text(f.asset_id, &d.asset_id);
            doc.add_text(f.segment_id, d.segment_id.as_deref().unwrap_or(""));
            let segment = d
                .segment_id
                .as_deref()
                .and_then(canonical_uuid)
                .unwrap_or(0);
            // A segment id that is not a UUID zeroes the asset's too: the doc store answers.
            let asset = match d.segment_id.is_some() && segment == 0 {
                true => 0,
                false => canonical_uuid(&d.asset_id).unwrap_or(0),
            };
            for (field, half) in f.id_halves.iter().zip([
                (asset >> 64) as u64,
                asset as u64,
                (segment >> 64) as u64,
                segment as u64,
            ]) {
                doc.add_u64(*field, half);
            }
            if let Some(k) = d.asset_kind {
                doc.add_text(f.kind, k.as_str());
            }
            if let Some(k) = d.segment_kind {
                doc.add_text(f.segment_kind, k.as_str());
            }
            if let Some(c) = &d.collection {
                doc.add_text(f.collection, c);
            }
            if let Some(l) = &d.language {
                doc.add_text(f.language, l);
            }
            if let Some(t) = d.captured_at {
                doc.add_date(
                    f.captured_at,
                    tantivy::DateTime::from_timestamp_secs(t.timestamp()),
                );
            }
            let field = self.words[language_slot(d.language.as_deref())];
            // Each value apart: phrases do not run from one value into the next.
            let mut add = |value: Option<&str>, times: usize| {
                if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
                    for _ in 0..times {
                        doc.add_text(field, v);
                    }
                }
            };
            add(d.title.as_deref(), weight::TITLE);
            for k in &d.keywords {
                add(Some(k), weight::KEYWORD);
            }
            add(d.caption.as_deref(), weight::CAPTION);
            add(d.text.as_deref(), weight::TEXT);
            add(d.credit.as_deref(), weight::CREDIT);
            add(d.filename.as_deref(), weight::FILENAME);
            writer.add_document(doc).map_err(self.err())?;
        }
        Ok(())
    }

    /// Deletes every document of an asset (visible after commit).
    pub fn delete_asset(&self, asset_id: &str) -> Result<()> {
        self.with_writer(|writer| {
            writer.delete_term(Term::from_field_text(self.fields.asset_id, asset_id));
            Ok(())
        })
    }

    /// Makes every change durable and visible to searches.
    pub fn commit(&self) -> Result<()> {
        self.with_writer(|writer| writer.commit().map_err(self.err()))?;
        self.reader.reload().map_err(self.err())?;
        Ok(())
    }

    /// Live documents per asset id, read from the index itself (for the consistency check).
    pub fn docs_by_asset(&self) -> Result<HashMap<String, usize>> {
        let searcher = self.reader.searcher();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for segment in searcher.segment_readers() {
            let inverted = segment
                .inverted_index(self.fields.asset_id)
                .map_err(self.err())?;
            let mut terms = inverted.terms().stream().map_err(|e| self.io_err(e))?;
            while terms.advance() {
                let postings = inverted
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                    .map_err(|e| self.io_err(e))?;
                let live = match segment.alive_bitset() {
                    Some(alive) => postings.doc_freq_given_deletes(alive) as usize,
                    None => postings.doc_freq() as usize,
                };
                if live > 0 {
                    let id = String::from_utf8_lossy(terms.key()).into_owned();
                    *counts.entry(id).or_default() += live;
                }
            }
        }
        Ok(counts)
    }

    /// Number of documents visible to searches.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The user's words as a query (every word required, or any), and what is searched for
    /// them: that query in each language with the filters, one query per language.
    fn parse(
        &self,
        query: &str,
        filters: &Filters,
        every_word: bool,
    ) -> (Box<dyn Query>, Vec<Box<dyn Query>>) {
        // A document has words in one language only: the query in each language's analysis,
        // either matching. A language in which every word is a stop word has no query (the
        // parser would make it match everything).
        let per_language: Vec<Box<dyn Query>> = self
            .words
            .iter()
            .filter_map(|field| {
                let mut parser = QueryParser::for_index(&self.index, vec![*field]);
                if every_word {
                    parser.set_conjunction_by_default();
                }
                let (q, _errors) = parser.parse_query_lenient(query);
                let mut has_terms = false;
                q.query_terms(&mut |_, _| has_terms = true);
                has_terms.then_some(q)
            })
            .collect();
        let filters = self.filter_clauses(filters);
        // What is searched: plain words all required are answered from the bitsets of the
        // common ones, with the same scores (see `term_bitsets`).
        let searched = per_language
            .iter()
            .map(|q| {
                let q = match Conjunction::of(&**q, &self.bitsets) {
                    Some(c) => Box::new(c) as Box<dyn Query>,
                    None => q.box_clone(),
                };
                if filters.is_empty() {
                    return q;
                }
                let mut clauses = vec![(Occur::Must, q)];
                clauses.extend(filters.iter().map(|f| (Occur::Must, f.box_clone())));
                Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>
            })
            .collect();
        let user_query: Box<dyn Query> = if per_language.is_empty() {
            Box::new(EmptyQuery)
        } else {
            Box::new(BooleanQuery::new(
                per_language
                    .into_iter()
                    .map(|q| (Occur::Should, q))
                    .collect(),
            ))
        };
        (user_query, searched)
    }

    /// The required clauses of `filters`.
    fn filter_clauses(&self, filters: &Filters) -> Vec<Box<dyn Query>> {
        let mut clauses: Vec<Box<dyn Query>> = Vec::new();
        if let Some(kind) = filters.kind {
            clauses.push(Box::new(TermQuery::new(
                Term::from_field_text(self.fields.kind, kind.as_str()),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(c) = &filters.collection {
            clauses.push(Box::new(TermQuery::new(
                Term::from_field_text(self.fields.collection, c),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(l) = &filters.language {
            clauses.push(Box::new(TermQuery::new(
                Term::from_field_text(self.fields.language, l),
                IndexRecordOption::Basic,
            )));
        }
        if filters.captured_after.is_some() || filters.captured_before.is_some() {
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date_for_search(
                    self.fields.captured_at,
                    tantivy::DateTime::from_timestamp_secs(t.timestamp()),
                )),
                None => Bound::Unbounded,
            };
            clauses.push(Box::new(RangeQuery::new(
                bound(filters.captured_after),
                bound(filters.captured_before),
            )));
        }
        clauses
    }

    /// The id columns of each of `searcher`'s segments, opened once per segment (opening them at
    /// each search was 3% of it); those of segments no longer searched are dropped.
    fn id_columns(&self, searcher: &Searcher) -> Result<Vec<IdColumns>> {
        let mut open = self.id_columns.lock().unwrap_or_else(|e| e.into_inner());
        let readers = searcher.segment_readers();
        if readers.iter().any(|r| !open.contains_key(&r.segment_id())) {
            open.retain(|id, _| readers.iter().any(|r| r.segment_id() == *id));
        }
        readers
            .iter()
            .map(|reader| match open.get(&reader.segment_id()) {
                Some(columns) => Ok(columns.clone()),
                None => {
                    let columns = IdColumns::open(reader).map_err(self.err())?;
                    open.insert(reader.segment_id(), columns.clone());
                    Ok(columns)
                }
            })
            .collect()
    }

    /// The `limit` best documents of the union of `queries`, which share none (each language's
    /// words are in a field of their own). Each is searched alone, as the whole query its
    /// weight sees, so that it can skip the documents that cannot make the top (tantivy's
    /// block-max WAND, the bitsets' loop); in one union of them, every document of each was
    /// scored. The lists are merged as the union's search orders them: by score, then address.
    fn top(
        &self,
        searcher: &Searcher,
        queries: &[Box<dyn Query>],
        limit: usize,
    ) -> Result<Vec<(Score, DocAddress)>> {
        let collector = TopDocs::with_limit(limit).order_by_score();
        let mut top = Vec::new();
        for q in queries {
            top.extend(searcher.search(&**q, &collector).map_err(self.err())?);
        }
        if queries.len() > 1 {
            top.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            top.truncate(limit);
        }
        Ok(top)
    }

    /// BM25 over the words of every language. Quotes make phrases; operators of the tantivy
    /// query language work, and malformed syntax degrades to plain words.
    pub fn search(&self, query: &str, filters: &Filters, limit: usize) -> Result<TextResults> {
        let searcher = self.reader.searcher();
        if query.trim().is_empty() || limit == 0 {
            return Ok(TextResults {
                hits: Vec::new(),
                highlighter: Highlighter::new(
                    None,
                    Box::new(EmptyQuery),
                    self.words,
                    self.path.clone(),
                ),
            });
        }
        // Every word first (Meilisearch's default): at archive scale common words each match a
        // large share of the documents, and their intersection is far cheaper to rank than
        // their union. When fewer than `limit` documents hold every word, the documents with
        // any word follow them, so a hit with all the words always ranks above one without.
        let (user_query, every) = self.parse(query, filters, true);
        let mut top = self.top(&searcher, &every, limit)?;
        if top.len() < limit {
            let (_, any) = self.parse(query, filters, false);
            let wider = self.top(&searcher, &any, limit)?;
            let seen: std::collections::HashSet<_> = top.iter().map(|(_, a)| *a).collect();
            let room = limit - top.len();
            top.extend(
                wider
                    .into_iter()
                    .filter(|(_, a)| !seen.contains(a))
                    .take(room),
            );
        }
        let mut hits = Vec::with_capacity(top.len());
        let columns = self.id_columns(&searcher)?;
        // All the ids read first, in a loop of their own, so that the reads' cache misses
        // overlap (between string conversions they came one after the other).
        let ids: Vec<(u128, u128)> = top
            .iter()
            .map(|(_, a)| columns[a.segment_ord as usize].ids(a.doc_id))
            .collect();
        for ((score, address), (asset, segment)) in top.into_iter().zip(ids) {
            let (asset_id, segment_id) = if asset != 0 {
                (
                    SearchId::Uuid(asset),
                    (segment != 0).then_some(SearchId::Uuid(segment)),
                )
            } else {
                let doc: TantivyDocument = searcher.doc(address).map_err(self.err())?;
                let text = |field: Field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let segment_id = text(self.fields.segment_id);
                (
                    SearchId::new(&text(self.fields.asset_id)),
                    (!segment_id.is_empty()).then(|| SearchId::new(&segment_id)),
                )
            };
            hits.push(TextHit {
                asset_id,
                segment_id,
                score,
            });
        }
        Ok(TextResults {
            hits,
            // Snippets come from the user's words only, never from the filter terms.
            highlighter: Highlighter::new(
                Some(searcher),
                user_query,
                self.words,
                self.path.clone(),
            ),
        })
    }
}

/// Writes into `dir` (empty) a text index as Kairos wrote it before one field per language: a
/// field per text field and language, with one document whose caption is `caption`.
#[cfg(test)]
pub(crate) fn write_earlier_format(dir: &Path, caption: &str) {
    let mut b = Schema::builder();
    b.add_text_field("asset_id", STRING | STORED);
    let field = b.add_text_field("caption_en", tantivy::schema::TEXT);
    let old = Index::create_in_dir(dir, b.build()).unwrap();
    let mut writer: IndexWriter = old.writer(15_000_000).unwrap();
    writer
        .add_document(tantivy::doc!(field => caption))
        .unwrap();
    writer.commit().unwrap();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An image's document with `caption` in `lang`.
    pub(crate) fn doc(asset: &str, caption: &str, lang: &str) -> TextDoc {
        TextDoc {
            asset_id: asset.into(),
            asset_kind: Some(AssetKind::Image),
            caption: Some(caption.into()),
            language: Some(lang.into()),
            ..Default::default()
        }
    }

    #[test]
    fn english_stemming_matches_inflections_and_highlights() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[
                doc("a1", "Boxers fighting in the final round", "en"),
                doc("a2", "A quiet lake", "en"),
            ])
            .unwrap();
        index.commit().unwrap();
        let mut results = index
            .search("boxer fights", &Filters::default(), 10)
            .unwrap();
        let hits = &results.hits;
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].asset_id, "a1");
        let snippet = results
            .highlighter
            .snippet(
                Some("en"),
                &["A quiet lake", "Boxers fighting in the final round"],
            )
            .unwrap();
        assert_eq!(
            snippet.as_deref(),
            Some("<b>Boxers</b> <b>fighting</b> in the final round")
        );
        // French analysis of the same words (no English stemming): "fights" is not "fighting".
        let fr = results
            .highlighter
            .snippet(Some("fr"), &["Boxers fighting"])
            .unwrap();
        assert_eq!(fr.as_deref(), None);
    }

    #[test]
    fn title_words_weigh_more_than_credit_words_and_phrases_stay_in_one_value() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        let mut titled = doc("titled", "a photo", "en");
        titled.title = Some("Relay final".into());
        let mut credited = doc("credited", "a photo", "en");
        credited.credit = Some("Relay Agency".into());
        let mut split = doc("split", "relay legs at night", "en");
        split.title = Some("Final".into());
        index.add(&[credited, titled, split]).unwrap();
        index.commit().unwrap();
        let ids = |q: &str| -> Vec<String> {
            index
                .search(q, &Filters::default(), 10)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.asset_id.to_id())
                .collect()
        };
        assert_eq!(ids("relay")[0], "titled", "{:?}", ids("relay"));
        // "final" ends the title and "relay" starts the caption: not one phrase.
        assert_eq!(ids("\"relay final\""), ["titled"]);
        assert_eq!(ids("\"final relay\""), Vec::<String>::new());
        assert_eq!(ids("final relay")[0], "titled");
    }

    #[test]
    fn stop_words_match_nothing_but_phrases_keep_their_gaps() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[
                doc(
                    "en1",
                    "The swimmer broke the world record in the final of the relay",
                    "en",
                ),
                doc("en2", "A quiet lake at dawn", "en"),
                doc("fr1", "Le nageur a battu le record du monde", "fr"),
            ])
            .unwrap();
        index.commit().unwrap();
        let ids = |q: &str| -> Vec<String> {
            let mut ids: Vec<String> = index
                .search(q, &Filters::default(), 10)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.asset_id.to_id())
                .collect();
            ids.sort();
            ids
        };
        assert!(ids("the of in").is_empty());
        assert!(ids("le du").is_empty());
        assert_eq!(ids("competition in the pool"), Vec::<String>::new());
        assert_eq!(ids("\"final of the relay\""), ["en1"]);
        assert!(ids("\"final of the world\"").is_empty());
        assert_eq!(ids("\"battu le record\""), ["fr1"]);
    }

    #[test]
    fn french_text_matches_without_accents_and_by_stem() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[doc(
                "fr1",
                "Les équipes nationales célèbrent la victoire",
                "fr",
            )])
            .unwrap();
        index.commit().unwrap();
        assert_eq!(
            index
                .search("equipe", &Filters::default(), 10)
                .unwrap()
                .hits
                .len(),
            1
        );
        assert_eq!(
            index
                .search("célébrer victoires", &Filters::default(), 10)
                .unwrap()
                .hits
                .len(),
            1
        );
    }

    #[test]
    fn every_word_first_then_any_word_when_too_few() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        // The one-word documents are short and the two-word one long, so that BM25 over any
        // word would rank the short ones first (length normalisation).
        let long = format!(
            "red circle {}",
            "painted on the grass of a stadium field at morning ".repeat(4)
        );
        index
            .add(&[
                doc("both", &long, "en"),
                doc("red1", "red", "en"),
                doc("red2", "circle", "en"),
                doc("none", "a blue square", "en"),
            ])
            .unwrap();
        index.commit().unwrap();
        let ids = |limit| -> Vec<String> {
            index
                .search("red circle", &Filters::default(), limit)
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.asset_id.to_id())
                .collect()
        };
        // Enough documents hold every word: only those.
        assert_eq!(ids(1), vec!["both".to_string()]);
        // Too few: the documents with any word follow, below it; never "none".
        let wide = ids(10);
        assert_eq!(wide.len(), 3, "{wide:?}");
        assert_eq!(wide[0], "both", "{wide:?}");
        assert!(wide.contains(&"red1".to_string()) && wide.contains(&"red2".to_string()));
        assert!(!wide.contains(&"none".to_string()));
    }

    #[test]
    fn hits_name_their_ids_whether_uuids_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        let asset = "0193a5f2-7c1e-7d40-8b2a-3f9e1c2d4b5a";
        let segment = "0193a5f2-7c1f-7aa0-9c3d-0e1f2a3b4c5d";
        let upper = "0193A5F2-7C1E-7D40-8B2A-3F9E1C2D4B5B";
        let said = |asset: &str, segment: &str| TextDoc {
            segment_id: Some(segment.into()),
            segment_kind: Some(SegmentKind::Speech),
            text: Some("zebra crossing".into()),
            ..doc(asset, "", "en")
        };
        index
            .add(&[
                doc(asset, "zebra crossing", "en"),
                said(asset, segment),
                // Not UUIDs as Kairos writes them: the doc store answers for them.
                doc("plain-id", "zebra crossing", "en"),
                doc(upper, "zebra crossing", "en"),
                said(asset, "segment-7"),
            ])
            .unwrap();
        index.commit().unwrap();
        let mut got: Vec<(String, Option<String>)> = index
            .search("zebra crossing", &Filters::default(), 10)
            .unwrap()
            .hits
            .into_iter()
            .map(|h| (h.asset_id.to_id(), h.segment_id.map(|s| s.to_id())))
            .collect();
        got.sort();
        let mut want = vec![
            (asset.to_string(), None),
            (asset.to_string(), Some(segment.to_string())),
            (asset.to_string(), Some("segment-7".to_string())),
            ("plain-id".to_string(), None),
            (upper.to_string(), None),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn phrase_query_needs_adjacent_words() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[
                doc("a", "red car next to a blue house", "en"),
                doc("b", "blue car next to a red house", "en"),
            ])
            .unwrap();
        index.commit().unwrap();
        let hits = index
            .search("\"red car\"", &Filters::default(), 10)
            .unwrap()
            .hits;
        assert_eq!(
            hits.iter().map(|h| h.asset_id.to_id()).collect::<Vec<_>>(),
            ["a"]
        );
    }

    #[test]
    fn filters_restrict_kind_collection_and_dates() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        let mut old = doc("old", "stadium crowd", "en");
        old.captured_at = Some("2001-05-01T00:00:00Z".parse().unwrap());
        old.collection = Some("archive".into());
        let mut new = doc("new", "stadium crowd", "en");
        new.captured_at = Some("2024-07-26T00:00:00Z".parse().unwrap());
        new.collection = Some("paris2024".into());
        index.add(&[old, new]).unwrap();
        index.commit().unwrap();
        let by_date = Filters {
            captured_after: Some("2020-01-01T00:00:00Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            index.search("stadium", &by_date, 10).unwrap().hits[0].asset_id,
            "new"
        );
        let by_collection = Filters {
            collection: Some("archive".into()),
            ..Default::default()
        };
        assert_eq!(
            index.search("stadium", &by_collection, 10).unwrap().hits[0].asset_id,
            "old"
        );
        let by_kind = Filters {
            kind: Some(AssetKind::Video),
            ..Default::default()
        };
        assert!(
            index
                .search("stadium", &by_kind, 10)
                .unwrap()
                .hits
                .is_empty()
        );
    }

    #[test]
    fn deleted_asset_disappears_and_index_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let index = TextIndex::open(tmp.path()).unwrap();
            index
                .add(&[doc("a", "gold medal", "en"), doc("b", "gold medal", "en")])
                .unwrap();
            index.commit().unwrap();
            index.delete_asset("a").unwrap();
            index.commit().unwrap();
        }
        let index = TextIndex::open(tmp.path()).unwrap();
        let hits = index.search("gold", &Filters::default(), 10).unwrap().hits;
        assert_eq!(
            hits.iter().map(|h| h.asset_id.to_id()).collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn an_index_of_an_earlier_format_is_emptied_and_marked_until_rebuilt() {
        let tmp = tempfile::tempdir().unwrap();
        write_earlier_format(tmp.path(), "gold medal");
        let index = TextIndex::open(tmp.path()).unwrap();
        assert!(index.rebuild_pending());
        assert_eq!(index.num_docs(), 0);
        index.start_rebuild().unwrap();
        index.add(&[doc("a", "gold medal", "en")]).unwrap();
        // Killed before the rebuild ends: still marked when opened again.
        drop(index);
        let index = TextIndex::open(tmp.path()).unwrap();
        assert!(index.rebuild_pending());
        index.start_rebuild().unwrap();
        index.add(&[doc("a", "gold medal", "en")]).unwrap();
        index.finish_rebuild().unwrap();
        drop(index);
        let index = TextIndex::open(tmp.path()).unwrap();
        assert!(!index.rebuild_pending());
        let hits = index.search("gold", &Filters::default(), 10).unwrap().hits;
        assert_eq!(hits.len(), 1);
    }
}
