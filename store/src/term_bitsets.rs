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
//! A document holding each word once (most of them) has the score of its length, computed once
//! per length code; a second bitset per word marks the documents holding it more often (twice,
//! unless a short list of higher frequencies says otherwise). When the conjunction is a whole
//! query (one language, no filter; see `TextIndex::top`) its documents are found and scored in
//! one pass over the bitsets, which hands the collector only those above its threshold.
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
/// Memory the bitsets may take: 64 MiB holds some 30 common words of an 8M-document segment
/// (each with its repeats), or every word of both languages of the bench archive's 560k text
/// documents (about 16 MB).
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
    /// A bit for each document holding the word more than once (empty when none does).
    repeats: Vec<u64>,
    /// (document, frequency) for frequencies above two, by document: few (a title word is
    /// indexed twice).
    more: Vec<(DocId, u32)>,
}

impl TermDocs {
    fn bytes(&self) -> usize {
        (self.bits.len() + self.repeats.len() + self.more.len()) * 8
    }

    /// Whether `doc` holds the word more than once.
    fn repeats(&self, doc: DocId) -> bool {
        self.repeats
            .get(doc as usize / 64)
            .is_some_and(|w| w & (1 << (doc % 64)) != 0)
    }

    /// The word's frequency in `doc`, a document holding it more than once.
    fn repeated_freq(&self, doc: DocId) -> u32 {
        match self.more.binary_search_by_key(&doc, |(d, _)| *d) {
            Ok(i) => self.more[i].1,
            Err(_) => 2,
        }
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
            repeats: Vec::new(),
            more: Vec::new(),
        };
        let mut repeated = Vec::new();
        if let Some(mut postings) = reader
            .inverted_index(term.field())?
            .read_postings(term, IndexRecordOption::WithFreqs)?
        {
            let mut doc = postings.doc();
            while doc != TERMINATED {
                docs.bits[doc as usize / 64] |= 1 << (doc % 64);
                let freq = postings.term_freq();
                if freq > 1 {
                    repeated.push(doc);
                }
                if freq > 2 {
                    docs.more.push((doc, freq));
                }
                doc = postings.advance();
            }
        }
        if !repeated.is_empty() {
            docs.repeats = vec![0u64; docs.bits.len()];
            for doc in repeated {
                docs.repeats[doc as usize / 64] |= 1 << (doc % 64);
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
        // A document's repeated words are one bit each of a `u64` (see `prune`).
        if clauses.len() < 2 || clauses.len() > 64 {
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

/// How a segment answers a conjunction.
enum Answer {
    /// A word is in none of its documents.
    Nothing,
    /// A word is rare in it: tantivy's own intersection.
    Plain,
    /// Every word is common in it: their bitsets.
    Bitsets(Box<Found>),
}

/// The bitsets of a conjunction's words in a segment, and how its documents are scored.
struct Found {
    docs: Vec<Arc<TermDocs>>,
    scoring: Scoring,
}

impl ConjunctionWeight {
    fn answer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Answer> {
        let field = self.terms[0].field();
        let inverted = reader.inverted_index(field)?;
        let mut infos = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            let Some(info) = inverted.get_term_info(term)? else {
                return Ok(Answer::Nothing);
            };
            infos.push(info);
        }
        let max_doc = u64::from(reader.max_doc());
        if infos
            .iter()
            .any(|i| u64::from(i.doc_freq) * DENSE_SHARE < max_doc)
        {
            return Ok(Answer::Plain);
        }
        // In the order tantivy's intersection adds them up, rarest first, so that the sums
        // are the same to the last bit.
        let mut order: Vec<usize> = (0..self.terms.len()).collect();
        order.sort_by_key(|&i| infos[i].doc_freq);
        let docs = order
            .iter()
            .map(|&i| self.bitsets.get(reader, &self.terms[i]))
            .collect::<tantivy::Result<Vec<_>>>()?;
        let terms: Vec<TermScore> = match &self.weights {
            None => Vec::new(),
            Some(weights) => order
                .iter()
                .zip(&docs)
                .map(|(&i, docs)| TermScore {
                    docs: docs.clone(),
                    weight: weights[i].boost_by(boost),
                })
                .collect(),
        };
        let fieldnorms = reader
            .fieldnorms_readers()
            .get_field(field)?
            .unwrap_or_else(|| FieldNormReader::constant(reader.max_doc(), 1));
        Ok(Answer::Bitsets(Box::new(Found {
            docs,
            scoring: Scoring {
                terms,
                fieldnorms,
                once: [Score::NAN; 256],
            },
        })))
    }
}

impl Weight for ConjunctionWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(match self.answer(reader, boost)? {
            Answer::Nothing => Box::new(EmptyScorer),
            Answer::Plain => self.plain.scorer(reader, boost)?,
            Answer::Bitsets(found) => Box::new(BitsetScorer::new(*found)),
        })
    }

    /// The top documents' search when the conjunction is the whole query (one language, no
    /// filter; see `TextIndex::top`): [`prune`]. Through [`scorer`](Self::scorer), each
    /// document took a virtual call per layer of the query above it at every step, and its
    /// length was read from memory evicted by then (that load was 40% of the scoring).
    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        match self.answer(reader, 1.0)? {
            Answer::Nothing => {}
            // tantivy prunes its own intersection (block-max WAND). It adds the words up in
            // another order than its scorer: a score may differ in its last bit from the
            // bitsets' in another segment, which can swap only documents that close.
            Answer::Plain => self.plain.for_each_pruning(threshold, reader, callback)?,
            Answer::Bitsets(mut found) => {
                prune(&found.docs, &mut found.scoring, threshold, callback)
            }
        }
        Ok(())
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.plain.explain(reader, doc)
    }
}

/// One word's part of a document's score.
struct TermScore {
    docs: Arc<TermDocs>,
    weight: Bm25Weight,
}

/// The words' frequencies in one document (queries rarely have more than eight words).
type SmallFreqs = smallvec::SmallVec<[u32; 8]>;

/// A document's score, the sum of its words' BM25 (as tantivy's `TermScorer` scores a word: its
/// frequency in the document and the document's length).
struct Scoring {
    /// The words, rarest first (none when scores are not wanted: every document scores 1).
    terms: Vec<TermScore>,
    fieldnorms: FieldNormReader,
    /// The score of a document holding each word once, by its length code (`NaN` until a
    /// document of that length is scored): most documents of a conjunction hold each word
    /// once, and their score then depends on their length only.
    once: [Score; 256],
}

impl Scoring {
    /// The score of `doc`, a document of the AND whose length code is `fieldnorm_id`, where
    /// bit `i` of `repeats` says whether it holds word `i` more than once.
    fn score(&mut self, doc: DocId, fieldnorm_id: u8, repeats: u64) -> Score {
        if self.terms.is_empty() {
            return 1.0;
        }
        if repeats == 0 {
            let once = self.once[usize::from(fieldnorm_id)];
            if !once.is_nan() {
                return once;
            }
            let ones: SmallFreqs = smallvec::smallvec![1; self.terms.len()];
            let once = self.sum(fieldnorm_id, &ones);
            self.once[usize::from(fieldnorm_id)] = once;
            return once;
        }
        let freqs: SmallFreqs = self
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| match repeats >> i & 1 {
                0 => 1,
                _ => t.docs.repeated_freq(doc),
            })
            .collect();
        self.sum(fieldnorm_id, &freqs)
    }

    /// The score from the words' frequencies, added as `Intersection::score` adds them: the two
    /// rarest words, then the sum of the others, so that the sums are tantivy's to the bit.
    fn sum(&self, fieldnorm_id: u8, freqs: &[u32]) -> Score {
        let score = |(t, &freq): (&TermScore, &u32)| t.weight.score(fieldnorm_id, freq);
        let two = 2.min(self.terms.len());
        self.terms[..two]
            .iter()
            .zip(&freqs[..two])
            .map(score)
            .sum::<Score>()
            + self.terms[two..]
                .iter()
                .zip(&freqs[two..])
                .map(score)
                .sum::<Score>()
    }
}

/// Hands `callback` each document of the AND of `words` (in [`Scoring`]'s order) whose score
/// is above `threshold`, which `callback` returns raised, as `Weight::for_each_pruning` asks:
/// in one pass over the words' bitsets, which ANDs them eight machine words at a time and scores
/// the documents of each as it goes. The lengths of 64 documents are read before any of them is
/// scored, so that their cache misses (a line per document) overlap.
fn prune(
    words: &[Arc<TermDocs>],
    scoring: &mut Scoring,
    mut threshold: Score,
    callback: &mut dyn FnMut(DocId, Score) -> Score,
) {
    let n = words[0].bits.len();
    let bits: smallvec::SmallVec<[&[u64]; 8]> = words.iter().map(|d| &d.bits[..n]).collect();
    let repeats: smallvec::SmallVec<[&[u64]; 8]> = words.iter().map(|d| &d.repeats[..]).collect();
    let mut repeated: smallvec::SmallVec<[u64; 8]> = smallvec::smallvec![0; words.len()];
    // (document, its words held more than once as bits)
    let mut docs = [(0 as DocId, 0u64); 64];
    let mut lengths = [0u8; 64];
    let mut flush = |scoring: &mut Scoring, docs: &[(DocId, u64)]| {
        for (length, &(doc, _)) in lengths.iter_mut().zip(docs) {
            *length = scoring.fieldnorms.fieldnorm_id(doc);
        }
        for (&length, &(doc, repeats)) in lengths.iter().zip(docs) {
            let score = scoring.score(doc, length, repeats);
            if score > threshold {
                threshold = callback(doc, score);
            }
        }
    };
    let mut k = 0;
    // The documents of machine word `i` of the AND, `w`, with the words each holds repeatedly.
    let mut take = |i: usize, mut w: u64| {
        let mut any = 0;
        for (r, word) in repeated.iter_mut().zip(&repeats) {
            *r = word.get(i).copied().unwrap_or(0) & w;
            any |= *r;
        }
        while w != 0 {
            let bit = w & w.wrapping_neg();
            let mut held = 0;
            if any & bit != 0 {
                for (j, r) in repeated.iter().enumerate() {
                    held |= u64::from(r & bit != 0) << j;
                }
            }
            docs[k] = ((i * 64) as DocId + w.trailing_zeros(), held);
            w ^= bit;
            k += 1;
            if k == docs.len() {
                flush(scoring, &docs);
                k = 0;
            }
        }
    };
    // Eight machine words of every bitset at a time: one vector each where the CPU has them,
    // and a whole run of 512 documents skipped when their AND is empty.
    let runs: smallvec::SmallVec<[&[[u64; RUN]]; 8]> =
        bits.iter().map(|b| b.as_chunks::<RUN>().0).collect();
    for c in 0..n / RUN {
        let mut and = runs[0][c];
        for run in &runs[1..] {
            for (a, b) in and.iter_mut().zip(&run[c]) {
                *a &= b;
            }
        }
        if and.iter().fold(0, |any, w| any | w) == 0 {
            continue;
        }
        for (l, w) in and.into_iter().enumerate() {
            if w != 0 {
                take(c * RUN + l, w);
            }
        }
    }
    for i in n / RUN * RUN..n {
        let w = bits.iter().fold(!0u64, |a, b| a & b[i]);
        if w != 0 {
            take(i, w);
        }
    }
    flush(scoring, &docs[..k]);
}

/// Machine words of a bitset ANDed together by [`prune`] before any is looked at.
const RUN: usize = 8;

/// The documents of a word-wise AND, scored by [`Scoring`].
struct BitsetScorer {
    words: Vec<u64>,
    doc: DocId,
    len: u32,
    scoring: Scoring,
}

impl BitsetScorer {
    fn new(found: Found) -> Self {
        let docs = &found.docs;
        let mut words = docs[0].bits.clone();
        for d in &docs[1..] {
            words.iter_mut().zip(&d.bits).for_each(|(a, b)| *a &= *b);
        }
        let len = words.iter().map(|w| w.count_ones()).sum();
        let mut scorer = BitsetScorer {
            words,
            doc: 0,
            len,
            scoring: found.scoring,
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

impl Scorer for BitsetScorer {
    fn score(&mut self) -> Score {
        let doc = self.doc;
        let fieldnorm_id = self.scoring.fieldnorms.fieldnorm_id(doc);
        let repeats = (self.scoring.terms.iter().enumerate())
            .fold(0, |held, (i, t)| held | u64::from(t.docs.repeats(doc)) << i);
        self.scoring.score(doc, fieldnorm_id, repeats)
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
        // Alone (one language, no filter), the top documents are found by pruning: the same
        // documents with the same scores in the same order (ties by address) as when every
        // document is scored.
        for words in queries {
            let plain = all_of(body, words);
            let fast = Conjunction::of(&plain, &bitsets).expect("plain words are a conjunction");
            let every = BooleanQuery::new(vec![(
                Occur::Should,
                Box::new(fast.clone()) as Box<dyn Query>,
            )]);
            for limit in [1, 10, 10_000] {
                let top = TopDocs::with_limit(limit).order_by_score();
                let got = searcher.search(&fast, &top).unwrap();
                assert_eq!(got, searcher.search(&every, &top).unwrap(), "{words:?}");
                // tantivy's pruned intersection adds the words up in another order than its
                // scorer does: the last bit of a score may differ, and so the order of near
                // ties.
                let pruned = searcher.search(&plain, &top).unwrap();
                assert_eq!(got.len(), pruned.len(), "{words:?}");
                for ((a, _), (b, _)) in got.iter().zip(&pruned) {
                    assert!((a - b).abs() <= 1e-5 * b, "{words:?}: {a} {b}");
                }
                if words != ["red", "absent"] {
                    assert!(!got.is_empty(), "{words:?}");
                }
            }
        }
        let (held, bytes) = bitsets.held();
        assert!(held > 0, "common words were kept as bitsets");
        assert!(bytes > 0);
        let any = |held: fn(&TermDocs) -> bool| {
            let cache = bitsets.cache.lock().unwrap();
            cache.entries.values().any(|e| held(&e.docs))
        };
        assert!(
            any(|d| !d.repeats.is_empty()),
            "some documents hold a word twice: their frequencies were scored"
        );
        assert!(
            any(|d| !d.more.is_empty()),
            "some hold one three times or more"
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
