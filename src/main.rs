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
