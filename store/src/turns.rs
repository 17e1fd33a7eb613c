//! Turns on the cores for the CPU work of searches (their BM25 candidates, their HNSW walks):
//! one thread per core runs the steps, the waiting steps served oldest search first.
//!
//! Without turns, 32 concurrent searches time-shared the two cores of the load bench step by
//! step, and the ones the kernel happened to schedule last waited longest: p99 was 1.7× p50.
//! Served in turns, every search waits about as long as every other, and a search's second
//! step (its vector walk, once its words are embedded) goes before the first step of the
//! searches that came after it, so a search that has started finishes first
//! (docs/benchmarks.md, "Search under load").
//!
//! The steps run on threads of their own, each taking the next step as soon as it finishes one.
//! Handing a turn to the waiting search's task instead, which then handed its step to tokio's
//! blocking pool, left each turn held and unused for 0.45–0.6 ms (median, under a 32-client
//! load) while those two threads were woken and scheduled: a core's worth of searching a
//! fifth of the time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// Which search a step belongs to: searches are served in the order of their tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// The turns of one store (cloning shares them). Its threads end when the last clone is
/// dropped.
#[derive(Debug, Clone)]
pub(crate) struct Turns(Arc<Owner>);

/// Stops the threads when dropped.
#[derive(Debug)]
struct Owner(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    threads: usize,
    next_ticket: AtomicU64,
    state: Mutex<State>,
    /// Signalled when a step is queued or the turns close.
    queued: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Steps waiting, oldest ticket first; the order they were asked in breaks ties.
    waiting: BinaryHeap<Reverse<Step>>,
    asked: u64,
    /// Threads started so far: up to `threads`, on the first steps.
    spawned: usize,
    closed: bool,
}

struct Step {
    ticket: Ticket,
    asked: u64,
    run: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("ticket", &self.ticket)
            .field("asked", &self.asked)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Step {
    fn eq(&self, other: &Self) -> bool {
        (self.ticket, self.asked) == (other.ticket, other.asked)
    }
}
impl Eq for Step {}
impl PartialOrd for Step {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Step {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ticket, self.asked).cmp(&(other.ticket, other.asked))
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.closed = true;
        // Steps still queued are dropped: their callers see the turns closed.
        s.waiting.clear();
        drop(s);
        self.0.queued.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One thread's loop: the oldest step waiting, until the turns close.
    fn serve(&self) {
        loop {
            let step = {
                let mut s = self.lock();
                loop {
                    if s.closed {
                        return;
                    }
                    if let Some(Reverse(step)) = s.waiting.pop() {
                        break step;
                    }
                    s = self.queued.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            (step.run)();
        }
    }
}

impl Turns {
    /// As many steps at once as this machine has cores.
    pub(crate) fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub(crate) fn new(at_once: usize) -> Self {
        Self(Arc::new(Owner(Arc::new(Shared {
            threads: at_once.max(1),
            next_ticket: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            queued: Condvar::new(),
        }))))
    }

    /// The ticket of a new search.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.shared().next_ticket.fetch_add(1, Ordering::Relaxed))
    }

    fn shared(&self) -> &Arc<Shared> {
        &(self.0).0
    }

    /// Runs `step` of search `ticket` in its turn and returns what it returns. A step whose
    /// caller has gone (its search dropped: the client went away) before its turn is skipped.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        ticket: Ticket,
        step: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let run = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let out = std::panic::catch_unwind(AssertUnwindSafe(step));
            let _ = tx.send(out);
        });
        let shared = self.shared();
        {
            let mut s = shared.lock();
            // Counted one by one: a thread that fails to start is tried again by the next step,
            // the steps meanwhile run on those that did, and none is queued without a thread.
            while s.spawned < shared.threads {
                let worker = shared.clone();
                let started = std::thread::Builder::new()
                    .name(format!("kairos-search-{}", s.spawned))
                    .spawn(move || worker.serve());
                match started {
                    Ok(_) => s.spawned += 1,
                    Err(_) if s.spawned > 0 => break,
                    Err(e) => {
                        return Err(Error::Task(format!("starting a search thread: {e}")));
                    }
                }
            }
            s.asked += 1;
            let asked = s.asked;
            s.waiting.push(Reverse(Step { ticket, asked, run }));
        }
        shared.queued.notify_one();
        match rx.await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(_)) => Err(Error::Task("a search step panicked".into())),
            Err(_) => Err(Error::Task("the search threads have stopped".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A step that records its name when it starts and holds its thread until told to go on.
    fn step(
        name: &'static str,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> (impl FnOnce() + Send + 'static, std::sync::mpsc::Sender<()>) {
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let order = order.clone();
        (
            move || {
                order.lock().unwrap().push(name);
                let _ = wait.recv();
            },
            go,
        )
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    #[tokio::test]
    async fn no_more_steps_than_threads_and_the_oldest_search_goes_first() {
        let turns = Turns::new(2);
        let (a, b, c, d) = (
            turns.ticket(),
            turns.ticket(),
            turns.ticket(),
            turns.ticket(),
        );
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut running = Vec::new();
        let mut gos = Vec::new();
        // c and d hold both threads; then d, b and a ask, newest first.
        for (name, ticket) in [("c", c), ("d", d), ("d2", d), ("b", b), ("a", a)] {
            let (f, go) = step(name, &order);
            gos.push((name, go));
            let turns = turns.clone();
            running.push(tokio::spawn(async move { turns.run(ticket, f).await }));
            settle().await;
        }
        assert_eq!(*order.lock().unwrap(), ["c", "d"], "a third step ran");
        let go = |name: &str| {
            let (_, g) = gos.iter().find(|(n, _)| *n == name).unwrap();
            g.send(()).unwrap();
        };
        go("c");
        settle().await;
        assert_eq!(*order.lock().unwrap(), ["c", "d", "a"]);
        go("d");
        settle().await;
        go("a");
        settle().await;
        go("b");
        go("d2");
        for r in running {
            r.await.unwrap().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["c", "d", "a", "b", "d2"]);
    }

    #[tokio::test]
    async fn a_step_dropped_before_its_turn_is_skipped_and_a_panic_is_an_error() {
        let turns = Turns::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (hold, go) = step("held", &order);
        let held = tokio::spawn({
            let turns = turns.clone();
            async move { turns.run(turns.ticket(), hold).await }
        });
        settle().await;
        // Dropped before its turn comes.
        let (skipped, _go) = step("skipped", &order);
        let gone = tokio::spawn({
            let turns = turns.clone();
            async move { turns.run(turns.ticket(), skipped).await }
        });
        settle().await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        go.send(()).unwrap();
        held.await.unwrap().unwrap();
        let err = turns
            .run(turns.ticket(), || panic!("boom"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        // The thread survived the panic.
        let v = tokio::time::timeout(Duration::from_secs(5), turns.run(turns.ticket(), || 7))
            .await
            .expect("the thread was lost");
        assert_eq!(v.unwrap(), 7);
        assert_eq!(*order.lock().unwrap(), ["held"]);
    }

    #[tokio::test]
    async fn the_threads_end_with_the_turns() {
        let turns = Turns::new(2);
        let shared = Arc::downgrade(turns.shared());
        assert_eq!(turns.run(turns.ticket(), || 1).await.unwrap(), 1);
        drop(turns);
        for _ in 0..100 {
            if shared.upgrade().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the search threads still hold the turns");
    }
}
