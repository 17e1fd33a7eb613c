//! Query words embedded together. Concurrent searches share one encoder pass: on CPU a batch of
//! 32 short queries through all-MiniLM-L6-v2 costs about 6 ms a query against 23 ms one at a
//! time (docs/benchmarks.md), because the matrix products of a 7-token input are too small to
//! keep the cores busy. Recent queries are remembered, so paging and facet clicks (the same
//! words again) cost no encoder pass at all.
//!
//! A search hands its words in when it arrives ([`QueryBatcher::submit`]) and asks for their
//! vectors when it is about to work ([`QueryBatcher::wait`]): under load, after waiting for its
//! turn on the cores. Each pass embeds every query handed in so far, so the searches queued
//! behind the one that asks get their vectors in the same pass, and find them ready when their
//! turn comes. Embedding each search's words as it arrived made passes of one to four queries
//! under a 32-client load, each reading all the model's weights.
//!
//! No thread of its own: the first caller to find no pass running leads: it embeds what is
//! waiting (up to 64) and hands the lead to the first caller still waiting, if any; the others
//! wait for their vectors or for the lead. The query that makes sixteen pending is offered
//! the lead at once ([`QueryBatcher::start`]), so that under load the vectors are ready before
//! the turns come, and it may run beside a pass already running (`PASSES_AT_ONCE`): with one
//! pass at a time, the searches queued behind a pass had their other steps done long before it
//! ended, and the second core sat idle for milliseconds at a time (docs/benchmarks.md).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, mpsc};

use crate::analysis::Analyzers;
use crate::error::{Error, Result};

/// Most queries in one encoder pass.
const MAX_BATCH: usize = 64;
/// Queries handed in that start a pass at once, before any of their searches asks. 16 since
/// the encoder's pass got cheaper (unpadded rows): under the 32-client load it made 4–6% more
/// queries/s than 8, in six alternating pairs (docs/benchmarks.md, session 24).
const LEAD_AT: usize = 16;
/// Queries remembered.
const CACHE: usize = 4096;
/// Passes that may run at once. A second one starts only for a batch's worth of queries
/// ([`LEAD_AT`]) handed in while the first runs, on the core that would otherwise wait for it:
/// a pass runs on its caller's thread (`kairos serve --threads 1`), and two cores are what this
/// server is tuned on.
const PASSES_AT_ONCE: usize = 2;

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

/// Words handed in by [`QueryBatcher::submit`], for [`QueryBatcher::wait`].
#[derive(Debug)]
pub struct Submitted {
    state: Submission,
    lead: Lead,
}

/// Whether the caller of [`QueryBatcher::start`] runs a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Lead {
    #[default]
    No,
    /// These words made [`LEAD_AT`] pending with a pass free to start. Only an offer: `start`
    /// takes the lead if that still holds, so a caller that drops it leaves nothing held.
    Offered,
    /// The lead was handed over (the pass is held for this caller): it must lead.
    Handed,
}

#[derive(Debug)]
enum Submission {
    /// Known at once: from the cache, or nothing to embed.
    Ready(QueryVectors),
    Queued {
        id: u64,
        reply: mpsc::Receiver<Message>,
    },
}

impl Submitted {
    /// Whether these words made a batch: their caller should run the pass now
    /// ([`QueryBatcher::start`]).
    pub fn leads(&self) -> bool {
        self.lead != Lead::No
    }

    /// The vectors, if a pass has embedded them already (or they were known at once). Does not
    /// block.
    pub fn ready(&mut self) -> Option<Result<QueryVectors>> {
        match &self.state {
            Submission::Ready(v) => Some(Ok(v.clone())),
            Submission::Queued { reply, .. } => match reply.try_recv() {
                Ok(Message::Vectors(v)) => Some(vectors(v)),
                // (Only a caller marked waiting is handed the lead; kept for `wait` all the
                // same.)
                Ok(Message::Lead) => {
                    self.lead = Lead::Handed;
                    None
                }
                Err(mpsc::TryRecvError::Empty) => None,
                Err(mpsc::TryRecvError::Disconnected) => Some(Err(stopped())),
            },
        }
    }
}

/// A query handed in and not yet embedded.
struct Entry {
    id: u64,
    text: String,
    reply: mpsc::Sender<Message>,
    /// Its caller is blocked in [`QueryBatcher::wait`], so it can take the lead.
    waiting: bool,
}

#[derive(Default)]
struct State {
    pending: Vec<Entry>,
    /// Passes running, up to [`PASSES_AT_ONCE`].
    running: usize,
    next_id: u64,
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

/// Counts the pass out of `running` however the leader leaves (a panic in an encoder included),
/// so that the next caller leads; callers with queries pending see their sender dropped and get
/// an error.
struct Leading<'a> {
    state: &'a Mutex<State>,
    done: bool,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.running = s.running.saturating_sub(1);
            s.pending.clear();
        }
    }
}

impl QueryBatcher {
    /// The vectors of `text` in every space whose model is installed: [`submit`](Self::submit)
    /// then [`wait`](Self::wait). Blocks: call it off the async runtime, and not on a rayon
    /// worker (the encoders need those while callers wait).
    pub fn embed(&self, analyzers: &Analyzers, text: &str) -> Result<QueryVectors> {
        let submitted = self.submit(analyzers, text);
        self.wait(analyzers, submitted)
    }

    /// Hands `text` in for the next encoder pass, without waiting: a pass led by any caller
    /// embeds it from now on. Returns at once.
    pub fn submit(&self, analyzers: &Analyzers, text: &str) -> Submitted {
        if analyzers.sentence.is_none() && analyzers.clip.is_none() {
            return Submitted {
                state: Submission::Ready(QueryVectors::default()),
                lead: Lead::No,
            };
        }
        let mut s = self.lock();
        if let Some(v) = s.cache.get(text) {
            return Submitted {
                state: Submission::Ready(v.clone()),
                lead: Lead::No,
            };
        }
        let (tx, rx) = mpsc::channel();
        let id = s.next_id;
        s.next_id += 1;
        s.pending.push(Entry {
            id,
            text: text.to_string(),
            reply: tx,
            waiting: false,
        });
        let lead = if s.pending.len() >= LEAD_AT && s.running < PASSES_AT_ONCE {
            Lead::Offered
        } else {
            Lead::No
        };
        Submitted {
            state: Submission::Queued { id, reply: rx },
            lead,
        }
    }

    /// Runs the pass that `submitted` was asked to lead ([`Submitted::leads`]), if any, on this
    /// thread. Blocks.
    pub fn start(&self, analyzers: &Analyzers, submitted: &mut Submitted) {
        let lead = match std::mem::take(&mut submitted.lead) {
            Lead::No => false,
            Lead::Handed => true,
            Lead::Offered => {
                let mut s = self.lock();
                let take = s.running < PASSES_AT_ONCE && s.pending.len() >= LEAD_AT;
                s.running += usize::from(take);
                take
            }
        };
        if lead {
            self.lead(analyzers);
        }
    }

    /// The vectors of submitted words: at once when a pass has embedded them already, else
    /// from the running pass, or from a pass this caller leads. Blocks, like
    /// [`embed`](Self::embed).
    pub fn wait(&self, analyzers: &Analyzers, mut submitted: Submitted) -> Result<QueryVectors> {
        self.start(analyzers, &mut submitted);
        let (id, rx) = match submitted.state {
            Submission::Ready(v) => return Ok(v),
            Submission::Queued { id, reply } => (id, reply),
        };
        let lead = {
            let mut s = self.lock();
            match rx.try_recv() {
                Ok(Message::Vectors(v)) => return vectors(v),
                // (Only a caller marked waiting is handed the lead; taken all the same.)
                Ok(Message::Lead) => true,
                Err(mpsc::TryRecvError::Disconnected) => return Err(stopped()),
                Err(mpsc::TryRecvError::Empty) => {
                    if let Some(e) = s.pending.iter_mut().find(|e| e.id == id) {
                        e.waiting = true;
                    }
                    // No pass to wait for, or a batch's worth waiting and a pass free.
                    let lead = s.running == 0
                        || (s.running < PASSES_AT_ONCE && s.pending.len() >= LEAD_AT);
                    s.running += usize::from(lead);
                    lead
                }
            }
        };
        if lead {
            self.lead(analyzers);
        }
        loop {
            match rx.recv() {
                Ok(Message::Vectors(v)) => return vectors(v),
                Ok(Message::Lead) => self.lead(analyzers),
                Err(_) => return Err(stopped()),
            }
        }
    }

    /// Embeds one batch of what is pending, then hands the lead to the first caller waiting
    /// (so that no leader serves others for longer than one batch), or ends the run.
    fn lead(&self, analyzers: &Analyzers) {
        let mut leading = Leading {
            state: &self.state,
            done: false,
        };
        let batch: Vec<Entry> = {
            let mut s = self.lock();
            let n = s.pending.len().min(MAX_BATCH);
            s.pending.drain(..n).collect()
        };
        let texts: Vec<&str> = batch.iter().map(|e| e.text.as_str()).collect();
        let outcome = embed_batch(analyzers, &texts);
        let mut s = self.lock();
        match outcome {
            Ok(vectors) => {
                for (e, v) in batch.into_iter().zip(vectors) {
                    s.remember(e.text, v.clone());
                    let _ = e.reply.send(Message::Vectors(Ok(v)));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for e in batch {
                    let _ = e.reply.send(Message::Vectors(Err(message.clone())));
                }
            }
        }
        // In the same critical section as the check: a caller that waits after this leads
        // the next batch itself. A caller that has gone (its search cancelled) is dropped.
        while let Some(i) = s.pending.iter().position(|e| e.waiting) {
            if s.pending[i].reply.send(Message::Lead).is_ok() {
                leading.done = true;
                return;
            }
            s.pending.remove(i);
        }
        s.running -= 1;
        leading.done = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn vectors(v: std::result::Result<QueryVectors, String>) -> Result<QueryVectors> {
    v.map_err(|message| Error::Task(format!("embedding the query: {message}")))
}

fn stopped() -> Error {
    Error::Task("embedding the query: the encoder pass stopped".into())
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

    const WORDS: [&str; 8] = [
        "a", "red", "blue", "green", "circle", "square", "big", "small",
    ];

    /// A batch's worth ([`LEAD_AT`]) of different queries of [`WORDS`], different again for
    /// each `round`.
    fn batch(round: usize) -> Vec<String> {
        (0..LEAD_AT)
            .map(|i| format!("{} {} {}", WORDS[i % 8], WORDS[i / 8 % 8], WORDS[round % 8]))
            .collect()
    }

    /// Analyzers with a small random CLIP text encoder over [`WORDS`].
    fn tiny_clip() -> Analyzers {
        use kairos_models::ClipEncoder;
        use kairos_models::clip::{HfClipConfig, word_level_tokenizer_json};
        let (clip, _) =
            ClipEncoder::random(&HfClipConfig::tiny(), &word_level_tokenizer_json(&WORDS)).unwrap();
        Analyzers {
            clip: Some(clip),
            ..Default::default()
        }
    }

    #[test]
    fn a_pass_embeds_every_query_handed_in_so_far() {
        let analyzers = tiny_clip();
        let b = &analyzers.queries;
        let first = b.submit(&analyzers, "red circle");
        let mut second = b.submit(&analyzers, "blue square");
        assert!(!first.leads() && !second.leads());
        assert!(second.ready().is_none(), "embedded before any pass");
        let v = b.wait(&analyzers, first).unwrap();
        // The pass that the first search ran embedded the second one's words too.
        let w = second
            .ready()
            .expect("ready without a pass of its own")
            .unwrap();
        let clip = analyzers.clip.as_ref().unwrap();
        let alone = clip.embed_texts(&["blue square"]).unwrap().pop().unwrap();
        let got = w.clip.unwrap();
        assert!(got.iter().zip(&alone).all(|(a, b)| (a - b).abs() < 1e-4));
        assert!(v.clip.is_some());
        assert!(b.lock().pending.is_empty() && b.lock().running == 0);
        // Known words are ready at once.
        assert!(b.submit(&analyzers, "red circle").ready().is_some());
    }

    #[test]
    fn the_query_that_fills_a_batch_leads_its_pass() {
        let analyzers = tiny_clip();
        let b = &analyzers.queries;
        let mut submitted: Vec<Submitted> =
            batch(0).iter().map(|w| b.submit(&analyzers, w)).collect();
        let leads: Vec<bool> = submitted.iter().map(Submitted::leads).collect();
        assert_eq!(leads.iter().filter(|l| **l).count(), 1);
        assert!(leads[LEAD_AT - 1], "{leads:?}");
        b.start(&analyzers, &mut submitted[LEAD_AT - 1]);
        for s in &mut submitted {
            assert!(s.ready().is_some_and(|v| v.is_ok()));
        }
        assert_eq!(b.lock().running, 0);
        // An offer to lead that is dropped holds nothing: the next caller is served.
        let offered: Vec<Submitted> = batch(1).iter().map(|w| b.submit(&analyzers, w)).collect();
        assert!(offered.last().unwrap().leads());
        drop(offered);
        assert_eq!(b.lock().running, 0);
        b.embed(&analyzers, "green circle").unwrap();
        // A caller that never waits leaves nothing behind once a pass has run.
        let _forgotten = b.submit(&analyzers, "big red");
        b.embed(&analyzers, "small square").unwrap();
        assert!(b.lock().pending.is_empty());
    }

    #[test]
    fn a_batch_handed_in_during_a_pass_starts_a_second_one_but_not_a_third() {
        let analyzers = tiny_clip();
        let b = &analyzers.queries;
        // One pass running (its leader elsewhere): a batch's worth of words is offered a pass
        // of its own, which runs beside it.
        b.lock().running = 1;
        let mut submitted: Vec<Submitted> =
            batch(0).iter().map(|w| b.submit(&analyzers, w)).collect();
        assert!(submitted[LEAD_AT - 1].leads());
        b.start(&analyzers, &mut submitted[LEAD_AT - 1]);
        for s in &mut submitted {
            assert!(s.ready().is_some_and(|v| v.is_ok()));
        }
        assert_eq!(b.lock().running, 1, "the second pass counted itself out");
        // Every pass busy: no offer, and a caller that waits is served by the next pass to
        // end.
        b.lock().running = PASSES_AT_ONCE;
        let submitted: Vec<Submitted> = batch(1).iter().map(|w| b.submit(&analyzers, w)).collect();
        assert!(submitted.iter().all(|s| !s.leads()));
        let waiting = std::thread::scope(|scope| {
            let mut submitted = submitted.into_iter();
            let first = submitted.next().unwrap();
            let waiter = scope.spawn(|| b.wait(&analyzers, first));
            while !b.lock().pending.iter().any(|e| e.waiting) {
                std::thread::yield_now();
            }
            // A running pass ends: it embeds what is pending and hands the lead on or counts
            // itself out.
            b.lead(&analyzers);
            let v = waiter.join().unwrap();
            for mut s in submitted {
                assert!(s.ready().is_some_and(|v| v.is_ok()));
            }
            v
        });
        assert!(waiting.unwrap().clip.is_some());
        assert_eq!(b.lock().running, PASSES_AT_ONCE - 1);
    }

    #[test]
    fn concurrent_queries_get_the_vectors_they_would_get_alone() {
        let analyzers = tiny_clip();
        let words = WORDS;
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
