//! The `valine` binary: parses the command line and hands over to [`valine::cli`].

use std::process::ExitCode;

use clap::Parser;

/// The most threads tokio's blocking pool may start. Its main user is the SQLite store,
/// whose calls take one lock in turn: more threads only queue on it, and under a
/// thousand commands a second the default (512) grew the pool to twenty threads, each
/// with its own stack and allocator arena, a quarter of the server's own memory. Name
/// lookups and file reads share the pool, waiting at most for the calls queued ahead.
const BLOCKING_THREADS: usize = 4;

fn main() -> ExitCode {
    valine::allocator::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("valine: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let parsed = if valine::cli::started_by_lambda() {
        Ok(valine::cli::Cli {
            command: valine::cli::Command::Lambda,
        })
    } else {
        valine::cli::Cli::try_parse()
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version on stdout with success; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                valine::cli::exit::USAGE
            } else {
                0
            });
        }
    };
    match valine::cli::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(exit) => {
            if let Some(message) = exit.message {
                eprintln!("valine: {message}");
            }
            ExitCode::from(exit.code)
        }
    }
}
