//! Where files are read, hashed and decoded. While the previous batch is being embedded by CLIP
//! (which keeps every core busy), that work runs on threads of the lowest priority (nice 19), so
//! it takes only what the encoder leaves idle, and has the cores to itself once the encoder is
//! done. At equal priority the two stages take turns on the cores and the whole was slower than
//! one after the other (docs/benchmarks.md). With no encoder running, rayon's ordinary pool.

use std::sync::OnceLock;

/// Runs `f` on the low-priority pool when `behind_encoder`, else on rayon's global pool.
pub(crate) fn decode<T: Send>(behind_encoder: bool, f: impl FnOnce() -> T + Send) -> T {
    if behind_encoder {
        low_priority_pool().install(f)
    } else {
        f()
    }
}

/// As many threads as cores, at the lowest priority.
fn low_priority_pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kairos-decode-{i}"))
            .start_handler(|_| lowest_priority())
            .build()
            .expect("a thread pool of a few threads can be started")
    })
}

/// Lowers the calling thread to nice 19. Failing to is not an error: it only costs speed.
fn lowest_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
    ) {
        tracing::debug!("decode threads keep their priority: {e:?}");
    }
}
