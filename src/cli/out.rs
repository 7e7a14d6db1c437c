//! The one way a sub-command writes its output. A reader that goes away early
//! (`valine audit | head -1`) is not a failure of the command: the write fails with a
//! broken pipe (Rust ignores SIGPIPE, and `println!` would panic on it), and the
//! command stops there and exits 0 without a word. Any other write error is a failure.

use std::fmt::Display;
use std::io::{ErrorKind, Write};

use super::{Exit, exit};

/// Writes `text` as it is.
pub fn print(text: &str) -> Result<(), Exit> {
    write(text.as_bytes())
}

/// Writes `text` and a newline.
pub fn line(text: impl Display) -> Result<(), Exit> {
    write(format!("{text}\n").as_bytes())
}

fn write(bytes: &[u8]) -> Result<(), Exit> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| closed_or_failed(&e))
}

/// The exit for a failed write: quiet success when the reader went away.
fn closed_or_failed(e: &std::io::Error) -> Exit {
    if e.kind() == ErrorKind::BrokenPipe {
        Exit {
            code: exit::OK,
            message: None,
        }
    } else {
        Exit::failed(format!("cannot write the output: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_reader_ends_quietly_and_other_errors_fail() {
        let quiet = closed_or_failed(&std::io::Error::from(ErrorKind::BrokenPipe));
        assert_eq!((quiet.code, quiet.message), (exit::OK, None));
        let failed = closed_or_failed(&std::io::Error::other("disk full"));
        assert_eq!(failed.code, exit::FAILED);
        assert!(failed.message.unwrap().contains("disk full"));
    }
}
