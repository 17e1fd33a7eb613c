//! Query words embedded together. Concurrent searches share one encoder pass: on CPU a batch of
//! 32 short queries through all-MiniLM-L6-v2 costs about 6 ms a query against 23 ms one at a
//! time (docs/benchmarks.md), because the matrix products of a 7-token input are too small to
//! keep the cores busy. Recent queries are remembered, so paging and facet clicks (the same
//! words again) cost no encoder pass at all.
//!
//! No thread of its own: the first caller to find no batch running leads: it embeds what is
//! waiting (up to 64) and hands the lead to the first caller still waiting, if any; the others
//! wait for their vectors or for the lead.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, mpsc};

use crate::analysis::Analyzers;
use crate::error::{Error, Result};

/// Most queries in one encoder pass.
const MAX_BATCH: usize = 64;
/// Queries remembered.
const CACHE: usize = 4096;

/// A query's vectors: sentence space, CLIP text space (each `None` without its model).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryVectors {
    pub sentence: Option<Vec<f32>>,
    pub clip: Option<Vec<f32>>,
}

/// What a waiting caller is told: its vectors (or why not), or that it leads the next batch.
enum Message {
    Vectors(std::result::Result<QueryVectors, String>),
    Lead,
}

#[derive(Default)]
pub struct QueryBatcher {
    state: Mutex<State>,
}

impl std::fmt::Debug for QueryBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryBatcher").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    pending: Vec<(String, mpsc::Sender<Message>)>,
    running: bool,
    cache: HashMap<String, QueryVectors>,
    order: VecDeque<String>,
}

impl State {
    fn remember(&mut self, text: String, vectors: QueryVectors) {
        if self.cache.insert(text.clone(), vectors).is_none() {
            self.order.push_back(text);
            if self.order.len() > CACHE
                && let Some(old) = self.order.pop_front()
            {
                self.cache.remove(&old);
            }
        }
    }
}

/// Clears `running` however the leader leaves (a panic in an encoder included), so that the
/// next caller leads; waiting callers see their sender dropped and get an error.
struct Leading<'a> {
    state: &'a Mutex<State>,
    done: bool,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.running = false;
            s.pending.clear();
        }
    }
}

impl QueryBatcher {
    /// The vectors of `text` in every space whose model is installed. Blocks: call it off the
    /// async runtime, and not on a rayon worker (the encoders need those while callers wait).
    pub fn embed(&self, analyzers: &Analyzers, text: &str) -> Result<QueryVectors> {
        if analyzers.sentence.is_none() && analyzers.clip.is_none() {
            return Ok(QueryVectors::default());
        }
        let (tx, rx) = mpsc::channel();
        let lead = {
            let mut s = self.lock();
            if let Some(v) = s.cache.get(text) {
                return Ok(v.clone());
            }
            s.pending.push((text.to_string(), tx));
            !std::mem::replace(&mut s.running, true)
        };
        if lead {
            self.lead(analyzers);
        }
        loop {
            match rx.recv() {
                Ok(Message::Vectors(Ok(v))) => return Ok(v),
                Ok(Message::Vectors(Err(message))) => {
                    return Err(Error::Task(format!("embedding the query: {message}")));
                }
                Ok(Message::Lead) => self.lead(analyzers),
                Err(_) => {
                    return Err(Error::Task(
                        "embedding the query: the encoder pass stopped".into(),
                    ));
                }
            }
        }
    }

    /// Embeds one batch of what is waiting, then hands the lead to the first caller still
    /// waiting (so that no leader serves others for longer than one batch), or ends the run.
    fn lead(&self, analyzers: &Analyzers) {
        let mut leading = Leading {
            state: &self.state,
            done: false,
        };
        let batch: Vec<(String, mpsc::Sender<Message>)> = {
            let mut s = self.lock();
            let n = s.pending.len().min(MAX_BATCH);
            s.pending.drain(..n).collect()
        };
        let texts: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
        let outcome = embed_batch(analyzers, &texts);
        let mut s = self.lock();
        match outcome {
            Ok(vectors) => {
                for ((text, reply), v) in batch.into_iter().zip(vectors) {
                    s.remember(text, v.clone());
                    let _ = reply.send(Message::Vectors(Ok(v)));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Message::Vectors(Err(message.clone())));
                }
            }
        }
        // In the same critical section as the check: a caller that queues after this leads
        // the next batch itself.
        while let Some((_, next)) = s.pending.first() {
            if next.send(Message::Lead).is_ok() {
                leading.done = true;
                return;
            }
            s.pending.remove(0);
        }
        s.running = false;
        leading.done = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One pass of each installed text encoder over `texts`, one after the other: each already
/// uses both cores, and side by side their 8-bit products (candle's spinning thread pool, one
/// caller at a time) took 2.5× as long as in turn (`kairos bench search`, docs/benchmarks.md).
fn embed_batch(analyzers: &Analyzers, texts: &[&str]) -> Result<Vec<QueryVectors>> {
    let sentence = analyzers
        .sentence
        .as_ref()
        .map(|s| s.embed(texts))
        .transpose();
    let clip = analyzers
        .clip
        .as_ref()
        .map(|c| c.embed_texts(texts))
        .transpose();
    let (mut sentence, mut clip) = (sentence?.map(Vec::into_iter), clip?.map(Vec::into_iter));
    Ok(texts
        .iter()
        .map(|_| QueryVectors {
            sentence: sentence.as_mut().and_then(Iterator::next),
            clip: clip.as_mut().and_then(Iterator::next),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_forgets_the_oldest_query_first() {
        let mut s = State::default();
        for i in 0..CACHE + 1 {
            s.remember(format!("q{i}"), QueryVectors::default());
        }
        assert_eq!(s.cache.len(), CACHE);
        assert!(!s.cache.contains_key("q0"));
        assert!(s.cache.contains_key(&format!("q{CACHE}")));
        s.remember("q5".into(), QueryVectors::default());
        assert_eq!(s.order.len(), CACHE);
    }

    #[test]
    fn concurrent_queries_get_the_vectors_they_would_get_alone() {
        use kairos_models::ClipEncoder;
        use kairos_models::clip::{HfClipConfig, word_level_tokenizer_json};
        let words = [
            "a", "red", "blue", "green", "circle", "square", "big", "small",
        ];
        let (clip, _) =
            ClipEncoder::random(&HfClipConfig::tiny(), &word_level_tokenizer_json(&words)).unwrap();
        let analyzers = Analyzers {
            clip: Some(clip),
            ..Default::default()
        };
        // Distinct queries: a query asked twice at once may be embedded in two batches, whose
        // vectors differ in the last bits, and the cache keeps one of them.
        let mut queries: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        for (i, a) in words.iter().enumerate() {
            for b in &words[i + 1..] {
                queries.push(format!("{a} {b}"));
            }
        }
        queries.truncate(24);
        let together: Vec<QueryVectors> = std::thread::scope(|scope| {
            let handles: Vec<_> = queries
                .iter()
                .map(|q| scope.spawn(|| analyzers.queries.embed(&analyzers, q).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let clip = analyzers.clip.as_ref().unwrap();
        for (q, v) in queries.iter().zip(&together) {
            let alone = clip.embed_texts(&[q.as_str()]).unwrap().pop().unwrap();
            let got = v.clip.as_ref().expect("a CLIP vector");
            let diff = alone
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{q:?}: batched differs from alone by {diff}");
            assert_eq!(v.sentence, None);
        }
        // Asked again, from the cache.
        assert_eq!(
            analyzers.queries.embed(&analyzers, &queries[3]).unwrap(),
            together[3]
        );
    }

    #[test]
    fn without_text_models_there_is_nothing_to_embed() {
        let b = QueryBatcher::default();
        let v = b.embed(&Analyzers::default(), "anything").unwrap();
        assert_eq!(v, QueryVectors::default());
    }
}
