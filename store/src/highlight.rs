//! Snippets: a query's words marked in the text of the hits shown, analysed as the text index
//! analyses them.
//!
//! What tantivy's `SnippetGenerator` gives (the same passages, the same marks: a test holds
//! them equal), made cheaper for a page of hits: every word of a text went through the whole
//! analyzer, stemmer included, and was lowercased again into a new string for its lookup (5%
//! of a search's CPU under load, for about 60 texts a page). Here each thread remembers what
//! the analyzer made of the words it has met, so a word is stemmed once, not once per text.

use std::cell::RefCell;
use std::ops::Range;
use std::path::PathBuf;

use foldhash::{HashMap, HashMapExt};
use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::tokenizer::{SimpleTokenizer, TextAnalyzer, TokenStream, Tokenizer};
use tantivy::{Score, Searcher};

use crate::error::{Error, Result};
use crate::text::{LANGUAGES, analyzer, language_slot};

/// Most characters of a snippet.
const MAX_CHARS: usize = 200;
/// Words a thread remembers per language before it starts again: at some 120 bytes a word
/// (the map's slot and two short strings), about 6 MB a language and thread at most. An
/// archive's speech uses fewer distinct words than this.
const REMEMBERED_WORDS: usize = 50_000;

/// Marks a query's words in text: made once per search, used only for the hits that are shown.
pub struct Highlighter {
    searcher: Option<Searcher>,
    query: Box<dyn Query>,
    /// The indexed field of each of [`LANGUAGES`].
    words: [Field; 2],
    /// The query's terms in each language's field, with their weight, once looked up.
    terms: [Option<HashMap<String, Score>>; 2],
    path: PathBuf,
}

impl std::fmt::Debug for Highlighter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Highlighter")
            .field("query", &self.query)
            .finish()
    }
}

impl Highlighter {
    /// Marks the terms of `query` in the fields `words`; with no searcher, marks nothing.
    pub(crate) fn new(
        searcher: Option<Searcher>,
        query: Box<dyn Query>,
        words: [Field; 2],
        path: PathBuf,
    ) -> Self {
        Self {
            searcher,
            query,
            words,
            terms: [None, None],
            path,
        }
    }

    /// The best passage of the first of `texts` that holds a word of the query, in a document
    /// of `language`, matched words in `<b>…</b>` (HTML-escaped); `None` when none does.
    pub fn snippet(&mut self, language: Option<&str>, texts: &[&str]) -> Result<Option<String>> {
        let Some(searcher) = &self.searcher else {
            return Ok(None);
        };
        let slot = language_slot(language);
        if self.terms[slot].is_none() {
            self.terms[slot] = Some(
                weighted_terms(searcher, &*self.query, self.words[slot]).map_err(|cause| {
                    Error::TextIndex {
                        path: self.path.clone(),
                        cause,
                    }
                })?,
            );
        }
        let terms = self.terms[slot].as_ref().expect("the terms were just read");
        if terms.is_empty() {
            return Ok(None);
        }
        Ok(texts
            .iter()
            .find_map(|text| Some(best_passage(text, terms, slot)?.html(text))))
    }
}

/// The terms of `query` in `field` that some document holds, each weighted by its rarity
/// (`1 / (1 + documents holding it)`), as tantivy's `SnippetGenerator` weighs them.
fn weighted_terms(
    searcher: &Searcher,
    query: &dyn Query,
    field: Field,
) -> tantivy::Result<HashMap<String, Score>> {
    let mut terms = Vec::new();
    query.query_terms(&mut |term, _| {
        if term.field() == field {
            terms.push(term.clone());
        }
    });
    let mut weighted = HashMap::new();
    for term in terms {
        let Some(text) = term.value().as_str().map(str::to_string) else {
            continue;
        };
        let documents = searcher.doc_freq(&term)?;
        if documents > 0 {
            weighted.insert(text, 1.0 / (1.0 + documents as Score));
        }
    }
    Ok(weighted)
}

/// A passage of at most [`MAX_CHARS`]: its byte range and its marked words.
struct Passage {
    score: Score,
    start: usize,
    stop: usize,
    marks: Vec<Range<usize>>,
}

impl Passage {
    fn at(start: usize) -> Self {
        Self {
            score: 0.0,
            start,
            stop: start,
            marks: Vec::new(),
        }
    }

    /// The passage of `text` HTML-escaped, its marked words in `<b>…</b>`.
    fn html(&self, text: &str) -> String {
        let mut out = String::with_capacity(self.stop - self.start + 16 * self.marks.len());
        let mut from = self.start;
        for mark in &self.marks {
            escape_into(&mut out, &text[from..mark.start]);
            out.push_str("<b>");
            escape_into(&mut out, &text[mark.clone()]);
            out.push_str("</b>");
            from = mark.end;
        }
        escape_into(&mut out, &text[from..self.stop]);
        out
    }
}

/// The passage of `text` whose marked words weigh most (the first of equals): cut where a
/// word would take it past [`MAX_CHARS`] bytes from its start, as tantivy cuts them.
fn best_passage(text: &str, terms: &HashMap<String, Score>, slot: usize) -> Option<Passage> {
    let mut best: Option<Passage> = None;
    let mut passage = Passage::at(0);
    let keep = |p: Passage, best: &mut Option<Passage>| {
        if p.score > 0.0 && best.as_ref().is_none_or(|b| p.score > b.score) {
            *best = Some(p);
        }
    };
    MEMORY.with_borrow_mut(|memory| {
        let analysed = &mut memory.analysed[slot];
        let mut stream = memory.words.token_stream(text);
        while let Some(word) = stream.next() {
            // A word the analyzer drops (a stop word, a very long word) neither cuts nor ends
            // a passage: the analyzer's stream never has it.
            let Some(term) = analysed.term(&word.text) else {
                continue;
            };
            if word.offset_to - passage.start > MAX_CHARS {
                keep(
                    std::mem::replace(&mut passage, Passage::at(word.offset_from)),
                    &mut best,
                );
            }
            passage.stop = word.offset_to;
            if let Some(weight) = terms.get(term) {
                passage.score += weight;
                passage.marks.push(word.offset_from..word.offset_to);
            }
        }
    });
    keep(passage, &mut best);
    best
}

/// `text` with `& < > " '` escaped, as tantivy's snippets escape them.
fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

thread_local! {
    static MEMORY: RefCell<Memory> = RefCell::new(Memory {
        words: SimpleTokenizer::default(),
        analysed: LANGUAGES.map(Analysed::new),
    });
}

/// A thread's tools for snippets: the tokenizer that splits texts into words (its buffer
/// reused from text to text), and what each language's analyzer made of the words met.
struct Memory {
    words: SimpleTokenizer,
    analysed: [Analysed; 2],
}

/// A language's analyzer, and the terms it made of words (`None`: it dropped the word).
struct Analysed {
    lang: &'static str,
    analyzer: TextAnalyzer,
    terms: HashMap<String, Option<String>>,
}

impl Analysed {
    fn new(lang: &'static str) -> Self {
        Self {
            lang,
            analyzer: analyzer(lang),
            terms: HashMap::new(),
        }
    }

    /// The term the index holds for `word` (one word of the simple tokenizer's), lowercased as
    /// tantivy's snippets look terms up.
    fn term(&mut self, word: &str) -> Option<&str> {
        if !self.terms.contains_key(word) {
            if self.terms.len() >= REMEMBERED_WORDS {
                self.terms.clear();
            }
            let mut stream = self.analyzer.token_stream(word);
            let term = stream.next().map(|t| t.text.to_lowercase());
            debug_assert!(
                stream.next().is_none(),
                "{} analyses {word:?} as one word",
                self.lang
            );
            self.terms.insert(word.to_string(), term);
        }
        self.terms[word].as_deref()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::snippet::SnippetGenerator;

    use super::*;
    use crate::catalog::Filters;
    use crate::text::tests::doc;
    use crate::text::{TextDoc, TextIndex};

    /// The snippets are tantivy's, passage for passage and mark for mark, in both languages:
    /// stop words, accents, case, long words, HTML characters, texts past one passage, and
    /// words met before (remembered) or never.
    #[test]
    fn snippets_are_tantivys() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[
                doc(
                    "a1",
                    "Boxers fighting in the final round of the relay",
                    "en",
                ),
                doc("a2", "L'équipe de France gagne la finale du relais", "fr"),
                doc("a3", "Running in the rain, the runners ran", "en"),
            ])
            .unwrap();
        index.commit().unwrap();
        let long = "The crowd waits. ".repeat(12)
            + "Then the boxers come in <fighting> & \"the final\" begins. "
            + &"Nothing happens for a while. ".repeat(10)
            + "A FINAL round: boxer against boxer, 'fights' everywhere.";
        // A word ending 200 bytes from the passage's start stays in it.
        let edge = "final".to_string() + &" word".repeat(45);
        let texts = [
            "Boxers fighting in the final round",
            "A quiet lake",
            long.as_str(),
            edge.as_str(),
            "L'équipe de France gagne la finale du relais, l'equipe est là",
            "ÉQUIPE finales relayé",
            "running runs ran runner rains rainy raining",
            "the of and a",
            "supercalifragilisticexpialidociousandthensomemorelettersx fight",
            "",
        ];
        let mut marked = 0;
        for query in [
            "boxer fights",
            "final",
            "équipe finale",
            "equipe relais",
            "run rain",
            "\"final round\"",
            "the",
        ] {
            let results = index.search(query, &Filters::default(), 10).unwrap();
            let mut ours = results.highlighter;
            for (slot, lang) in LANGUAGES.iter().enumerate() {
                let searcher = ours.searcher.clone().expect("the query has words");
                let mut theirs =
                    SnippetGenerator::create(&searcher, &*ours.query, ours.words[slot]).unwrap();
                theirs.set_max_num_chars(MAX_CHARS);
                // Twice: the second time every word is remembered.
                for _ in 0..2 {
                    for text in texts {
                        let s = theirs.snippet(text);
                        let expected = (!s.highlighted().is_empty()).then(|| s.to_html());
                        marked += usize::from(expected.is_some());
                        assert_eq!(
                            ours.snippet(Some(lang), &[text]).unwrap(),
                            expected,
                            "{query:?} in {lang} in {text:?}"
                        );
                    }
                }
            }
        }
        // Not a comparison of nothings: most queries mark words in several texts.
        assert!(marked >= 40, "{marked} snippets");
    }

    /// The words of the first text that holds one: later texts are not read.
    #[test]
    fn the_first_text_with_a_word_of_the_query_gives_the_snippet() {
        let tmp = tempfile::tempdir().unwrap();
        let index = TextIndex::open(tmp.path()).unwrap();
        index
            .add(&[TextDoc {
                asset_id: "a1".into(),
                caption: Some("a relay final".into()),
                ..Default::default()
            }])
            .unwrap();
        index.commit().unwrap();
        let mut h = index
            .search("relay", &Filters::default(), 10)
            .unwrap()
            .highlighter;
        assert_eq!(
            h.snippet(None, &["no match", "the relay", "relay again"])
                .unwrap()
                .as_deref(),
            Some("the <b>relay</b>")
        );
        assert_eq!(h.snippet(None, &["nothing", "here"]).unwrap(), None);
        // A word no document holds marks nothing.
        let mut none = index
            .search("zebra", &Filters::default(), 10)
            .unwrap()
            .highlighter;
        assert_eq!(none.snippet(None, &["a zebra"]).unwrap(), None);
    }
}
