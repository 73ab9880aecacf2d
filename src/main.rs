use clap::Parser;

use icbridge::cli::Cli;

// glibc's allocator took about 7% of the processor under load (malloc, free and their
// consolidation across threads); mimalloc's thread-local heaps cost a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    icbridge::commands::run(cli).await
}
