//! Conjunctions of common words answered from cached bitsets.
//!
//! Every word of a query is required first (see [`TextIndex::search`](crate::TextIndex)). When
//! each word is in a good share of the documents, tantivy's intersection leapfrogs through
//! their posting lists, decoding and seeking through tens of thousands of entries per segment to
//! find the few thousand documents holding all of them; under load that was the largest share
//! of a search's time. A segment never changes once written, so the set of documents holding a
//! common word in it is kept here as a bitset, the intersection is a word-wise AND of those
//! bitsets, and only the documents in it are scored, with tantivy's own BM25 of each word: the
//! scores, and so the ranking, are exactly those of the plain intersection.
//!
//! Only words in at least 1/[`DENSE_SHARE`] of a segment's documents get a bitset; a conjunction
//! with a rarer word is left to tantivy, whose intersection is then driven by that word's short
//! list and is cheap. The cache is bounded by [`BUDGET_BYTES`] and forgets the least recently
//! used bitsets first, which also drops those of segments merged away.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::fieldnorm::FieldNormReader;
use tantivy::index::SegmentId;
use tantivy::postings::Postings;
use tantivy::query::{
    Bm25Weight, BooleanQuery, EmptyScorer, EnableScoring, Explanation, Occur, Query, Scorer,
    TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

/// A word in at least 1/`DENSE_SHARE` of a segment's documents is answered from a bitset.
/// Leapfrogging costs a seek (tens of nanoseconds) per entry of the rarest list, the AND about
/// a nanosecond per 64 documents and word, so the bitsets win far below this share; what bounds
/// it is memory:
/// at 1/128 a bitset (a bit per document) takes about 16 times its compressed posting list
/// (some 8 bits per entry). A French word in 15% of the French documents, a seventh of the
/// archive, is in 2% of a segment's documents.
const DENSE_SHARE: u64 = 128;
/// Memory the bitsets may take: 64 MiB holds 64 common words of an 8M-document segment, or
/// every word of both languages of the bench archive's 560k text documents (about 8 MB).
const BUDGET_BYTES: usize = 64 << 20;

/// The bitsets of common words per segment, least recently used forgotten first.
#[derive(Default)]
pub(crate) struct TermBitsets {
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(SegmentId, Term), Entry>,
    bytes: usize,
    clock: u64,
}

struct Entry {
    docs: Arc<TermDocs>,
    used: u64,
}

/// The documents of a segment holding a word: one bit each, and the frequency of the word in
/// those holding it more than once (a title word is indexed twice, see `text::weight`).
struct TermDocs {
    bits: Vec<u64>,
    /// (document, frequency) for frequencies above one, by document.
    repeated: Vec<(DocId, u32)>,
}

impl TermDocs {
    fn bytes(&self) -> usize {
        self.bits.len() * 8 + self.repeated.len() * 8
    }
}

impl std::fmt::Debug for TermBitsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("TermBitsets")
            .field("bitsets", &cache.entries.len())
            .field("bytes", &cache.bytes)
            .finish()
    }
}

impl TermBitsets {
    /// The documents of `reader` holding `term`.
    fn get(&self, reader: &SegmentReader, term: &Term) -> tantivy::Result<Arc<TermDocs>> {
        let key = (reader.segment_id(), term.clone());
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.clock += 1;
            let now = cache.clock;
            if let Some(entry) = cache.entries.get_mut(&key) {
                entry.used = now;
                return Ok(entry.docs.clone());
            }
        }
        // Built outside the lock: two searches may build the same bitset at once, which costs
        // one extra pass over a posting list, never a wrong answer.
        let mut docs = TermDocs {
            bits: vec![0u64; (reader.max_doc() as usize).div_ceil(64)],
            repeated: Vec::new(),
        };
        if let Some(mut postings) = reader
            .inverted_index(term.field())?
            .read_postings(term, IndexRecordOption::WithFreqs)?
        {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                docs.bits[doc as usize / 64] |= 1 << (doc % 64);
                let freq = postings.term_freq();
                if freq > 1 {
                    docs.repeated.push((doc, freq));
                }
                doc = postings.advance();
            }
        }
        let docs = Arc::new(docs);
        let size = docs.bytes();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        while cache.bytes + size > BUDGET_BYTES && !cache.entries.is_empty() {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
                .expect("the cache is not empty");
            if let Some(gone) = cache.entries.remove(&oldest) {
                cache.bytes -= gone.docs.bytes();
            }
        }
        let used = cache.clock;
        if cache
            .entries
            .insert(
                key,
                Entry {
                    docs: docs.clone(),
                    used,
                },
            )
            .is_none()
        {
            cache.bytes += size;
        }
        Ok(docs)
    }

    /// How many bitsets are kept, and their bytes.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        (cache.entries.len(), cache.bytes)
    }
}

/// Every one of `terms` (of one field) required, scored as tantivy's intersection of their
/// [`TermQuery`](tantivy::query::TermQuery)s scores, answered from bitsets where they are common.
#[derive(Clone, Debug)]
pub(crate) struct Conjunction {
    terms: Vec<Term>,
    /// The query it stands for, which answers segments where a word is rare.
    plain: BooleanQuery,
    bitsets: Arc<TermBitsets>,
}

impl Conjunction {
    /// `query` as a conjunction when it is one: a boolean query whose clauses are all required
    /// term queries on one field (what the query parser makes of plain words when every word
    /// is required), at least two of them. Anything else (a phrase, a boost, an optional
    /// word) is left as it is.
    pub(crate) fn of(query: &dyn Query, bitsets: &Arc<TermBitsets>) -> Option<Conjunction> {
        let boolean = query.downcast_ref::<BooleanQuery>()?;
        let clauses = boolean.clauses();
        if clauses.len() < 2 {
            return None;
        }
        let term_of =
            |clause: &dyn Query| clause.downcast_ref::<TermQuery>().map(|q| q.term().clone());
        let field = term_of(&*clauses[0].1)?.field();
        let mut terms = Vec::with_capacity(clauses.len());
        for (occur, clause) in clauses {
            let term = term_of(&**clause)?;
            if *occur != Occur::Must || term.field() != field {
                return None;
            }
            terms.push(term);
        }
        Some(Conjunction {
            terms,
            plain: boolean.clone(),
            bitsets: bitsets.clone(),
        })
    }
}

impl Query for Conjunction {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let weights = match scoring {
            EnableScoring::Enabled {
                statistics_provider,
                ..
            } => Some(
                self.terms
                    .iter()
                    .map(|t| Bm25Weight::for_terms(statistics_provider, std::slice::from_ref(t)))
                    .collect::<tantivy::Result<Vec<_>>>()?,
            ),
            EnableScoring::Disabled { .. } => None,
        };
        Ok(Box::new(ConjunctionWeight {
            terms: self.terms.clone(),
            weights,
            // Reads the words' statistics again (about 0.35% of a search's CPU under load):
            // remembering them for the query measured no faster.
            plain: self.plain.weight(scoring)?,
            bitsets: self.bitsets.clone(),
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for term in &self.terms {
            visitor(term, false);
        }
    }
}

struct ConjunctionWeight {
    terms: Vec<Term>,
    /// BM25 of each word, as its `TermQuery` has it (`None` when scores are not wanted).
    weights: Option<Vec<Bm25Weight>>,
    plain: Box<dyn Weight>,
    bitsets: Arc<TermBitsets>,
}

impl Weight for ConjunctionWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let field = self.terms[0].field();
        let inverted = reader.inverted_index(field)?;
        let mut infos = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            let Some(info) = inverted.get_term_info(term)? else {
                return Ok(Box::new(EmptyScorer));
            };
            infos.push(info);
        }
        let max_doc = u64::from(reader.max_doc());
        if infos
            .iter()
            .any(|i| u64::from(i.doc_freq) * DENSE_SHARE < max_doc)
        {
            return self.plain.scorer(reader, boost);
        }
        let docs = self
            .terms
            .iter()
            .map(|term| self.bitsets.get(reader, term))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let mut words = docs[0].bits.clone();
        for d in &docs[1..] {
            words.iter_mut().zip(&d.bits).for_each(|(a, b)| *a &= *b);
        }
        let mut terms: Vec<TermScore> = match &self.weights {
            None => Vec::new(),
            Some(weights) => docs
                .into_iter()
                .zip(weights)
                .zip(&infos)
                .map(|((docs, weight), info)| TermScore {
                    docs,
                    next: 0,
                    weight: weight.boost_by(boost),
                    doc_freq: info.doc_freq,
                })
                .collect(),
        };
        // In the order tantivy's intersection adds them up, rarest first, so that the sums
        // are the same to the last bit.
        terms.sort_by_key(|t| t.doc_freq);
        let fieldnorms = reader
            .fieldnorms_readers()
            .get_field(field)?
            .unwrap_or_else(|| FieldNormReader::constant(reader.max_doc(), 1));
        Ok(Box::new(BitsetScorer::new(words, terms, fieldnorms)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.plain.explain(reader, doc)
    }
}

/// One word's part of a document's score.
struct TermScore {
    docs: Arc<TermDocs>,
    /// Where the next document's frequency is looked for in `docs.repeated` (documents come in
    /// order).
    next: usize,
    weight: Bm25Weight,
    doc_freq: u32,
}

impl TermScore {
    /// The word's frequency in `doc`, a document holding it, not before the last one asked.
    fn freq(&mut self, doc: DocId) -> u32 {
        let repeated = &self.docs.repeated;
        while self.next < repeated.len() && repeated[self.next].0 < doc {
            self.next += 1;
        }
        match repeated.get(self.next) {
            Some((d, freq)) if *d == doc => *freq,
            _ => 1,
        }
    }
}

/// The documents of a word-wise AND, each scored by the sum of its words' BM25 (as tantivy's
/// `TermScorer` scores a word: its frequency in the document and the document's length).
struct BitsetScorer {
    words: Vec<u64>,
    doc: DocId,
    len: u32,
    terms: Vec<TermScore>,
    fieldnorms: FieldNormReader,
    /// The score of a document holding each word once, by its length code (`NaN` until a
    /// document of that length is scored): most documents of a conjunction hold each word
    /// once, and their score then depends on their length only.
    once: [Score; 256],
}

impl BitsetScorer {
    fn new(words: Vec<u64>, terms: Vec<TermScore>, fieldnorms: FieldNormReader) -> Self {
        let len = words.iter().map(|w| w.count_ones()).sum();
        let mut scorer = BitsetScorer {
            words,
            doc: 0,
            len,
            terms,
            fieldnorms,
            once: [Score::NAN; 256],
        };
        scorer.doc = scorer.first_from(0);
        scorer
    }

    /// The first document at or after `from`.
    fn first_from(&self, from: DocId) -> DocId {
        let mut i = from as usize / 64;
        if i >= self.words.len() {
            return TERMINATED;
        }
        let mut w = self.words[i] & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                return (i * 64) as DocId + w.trailing_zeros();
            }
            i += 1;
            if i == self.words.len() {
                return TERMINATED;
            }
            w = self.words[i];
        }
    }
}

impl DocSet for BitsetScorer {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = self.first_from(self.doc + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc != TERMINATED && target > self.doc {
            self.doc = if target == TERMINATED {
                TERMINATED
            } else {
                self.first_from(target)
            };
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.len
    }
}

/// The words' frequencies in one document (queries rarely have more than eight words).
type SmallFreqs = smallvec::SmallVec<[u32; 8]>;

/// A document's score from its words' frequencies, added as `Intersection::score` adds them:
/// the two rarest words, then the sum of the others, so that the sums are tantivy's to the bit.
fn sum_of_scores(terms: &[TermScore], fieldnorm_id: u8, freqs: &[u32]) -> Score {
    let score = |(t, &freq): (&TermScore, &u32)| t.weight.score(fieldnorm_id, freq);
    let two = 2.min(terms.len());
    terms[..two]
        .iter()
        .zip(&freqs[..two])
        .map(score)
        .sum::<Score>()
        + terms[two..]
            .iter()
            .zip(&freqs[two..])
            .map(score)
            .sum::<Score>()
}

impl Scorer for BitsetScorer {
    fn score(&mut self) -> Score {
        if self.terms.is_empty() {
            return 1.0;
        }
        let doc = self.doc;
        let fieldnorm_id = self.fieldnorms.fieldnorm_id(doc);
        let freqs: SmallFreqs = self.terms.iter_mut().map(|t| t.freq(doc)).collect();
        if freqs.iter().all(|&f| f == 1) {
            let once = &mut self.once[usize::from(fieldnorm_id)];
            if once.is_nan() {
                *once = sum_of_scores(&self.terms, fieldnorm_id, &freqs);
            }
            return *once;
        }
        sum_of_scores(&self.terms, fieldnorm_id, &freqs)
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{STRING, Schema, TEXT};
    use tantivy::{Index, doc};

    use super::*;

    /// An index of several segments, with deletions, whose documents draw words from a small
    /// vocabulary (so most words are common) plus one rare word.
    fn index() -> (Index, tantivy::schema::Field) {
        let mut schema = Schema::builder();
        let body = schema.add_text_field("body", TEXT);
        let id = schema.add_text_field("id", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let vocab = ["red", "blue", "green", "gold", "sea", "sky", "run", "jump"];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for segment in 0..3 {
            for n in 0..3_000 {
                let mut words: Vec<&str> = (0..1 + (x % 9))
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        vocab[(x % vocab.len() as u64) as usize]
                    })
                    .collect();
                if n % 500 == 7 {
                    words.push("rare");
                }
                let key = format!("{segment}-{n}");
                writer
                    .add_document(doc!(body => words.join(" "), id => key))
                    .unwrap();
            }
            writer.commit().unwrap();
        }
        for n in (0..3_000).step_by(7) {
            writer.delete_term(Term::from_field_text(id, &format!("1-{n}")));
        }
        writer.commit().unwrap();
        (index, body)
    }

    fn all_of(field: tantivy::schema::Field, words: &[&str]) -> BooleanQuery {
        BooleanQuery::new(
            words
                .iter()
                .map(|w| {
                    (
                        Occur::Must,
                        Box::new(TermQuery::new(
                            Term::from_field_text(field, w),
                            IndexRecordOption::WithFreqsAndPositions,
                        )) as Box<dyn Query>,
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn bitsets_find_and_score_exactly_what_the_intersection_does() {
        let (index, body) = index();
        let searcher = index.reader().unwrap().searcher();
        let bitsets = Arc::new(TermBitsets::default());
        let queries: [&[&str]; 5] = [
            &["red", "blue"],
            &["gold", "sea", "sky"],
            &["run", "jump", "red", "green"],
            &["sky", "rare"],
            &["red", "absent"],
        ];
        let red = || {
            Box::new(TermQuery::new(
                Term::from_field_text(body, "red"),
                IndexRecordOption::Basic,
            )) as Box<dyn Query>
        };
        for (words, filtered) in queries.iter().flat_map(|w| [(*w, false), (*w, true)]) {
            let plain = all_of(body, words);
            let fast = Conjunction::of(&plain, &bitsets).expect("plain words are a conjunction");
            // As the text index nests them: either language's words, and maybe a filter (here
            // one more word, which the intersection seeks through).
            let nest = |q: Box<dyn Query>| match filtered {
                false => BooleanQuery::new(vec![(Occur::Should, q)]),
                true => BooleanQuery::new(vec![(Occur::Must, q), (Occur::Must, red())]),
            };
            let (plain, fast) = (nest(Box::new(plain)), nest(Box::new(fast)));
            let top = TopDocs::with_limit(10_000).order_by_score();
            let expected = searcher.search(&plain, &top).unwrap();
            let got = searcher.search(&fast, &top).unwrap();
            assert_eq!(got.len(), expected.len(), "{words:?} {filtered}");
            // Same documents with the same scores (ties may list in another order).
            let key = |v: &[(f32, tantivy::DocAddress)]| {
                let mut v: Vec<_> = v.iter().map(|(s, a)| (s.to_bits(), *a)).collect();
                v.sort();
                v
            };
            assert!(
                key(&got) == key(&expected),
                "{words:?} {filtered}: other scores"
            );
            let count = tantivy::collector::Count;
            assert_eq!(
                searcher.search(&fast, &count).unwrap(),
                searcher.search(&plain, &count).unwrap(),
                "{words:?}"
            );
        }
        let (held, bytes) = bitsets.held();
        assert!(held > 0, "common words were kept as bitsets");
        assert!(bytes > 0);
        assert!(
            bitsets
                .cache
                .lock()
                .unwrap()
                .entries
                .values()
                .any(|e| !e.docs.repeated.is_empty()),
            "some documents hold a word twice: their frequencies were scored"
        );
        // The rare word is never a bitset: a conjunction with it is tantivy's own.
        let rare = Term::from_field_text(body, "rare");
        assert!(
            !bitsets
                .cache
                .lock()
                .unwrap()
                .entries
                .keys()
                .any(|(_, t)| *t == rare)
        );
    }

    #[test]
    fn only_required_plain_words_make_a_conjunction() {
        let (_, body) = index();
        let bitsets = Arc::new(TermBitsets::default());
        let term = |w: &str| {
            Box::new(TermQuery::new(
                Term::from_field_text(body, w),
                IndexRecordOption::WithFreqs,
            )) as Box<dyn Query>
        };
        let optional = BooleanQuery::new(vec![
            (Occur::Must, term("red")),
            (Occur::Should, term("blue")),
        ]);
        assert!(Conjunction::of(&optional, &bitsets).is_none());
        let one = BooleanQuery::new(vec![(Occur::Must, term("red"))]);
        assert!(Conjunction::of(&one, &bitsets).is_none());
        assert!(Conjunction::of(&*term("red"), &bitsets).is_none());
    }
}
