//! The text index (tantivy): one document per asset (its metadata) and per segment with text
//! (transcript, on-screen text), analysed per language (English, French) with stemming.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use crate::catalog::Filters;
use crate::error::{Error, Result};
use crate::records::{Asset, AssetKind, Segment, SegmentKind};

/// Languages with their own analyzer; anything else is indexed as English.
pub const LANGUAGES: [&str; 2] = ["en", "fr"];

/// Text fields that exist once per language, with their BM25 boost.
const TEXT_FIELDS: [(&str, f32); 5] = [
    ("title", 2.0),
    ("keywords", 1.5),
    ("caption", 1.0),
    ("text", 1.0),
    ("credit", 0.5),
];

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
    pub asset_id: String,
    pub segment_id: Option<String>,
    pub score: f32,
    /// The best matching passage, matched words in `<b>…</b>` (HTML-escaped).
    pub snippet: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    asset_id: Field,
    segment_id: Field,
    kind: Field,
    segment_kind: Field,
    collection: Field,
    language: Field,
    captured_at: Field,
    filename: Field,
}

/// The tantivy index of the archive.
pub struct TextIndex {
    index: Index,
    reader: IndexReader,
    /// Created on the first write, so that read-only processes never take tantivy's writer lock.
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// `(name, language, field, boost)` for every per-language text field.
    text_fields: Vec<(&'static str, &'static str, Field, f32)>,
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

fn schema() -> Schema {
    let mut b = Schema::builder();
    b.add_text_field("asset_id", STRING | STORED);
    b.add_text_field("segment_id", STRING | STORED);
    b.add_text_field("kind", STRING | FAST);
    b.add_text_field("segment_kind", STRING | STORED);
    b.add_text_field("collection", STRING | FAST);
    b.add_text_field("language", STRING | FAST);
    b.add_date_field("captured_at", INDEXED | FAST);
    let text = |lang: &str| {
        TextOptions::default().set_stored().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(&analyzer_name(lang))
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    b.add_text_field("filename", text("en"));
    for lang in LANGUAGES {
        for (name, _) in TEXT_FIELDS {
            b.add_text_field(&format!("{name}_{lang}"), text(lang));
        }
    }
    b.build()
}

fn analyzer(lang: &str) -> TextAnalyzer {
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

impl TextIndex {
    /// Opens (creating if needed) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        fs_err::create_dir_all(dir)?;
        let err = |source| Error::TextIndex {
            path: dir.to_path_buf(),
            cause: source,
        };
        let directory = MmapDirectory::open(dir).map_err(|e| Error::TextIndex {
            path: dir.to_path_buf(),
            cause: tantivy::TantivyError::from(e),
        })?;
        let index = Index::open_or_create(directory, schema()).map_err(|e| match e {
            tantivy::TantivyError::SchemaError(m) => Error::TextIndex {
                path: dir.to_path_buf(),
                cause: tantivy::TantivyError::SchemaError(format!(
                    "{m}: it was built by an earlier version of Kairos; remove {} and re-ingest",
                    dir.display()
                )),
            },
            other => err(other),
        })?;
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
            kind: field("kind"),
            segment_kind: field("segment_kind"),
            collection: field("collection"),
            language: field("language"),
            captured_at: field("captured_at"),
            filename: field("filename"),
        };
        let mut text_fields = Vec::new();
        for lang in LANGUAGES {
            for (name, boost) in TEXT_FIELDS {
                text_fields.push((name, lang, field(&format!("{name}_{lang}")), boost));
            }
        }
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            text_fields,
            path: dir.to_path_buf(),
        })
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
            if let Some(name) = &d.filename {
                doc.add_text(f.filename, name);
            }
            let lang = match d.language.as_deref() {
                Some(l) if LANGUAGES.contains(&l) => l,
                _ => "en",
            };
            let keywords = (!d.keywords.is_empty()).then(|| d.keywords.join(", "));
            for (name, field_lang, field, _) in &self.text_fields {
                if *field_lang != lang {
                    continue;
                }
                let value = match *name {
                    "title" => d.title.as_deref(),
                    "caption" => d.caption.as_deref(),
                    "keywords" => keywords.as_deref(),
                    "credit" => d.credit.as_deref(),
                    _ => d.text.as_deref(),
                };
                if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
                    doc.add_text(*field, v);
                }
            }
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

    /// The user's words as a query (every word required, or any), and that query with the
    /// filters.
    fn parse(
        &self,
        query: &str,
        filters: &Filters,
        every_word: bool,
    ) -> (Box<dyn Query>, BooleanQuery) {
        let mut fields: Vec<Field> = self.text_fields.iter().map(|t| t.2).collect();
        fields.push(self.fields.filename);
        let mut parser = QueryParser::for_index(&self.index, fields);
        if every_word {
            parser.set_conjunction_by_default();
        }
        for (_, _, field, boost) in &self.text_fields {
            parser.set_field_boost(*field, *boost);
        }
        parser.set_field_boost(self.fields.filename, 0.7);
        let (user_query, _errors) = parser.parse_query_lenient(query);
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, user_query.box_clone())];
        if let Some(kind) = filters.kind {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.kind, kind.as_str()),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(c) = &filters.collection {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.collection, c),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(l) = &filters.language {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(self.fields.language, l),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if filters.captured_after.is_some() || filters.captured_before.is_some() {
            let bound = |t: Option<DateTime<Utc>>| match t {
                Some(t) => Bound::Included(Term::from_field_date_for_search(
                    self.fields.captured_at,
                    tantivy::DateTime::from_timestamp_secs(t.timestamp()),
                )),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(filters.captured_after),
                    bound(filters.captured_before),
                )),
            ));
        }
        (user_query, BooleanQuery::new(clauses))
    }

    /// BM25 over every text field of every language. Quotes make phrases; operators of the
    /// tantivy query language work, and malformed syntax degrades to plain words.
    pub fn search(&self, query: &str, filters: &Filters, limit: usize) -> Result<Vec<TextHit>> {
        if query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        // Every word first (Meilisearch's default): at archive scale common words each match a
        // large share of the documents, and their intersection is far cheaper to rank than
        // their union. When fewer than `limit` documents hold every word, the documents with
        // any word follow them, so a hit with all the words always ranks above one without.
        let (user_query, full) = self.parse(query, filters, true);
        let mut top = searcher
            .search(&full, &TopDocs::with_limit(limit).order_by_score())
            .map_err(self.err())?;
        if top.len() < limit {
            let (_, any) = self.parse(query, filters, false);
            let wider = searcher
                .search(&any, &TopDocs::with_limit(limit).order_by_score())
                .map_err(self.err())?;
            let seen: std::collections::HashSet<_> = top.iter().map(|(_, a)| *a).collect();
            let room = limit - top.len();
            top.extend(
                wider
                    .into_iter()
                    .filter(|(_, a)| !seen.contains(a))
                    .take(room),
            );
        }
        // Snippets come from the user's words only, never from the filter terms.
        let mut generators = Vec::new();
        for (name, _, field, _) in &self.text_fields {
            if matches!(*name, "caption" | "text" | "title" | "keywords") {
                let mut g = SnippetGenerator::create(&searcher, &*user_query, *field)
                    .map_err(self.err())?;
                g.set_max_num_chars(200);
                generators.push((*field, g));
            }
        }
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(self.err())?;
            let text = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let segment_id = text(self.fields.segment_id);
            let snippet = generators.iter().find_map(|(field, g)| {
                let value = doc.get_first(*field).and_then(|v| v.as_str())?;
                let s = g.snippet(value);
                (!s.highlighted().is_empty()).then(|| s.to_html())
            });
            hits.push(TextHit {
                asset_id: text(self.fields.asset_id),
                segment_id: (!segment_id.is_empty()).then_some(segment_id),
                score,
                snippet,
            });
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(asset: &str, caption: &str, lang: &str) -> TextDoc {
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
        let hits = index
            .search("boxer fights", &Filters::default(), 10)
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].asset_id, "a1");
        assert!(
            hits[0]
                .snippet
                .as_deref()
                .unwrap()
                .contains("<b>Boxers</b>"),
            "{:?}",
            hits[0].snippet
        );
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
                .into_iter()
                .map(|h| h.asset_id)
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
                .len(),
            1
        );
        assert_eq!(
            index
                .search("célébrer victoires", &Filters::default(), 10)
                .unwrap()
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
                .into_iter()
                .map(|h| h.asset_id)
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
            .unwrap();
        assert_eq!(
            hits.iter().map(|h| h.asset_id.as_str()).collect::<Vec<_>>(),
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
            index.search("stadium", &by_date, 10).unwrap()[0].asset_id,
            "new"
        );
        let by_collection = Filters {
            collection: Some("archive".into()),
            ..Default::default()
        };
        assert_eq!(
            index.search("stadium", &by_collection, 10).unwrap()[0].asset_id,
            "old"
        );
        let by_kind = Filters {
            kind: Some(AssetKind::Video),
            ..Default::default()
        };
        assert!(index.search("stadium", &by_kind, 10).unwrap().is_empty());
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
        let hits = index.search("gold", &Filters::default(), 10).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.asset_id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }
}
