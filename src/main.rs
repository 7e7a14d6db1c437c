//! The `valine` binary: parses the command line and hands over to [`valine::cli`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
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
