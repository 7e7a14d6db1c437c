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
    // The command line is read before the runtime starts, so `--help`, `--version` and
    // usage errors answer without starting its worker threads.
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(e) => {
            eprintln!("valine: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command to run, or the exit code once clap has printed help, the version or a
/// usage error.
fn parse() -> Result<valine::cli::Cli, ExitCode> {
    if valine::cli::started_by_lambda() {
        return Ok(valine::cli::Cli {
            command: valine::cli::Command::Lambda,
        });
    }
    valine::cli::Cli::try_parse().map_err(|e| {
        // clap prints help and version on stdout with success; usage errors exit 2.
        let _ = e.print();
        ExitCode::from(if e.use_stderr() {
            valine::cli::exit::USAGE
        } else {
            0
        })
    })
}

async fn run(cli: valine::cli::Cli) -> ExitCode {
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
