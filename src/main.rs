use clap::Parser;

use icbridge::cli::Cli;

// glibc's allocator took about 7% of the processor under load (malloc, free and their
// consolidation across threads); mimalloc's thread-local heaps cost a fraction of that.
// Its `override` feature (Cargo.toml) gives it the C code's allocations too: SQLite's
// malloc and free were another 2% of the processor, on the writer thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// This runtime runs the background workers (the outbox, the Webex desk, retention) and
// their upstream connections; HTTP requests run on actix's own workers, one per core.
// One thread keeps a relay's task and its connection's on the same core: with two, the
// benchmark's follow-ups cost about 10% more processor time in cross-thread wake-ups.
#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    icbridge::commands::run(cli).await
}
