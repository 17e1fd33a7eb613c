//! The `kairos` command line: parses arguments, builds configuration, calls into the crates.

mod bench;
mod bench_ingest;
mod bench_load;
mod bench_speech;
mod bench_video;
mod cli;
mod ingest;
mod jobs;
mod keys;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc gives freed memory back: with glibc's malloc each thread's arena kept what the
/// megapixel decodes and the encoder's activations had used (bulk ingest, CLIP B/32, 320 images:
/// peak 2.8 GiB against 2.1 GiB, at the same rate; docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    use_cores(args.threads());
    if matches!(args.command, cli::Command::Serve { .. }) {
        keep_freed_memory(SERVER_PURGE_DELAY_MS);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KAIROS_LOG").unwrap_or_else(|_| {
                "warn,qdrant_edge=error,symphonia_core=off,symphonia=off".into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How long a server keeps memory it has freed before giving it back to the system (mimalloc's
/// own delay is 1 s). Under search load a query's encoder pass runs on whichever of the
/// runtime's blocking threads leads it (33 different ones in 10 s), and what a thread had freed
/// was given back before its next pass, which then faulted fresh pages in and zeroed them (1.2%
/// of the cores). Kept 10 s: about 4% more queries/s at 32 clients (1,214 -> 1,258 on average
/// over five pairs), for 40-90 MiB more private memory (docs/benchmarks.md, session 23).
const SERVER_PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h, v3), which
/// `libmimalloc-sys` does not name. A test checks it against the option's default.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

#[allow(unsafe_code)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// Sets mimalloc's purge delay to `ms`, unless the operator set `MIMALLOC_PURGE_DELAY`.
fn keep_freed_memory(ms: std::ffi::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: called first thing in main, before any other thread exists (mimalloc's options
    // are not thread safe); the option exists in the mimalloc this binary links.
    #[allow(unsafe_code)]
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, ms);
    }
}

/// candle sizes its thread pool from `RAYON_NUM_THREADS`, else from a physical-core count that
/// came out below the cores this machine gives us: the CLIP encoder ran at 2.4 images/s by default
/// and 3.2 with the variable set to 2 (docs/benchmarks.md). `asked` (`kairos ingest --jobs N`,
/// `kairos serve --threads N`) wins, then an operator's own setting, then the command's
/// `default`, then every core.
fn use_cores((asked, default): (Option<usize>, Option<usize>)) {
    let threads = match asked {
        Some(n) => n,
        None if std::env::var_os("RAYON_NUM_THREADS").is_some() => return,
        None => default.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }),
    };
    // SAFETY: called first thing in main, before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_mimalloc_reads() {
        // Its default (1,000 ms in mimalloc v3) is no neighbouring option's.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            #[allow(unsafe_code)]
            // SAFETY: reads an option of the mimalloc this binary links.
            let delay = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
            assert_eq!(delay, 1_000);
        }
        keep_freed_memory(SERVER_PURGE_DELAY_MS);
        #[allow(unsafe_code)]
        // SAFETY: as above.
        let delay = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(delay, SERVER_PURGE_DELAY_MS);
        }
    }
}
