//! Turns on the cores for the CPU work of searches (their BM25 candidates, their HNSW walks):
//! at most one step per core at a time, and the waiting steps served oldest search first.
//!
//! Without turns, 32 concurrent searches time-shared the two cores of the load bench step by
//! step, and the ones the kernel happened to schedule last waited longest: p99 was 1.7× p50.
//! Served in turns, every search waits about as long as every other, and a search's second
//! step (its vector walk, once its words are embedded) goes before the first step of the
//! searches that came after it, so a search that has started finishes first
//! (docs/benchmarks.md, "Search under load").

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Which search a step belongs to: searches are served in the order of their tickets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

/// The turns of one store (cloning shares them).
#[derive(Debug, Clone)]
pub(crate) struct Turns(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    next_ticket: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    free: usize,
    /// Steps waiting, oldest ticket first; the order they asked in breaks ties.
    waiting: BinaryHeap<Reverse<Waiter>>,
    asked: u64,
}

#[derive(Debug)]
struct Waiter {
    ticket: Ticket,
    asked: u64,
    grant: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.ticket, self.asked) == (other.ticket, other.asked)
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.ticket, self.asked).cmp(&(other.ticket, other.asked))
    }
}

/// A turn, given back when dropped.
#[derive(Debug)]
pub(crate) struct Turn(Turns);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

impl Turns {
    /// As many turns at once as this machine has cores.
    pub(crate) fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    pub(crate) fn new(at_once: usize) -> Self {
        Self(Arc::new(Shared {
            next_ticket: AtomicU64::new(0),
            state: Mutex::new(State {
                free: at_once.max(1),
                waiting: BinaryHeap::new(),
                asked: 0,
            }),
        }))
    }

    /// The ticket of a new search.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.0.next_ticket.fetch_add(1, Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a turn for a step of search `ticket`.
    pub(crate) async fn take(&self, ticket: Ticket) -> Turn {
        let granted = {
            let mut s = self.lock();
            if s.free > 0 && s.waiting.is_empty() {
                s.free -= 1;
                return Turn(self.clone());
            }
            let (grant, granted) = oneshot::channel();
            s.asked += 1;
            let asked = s.asked;
            s.waiting.push(Reverse(Waiter {
                ticket,
                asked,
                grant,
            }));
            granted
        };
        // A search dropped while it waits (its client went away) must not keep a turn it was
        // given meanwhile.
        let mut waiting = Waiting {
            turns: self,
            granted,
            done: false,
        };
        // The sender lives in the queue until it grants: it is dropped unsent only with the
        // whole store.
        let _ = (&mut waiting.granted).await;
        waiting.done = true;
        Turn(self.clone())
    }

    /// Hands a turn to the oldest step still waiting, or frees it.
    fn give_back(&self) {
        let mut s = self.lock();
        while let Some(Reverse(next)) = s.waiting.pop() {
            if next.grant.send(()).is_ok() {
                return;
            }
        }
        s.free += 1;
    }
}

struct Waiting<'a> {
    turns: &'a Turns,
    granted: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.granted.close();
        if self.granted.try_recv().is_ok() {
            self.turns.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn no_more_turns_than_cores_and_the_oldest_search_goes_first() {
        let turns = Turns::new(2);
        let (a, b, c, d) = (
            turns.ticket(),
            turns.ticket(),
            turns.ticket(),
            turns.ticket(),
        );
        let first = turns.take(c).await;
        let second = turns.take(d).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        // Asked newest first: served oldest first.
        for (name, ticket) in [("d", d), ("b", b), ("a", a)] {
            let (turns, order) = (turns.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let turn = turns.take(ticket).await;
                order.lock().unwrap().push(name);
                settle().await;
                drop(turn);
            }));
            settle().await;
        }
        assert!(order.lock().unwrap().is_empty(), "a third turn was given");
        drop(first);
        settle().await;
        assert_eq!(*order.lock().unwrap(), ["a"]);
        drop(second);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["a", "b", "d"]);
        assert_eq!(turns.lock().free, 2);
    }

    #[tokio::test]
    async fn a_search_dropped_while_waiting_keeps_no_turn() {
        let turns = Turns::new(1);
        let held = turns.take(turns.ticket()).await;
        // Dropped before its turn comes.
        let gone = tokio::spawn({
            let turns = turns.clone();
            async move { turns.take(turns.ticket()).await }
        });
        settle().await;
        gone.abort();
        assert!(gone.await.unwrap_err().is_cancelled());
        drop(held);
        assert_eq!(turns.lock().free, 1);

        // Dropped after its turn was handed to it, before it ran again.
        let held = turns.take(turns.ticket()).await;
        let mut waiting = Box::pin(turns.take(turns.ticket()));
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(held);
        drop(waiting);
        assert_eq!(turns.lock().free, 1);
        let _again = tokio::time::timeout(Duration::from_secs(1), turns.take(turns.ticket()))
            .await
            .expect("the turn was lost");
    }

    /// Polls `f` once: `Some` when it is ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        let mut f = f;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
